"""Users subgraph: users, user, roles, permissionCatalogue, createUser, setUserActive; User entity."""

from __future__ import annotations

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import Authenticated, requires
from opsconductor_shared.errors import (
    NotFoundError,
    PermissionError_,
    PublicGraphQLError,
    ValidationError,
    ValidationFailed,
    to_graphql_error,
)
from opsconductor_shared.logging import get_logger
from opsconductor_shared.paging import build_connection, decode_cursor
from opsconductor_users import service
from opsconductor_users.types import (
    CreateRoleInput,
    CreateRoleResult,
    CreateUserInput,
    CreateUserResult,
    DeleteRoleResult,
    DeleteUserResult,
    Permission,
    Role,
    RoleCreated,
    RoleDeleted,
    RoleInUse,
    RoleUpdated,
    SetUserActiveResult,
    SetUserRolesResult,
    SystemRoleProtected,
    UpdateRoleInput,
    UpdateRoleResult,
    UpdateUserInput,
    UpdateUserResult,
    User,
    UserConnection,
    UserCreated,
    UserDeleted,
    UserFilter,
    UsernameTaken,
    UserUpdated,
)

Info = strawberry.Info[RequestContext, None]

log = get_logger("opsconductor.users")


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("users:read")],
        description="Users in creation order (Relay connection); deleted users are left out.",
    )
    async def users(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: UserFilter | None = None
    ) -> UserConnection:
        key = decode_cursor(after)
        first = 50 if first is None else first
        query = (
            service.UserQuery(
                search=filter.search,
                role=filter.role,
                is_active=filter.is_active,
                department=filter.department,
            )
            if filter
            else service.UserQuery()
        )
        page = await service.list_users(first=first, after=key, query=query)
        return build_connection(
            page.users,
            node=User.from_record,
            key=lambda r: r.id,
            has_next=page.has_next,
            has_previous=key is not None,
            total=page.total,
        )

    @strawberry.field(
        permission_classes=[requires("users:read")],
        description="One user by id; null when unknown or deleted.",
    )
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        record = await info.context.deps.load_user(info.context, str(id))
        if record is None or record.deleted:
            return None
        return User.from_record(record)

    @strawberry.field(permission_classes=[requires("roles:read")], description="Every role, by name.")
    async def roles(self, info: Info) -> list[Role]:
        return [
            Role(
                name=r.name, description=r.description, permissions=list(r.permissions), is_system=r.is_system
            )
            for r in await service.list_roles()
        ]

    @strawberry.field(
        permission_classes=[requires("roles:read")],
        description="Every permission a role can grant (`resource:action`).",
    )
    def permission_catalogue(self, info: Info) -> list[Permission]:
        return [Permission(name=name, description=text) for name, text in service.PERMISSIONS.items()]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Create a user and their password (in auth). Nothing is kept when either half fails.",
    )
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserResult:
        actor = info.context.identity
        try:
            new = service.validate_new_user(
                username=input.username,
                email=input.email,
                password=input.password,
                roles=input.roles,
                display_name=input.display_name,
            )
        except ValidationError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        credentials: service.AuthCredentials = info.context.deps.credentials
        record: service.UserRecord | None = None
        auth_may_hold = False
        try:
            # The auth call sits inside the transaction: the users row and the users.user_created
            # event commit only once auth has stored the password, so auth never sees the event
            # for a user whose creation then fails.
            async with in_transaction():
                record = await service.create_user(new, actor=actor)
                auth_may_hold = True
                await credentials.set(record, new.password)
        except service.UsernameTakenError as exc:
            return UsernameTaken(message=exc.message, username=exc.username)
        except (ValidationError, PermissionError_) as exc:  # incl. CredentialRejected: auth stored nothing
            return to_graphql_error(exc)  # type: ignore[return-value]
        except service.CredentialUnavailable as exc:
            if record is not None:
                await credentials.withdraw(record)
            raise PublicGraphQLError(
                f"user not created: {exc.message}; nothing was saved, try again"
            ) from exc
        except BaseException:
            # The commit (or something after auth's answer) failed: auth may hold a credential.
            if record is not None and auth_may_hold:
                await credentials.withdraw(record)
            raise
        info.context.runtime.events_committed()
        return UserCreated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Activate or deactivate a user. Deactivation ends their sessions at once "
        "(auth revokes them); you cannot deactivate yourself or the last active admin, nor anyone "
        "holding a permission you do not hold (PermissionDenied).",
    )
    async def set_user_active(self, info: Info, id: strawberry.ID, active: bool) -> SetUserActiveResult:
        try:
            async with in_transaction():
                record = await service.set_user_active(
                    user_id=str(id), active=active, actor=info.context.identity
                )
        except (NotFoundError, ValidationError, PermissionError_) as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        info.context.runtime.events_committed()
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Create a custom role from catalogue permissions (never more than you hold).",
    )
    async def create_role(self, info: Info, input: CreateRoleInput) -> CreateRoleResult:
        try:
            async with in_transaction():
                record = await service.create_role(
                    name=input.name,
                    description=input.description,
                    permissions=input.permissions,
                    actor=info.context.identity,
                )
        except (ValidationError, PermissionError_) as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return RoleCreated(role=_role(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Change a custom role. Holders get the new permissions in their next token "
        "(refreshSession); system roles cannot be changed; its permissions not while a holder "
        "holds a permission you do not hold.",
    )
    async def update_role(self, info: Info, name: str, input: UpdateRoleInput) -> UpdateRoleResult:
        try:
            async with in_transaction():
                record = await service.update_role(
                    name=name,
                    description=input.description,
                    permissions=input.permissions,
                    actor=info.context.identity,
                )
        except service.SystemRoleError as exc:
            return SystemRoleProtected(message=exc.message, name=exc.name)
        except (NotFoundError, ValidationError, PermissionError_) as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        info.context.runtime.events_committed()
        return RoleUpdated(role=_role(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Delete a custom role that nobody holds any more.",
    )
    async def delete_role(self, info: Info, name: str) -> DeleteRoleResult:
        try:
            async with in_transaction():
                deleted = await service.delete_role(name=name)
        except service.SystemRoleError as exc:
            return SystemRoleProtected(message=exc.message, name=exc.name)
        except service.RoleInUseError as exc:
            return RoleInUse(message=exc.message, name=exc.name, user_count=exc.user_count)
        except NotFoundError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return RoleDeleted(name=deleted)

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Replace a user's roles (legacy names map). Refuses to demote the last active admin, "
        "to grant more than you hold, or to change a user holding a permission you do not hold.",
    )
    async def set_user_roles(
        self, info: Info, user_id: strawberry.ID, roles: list[str]
    ) -> SetUserRolesResult:
        try:
            async with in_transaction():
                record = await service.set_user_roles(
                    user_id=str(user_id), roles=roles, actor=info.context.identity
                )
        except (NotFoundError, ValidationError, PermissionError_) as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        info.context.runtime.events_committed()
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Change a user's profile (email, display name, department, time zone); not of "
        "a user holding a permission you do not hold (PermissionDenied).",
    )
    async def update_user(self, info: Info, id: strawberry.ID, input: UpdateUserInput) -> UpdateUserResult:
        return await _update_profile(info, str(id), input)

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Change the caller's own profile (email, display name, department, time zone).",
    )
    async def update_my_profile(self, info: Info, input: UpdateUserInput) -> UpdateUserResult:
        identity = info.context.identity
        if identity is None or identity.kind != "user":
            return ValidationFailed(message="only a user has a profile", field=None)  # type: ignore[return-value]
        return await _update_profile(info, identity.subject, input)

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Soft-delete a user: deactivated (auth revokes their sessions and API keys) and "
        "hidden from users/user. Not yourself, not the last admin, not a user holding a permission you "
        "do not hold (PermissionDenied).",
    )
    async def delete_user(self, info: Info, id: strawberry.ID) -> DeleteUserResult:
        try:
            async with in_transaction():
                record = await service.delete_user(user_id=str(id), actor=info.context.identity)
        except (NotFoundError, ValidationError, PermissionError_) as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        info.context.runtime.events_committed()
        return UserDeleted(id=strawberry.ID(record.id))


async def _update_profile(info: Info, user_id: str, input: UpdateUserInput) -> UpdateUserResult:
    department = input.department
    changes = service.ProfileChanges(
        email=input.email,
        display_name=input.display_name,
        department=department if isinstance(department, str) else None,
        clear_department=department is None,
        timezone=input.timezone,
    )
    try:
        async with in_transaction():
            record = await service.update_user(user_id=user_id, changes=changes, actor=info.context.identity)
    except (NotFoundError, ValidationError, PermissionError_) as exc:
        return to_graphql_error(exc)  # type: ignore[return-value]
    info.context.runtime.events_committed()
    return UserUpdated(user=User.from_record(record))


def _role(r: service.RoleRecord) -> Role:
    return Role(
        name=r.name, description=r.description, permissions=list(r.permissions), is_system=r.is_system
    )


schema = build_schema(query=Query, mutation=Mutation, types=[User])

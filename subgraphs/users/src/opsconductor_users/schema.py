"""Users subgraph resolvers: users, user, roles, permissionCatalogue and the user and role
mutations; the User entity lives in types.py. Each mutation runs in one transaction
(``@transactional(ERRORS)``); createUser opens its own to wrap auth's compensation around it."""

from __future__ import annotations

import strawberry

from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import Authenticated, requires
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.paging import build_connection, decode_cursor
from opsconductor_shared.unit_of_work import maps_errors, transactional, unit_of_work
from opsconductor_users import loaders, service
from opsconductor_users.types import (
    ERRORS,
    CreateRoleInput,
    CreateRoleResult,
    CreateUserInput,
    CreateUserResult,
    DeleteRoleResult,
    DeleteUserResult,
    Info,
    Permission,
    Role,
    RoleCreated,
    RoleDeleted,
    RoleUpdated,
    SetUserActiveResult,
    SetUserRolesResult,
    UpdateRoleInput,
    UpdateRoleResult,
    UpdateUserInput,
    UpdateUserResult,
    User,
    UserConnection,
    UserCreated,
    UserDeleted,
    UserFilter,
    UserUpdated,
)


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
        record = await loaders.load_user(info.context, str(id))
        if record is None or record.deleted:
            return None
        return User.from_record(record)

    @strawberry.field(permission_classes=[requires("roles:read")], description="Every role, by name.")
    async def roles(self, info: Info) -> list[Role]:
        return [Role.from_record(r) for r in await service.list_roles()]

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
    @maps_errors(ERRORS)
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserResult:
        new = service.validate_new_user(
            username=input.username,
            email=input.email,
            password=input.password,
            roles=input.roles,
            display_name=input.display_name,
        )
        # The auth call sits inside the transaction: the users row and the users.user_created event
        # commit only once auth has stored the password, so auth never sees the event for a user
        # whose creation then fails; after a rollback, whatever auth may hold is withdrawn.
        credentials = info.context.deps.credentials
        async with credentials.withdrawn_on_failure() as credential, unit_of_work(info.context.runtime):
            record = await service.create_user(new=new, actor=info.context.identity)
            await credential.set(record, new.password)
        return UserCreated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Activate or deactivate a user. Deactivation ends their sessions at once "
        "(auth revokes them); you cannot deactivate yourself or the last active admin, nor anyone "
        "holding a permission you do not hold (PermissionDenied).",
    )
    @transactional(ERRORS)
    async def set_user_active(self, info: Info, id: strawberry.ID, active: bool) -> SetUserActiveResult:
        record = await service.set_user_active(user_id=str(id), active=active, actor=info.context.identity)
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Create a custom role from catalogue permissions (never more than you hold).",
    )
    @transactional(ERRORS)
    async def create_role(self, info: Info, input: CreateRoleInput) -> CreateRoleResult:
        record = await service.create_role(
            name=input.name,
            description=input.description,
            permissions=input.permissions,
            actor=info.context.identity,
        )
        return RoleCreated(role=Role.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Change a custom role. Holders get the new permissions in their next token "
        "(refreshSession); system roles cannot be changed; its permissions not while a holder "
        "holds a permission you do not hold.",
    )
    @transactional(ERRORS)
    async def update_role(self, info: Info, name: str, input: UpdateRoleInput) -> UpdateRoleResult:
        record = await service.update_role(
            name=name,
            description=input.description,
            permissions=input.permissions,
            actor=info.context.identity,
        )
        return RoleUpdated(role=Role.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Delete a custom role that nobody holds any more.",
    )
    @transactional(ERRORS)
    async def delete_role(self, info: Info, name: str) -> DeleteRoleResult:
        return RoleDeleted(name=await service.delete_role(name=name, actor=info.context.identity))

    @strawberry.mutation(
        permission_classes=[requires("roles:write")],
        description="Replace a user's roles (legacy names map). Refuses to demote the last active admin, "
        "to grant more than you hold, or to change a user holding a permission you do not hold.",
    )
    @transactional(ERRORS)
    async def set_user_roles(
        self, info: Info, user_id: strawberry.ID, roles: list[str]
    ) -> SetUserRolesResult:
        record = await service.set_user_roles(user_id=str(user_id), roles=roles, actor=info.context.identity)
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Change a user's profile (email, display name, department, time zone); not of "
        "a user holding a permission you do not hold (PermissionDenied).",
    )
    @transactional(ERRORS)
    async def update_user(self, info: Info, id: strawberry.ID, input: UpdateUserInput) -> UpdateUserResult:
        record = await service.update_user(
            user_id=str(id), changes=_profile_changes(input), actor=info.context.identity
        )
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[Authenticated],
        description="Change the caller's own profile (email, display name, department, time zone).",
    )
    @transactional(ERRORS)
    async def update_my_profile(self, info: Info, input: UpdateUserInput) -> UpdateUserResult:
        identity = info.context.identity
        if identity is None or identity.kind != "user":
            raise ValidationError("only a user has a profile")
        record = await service.update_user(
            user_id=identity.subject, changes=_profile_changes(input), actor=identity
        )
        return UserUpdated(user=User.from_record(record))

    @strawberry.mutation(
        permission_classes=[requires("users:write")],
        description="Soft-delete a user: deactivated (auth revokes their sessions and API keys) and "
        "hidden from users/user. Not yourself, not the last admin, not a user holding a permission you "
        "do not hold (PermissionDenied).",
    )
    @transactional(ERRORS)
    async def delete_user(self, info: Info, id: strawberry.ID) -> DeleteUserResult:
        record = await service.delete_user(user_id=str(id), actor=info.context.identity)
        return UserDeleted(id=strawberry.ID(record.id))


def _profile_changes(input: UpdateUserInput) -> service.ProfileChanges:
    """``department`` omitted leaves it as it is; ``null`` (or empty) clears it."""
    department = input.department
    return service.ProfileChanges(
        email=input.email,
        display_name=input.display_name,
        department=department if isinstance(department, str) else None,
        clear_department=department is None,
        timezone=input.timezone,
    )


schema = build_schema(query=Query, mutation=Mutation, types=[User])

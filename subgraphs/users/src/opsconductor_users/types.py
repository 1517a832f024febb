"""GraphQL types of the users subgraph (separate from ORM rows and service records), its GraphQL
error types with the one table that maps the domain errors onto them (``ERRORS``), and ``Info``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import AUTHENTICATED, check_permission, entity_permission, require_identity
from opsconductor_shared.errors import Error, NotFound, PermissionDenied, ValidationFailed
from opsconductor_shared.paging import Connection
from opsconductor_shared.unit_of_work import ErrorTable
from opsconductor_users import loaders, service
from opsconductor_users.errors import RoleInUseError, SystemRoleError, UsernameTakenError
from opsconductor_users.settings import Settings

Info = strawberry.Info[RequestContext[Settings, service.Deps], None]


@strawberry.federation.type(keys=["id"], description="A person who can log in. Owned by the users subgraph.")
class User:
    id: strawberry.ID
    username: str = strawberry.field(
        description="Unique login name (3-50 of letters, digits, '_', '.', '-')."
    )
    email: str = strawberry.field(description="Unique, stored lower-cased.")
    display_name: str = strawberry.field(description="Name to show; defaults to the username.")
    roles: list[str] = strawberry.field(
        description="Role names (admin, operator, job_manager, viewer, auditor...)."
    )
    permissions: list[str] = strawberry.field(
        description="`resource:action` permissions resolved from the roles; `*` means all."
    )
    is_active: bool = strawberry.field(
        description="Inactive users cannot log in; their sessions are revoked."
    )
    last_login_at: datetime | None = strawberry.field(
        description="Last successful login (from auth's events)."
    )
    created_at: datetime
    department: str | None = strawberry.field(default=None, description="Free-text department, if set.")
    timezone: str = strawberry.field(default="UTC", description="IANA time zone name (default UTC).")

    @classmethod
    def from_record(cls, record: service.UserRecord) -> User:
        return cls(
            id=strawberry.ID(record.id),
            username=record.username,
            email=record.email,
            display_name=record.display_name,
            roles=list(record.roles),
            permissions=list(record.permissions),
            is_active=record.is_active,
            last_login_at=record.last_login_at,
            created_at=record.created_at,
            department=record.department,
            timezone=record.timezone,
        )

    @classmethod
    @entity_permission(AUTHENTICATED)
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> User | None:
        """Entity lookup (``me``, ``Session.user``, ``LoginAttempt.user``...), as the root fields
        allow (M10): yourself (``me``), anyone else only with ``users:read`` (``user``); a
        soft-deleted or unknown user is null (``user`` hides them too). Batched through the
        request's DataLoader."""
        identity = require_identity(info.context)
        if identity.subject != str(id):
            check_permission(info.context, "users:read")
        record = await loaders.load_user(info.context, str(id))
        return cls.from_record(record) if record is not None and not record.deleted else None


@strawberry.type(description="A named set of permissions.")
class Role:
    name: str
    description: str
    permissions: list[str] = strawberry.field(description="`resource:action` strings; `*` means all.")
    is_system: bool = strawberry.field(description="Seeded from code at start-up; cannot be changed.")

    @classmethod
    def from_record(cls, record: service.RoleRecord) -> Role:
        return cls(
            name=record.name,
            description=record.description,
            permissions=list(record.permissions),
            is_system=record.is_system,
        )


@strawberry.type(description="One entry of the permission catalogue.")
class Permission:
    name: str = strawberry.field(description="`resource:action`.")
    description: str


UserConnection = Connection[User]


@strawberry.input(description="Narrow the users list; all given conditions must hold.")
class UserFilter:
    search: str | None = strawberry.field(
        default=None, description="Substring of username, email or display name."
    )
    role: str | None = strawberry.field(default=None, description="Has this role (legacy names accepted).")
    is_active: bool | None = None
    department: str | None = strawberry.field(default=None, description="Department, case-insensitive.")


@strawberry.input(description="A new user. The password goes to auth and is never stored here.")
class CreateUserInput:
    username: str
    email: str
    password: str = strawberry.field(description="At least 8 characters.")
    roles: list[str] | None = strawberry.field(
        default=None,
        description="Role names; legacy administrator/manager/user/guest map onto the new "
        "roles. Omitted: viewer.",
    )
    display_name: str | None = None


@strawberry.type(description="The user was created and can log in.")
class UserCreated:
    user: User


@strawberry.type(description="Another user already has this username (compared case-insensitively).")
class UsernameTaken(Error):
    username: str


@strawberry.type(description="The user was changed.")
class UserUpdated:
    user: User


CreateUserResult = Annotated[
    UserCreated | ValidationFailed | UsernameTaken | PermissionDenied, strawberry.union("CreateUserResult")
]
SetUserActiveResult = Annotated[
    UserUpdated | NotFound | ValidationFailed | PermissionDenied, strawberry.union("SetUserActiveResult")
]


@strawberry.input(description="A new custom role.")
class CreateRoleInput:
    name: str = strawberry.field(
        description="2-50 of lower-case letters, digits, '_', '-'; not a system or legacy name."
    )
    description: str | None = strawberry.field(default=None, description="What the role is for.")
    permissions: list[str] = strawberry.field(
        description="Catalogue permissions (`resource:action`); `*` is not allowed."
    )


@strawberry.input(description="Changes to a custom role; omitted fields stay as they are.")
class UpdateRoleInput:
    description: str | None = strawberry.field(default=None, description="New description.")
    permissions: list[str] | None = strawberry.field(
        default=None, description="The new full permission list (replaces the old one)."
    )


@strawberry.type(description="The role was created.")
class RoleCreated:
    role: Role


@strawberry.type(
    description="The role was changed; its holders' tokens carry the new permissions on refresh."
)
class RoleUpdated:
    role: Role


@strawberry.type(description="The role was deleted.")
class RoleDeleted:
    name: str


@strawberry.type(description="System roles are defined in code and cannot be changed or deleted.")
class SystemRoleProtected(Error):
    name: str


@strawberry.type(description="The role is still assigned to users; reassign them before deleting it.")
class RoleInUse(Error):
    name: str
    user_count: int = strawberry.field(description="How many (not deleted) users hold the role.")


CreateRoleResult = Annotated[
    RoleCreated | ValidationFailed | PermissionDenied, strawberry.union("CreateRoleResult")
]
UpdateRoleResult = Annotated[
    RoleUpdated | NotFound | ValidationFailed | PermissionDenied | SystemRoleProtected,
    strawberry.union("UpdateRoleResult"),
]
DeleteRoleResult = Annotated[
    RoleDeleted | NotFound | SystemRoleProtected | RoleInUse, strawberry.union("DeleteRoleResult")
]
SetUserRolesResult = Annotated[
    UserUpdated | NotFound | ValidationFailed | PermissionDenied, strawberry.union("SetUserRolesResult")
]


@strawberry.input(description="Profile changes; omitted fields stay as they are.")
class UpdateUserInput:
    email: str | None = strawberry.field(default=None, description="New unique email.")
    display_name: str | None = strawberry.field(default=None, description="New display name (1-100).")
    department: str | None = strawberry.field(
        default=strawberry.UNSET, description="New department; null or empty clears it."
    )
    timezone: str | None = strawberry.field(default=None, description="IANA time zone, e.g. Europe/Berlin.")


UpdateUserResult = Annotated[
    UserUpdated | NotFound | ValidationFailed | PermissionDenied, strawberry.union("UpdateUserResult")
]


@strawberry.type(
    description="The user was soft-deleted: deactivated, sessions revoked, hidden from users/user."
)
class UserDeleted:
    id: strawberry.ID


DeleteUserResult = Annotated[
    UserDeleted | NotFound | ValidationFailed | PermissionDenied, strawberry.union("DeleteUserResult")
]


ERRORS = ErrorTable(
    {
        UsernameTakenError: lambda e: UsernameTaken(message=e.message, username=e.username),
        SystemRoleError: lambda e: SystemRoleProtected(message=e.message, name=e.name),
        RoleInUseError: lambda e: RoleInUse(message=e.message, name=e.name, user_count=e.user_count),
    }
)
"""The users subgraph's domain errors as GraphQL types (the shared ones are in every table)."""

"""What the service hands out: plain records, not ORM rows (loaded in batches)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsconductor_users.models import Role, User, UserRole
from opsconductor_users.service.catalog import resolve_permissions


@dataclass(frozen=True)
class UserRecord:
    id: str
    username: str
    email: str
    display_name: str
    roles: tuple[str, ...]
    permissions: tuple[str, ...]
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    deleted: bool = False
    department: str | None = None
    timezone: str = "UTC"
    version: int = 0

    def event_data(self) -> dict[str, Any]:
        """The snapshot every users.* event carries (auth keeps its token claims from it). No secrets.

        ``version`` grows by one with every change of the user (same transaction as the change):
        a consumer ignores a snapshot whose version is lower than the last one it applied (M6)."""
        return {
            "id": self.id,
            "version": self.version,
            "username": self.username,
            "email": self.email,
            "displayName": self.display_name,
            "roles": list(self.roles),
            "permissions": list(self.permissions),
            "isActive": self.is_active,
            "department": self.department,
            "timezone": self.timezone,
            "deleted": self.deleted,
        }


@dataclass(frozen=True)
class RoleRecord:
    name: str
    description: str
    permissions: tuple[str, ...]
    is_system: bool


async def role_permissions() -> dict[str, list[str]]:
    """Every role's permissions, by role name."""
    return {r.name: list(r.permissions) for r in await Role.all()}


async def user_records(users: Sequence[User]) -> list[UserRecord]:
    """Records for ORM rows, with roles and permissions loaded in two queries for the whole batch."""
    if not users:
        return []
    links = (
        await UserRole.filter(user_id__in=[u.id for u in users])
        .order_by("id")
        .values_list("user_id", "role_id")
    )
    by_user: dict[str, list[str]] = {}
    for user_id, role_name in links:
        by_user.setdefault(str(user_id), []).append(str(role_name))
    perms = await role_permissions()
    out = []
    for u in users:
        roles = by_user.get(u.id, [])
        out.append(
            UserRecord(
                id=u.id,
                username=u.username,
                email=u.email,
                display_name=u.display_name,
                roles=tuple(roles),
                permissions=tuple(resolve_permissions(perms.get(r, ()) for r in roles)),
                is_active=u.is_active,
                last_login_at=u.last_login_at,
                created_at=u.created_at,
                deleted=u.deleted_at is not None,
                department=u.department,
                timezone=u.timezone,
                version=u.version,
            )
        )
    return out


def role_record(role: Role) -> RoleRecord:
    return RoleRecord(role.name, role.description, tuple(role.permissions), role.is_system)


async def list_roles() -> list[RoleRecord]:
    return [role_record(r) for r in await Role.all().order_by("name")]


async def load_users(*, ids: Sequence[str]) -> list[UserRecord | None]:
    """Batch lookup in key order (a DataLoader's load function). Soft-deleted users are included
    (marked ``deleted``): references from other services' history still resolve."""
    rows = await User.filter(id__in=list(set(ids)))
    found = {r.id: r for r in await user_records(rows)}
    return [found.get(i) for i in ids]


def bump_version(user: User) -> str:
    """Next snapshot version of ``user`` (row locked by the caller); returns the field to save."""
    user.version = (user.version or 0) + 1
    return "version"

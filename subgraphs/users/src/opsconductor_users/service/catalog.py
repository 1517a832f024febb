"""The permission catalogue, the system roles and the legacy role names: data, seeded at start-up."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from tortoise.exceptions import IntegrityError

from opsconductor_shared.errors import ValidationError
from opsconductor_users.models import Role

PERMISSIONS: dict[str, str] = {
    "users:read": "List and view users",
    "users:write": "Create users, activate and deactivate them",
    "roles:read": "List roles and the permission catalogue",
    "roles:write": "Create and change roles",
    "targets:read": "List and view targets",
    "targets:write": "Create, change and delete targets",
    "jobs:read": "List and view jobs",
    "jobs:write": "Create, change and delete jobs",
    "jobs:execute": "Run jobs",
    "jobs:execute-dangerous": "Run jobs whose steps match a dangerous-command rule (with confirmation)",
    "executions:read": "View executions and their output",
    "executions:cancel": "Cancel running executions",
    "audit:read": "Read the audit trail (events, statistics, chain verification, trails)",
    "audit:export": "Export the audit trail and create compliance reports",
    "audit:admin": "Audit administration: checkpoints now, retention now",
    "alerts:read": "View alert rules, alerts, the notification log and system health",
    "alerts:manage": "Create, change and delete alert rules and templates; acknowledge and resolve alerts",
    "system:admin": "System settings and maintenance",
}

ALL = "*"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    description: str
    permissions: tuple[str, ...]


SYSTEM_ROLES: tuple[RoleSpec, ...] = (
    RoleSpec("admin", "Everything, including user and system administration", (ALL,)),
    RoleSpec(
        "operator",
        "Run jobs and manage targets and jobs",
        (
            "targets:read",
            "targets:write",
            "jobs:read",
            "jobs:write",
            "jobs:execute",
            "executions:read",
            "executions:cancel",
            "users:read",
            "alerts:read",
            "alerts:manage",
        ),
    ),
    RoleSpec(
        "job_manager",
        "Manage and run jobs; read targets",
        ("jobs:read", "jobs:write", "jobs:execute", "executions:read", "executions:cancel", "targets:read"),
    ),
    RoleSpec(
        "viewer",
        "Read-only access to targets, jobs and executions",
        ("targets:read", "jobs:read", "executions:read"),
    ),
    RoleSpec(
        "auditor",
        "Read-only access plus users and the audit trail (read and export)",
        (
            "targets:read",
            "jobs:read",
            "executions:read",
            "users:read",
            "audit:read",
            "audit:export",
            "alerts:read",
        ),
    ),
)

# The monolith stored one role string per user; these are its values.
LEGACY_ROLES: dict[str, str] = {
    "administrator": "admin",
    "manager": "job_manager",
    "user": "operator",
    "guest": "viewer",
}

DEFAULT_ROLES: tuple[str, ...] = ("viewer",)


def canonical_role(name: str) -> str:
    """The current role name for ``name``: legacy names map onto the new roles; others pass through."""
    cleaned = name.strip().lower()
    return LEGACY_ROLES.get(cleaned, cleaned)


def canonical_roles(names: Iterable[str]) -> list[str]:
    """Canonical names, duplicates removed, first occurrence order kept."""
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(canonical_role(name), None)
    return list(seen)


def resolve_permissions(role_permissions: Iterable[Iterable[str]]) -> list[str]:
    """The union of the roles' permissions, sorted; ``["*"]`` when any role grants everything."""
    merged: set[str] = set()
    for perms in role_permissions:
        merged.update(perms)
    if ALL in merged:
        return [ALL]
    return sorted(merged)


async def seed_roles() -> None:
    """Create or refresh the system roles from code (idempotent; safe with several replicas).

    Run it outside a transaction: a replica losing the insert race only skips that statement.
    """
    for spec in SYSTEM_ROLES:
        role = await Role.get_or_none(name=spec.name)
        if role is None:
            with contextlib.suppress(IntegrityError):  # another replica seeded it first
                await Role.create(
                    name=spec.name,
                    description=spec.description,
                    permissions=list(spec.permissions),
                    is_system=True,
                )
            continue
        wanted = (spec.description, list(spec.permissions), True)
        if (role.description, list(role.permissions), role.is_system) != wanted:
            role.description, role.permissions, role.is_system = wanted
            await role.save(update_fields=["description", "permissions", "is_system"])


def validate_permissions(permissions: Iterable[str]) -> list[str]:
    """Catalogue entries only (no ``*``: only the system admin role grants everything), deduplicated."""
    wanted = sorted({p.strip() for p in permissions})
    unknown = [p for p in wanted if p not in PERMISSIONS]
    if unknown:
        raise ValidationError(f"unknown permission(s): {', '.join(unknown)}", field="permissions")
    return wanted

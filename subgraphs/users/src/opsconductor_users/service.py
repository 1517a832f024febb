"""Users domain logic: the permission catalogue, roles, users, and the auth credential call.

No strawberry here. Functions write; the resolver owns the transaction (createUser is the one
place where a call to auth sits inside that transaction: see README "createUser consistency").
"""

from __future__ import annotations

import contextlib
import functools
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID, BOOTSTRAP_ADMIN_USERNAME, Identity
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DomainError, NotFoundError, PermissionError_, ValidationError
from opsconductor_shared.events import EventEnvelope, new_uuid7, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_users.models import Outbox, Role, User, UserRole

log = get_logger("opsconductor.users")

# ---- the permission catalogue and the system roles (data, seeded at start-up) -----------------

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
    "audit:read": "Read the audit trail",
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
        "Read-only access plus users and the audit trail",
        ("targets:read", "jobs:read", "executions:read", "users:read", "audit:read"),
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


# ---- records (what the service hands out: plain data, not ORM rows) -----------------------------


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


async def _role_permissions() -> dict[str, list[str]]:
    return {r.name: list(r.permissions) for r in await Role.all()}


async def _records(users: Sequence[User]) -> list[UserRecord]:
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
    perms = await _role_permissions()
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


async def list_roles() -> list[RoleRecord]:
    return [
        RoleRecord(r.name, r.description, tuple(r.permissions), r.is_system)
        for r in await Role.all().order_by("name")
    ]


# ---- reads ----------------------------------------------------------------------------------


async def load_users(ids: Sequence[str]) -> list[UserRecord | None]:
    """Batch lookup in key order (a DataLoader's load function). Soft-deleted users are included
    (marked ``deleted``): references from other services' history still resolve."""
    rows = await User.filter(id__in=list(set(ids)))
    found = {r.id: r for r in await _records(rows)}
    return [found.get(i) for i in ids]


@dataclass(frozen=True)
class UserQuery:
    search: str | None = None
    role: str | None = None
    is_active: bool | None = None
    department: str | None = None


@dataclass(frozen=True)
class UserPage:
    users: list[UserRecord]
    has_next: bool
    total: int


MAX_PAGE = 200


async def list_users(*, first: int, after: str | None, query: UserQuery) -> UserPage:
    """One page in creation order (ids are UUIDv7), keyset-paged on the id; deleted users excluded."""
    if first < 0 or first > MAX_PAGE:
        raise ValidationError(f"first must be between 0 and {MAX_PAGE}", field="first")
    qs = User.filter(deleted_at=None)
    if query.search:
        term = query.search.strip()
        qs = qs.filter(
            Q(username__icontains=term) | Q(email__icontains=term) | Q(display_name__icontains=term)
        )
    if query.role:
        qs = qs.filter(id__in=Subquery(UserRole.filter(role_id=canonical_role(query.role)).values("user_id")))
    if query.is_active is not None:
        qs = qs.filter(is_active=query.is_active)
    if query.department:
        qs = qs.filter(department__iexact=query.department.strip())
    total = await qs.count()
    page_qs = qs.filter(id__gt=after) if after else qs
    rows = await page_qs.order_by("id").limit(first + 1)
    return UserPage(users=await _records(rows[:first]), has_next=len(rows) > first, total=total)


# ---- writes ---------------------------------------------------------------------------------


class UsernameTakenError(DomainError):
    def __init__(self, username: str) -> None:
        super().__init__(f"username '{username}' is already taken")
        self.username = username


USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,50}$")
# Pragmatic address check: one @, a local part without spaces, a DNS-shaped domain (dots optional,
# so `admin@localhost` style addresses from legacy data stay valid).
EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
MIN_PASSWORD = 8
MAX_PASSWORD = 256


@dataclass(frozen=True)
class NewUser:
    """A validated, normalised createUser input."""

    username: str
    email: str
    password: str
    roles: tuple[str, ...]
    display_name: str


def validate_new_user(
    *, username: str, email: str, password: str, roles: Sequence[str] | None, display_name: str | None
) -> NewUser:
    """Shape checks that need no database (the role names are checked by :func:`create_user`)."""
    username = username.strip()
    if not USERNAME_RE.fullmatch(username):
        raise ValidationError(
            "username must be 3-50 characters of letters, digits, '_', '.' or '-'", field="username"
        )
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.fullmatch(email):
        raise ValidationError(f"'{email}' is not a valid email address", field="email")
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"password must be at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"password must be at most {MAX_PASSWORD} characters", field="password")
    wanted = canonical_roles(DEFAULT_ROLES if roles is None else roles)
    if not wanted:
        raise ValidationError("a user needs at least one role", field="roles")
    display = (display_name or "").strip() or username
    if len(display) > 100:
        raise ValidationError("displayName must be at most 100 characters", field="displayName")
    return NewUser(
        username=username, email=email, password=password, roles=tuple(wanted), display_name=display
    )


def _can_grant(actor: Identity | None, permissions: Iterable[str]) -> str | None:
    """The first permission the actor may not hand out (nobody grants more than they hold)."""
    if actor is None:
        return None
    for perm in permissions:
        if perm == ALL:
            if ALL not in actor.permissions:
                return ALL
        elif not actor.has(perm):
            return perm
    return None


def check_may_act_on(
    actor: Identity | None, target_id: str, target_permissions: Iterable[str], action: str
) -> None:
    """H6: act on another user (reset their password, (de)activate, delete, edit, re-role them) only
    when holding every permission they hold (``*`` only with ``*``): nobody takes over a user more
    privileged than themselves. Acting on oneself is exempt (own-account rules apply instead)."""
    if actor is None or actor.subject == target_id:
        return
    missing = _can_grant(actor, target_permissions)
    if missing is not None:
        raise PermissionError_(
            f"you cannot {action} a user who holds permission '{missing}', which you do not hold",
            permission=missing,
        )


def _bump(user: User) -> str:
    """Next snapshot version of ``user`` (row locked by the caller); returns the field to save."""
    user.version = (user.version or 0) + 1
    return "version"


def _event(kind: str, record: UserRecord, actor: Identity | None) -> EventEnvelope:
    return EventEnvelope(
        type=kind,
        source="users",
        subject=record.id,
        actor=actor.subject if actor else None,
        data=record.event_data(),
    )


async def create_user(new: NewUser, *, actor: Identity | None) -> UserRecord:
    """Write the user, their roles and the `users.user_created` event (the caller's transaction)."""
    perms = await _role_permissions()
    unknown = [r for r in new.roles if r not in perms]
    if unknown:
        raise ValidationError(
            f"unknown role(s): {', '.join(unknown)}; known roles: {', '.join(sorted(perms))}", field="roles"
        )
    _check_grant(actor, resolve_permissions(perms[r] for r in new.roles))
    if await User.filter(username__iexact=new.username).exists():
        raise UsernameTakenError(new.username)
    if await User.filter(email=new.email).exists():
        raise ValidationError(f"email '{new.email}' is already in use", field="email")
    try:
        user = await User.create(
            id=str(new_uuid7()),
            username=new.username,
            email=new.email,
            display_name=new.display_name,
            version=1,
        )
    except IntegrityError as exc:  # a concurrent create won the race on a unique column
        if "email" in str(exc).lower():
            raise ValidationError(f"email '{new.email}' is already in use", field="email") from exc
        raise UsernameTakenError(new.username) from exc
    for role in new.roles:
        await UserRole.create(user_id=user.id, role_id=role)
    (record,) = await _records([user])
    # Again on the permissions as stored now: the link rows lock the roles against a concurrent
    # updateRole, which may have widened one since the check above.
    _check_grant(actor, record.permissions)
    await record_event(Outbox, _event("users.user_created", record, actor))
    return record


async def set_user_active(*, user_id: str, active: bool, actor: Identity | None) -> UserRecord:
    """Activate or deactivate; emits users.user_deactivated / users.user_updated when it changes.

    Auth consumes these: deactivation revokes every session of the user at once.
    """
    admins = await _lock_active_admins() if not active else []  # same lock order as delete_user
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    if not active and actor is not None and actor.subject == user_id:
        raise ValidationError("you cannot deactivate your own account", field="id")
    (before,) = await _records([user])
    check_may_act_on(actor, before.id, before.permissions, "activate" if active else "deactivate")
    if user.is_active == active:
        return before
    if not active and user.id in admins and len(admins) <= 1:
        raise ValidationError("cannot deactivate the last active admin", field="id")
    user.is_active = active
    await user.save(update_fields=["is_active", _bump(user), "updated_at"])
    (record,) = await _records([user])
    await record_event(
        Outbox, _event("users.user_updated" if active else "users.user_deactivated", record, actor)
    )
    return record


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---- profile updates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileChanges:
    """Fields to change; ``None`` leaves a field as it is, ``clear_department`` empties it."""

    email: str | None = None
    display_name: str | None = None
    department: str | None = None
    clear_department: bool = False
    timezone: str | None = None


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def valid_timezone(name: str) -> str:
    """An IANA key from the zoneinfo database. Membership, not ``ZoneInfo(name)``: a path-like
    name ("Europe", "../x") would otherwise raise OS errors or reach the filesystem."""
    name = name.strip()
    if name not in _timezones():
        raise ValidationError(f"'{name}' is not an IANA time zone (e.g. 'Europe/Berlin')", field="timezone")
    return name


async def update_user(*, user_id: str, changes: ProfileChanges, actor: Identity | None) -> UserRecord:
    """Change profile fields; emits ``users.user_updated`` when something changed."""
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    (before,) = await _records([user])
    check_may_act_on(actor, before.id, before.permissions, "edit")
    updates: dict[str, Any] = {}
    if changes.email is not None:
        email = changes.email.strip().lower()
        if len(email) > 254 or not EMAIL_RE.fullmatch(email):
            raise ValidationError(f"'{email}' is not a valid email address", field="email")
        if email != user.email and await User.filter(email=email).exclude(id=user.id).exists():
            raise ValidationError(f"email '{email}' is already in use", field="email")
        updates["email"] = email
    if changes.display_name is not None:
        display = changes.display_name.strip()
        if not display or len(display) > 100:
            raise ValidationError("displayName must be 1-100 characters", field="displayName")
        updates["display_name"] = display
    if changes.clear_department:
        updates["department"] = None
    elif changes.department is not None:
        department = changes.department.strip()
        if len(department) > 100:
            raise ValidationError("department must be at most 100 characters", field="department")
        updates["department"] = department or None
    if changes.timezone is not None:
        updates["timezone"] = valid_timezone(changes.timezone)
    updates = {k: v for k, v in updates.items() if getattr(user, k) != v}
    if not updates:
        return before
    for key, value in updates.items():
        setattr(user, key, value)
    try:
        await user.save(update_fields=[*updates, _bump(user), "updated_at"])
    except IntegrityError as exc:  # a concurrent update took the email
        raise ValidationError(f"email '{user.email}' is already in use", field="email") from exc
    (record,) = await _records([user])
    await record_event(Outbox, _event("users.user_updated", record, actor))
    return record


async def delete_user(*, user_id: str, actor: Identity | None) -> UserRecord:
    """Soft delete: ``deleted_at`` set and the user deactivated, so auth's deactivation path
    (``users.user_deactivated`` with ``isActive: false``) revokes every session and API key.
    The row stays: other services' history still resolves the name; username and email stay taken."""
    if actor is not None and actor.subject == user_id:
        raise ValidationError("you cannot delete your own account", field="id")
    admins = await _lock_active_admins()
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    (before,) = await _records([user])
    check_may_act_on(actor, before.id, before.permissions, "delete")
    if user.id in admins and len(admins) <= 1:
        raise ValidationError("cannot delete the last active admin", field="id")
    user.deleted_at = now_utc()
    user.is_active = False
    await user.save(update_fields=["deleted_at", "is_active", _bump(user), "updated_at"])
    (record,) = await _records([user])
    await record_event(Outbox, _event("users.user_deactivated", record, actor))
    return record


# ---- custom roles and role assignment ---------------------------------------------------------


class SystemRoleError(DomainError):
    """System roles come from code (seeded at every start): changing them here would be undone."""

    def __init__(self, name: str) -> None:
        super().__init__(f"role '{name}' is a system role and cannot be changed or deleted")
        self.name = name


class RoleInUseError(DomainError):
    """Deleting an assigned role would silently strip permissions from people."""

    def __init__(self, name: str, user_count: int) -> None:
        super().__init__(f"role '{name}' is still assigned to {user_count} user(s); reassign them first")
        self.name = name
        self.user_count = user_count


ROLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,49}$")


def validate_permissions(permissions: Iterable[str]) -> list[str]:
    """Catalogue entries only (no ``*``: only the system admin role grants everything), deduplicated."""
    wanted = sorted({p.strip() for p in permissions})
    unknown = [p for p in wanted if p not in PERMISSIONS]
    if unknown:
        raise ValidationError(f"unknown permission(s): {', '.join(unknown)}", field="permissions")
    return wanted


def _role_record(role: Role) -> RoleRecord:
    return RoleRecord(role.name, role.description, tuple(role.permissions), role.is_system)


def _check_grant(actor: Identity | None, permissions: Iterable[str]) -> None:
    missing = _can_grant(actor, permissions)
    if missing is not None:
        raise PermissionError_(
            f"you cannot grant permission '{missing}', which you do not hold", permission=missing
        )


async def create_role(
    *, name: str, description: str | None, permissions: Sequence[str], actor: Identity | None
) -> RoleRecord:
    name = name.strip().lower()
    if not ROLE_NAME_RE.fullmatch(name):
        raise ValidationError(
            "role name must be 2-50 characters of lower-case letters, digits, '_' or '-'", field="name"
        )
    if name in LEGACY_ROLES:
        raise ValidationError(
            f"'{name}' is a legacy role name (it maps to '{LEGACY_ROLES[name]}')", field="name"
        )
    description = (description or "").strip()
    if len(description) > 255:
        raise ValidationError("description must be at most 255 characters", field="description")
    perms = validate_permissions(permissions)
    _check_grant(actor, perms)
    if await Role.exists(name=name):
        raise ValidationError(f"role '{name}' already exists", field="name")
    try:
        role = await Role.create(name=name, description=description, permissions=perms, is_system=False)
    except IntegrityError as exc:
        raise ValidationError(f"role '{name}' already exists", field="name") from exc
    return _role_record(role)


async def _locked_custom_role(name: str) -> Role:
    role = await Role.filter(name=canonical_role(name)).select_for_update().first()
    if role is None:
        raise NotFoundError(f"no role named '{name}'", id=name)
    if role.is_system:
        raise SystemRoleError(role.name)
    return role


async def _lock_holders(role_name: str) -> list[str]:
    """Lock the (not deleted) holders of a role in id order, after the active admins (the lock order
    every multi-user write follows: roles, then admins, then other users)."""
    await _lock_active_admins()
    return [
        u.id for u in await _holding(role_name).filter(deleted_at=None).order_by("id").select_for_update()
    ]


async def update_role(
    *,
    name: str,
    description: str | None,
    permissions: Sequence[str] | None,
    actor: Identity | None,
) -> RoleRecord:
    """Change a custom role; when its permissions change, every holder gets a
    ``users.user_roles_changed`` event with their new permissions (auth's token claims follow).

    The role row is locked first (createUser/setUserRoles adding it wait for us, or we for them),
    then the holders, whose versions are bumped: each holder's snapshot is computed after every
    concurrent change of that user committed. Changing the permissions needs every permission each
    other holder holds (H6: no editing the rights of a user more privileged than oneself)."""
    role = await _locked_custom_role(name)
    fields_: list[str] = []
    if description is not None:
        description = description.strip()
        if len(description) > 255:
            raise ValidationError("description must be at most 255 characters", field="description")
        role.description = description
        fields_.append("description")
    changed = False
    if permissions is not None:
        perms = validate_permissions(permissions)
        _check_grant(actor, perms)
        changed = perms != sorted(role.permissions)
        role.permissions = perms
        fields_.append("permissions")
    holders: list[str] = []
    if changed:
        holders = await _lock_holders(role.name)
        for holder in await _records(await User.filter(id__in=holders).order_by("id")):
            check_may_act_on(actor, holder.id, holder.permissions, "change the role of")
    if fields_:
        await role.save(update_fields=fields_)
    if holders:
        await User.filter(id__in=holders).update(version=F("version") + 1)
        for record in await _records(await User.filter(id__in=holders).order_by("id")):
            await record_event(Outbox, _event("users.user_roles_changed", record, actor))
    return _role_record(role)


async def delete_role(*, name: str) -> str:
    role = await _locked_custom_role(name)
    in_use = await User.filter(deleted_at=None, role_links__role_id=role.name).count()
    if in_use:
        raise RoleInUseError(role.name, in_use)
    await UserRole.filter(role_id=role.name).delete()  # links of soft-deleted users only
    await role.delete()
    return role.name


async def _lock_active_admins() -> list[str]:
    """Lock the active admins' rows: two concurrent demotions cannot both see 'another admin left'."""
    # Whole rows without a join: tortoise drops FOR UPDATE from values_list() queries, and PostgreSQL
    # refuses it on the outer join a role_links filter makes.
    rows = await _holding("admin").filter(deleted_at=None, is_active=True).order_by("id").select_for_update()
    return [u.id for u in rows]


def _holding(role_name: str) -> Any:
    """Users holding the role (a subquery on the links, so the query can lock the users rows)."""
    return User.filter(id__in=Subquery(UserRole.filter(role_id=role_name).values("user_id")))


async def set_user_roles(*, user_id: str, roles: Sequence[str], actor: Identity | None) -> UserRecord:
    """Replace a user's roles (legacy names map); emits ``users.user_roles_changed`` when they change."""
    wanted = canonical_roles(roles)
    if not wanted:
        raise ValidationError("a user needs at least one role", field="roles")
    # The wanted roles first (name order), as updateRole does: a concurrent permission change of
    # one of them either commits before we read it or waits for our snapshot (M6).
    locked = await Role.filter(name__in=wanted).order_by("name").select_for_update(no_key=True)
    perms = {r.name: list(r.permissions) for r in locked}
    unknown = [r for r in wanted if r not in perms]
    if unknown:
        raise ValidationError(f"unknown role(s): {', '.join(unknown)}", field="roles")
    _check_grant(actor, resolve_permissions(perms[r] for r in wanted))
    admins = await _lock_active_admins()
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    (before,) = await _records([user])
    check_may_act_on(actor, before.id, before.permissions, "change the roles of")
    if set(before.roles) == set(wanted):
        return before
    if user.id in admins and "admin" not in wanted and len(admins) <= 1:
        raise ValidationError("cannot remove the admin role from the last active admin", field="roles")
    await UserRole.filter(user_id=user.id).exclude(role_id__in=wanted).delete()
    for role in wanted:
        if role not in before.roles:
            await UserRole.create(user_id=user.id, role_id=role)
    await user.save(update_fields=[_bump(user), "updated_at"])
    (record,) = await _records([user])
    await record_event(Outbox, _event("users.user_roles_changed", record, actor))
    return record


async def record_login(user_id: str, at: datetime) -> None:
    """Set lastLoginAt from auth's login event; never moves backwards (events may arrive late)."""
    await User.filter(Q(id=user_id) & (Q(last_login_at=None) | Q(last_login_at__lt=at))).update(
        last_login_at=at
    )


async def import_legacy_user(
    *,
    username: str,
    email: str,
    role: str,
    is_active: bool = True,
    last_login_at: datetime | None = None,
    user_id: str | None = None,
) -> UserRecord:
    """For the legacy migration: one monolith user (single role string, mapped by ``canonical_role``).

    Writes the user, the role and ``users.user_created`` (the caller's transaction). The password
    hash does not pass here or through events: the migration stores it in auth with
    ``opsconductor_auth.service.import_legacy_credential`` under the returned id.
    """
    username = username.strip()
    if not USERNAME_RE.fullmatch(username):
        raise ValidationError(f"legacy username '{username}' is not valid here", field="username")
    email = email.strip().lower()
    if not EMAIL_RE.fullmatch(email):
        raise ValidationError(f"'{email}' is not a valid email address", field="email")
    name = canonical_role(role)
    if not await Role.exists(name=name):
        raise ValidationError(f"unknown role '{role}'", field="roles")
    if await User.filter(username__iexact=username).exists():
        raise UsernameTakenError(username)
    user = await User.create(
        id=user_id or str(new_uuid7()),
        username=username,
        email=email,
        display_name=username,
        is_active=is_active,
        last_login_at=last_login_at,
        version=1,
    )
    await UserRole.create(user_id=user.id, role_id=name)
    (record,) = await _records([user])
    await record_event(Outbox, _event("users.user_created", record, None))
    return record


# ---- the bootstrap admin ----------------------------------------------------------------------


async def ensure_bootstrap_admin() -> bool:
    """Create the admin user once (same id as auth's bootstrap credential); True when created.

    Run in a transaction; an IntegrityError means another replica won the race (roll back, ignore).
    """
    if await User.exists(id=BOOTSTRAP_ADMIN_ID):
        return False
    if await User.filter(username__iexact=BOOTSTRAP_ADMIN_USERNAME).exists():
        log.warning("a user named 'admin' exists with another id; bootstrap admin not created")
        return False
    user = await User.create(
        id=BOOTSTRAP_ADMIN_ID,
        username=BOOTSTRAP_ADMIN_USERNAME,
        email="admin@localhost",
        display_name="Administrator",
        version=1,
    )
    await UserRole.create(user_id=user.id, role_id="admin")
    (record,) = await _records([user])
    await record_event(Outbox, _event("users.user_created", record, None))
    return True


# ---- the password half, in auth ---------------------------------------------------------------


class CredentialRejected(ValidationError):
    """Auth answered and refused the credential (nothing was stored there)."""


class CredentialUnavailable(DomainError):
    """Auth could not be reached or failed; whether it stored the credential is unknown."""


SET_CREDENTIAL = """
mutation SetUserCredential($input: SetUserCredentialInput!) {
  setUserCredential(input: $input) {
    __typename
    ... on ValidationFailed { message field }
  }
}"""


class AuthCredentials:
    """The users service's calls to auth's setUserCredential (service token, never retried)."""

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _set(self, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            data = await self.client.execute(SET_CREDENTIAL, {"input": variables}, retries=0)
        except ServiceCallError as exc:
            raise CredentialUnavailable(f"the auth service did not store the password: {exc}") from exc
        return dict(data["setUserCredential"])

    async def set(self, record: UserRecord, password: str) -> None:
        result = await self._set(
            {
                "userId": record.id,
                "username": record.username,
                "password": password,
                "roles": list(record.roles),
                "permissions": list(record.permissions),
                "isActive": record.is_active,
            }
        )
        if result["__typename"] == "ValidationFailed":
            raise CredentialRejected(
                result.get("message") or "auth refused the credential",
                field=result.get("field") or "password",
            )
        if result["__typename"] != "CredentialSet":
            raise CredentialUnavailable(f"unexpected answer from auth: {result['__typename']}")

    async def withdraw(self, record: UserRecord) -> None:
        """Compensation after a failed create: disable whatever auth may have stored for this id and
        free the username there (the users row was rolled back). Best effort; logged on failure."""
        try:
            await self._set(
                {
                    "userId": record.id,
                    "username": f"~withdrawn~{record.id}",
                    "password": None,
                    "roles": [],
                    "permissions": [],
                    "isActive": False,
                }
            )
        except CredentialUnavailable as exc:
            log.error(
                "could not withdraw a possibly stored credential; disable it in auth by hand",
                user_id=record.id,
                username=record.username,
                error=str(exc),
            )

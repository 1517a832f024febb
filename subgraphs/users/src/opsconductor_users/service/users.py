"""Users: list, validate, create, (de)activate, profile, soft delete, last login."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery

from opsconductor_shared.auth import Identity
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_users import events
from opsconductor_users.errors import UsernameTakenError
from opsconductor_users.models import Outbox, User, UserRole
from opsconductor_users.service.catalog import (
    DEFAULT_ROLES,
    canonical_role,
    canonical_roles,
    resolve_permissions,
)
from opsconductor_users.service.privileges import check_grant, check_may_act_on, lock_active_admins
from opsconductor_users.service.records import UserRecord, bump_version, role_permissions, user_records


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
    return UserPage(users=await user_records(rows[:first]), has_next=len(rows) > first, total=total)


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


async def create_user(*, new: NewUser, actor: Identity | None) -> UserRecord:
    """Write the user, their roles and the `users.user_created` event (the caller's transaction)."""
    perms = await role_permissions()
    unknown = [r for r in new.roles if r not in perms]
    if unknown:
        raise ValidationError(
            f"unknown role(s): {', '.join(unknown)}; known roles: {', '.join(sorted(perms))}", field="roles"
        )
    check_grant(actor, resolve_permissions(perms[r] for r in new.roles))
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
    (record,) = await user_records([user])
    # Again on the permissions as stored now: the link rows lock the roles against a concurrent
    # updateRole, which may have widened one since the check above.
    check_grant(actor, record.permissions)
    await record_event(Outbox, events.user_event(events.USER_CREATED, record, actor))
    return record


async def set_user_active(*, user_id: str, active: bool, actor: Identity | None) -> UserRecord:
    """Activate or deactivate; emits users.user_deactivated / users.user_updated when it changes.

    Auth consumes these: deactivation revokes every session of the user at once.
    """
    admins = await lock_active_admins() if not active else []  # same lock order as delete_user
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    if not active and actor is not None and actor.subject == user_id:
        raise ValidationError("you cannot deactivate your own account", field="id")
    (before,) = await user_records([user])
    check_may_act_on(actor, before.id, before.permissions, "activate" if active else "deactivate")
    if user.is_active == active:
        return before
    if not active and user.id in admins and len(admins) <= 1:
        raise ValidationError("cannot deactivate the last active admin", field="id")
    user.is_active = active
    await user.save(update_fields=["is_active", bump_version(user), "updated_at"])
    (record,) = await user_records([user])
    await record_event(
        Outbox, events.user_event(events.USER_UPDATED if active else events.USER_DEACTIVATED, record, actor)
    )
    return record


def now_utc() -> datetime:
    return datetime.now(UTC)


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
    (before,) = await user_records([user])
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
        await user.save(update_fields=[*updates, bump_version(user), "updated_at"])
    except IntegrityError as exc:  # a concurrent update took the email
        raise ValidationError(f"email '{user.email}' is already in use", field="email") from exc
    (record,) = await user_records([user])
    await record_event(Outbox, events.user_event(events.USER_UPDATED, record, actor))
    return record


async def delete_user(*, user_id: str, actor: Identity | None) -> UserRecord:
    """Soft delete: ``deleted_at`` set and the user deactivated, so auth's deactivation path
    (``users.user_deactivated`` with ``isActive: false``) revokes every session and API key.
    The row stays: other services' history still resolves the name; username and email stay taken."""
    if actor is not None and actor.subject == user_id:
        raise ValidationError("you cannot delete your own account", field="id")
    admins = await lock_active_admins()
    user = await User.filter(id=user_id, deleted_at=None).select_for_update().first()
    if user is None:
        raise NotFoundError(f"no user with id '{user_id}'", id=user_id)
    (before,) = await user_records([user])
    check_may_act_on(actor, before.id, before.permissions, "delete")
    if user.id in admins and len(admins) <= 1:
        raise ValidationError("cannot delete the last active admin", field="id")
    user.deleted_at = now_utc()
    user.is_active = False
    await user.save(update_fields=["deleted_at", "is_active", bump_version(user), "updated_at"])
    (record,) = await user_records([user])
    await record_event(Outbox, events.user_event(events.USER_DEACTIVATED, record, actor))
    return record


async def record_login(*, user_id: str, at: datetime) -> None:
    """Set lastLoginAt from auth's login event; never moves backwards (events may arrive late)."""
    await User.filter(Q(id=user_id) & (Q(last_login_at=None) | Q(last_login_at__lt=at))).update(
        last_login_at=at
    )

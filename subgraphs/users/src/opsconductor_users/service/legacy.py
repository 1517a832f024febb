"""The legacy migration's users half and the bootstrap admin."""

from __future__ import annotations

from datetime import datetime

from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID, BOOTSTRAP_ADMIN_USERNAME
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_shared.legacy import legacy_uuid
from opsconductor_shared.logging import get_logger
from opsconductor_users import events
from opsconductor_users.errors import UsernameTakenError
from opsconductor_users.models import Outbox, Role, User, UserRole
from opsconductor_users.service.catalog import canonical_role
from opsconductor_users.service.records import UserRecord, user_records
from opsconductor_users.service.users import EMAIL_RE, USERNAME_RE

log = get_logger("opsconductor.users")


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
    (record,) = await user_records([user])
    await record_event(Outbox, events.user_event(events.USER_CREATED, record, None))
    return record


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
    (record,) = await user_records([user])
    await record_event(Outbox, events.user_event(events.USER_CREATED, record, None))
    return True


async def upsert_legacy_user(
    *,
    legacy_id: int,
    username: str,
    email: str,
    role: str,
    is_active: bool = True,
    last_login_at: datetime | None = None,
) -> tuple[UserRecord, bool]:
    """The migration's idempotent entry: the user whose id derives from the legacy id, created with
    ``import_legacy_user`` the first time; ``(record, created)``. A re-run leaves an imported user
    as it is now (it may have been edited since)."""
    user_id = str(legacy_uuid("users", legacy_id))
    existing = await User.get_or_none(id=user_id)
    if existing is not None:
        (record,) = await user_records([existing])
        return record, False
    record = await import_legacy_user(
        username=username,
        email=email,
        role=role,
        is_active=is_active,
        last_login_at=last_login_at,
        user_id=user_id,
    )
    return record, True

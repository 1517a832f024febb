"""Credentials and their passwords: set (users service), change (self), reset (admin), legacy import,
history, and the bootstrap admin.

A new password is checked and hashed by a ``prepare_*`` function *before* its transaction (argon2 in
threads while no row or SQLite lock is held); the transaction's function then locks the row and
stores it, checking again only if the stored hash changed meanwhile (rare).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsconductor_auth.errors import LoginFailed
from opsconductor_auth.models import Credential, PasswordHistory
from opsconductor_auth.service.api_keys import revoke_api_keys
from opsconductor_auth.service.hashing import PasswordPolicy, check_importable_hash, hash_async, verify_async
from opsconductor_auth.service.sessions import revoke_all
from opsconductor_auth.settings import Settings
from opsconductor_shared.auth import BOOTSTRAP_ADMIN_ID, BOOTSTRAP_ADMIN_USERNAME, Identity
from opsconductor_shared.errors import ForbiddenError, NotFoundError, ValidationError
from opsconductor_shared.logging import get_logger
from opsconductor_shared.settings import InsecureSettings

if TYPE_CHECKING:
    from opsconductor_auth.service.deps import Deps

log = get_logger("opsconductor.auth")


@dataclass(frozen=True)
class NewPassword:
    """A new password that met the policy and the history, hashed outside any transaction."""

    password: str  # in clear, for the rare re-check when the stored hash changed meanwhile
    hash: str
    hash_seen: str | None  # the stored hash the history was checked against


async def _recently_used(cred: Credential, password: str, policy: PasswordPolicy) -> bool:
    if policy.history <= 0 or cred.password_hash is None:
        return False
    earlier = await PasswordHistory.filter(user_id=cred.user_id).order_by("-id").limit(policy.history - 1)
    for hashed in [cred.password_hash, *(h.password_hash for h in earlier)]:
        if await verify_async(hashed, password):
            return True
    return False


async def _check_history(cred: Credential | None, password: str, policy: PasswordPolicy) -> None:
    if cred is not None and await _recently_used(cred, password, policy):
        raise ValidationError(f"password was one of the last {policy.history} used", field="password")


async def _prepare(cred: Credential | None, password: str, policy: PasswordPolicy) -> NewPassword:
    policy.check(password)
    await _check_history(cred, password, policy)
    return NewPassword(password, await hash_async(password), cred.password_hash if cred else None)


async def _store(cred: Credential, new: NewPassword, policy: PasswordPolicy) -> None:
    """Set the prepared password on the (locked) row; the caller saves it."""
    if cred.password_hash != new.hash_seen:
        await _check_history(cred, new.password, policy)  # changed since the check: check again
    if cred.password_hash is not None:
        await PasswordHistory.create(user_id=cred.user_id, password_hash=cred.password_hash)
    cred.password_hash = new.hash
    cred.failed_logins = 0
    cred.locked_until = None


# ---- set (the users service) ------------------------------------------------------------------


async def prepare_password(
    *, user_id: str, password: str | None, policy: PasswordPolicy
) -> NewPassword | None:
    """Before the transaction: the policy, the history and the hash of a password to set (None: none)."""
    if password is None:
        return None
    return await _prepare(await Credential.get_or_none(user_id=user_id), password, policy)


async def set_credential(
    *,
    user_id: str,
    username: str,
    password: NewPassword | None,
    roles: list[str],
    permissions: list[str],
    is_active: bool = True,
    policy: PasswordPolicy | None = None,
) -> Credential:
    """Set a user's claims, and a password prepared with :func:`prepare_password` (the users service)."""
    policy = policy or PasswordPolicy()
    cred = await Credential.select_for_update().get_or_none(user_id=user_id)
    if cred is None:
        cred = Credential(user_id=user_id, username=username)
    cred.username = username
    cred.roles = roles
    cred.permissions = permissions
    cred.is_active = is_active
    if password is not None:
        await _store(cred, password, policy)
    await cred.save()
    return cred


# ---- change (self-service) --------------------------------------------------------------------


async def prepare_password_change(
    *, user_id: str, current: str, new: str, policy: PasswordPolicy
) -> NewPassword:
    """Before the transaction: the current password is right (else LoginFailed), the new one meets the
    policy and the history; its hash."""
    cred = await Credential.get_or_none(user_id=user_id)
    if cred is None or cred.password_hash is None or not await verify_async(cred.password_hash, current):
        raise LoginFailed("current password is wrong")
    return await _prepare(cred, new, policy)


async def change_password(
    *, deps: Deps, user_id: str, current: str, new: NewPassword, keep_session: str | None
) -> int:
    """Store the prepared password; the user's other sessions and every API key end (a key made by
    whoever knew the old password must not outlive it, H5). How many sessions ended."""
    cred = await Credential.select_for_update().get_or_none(user_id=user_id)
    if cred is None or cred.password_hash is None:
        raise LoginFailed("current password is wrong")
    if cred.password_hash != new.hash_seen and not await verify_async(cred.password_hash, current):
        raise LoginFailed("current password is wrong")  # changed since the check (rare)
    await _store(cred, new, deps.passwords)
    await cred.save()
    revoked = await revoke_all(deps=deps, user_id=user_id, reason="password_changed", keep=keep_session)
    await revoke_api_keys(deps=deps, user_id=user_id, reason="password_changed")
    return revoked


# ---- reset (admin) ----------------------------------------------------------------------------


def _check_may_reset(actor: Identity, user_id: str, cred: Credential | None) -> None:
    """H6: an admin resets only the password of a user whose permissions (auth's replica) they all
    hold (``*`` only with ``*``); anyone may act on themselves."""
    if actor.subject == user_id or cred is None:
        return
    for perm in cred.permissions:
        held = "*" in actor.permissions if perm == "*" else actor.has(perm)
        if not held:
            raise ForbiddenError(
                f"you cannot reset the password of a user who holds permission '{perm}', which you do not hold",
                permission=perm,
            )


async def prepare_password_reset(
    *, user_id: str, new: str, actor: Identity, policy: PasswordPolicy
) -> NewPassword:
    """Before the transaction: the actor may reset it, the user has a credential, the password meets
    the policy and the history; its hash."""
    cred = await Credential.get_or_none(user_id=user_id)
    _check_may_reset(actor, user_id, cred)
    if cred is None:
        raise NotFoundError(f"user {user_id} has no credential", id=user_id)
    return await _prepare(cred, new, policy)


async def reset_password(*, deps: Deps, user_id: str, new: NewPassword, actor: Identity) -> int:
    """Store the prepared password (admin); all of the user's sessions and API keys end. How many sessions."""
    cred = await Credential.select_for_update().get_or_none(user_id=user_id)
    _check_may_reset(actor, user_id, cred)
    if cred is None:
        raise NotFoundError(f"user {user_id} has no credential", id=user_id)
    await _store(cred, new, deps.passwords)
    await cred.save()
    revoked = await revoke_all(deps=deps, user_id=user_id, reason="password_reset")
    await revoke_api_keys(deps=deps, user_id=user_id, reason="password_reset")
    return revoked


# ---- legacy import ----------------------------------------------------------------------------


async def import_legacy_credential(
    *,
    user_id: str,
    username: str,
    password_hash: str,
    roles: list[str],
    permissions: list[str],
    is_active: bool = True,
) -> Credential:
    """For the legacy migration: store a user's existing hash as is (bcrypt from the monolith).

    The first successful login verifies it with bcrypt and replaces it with argon2id. The claims
    are the users service's (the migration imports the user there with
    ``opsconductor_users.service.import_legacy_user``); its later events keep them current.
    Runs in the caller's transaction (auth's database).
    """
    cred = await Credential.get_or_none(user_id=user_id) or Credential(user_id=user_id, username=username)
    cred.username = username
    cred.password_hash = check_importable_hash(password_hash)
    cred.roles = roles
    cred.permissions = permissions
    cred.is_active = is_active
    cred.failed_logins = 0
    cred.locked_until = None
    await cred.save()
    return cred


# ---- the bootstrap admin (L4) -----------------------------------------------------------------


def check_admin_password(settings: Settings) -> str:
    """OPSC_ADMIN_PASSWORD, if it meets the password policy; else InsecureSettings (auth does not start)."""
    password = settings.admin_password.get_secret_value() if settings.admin_password else ""
    try:
        PasswordPolicy.from_settings(settings).check(password)
    except ValidationError as exc:
        raise InsecureSettings(
            f"OPSC_ADMIN_PASSWORD does not meet the password policy: {exc.message}"
        ) from exc
    return password


def _generate_password(policy: PasswordPolicy) -> str:
    password = secrets.token_urlsafe(max(18, policy.min_length))
    for _ in range(20):  # random text nearly always mixes classes; retry the rare one that does not
        try:
            policy.check(password)
            break
        except ValidationError:
            password = secrets.token_urlsafe(max(18, policy.min_length))
    return password


async def ensure_bootstrap_admin(settings: Settings) -> str | None:
    """Create the admin credential once (in the caller's transaction, at start); returns a generated
    password to show, if one was made."""
    existing = await Credential.get_or_none(user_id=BOOTSTRAP_ADMIN_ID)
    if existing is not None and existing.password_hash:
        return None
    generated = None
    policy = PasswordPolicy.from_settings(settings)
    if settings.admin_password is not None:
        password = check_admin_password(settings)
    else:
        password = generated = _generate_password(policy)
    no_history = PasswordPolicy(policy.min_length, policy.min_classes, history=0)
    await set_credential(
        user_id=BOOTSTRAP_ADMIN_ID,
        username=BOOTSTRAP_ADMIN_USERNAME,
        password=await prepare_password(user_id=BOOTSTRAP_ADMIN_ID, password=password, policy=no_history),
        roles=["admin"],
        permissions=["*"],
        policy=no_history,
    )
    return generated


BOOTSTRAP_PASSWORD_FILE = "bootstrap-admin-password"  # noqa: S105 - a file name


def announce_bootstrap_password(password: str, data_dir: Path) -> str:
    """Show a generated admin password once, on the terminal only, never in a log.

    Written to the controlling terminal (``/dev/tty``) when there is one, else to stderr if that
    is a terminal; stdout and redirected stderr are usually captured into log files (``make dev``
    tees them to .data/services.log). Without a terminal it goes to a file readable only by this
    user (``<data_dir>/bootstrap-admin-password``, 0600) and the log says where. Returns where.
    """
    message = f"\n  OpsConductor bootstrap admin: username 'admin', password '{password}'\n\n"
    with contextlib.suppress(OSError):
        with open("/dev/tty", "w") as tty:
            tty.write(message)
        return "tty"
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write(message)
        sys.stderr.flush()
        return "stderr"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / BOOTSTRAP_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    os.chmod(path, 0o600)
    log.warning(
        "bootstrap admin password generated; no terminal to show it on: it is in a file only you can read",
        path=str(path.resolve()),
    )
    return str(path)

"""API keys: signed tokens for automation whose ``sid`` is the key's id (revoked like a session),
with at most the owner's permissions (H5); only their hash is stored."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING

from opsconductor_auth import events
from opsconductor_auth.models import ApiKey, Credential, Outbox
from opsconductor_auth.service.keys import now
from opsconductor_auth.service.sessions import sha256
from opsconductor_shared.auth import Identity
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.events import record_event

if TYPE_CHECKING:
    from opsconductor_auth.service.deps import Deps


def not_held(wanted: Iterable[str], held: Iterable[str]) -> list[str]:
    """The permissions of ``wanted`` that ``held`` does not cover (``*`` and ``resource:*`` cover)."""
    held = set(held)
    if "*" in held:
        return []
    return [p for p in wanted if p not in held and f"{p.split(':')[0]}:*" not in held]


def hmac_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def list_api_keys(*, user_id: str) -> list[ApiKey]:
    return await ApiKey.filter(user_id=user_id).order_by("-created_at")


async def create_api_key(
    *, deps: Deps, user_id: str, name: str, permissions: list[str], days: int
) -> tuple[ApiKey, str]:
    """A signed token (verifiable everywhere like an access token) whose `sid` is the key's id,
    so revoking the key uses the same revocation list as sessions. Only its hash is stored."""
    owner = await Credential.get(user_id=user_id)
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError("name must be 1-100 characters", field="name")
    if not 1 <= days <= 365:
        raise ValidationError("expiresInDays must be between 1 and 365", field="expiresInDays")
    wanted = sorted(set(permissions))
    if not wanted:
        raise ValidationError("an API key needs at least one permission", field="permissions")
    beyond = not_held(wanted, owner.permissions)
    if beyond:
        raise ValidationError(f"you do not hold: {', '.join(beyond)}", field="permissions")
    key_id = uuid.uuid4()
    issued = now()
    expires = issued + timedelta(days=days)
    token = await deps.tokens.api_key(
        owner=owner, key_id=key_id, permissions=wanted, issued=issued, expires=expires
    )
    row = await ApiKey.create(
        id=key_id,
        user_id=owner.user_id,
        name=name,
        permissions=wanted,
        token_hash=sha256(token),
        expires_at=expires,
    )
    await record_event(
        Outbox,
        events.api_key_created(user_id=owner.user_id, api_key_id=str(key_id), name=name, permissions=wanted),
    )
    return row, token


async def _revoke(deps: Deps, row: ApiKey, reason: str) -> None:
    if row.revoked_at is None:
        row.revoked_at = now()
        await row.save(update_fields=["revoked_at"])
    ttl = int((row.expires_at - now()).total_seconds()) + 60
    await deps.revocations.revoke_session(f"apikey:{row.id}", max(ttl, 60))
    await record_event(
        Outbox, events.api_key_revoked(user_id=row.user_id, api_key_id=str(row.id), reason=reason)
    )


async def revoke_api_key(*, deps: Deps, key_id: str, actor: Identity) -> ApiKey:
    """Revoke one API key: the actor's own, or anyone's with ``sessions:manage`` (else NotFound)."""
    owner = None if actor.has("sessions:manage") else actor.subject
    try:
        row = await ApiKey.get_or_none(id=uuid.UUID(key_id))
    except ValueError:
        row = None
    if row is None or (owner is not None and row.user_id != owner):
        raise NotFoundError(f"API key {key_id} not found", id=key_id)
    await _revoke(deps, row, "revoked")
    return row


async def revoke_api_keys(*, deps: Deps, user_id: str, reason: str, held: list[str] | None = None) -> int:
    """Revoke the user's live API keys; with ``held``, only those carrying a permission beyond it."""
    count = 0
    for api_key in await ApiKey.filter(user_id=user_id, revoked_at=None):
        if held is None or not_held(api_key.permissions, held):
            await _revoke(deps, api_key, reason)
            count += 1
    return count


_USE_AUDIT_SECONDS = 60.0
_last_use_recorded: dict[tuple[str, bool], float] = {}


async def record_api_key_use(*, key_id: str, active: bool) -> None:
    """Audit an API key's use (``auth.api_key_used``): services ask whether a key is valid before
    accepting it, each answer cached a few seconds; this records at most one event a minute per
    key and answer, in its own transaction (the caller's unit of work)."""
    import time

    stamp = time.monotonic()
    last = _last_use_recorded.get((key_id, active))
    if last is not None and stamp - last < _USE_AUDIT_SECONDS:
        return
    if len(_last_use_recorded) > 10_000:
        _last_use_recorded.clear()
    _last_use_recorded[(key_id, active)] = stamp
    try:
        row = await ApiKey.get_or_none(id=uuid.UUID(key_id))
    except ValueError:
        row = None
    if row is None:  # not a key of ours: nothing to audit (and no flood of made-up ids)
        return
    await record_event(Outbox, events.api_key_used(user_id=row.user_id, api_key_id=key_id, ok=active))


async def api_key_active(*, key_id: str, token_hash: str) -> bool:
    """What every service asks (cached a few seconds) before accepting an API key: the stored
    key matches the token, is neither revoked nor expired, its owner is active and still holds
    every permission the key carries."""
    try:
        row = await ApiKey.get_or_none(id=uuid.UUID(key_id))
    except ValueError:
        return False
    if row is None or row.revoked_at is not None or row.expires_at <= now():
        return False
    if not hmac_equal(row.token_hash, token_hash):
        return False
    cred = await Credential.get_or_none(user_id=row.user_id)
    return cred is not None and cred.is_active and not not_held(row.permissions, cred.permissions)

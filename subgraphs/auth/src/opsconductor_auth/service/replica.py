"""Auth's replica of the users service's claims (username, roles, permissions, active), kept from
its events: the claims auth puts in tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsconductor_auth.models import Credential
from opsconductor_auth.service.api_keys import revoke_api_keys
from opsconductor_auth.service.sessions import revoke_all
from opsconductor_shared.events import EventEnvelope
from opsconductor_shared.logging import get_logger

if TYPE_CHECKING:
    from opsconductor_auth.service.deps import Deps

log = get_logger("opsconductor.auth")


def snapshot_version(data: Mapping[str, Any]) -> int | None:
    """The users service's ``version`` of a user snapshot as an integer that grows with each change
    (M6): an integer as is, a timestamp (ISO 8601 string) as microseconds since the epoch; None if absent."""
    value = data.get("version")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            return int(at.timestamp() * 1_000_000)
    return None


async def apply_user_event(*, deps: Deps, envelope: EventEnvelope) -> None:
    """Keep the claims auth puts in tokens in step with the users service; deactivation ends
    every session and API key of the user, losing a permission revokes the keys that carry it.
    A snapshot older than the one applied (users' ``version``) is ignored."""
    data = envelope.data
    user_id = envelope.subject or data.get("id")
    if not user_id:
        return
    version = snapshot_version(data)
    cred = await Credential.select_for_update().get_or_none(user_id=user_id)
    created = cred is None
    if cred is None:
        if envelope.type != "users.user_created":
            return
        cred = Credential(user_id=user_id, username=data["username"])
    elif version is not None and cred.claims_version is not None and version < cred.claims_version:
        log.info(
            "stale user snapshot ignored",
            event_type=envelope.type,
            user_id=user_id,
            version=version,
            applied=cred.claims_version,
        )
        return
    changed: list[str] = []
    for key, attr in (
        ("username", "username"),
        ("roles", "roles"),
        ("permissions", "permissions"),
        ("isActive", "is_active"),
    ):
        if key in data:
            setattr(cred, attr, data[key])
            changed.append(attr)
    if version is not None:
        cred.claims_version = version
        changed.append("claims_version")
    # Only the replicated claims: a full-row save would write back a password hash, lockout
    # counter or login time read before a concurrent login or password change committed.
    await (cred.save() if created else cred.save(update_fields=[*changed, "updated_at"]))
    if data.get("isActive") is False:
        await revoke_api_keys(deps=deps, user_id=user_id, reason="user_deactivated")
        await revoke_all(deps=deps, user_id=user_id, reason="user_deactivated")
    elif "permissions" in data and not created:
        await revoke_api_keys(
            deps=deps, user_id=user_id, reason="permissions_reduced", held=list(cred.permissions)
        )

"""Events targets publishes (through its outbox), and the envelope builders. It consumes none.

``targets.target_created``: data {id, serial, name, osType, environment, status, tags,
methods: [{id, type, host, port, isPrimary, credential?: {id, type}}]} (metadata only: no secret,
no username). ``targets.target_health_changed``: data {id, healthStatus, previous}.
``targets.target_updated``: {id, serial, changed: [field names], methodAdded?/methodRemoved?/
methodId?/promoted?}. ``targets.target_deleted``: {id, serial}. ``targets.host_key_trusted``:
{id, serial, methodId, fingerprint, previous, how: tofu|accepted}.
"""

from __future__ import annotations

from typing import Any

from opsconductor_shared.events import EventEnvelope
from opsconductor_targets.models import Target

SOURCE = "targets"
TARGET_CREATED = "targets.target_created"
TARGET_UPDATED = "targets.target_updated"
TARGET_DELETED = "targets.target_deleted"
TARGET_HEALTH_CHANGED = "targets.target_health_changed"
HOST_KEY_TRUSTED = "targets.host_key_trusted"
CONNECTION_GRANTED = "targets.connection_granted"
"""A connection grant was issued: {grantId, purpose, targetIds, expiresAt} (audited, by purpose)."""


def target_event(type_: str, target: Target, actor: str | None, data: dict[str, Any]) -> EventEnvelope:
    """An event about one target. Metadata only: never a secret, never a username."""
    return EventEnvelope(
        type=type_,
        source=SOURCE,
        subject=target.id,
        actor=actor,
        data={"id": target.id, "serial": target.serial, **data},
    )


def health_changed(target_id: str, health: str, previous: str) -> EventEnvelope:
    return EventEnvelope(
        type=TARGET_HEALTH_CHANGED,
        source=SOURCE,
        subject=target_id,
        data={"id": target_id, "healthStatus": health, "previous": previous},
    )


def connection_granted(
    *, grant_id: str, purpose: str, target_ids: list[str], expires_at: str, actor: str | None
) -> EventEnvelope:
    return EventEnvelope(
        type=CONNECTION_GRANTED,
        source=SOURCE,
        subject=target_ids[0] if len(target_ids) == 1 else None,
        actor=actor,
        data={"grantId": grant_id, "purpose": purpose, "targetIds": target_ids, "expiresAt": expires_at},
    )

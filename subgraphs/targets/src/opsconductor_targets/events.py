"""Events targets publishes. It consumes none yet.

``targets.target_created``: data {id, serial, name, osType, environment, status, tags,
methods: [{id, type, host, port, isPrimary, credential?: {id, type}}]} (metadata only: no secret,
no username). ``targets.target_health_changed``: data {id, healthStatus, previous}.
``targets.target_updated``: {id, serial, changed: [field names], methodAdded?/methodRemoved?/
methodId?/promoted?}. ``targets.target_deleted``: {id, serial}. ``targets.host_key_trusted``:
{id, serial, methodId, fingerprint, previous, how: tofu|accepted}.
"""

from __future__ import annotations

from opsconductor_shared.app import Runtime

PUBLISHES = (
    "targets.target_created",
    "targets.target_health_changed",
    "targets.target_updated",
    "targets.target_deleted",
    "targets.host_key_trusted",
)
CONSUMES: tuple[str, ...] = ()


def subscribe(runtime: Runtime) -> None:
    """No consumers yet; kept so every subgraph wires events the same way."""
    return None

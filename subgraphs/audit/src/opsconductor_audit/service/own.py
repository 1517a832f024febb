"""Audit's own actions (exports, reports, verification failures, retention, legacy import) go
into the chain directly, like any other event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsconductor_audit import events
from opsconductor_audit.models import AuditEvent
from opsconductor_audit.service.canonical import Verification
from opsconductor_audit.service.chain import Draft, append
from opsconductor_audit.service.mapping import RULES
from opsconductor_shared.events import new_uuid7
from opsconductor_shared.logging import correlation_id


async def record(
    type_: str,
    *,
    actor_id: str | None,
    subject_type: str | None = None,
    subject_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> list[AuditEvent]:
    """The appended rows (for the alert rules: ``Deps.alerting.on_events``)."""
    rule = RULES[type_]
    return await append(
        [
            Draft(
                id=str(new_uuid7()),
                at=datetime.now(UTC),
                type=type_,
                action=rule.action,
                outcome=rule.outcome,
                severity=rule.severity,
                source=events.SOURCE,
                actor_id=actor_id,
                subject_type=subject_type or rule.subject_type,
                subject_id=subject_id,
                correlation_id=correlation_id.get(),
                data=data or {},
            )
        ]
    )


async def record_chain_broken(result: Verification, *, actor_id: str | None) -> list[AuditEvent]:
    return await record(
        events.CHAIN_BROKEN,
        actor_id=actor_id,
        data={"firstBadSeq": result.first_bad_seq, "message": result.message, "checked": result.checked},
    )

"""Events executions publishes (through its outbox); it consumes none.

- ``executions.execution_started`` {executionId, jobId, jobVersion, number, targetIds, queued, retryOf}
- ``executions.execution_finished`` {executionId, jobId, status, succeeded, failed, cancelled, requestedBy,
  targets: [{targetId, status, exitCode, message}]} (the per-target digest; never output)
- ``executions.dangerous_command_decision`` {actor, jobId, jobSerial, jobVersion, findings, decision, reason}
- ``executions.execution_cancelled`` {executionId, jobId, status} (the cancel request, actor = who asked)

Live per-run events go through the broadcaster (channel ``execution:<id>``, ``service/live.py``),
not the bus: they are many and their durable copy is the ``execution_events`` table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opsconductor_executions.models import Execution, TargetRun
from opsconductor_shared.events import EventEnvelope

SOURCE = "executions"
EXECUTION_STARTED = "executions.execution_started"
EXECUTION_FINISHED = "executions.execution_finished"
DANGEROUS_COMMAND_DECISION = "executions.dangerous_command_decision"
EXECUTION_CANCELLED = "executions.execution_cancelled"
"""A cancel was requested (who asked); the run's end is ``execution_finished`` (status CANCELLED)."""


def execution_started(execution: Execution, *, target_ids: list[str]) -> EventEnvelope:
    return EventEnvelope(
        type=EXECUTION_STARTED,
        source=SOURCE,
        subject=execution.id,
        actor=execution.requested_by,
        data={
            "executionId": execution.id,
            "jobId": execution.job_id,
            "jobVersion": execution.job_version,
            "number": execution.number,
            "targetIds": target_ids,
            "queued": execution.waiting,
            "retryOf": execution.retry_of,
        },
    )


def execution_finished(execution: Execution, *, targets: list[dict[str, Any]] | None = None) -> EventEnvelope:
    """``targets``: the run's per-target digest (:func:`target_digest`), for the audit trail."""
    data: dict[str, Any] = {
        "executionId": execution.id,
        "jobId": execution.job_id,
        "status": execution.status,
        "succeeded": execution.succeeded_targets,
        "failed": execution.failed_targets,
        "cancelled": execution.cancelled_targets,
        "requestedBy": execution.requested_by,
    }
    if targets is not None:
        data["targets"] = targets
    return EventEnvelope(type=EXECUTION_FINISHED, source=SOURCE, subject=execution.id, data=data)


def target_digest(runs: Iterable[TargetRun]) -> list[dict[str, Any]]:
    """How each target of the run ended: the audit's per-target digest. Never output: a failed
    target's message is the engine's reason (unreachable, host key rejected, ...), cut to 200."""
    return [
        {
            "targetId": r.target_id,
            "status": r.status,
            "exitCode": r.exit_code,
            "message": r.message[:200] if r.message and r.status != "SUCCEEDED" else None,
        }
        for r in sorted(runs, key=lambda r: r.target_id)
    ]


def dangerous_command_decision(
    *,
    actor: str | None,
    job_id: str,
    job_serial: str | None,
    job_version: int,
    findings: list[dict[str, Any]],
    allowed: bool,
    reason: str,
) -> EventEnvelope:
    return EventEnvelope(
        type=DANGEROUS_COMMAND_DECISION,
        source=SOURCE,
        subject=job_id,
        actor=actor,
        data={
            "actor": actor,
            "jobId": job_id,
            "jobSerial": job_serial,
            "jobVersion": job_version,
            "findings": findings,
            "decision": "allowed" if allowed else "blocked",
            "reason": reason,
        },
    )


def execution_cancelled(execution: Execution, *, actor: str | None) -> EventEnvelope:
    return EventEnvelope(
        type=EXECUTION_CANCELLED,
        source=SOURCE,
        subject=execution.id,
        actor=actor,
        data={"executionId": execution.id, "jobId": execution.job_id, "status": execution.status},
    )

"""What the legacy importer (``opsconductor migrate-legacy``) calls to write executions' tables.

``import_legacy_execution`` writes one legacy run whole, keyed by its legacy id (the run's id
derives from it): the execution (its number per job and legacy serial kept), one target run per
target (era 1: a branch; era 2: the target's result rows), one step result per legacy action
result (era-2 retry rows included, in order, under their own names) and, for era 1, the
execution logs as events. Imported runs are read like new ones (``execution``, ``Job.executions``,
``Target.runs``). A legacy run that never ended (``scheduled``/``running`` at import) is
imported CANCELLED with a message, so nothing here tries to follow it.

Idempotent: a run whose row already holds the same values was written whole (one transaction per
run), so it is left alone; a different one is rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsconductor_executions.models import Execution, ExecutionEvent, StepResult, TargetRun
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.legacy import Outcome, aware, legacy_uuid, upsert
from opsconductor_shared.runplan import RunPlan

__all__ = [
    "LegacyLog",
    "LegacyStepResult",
    "LegacyTargetRun",
    "import_legacy_execution",
    "legacy_execution_id",
    "legacy_status",
]

_RUN_STATUS = {"completed": "SUCCEEDED", "failed": "FAILED", "cancelled": "CANCELLED"}
_STEP_STATUS = {"completed": "SUCCEEDED", "failed": "FAILED", "cancelled": "CANCELLED"}


def legacy_execution_id(legacy_id: int) -> str:
    return str(legacy_uuid("job_executions", legacy_id))


def legacy_status(status: str, *, step: bool = False) -> tuple[str, str | None]:
    """A legacy ``execution_status`` as ours, with a message when the run had not ended."""
    table = _STEP_STATUS if step else _RUN_STATUS
    value = (status or "").strip().lower()
    if value in table:
        return table[value], None
    if step:
        return "SKIPPED", f"legacy status {value or 'unknown'}"
    return "CANCELLED", f"legacy run had not ended at import (status {value or 'unknown'})"


@dataclass(frozen=True)
class LegacyStepResult:
    name: str
    command: str
    status: str  # legacy execution_status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class LegacyLog:
    at: datetime
    text: str
    error: bool = False


@dataclass(frozen=True)
class LegacyTargetRun:
    target_id: str
    target_name: str
    host: str
    port: int
    status: str  # legacy execution_status
    exit_code: int | None = None
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    steps: list[LegacyStepResult] = field(default_factory=list[LegacyStepResult])
    logs: list[LegacyLog] = field(default_factory=list[LegacyLog])


async def import_legacy_execution(
    *,
    legacy_id: int,
    job_id: str,
    job_serial: str | None,
    job_name: str,
    number: int,
    status: str,
    legacy_serial: str | None,
    plan: dict[str, Any],
    created_at: datetime | None,
    started_at: datetime | None,
    finished_at: datetime | None,
    target_runs: list[LegacyTargetRun],
    run_logs: list[LegacyLog] | None = None,
) -> tuple[Execution, Outcome]:
    """One legacy run with its target runs, step results and logs (the caller's transaction)."""
    try:
        RunPlan.from_json(plan)
    except ValueError as exc:
        raise ValidationError(f"legacy run does not make a run plan: {exc}", field="plan") from None
    execution_id = legacy_execution_id(legacy_id)
    clash = await Execution.filter(job_id=job_id, number=number).exclude(id=execution_id).first()
    if clash is not None:
        raise ValidationError(f"run {number} of job {job_id} is already {clash.id}", field="number")
    ours, message = legacy_status(status)
    counted = [legacy_status(r.status)[0] for r in target_runs]
    values: dict[str, Any] = {
        "job_id": job_id,
        "job_serial": job_serial,
        "legacy_serial": legacy_serial,
        "job_name": job_name[:255],
        "job_version": 1,
        "number": number,
        "status": ours,
        "message": message,
        "requested_by": None,
        "plan": plan,
        "parameters": {},
        "total_targets": len(target_runs),
        "succeeded_targets": counted.count("SUCCEEDED"),
        "failed_targets": counted.count("FAILED"),
        "cancelled_targets": counted.count("CANCELLED"),
        "started_at": aware(started_at),
        "finished_at": aware(finished_at),
    }
    if created_at or started_at:
        values["created_at"] = aware(created_at or started_at)
    row, outcome = await upsert(Execution, {"id": execution_id}, values)
    if outcome is Outcome.UNCHANGED:
        return row, outcome
    await ExecutionEvent.filter(execution_id=execution_id).delete()
    runs = await TargetRun.filter(execution_id=execution_id).values_list("id", flat=True)
    await StepResult.filter(target_run_id__in=list(runs)).delete()
    await TargetRun.filter(execution_id=execution_id).delete()
    events: list[ExecutionEvent] = []
    for legacy_run in target_runs:
        run_status, run_message = legacy_status(legacy_run.status)
        run = await TargetRun.create(
            execution_id=execution_id,
            target_id=legacy_run.target_id,
            target_name=legacy_run.target_name[:255],
            host=legacy_run.host[:255],
            port=legacy_run.port,
            status=run_status,
            exit_code=legacy_run.exit_code,
            message=legacy_run.message or run_message,
            started_at=aware(legacy_run.started_at),
            finished_at=aware(legacy_run.finished_at),
        )
        await StepResult.bulk_create(
            [
                StepResult(
                    target_run_id=run.id,
                    step_index=index,
                    name=s.name[:255],
                    command=s.command,
                    status=legacy_status(s.status, step=True)[0],
                    exit_code=s.exit_code,
                    stdout=s.stdout,
                    stderr=s.stderr,
                    duration_ms=s.duration_ms,
                    finished_at=aware(s.finished_at),
                )
                for index, s in enumerate(legacy_run.steps)
            ]
        )
        for log in legacy_run.logs:
            events.append(_event(execution_id, log, legacy_run.target_id))
    for log in run_logs or ():
        events.append(_event(execution_id, log, None))
    events.sort(key=lambda e: e.at)
    for seq, event in enumerate(events, start=1):
        event.seq = seq
    await ExecutionEvent.bulk_create(events)
    if row.last_seq != len(events):
        row.last_seq = len(events)
        await row.save(update_fields=["last_seq"])
    return row, outcome


def _event(execution_id: str, log: LegacyLog, target_id: str | None) -> ExecutionEvent:
    return ExecutionEvent(
        execution_id=execution_id,
        seq=0,
        type="STDERR" if log.error else "STDOUT",
        target_id=target_id,
        data=log.text,
        at=aware(log.at),
    )

"""What the legacy importer calls: a legacy schedule with its history, written once.

Ids are derived from the legacy ids (``uuid5``), so re-running the import changes nothing. Legacy
``schedule_executions`` become history rows: a run → FIRED (its execution, as the importer mapped
it), a failure without a run → FAILED, ``skipped`` / never started → MISSED. Legacy fired some nominal
times twice (its 30 s beat on several workers): the first row is kept, the repeats are counted.
The imported schedule fires from the import on; nothing of legacy's past is caught up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from opsconductor_schedules.models import Schedule, ScheduleFire
from opsconductor_schedules.service.definitions import now_utc, refresh_next, save_new_schedule
from opsconductor_schedules.service.legacy import LegacyMapping
from opsconductor_schedules.service.spec import FireOutcome

__all__ = ["ImportReport", "LegacyFire", "import_legacy_schedule"]

NAMESPACE = uuid.UUID("5c1b3a9e-3f64-4a53-9a0e-6f0c2f7e5d11")
_RAN = {"completed", "running", "failed"}


@dataclass(frozen=True)
class LegacyFire:
    """One legacy ``schedule_executions`` row (execution id already mapped to the new one, if any)."""

    legacy_id: int
    scheduled_at: datetime
    status: str
    execution_id: str | None = None
    started_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class ImportReport:
    schedule: Schedule
    created: bool
    fires_imported: int
    duplicates: int


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _outcome(fire: LegacyFire) -> tuple[FireOutcome, str | None]:
    status = fire.status.strip().lower()
    if status in _RAN and fire.execution_id:
        return FireOutcome.FIRED, None
    if status == "failed":
        return FireOutcome.FAILED, f"legacy: {fire.error or 'failed without a run'}"
    if status == "skipped":
        return FireOutcome.MISSED, "legacy: skipped"
    return FireOutcome.MISSED, f"legacy: {status or 'never started'}"


async def import_legacy_schedule(
    *,
    legacy_id: int,
    mapping: LegacyMapping,
    owner_id: str | None,
    fires: list[LegacyFire],
    now: datetime | None = None,
) -> ImportReport:
    """Write the schedule and its history (in the caller's transaction); an existing import is kept."""
    schedule_id = str(uuid.uuid5(NAMESPACE, f"job_schedules:{legacy_id}"))
    existing = await Schedule.get_or_none(id=schedule_id)
    if existing is not None:
        return ImportReport(existing, created=False, fires_imported=0, duplicates=0)
    now = now or now_utc()
    row = await save_new_schedule(draft=mapping.draft, owner_id=owner_id, now=now, schedule_id=schedule_id)
    seen: set[datetime] = set()
    duplicates = fired = 0
    last: datetime | None = None
    for fire in sorted(fires, key=lambda f: (_utc(f.scheduled_at), f.legacy_id)):
        scheduled_for = _utc(fire.scheduled_at)
        if scheduled_for in seen:
            duplicates += 1
            continue
        seen.add(scheduled_for)
        outcome, reason = _outcome(fire)
        started = _utc(fire.started_at) if fire.started_at else None
        await ScheduleFire.create(
            id=str(uuid.uuid5(NAMESPACE, f"schedule_executions:{fire.legacy_id}")),
            schedule_id=row.id,
            job_id=row.job_id,
            scheduled_for=scheduled_for,
            fired_at=started if outcome is FireOutcome.FIRED else None,
            outcome=outcome.value,
            reason=reason,
            execution_id=fire.execution_id if outcome is FireOutcome.FIRED else None,
            late_ms=max(0, int((started - scheduled_for).total_seconds() * 1000))
            if started and outcome is FireOutcome.FIRED
            else None,
        )
        if outcome is FireOutcome.FIRED:
            fired += 1
            last = scheduled_for
    if fired:
        row.fire_count, row.last_fire_at = fired, last
        refresh_next(row, now=now)
        await row.save()
    return ImportReport(row, created=True, fires_imported=len(seen), duplicates=duplicates)

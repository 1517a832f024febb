"""Schedule definitions: create, update, delete, pause, resume, read; as plain rows and specs.

Services write and never commit: the resolver's transaction (``@transactional``) does. Every
change records its event in the outbox and refreshes the schedule's next fire time; the firing
loop is woken after the commit (``Deps.scheduler.wake()``, called by the resolver's runtime hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

from tortoise.queryset import QuerySet

from opsconductor_schedules import events
from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.models import Outbox, Schedule, ScheduleFire
from opsconductor_schedules.service.clients import JobDirectory
from opsconductor_schedules.service.spec import (
    Blackout,
    DstGapPolicy,
    DstOverlapPolicy,
    Kind,
    MisfirePolicy,
    OverlapPolicy,
    Recurring,
    RecurringUnit,
    ScheduleSpec,
    Weekday,
)
from opsconductor_schedules.service.timeline import slots
from opsconductor_shared.auth import Identity
from opsconductor_shared.errors import ForbiddenError, NotFoundError
from opsconductor_shared.events import new_uuid7, record_event

__all__ = [
    "ScheduleDraft",
    "create_schedule",
    "delete_schedule",
    "delete_schedules_of_job",
    "get_schedule",
    "refresh_next",
    "save_new_schedule",
    "set_enabled",
    "spec_of",
    "update_schedule",
]

STARTING = "STARTING"
"""A claimed fire whose run is being started (shown in history once settled)."""


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ScheduleDraft:
    """A schedule as the caller defines it (GraphQL's ScheduleInput, converted in types.py)."""

    job_id: str
    kind: Kind
    timezone: str
    name: str | None = None
    cron: str | None = None
    interval_seconds: int | None = None
    run_at: datetime | None = None
    recurring: Recurring | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    enabled: bool = True
    jitter_seconds: int = 0
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    catch_up_window_seconds: int = 3600
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    dst_gap_policy: DstGapPolicy = DstGapPolicy.RUN_AT_TRANSITION
    dst_overlap_policy: DstOverlapPolicy = DstOverlapPolicy.FIRST
    blackouts: tuple[Blackout, ...] = ()
    parameters: dict[str, Any] | None = None
    target_ids: list[str] | None = field(default=None)

    def spec(self, *, anchor: datetime) -> ScheduleSpec:
        return ScheduleSpec(
            kind=self.kind,
            timezone=self.timezone,
            anchor=self.start_at or anchor,
            cron=self.cron.strip() if self.cron else None,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            recurring=self.recurring,
            start_at=self.start_at,
            end_at=self.end_at,
            max_runs=self.max_runs,
            jitter_seconds=self.jitter_seconds,
            misfire_policy=self.misfire_policy,
            catch_up_window_seconds=self.catch_up_window_seconds,
            overlap_policy=self.overlap_policy,
            dst_gap_policy=self.dst_gap_policy,
            dst_overlap_policy=self.dst_overlap_policy,
            blackouts=self.blackouts,
        ).validate()


# ---- row <-> spec ----------------------------------------------------------------------------


def _recurring_json(recurring: Recurring | None) -> dict[str, Any] | None:
    if recurring is None:
        return None
    return {
        "unit": recurring.unit.value,
        "every": recurring.every,
        "at": recurring.at.strftime("%H:%M") if recurring.at else None,
        "weekdays": [d.value for d in recurring.weekdays],
        "dayOfMonth": recurring.day_of_month,
    }


def recurring_of(data: dict[str, Any] | None) -> Recurring | None:
    if not data:
        return None
    at = data.get("at")
    return Recurring(
        unit=RecurringUnit(data["unit"]),
        every=int(data.get("every") or 1),
        at=time.fromisoformat(at) if at else None,
        weekdays=tuple(Weekday(d) for d in data.get("weekdays") or ()),
        day_of_month=data.get("dayOfMonth"),
    )


def _blackouts_json(blackouts: tuple[Blackout, ...]) -> list[dict[str, Any]]:
    return [
        {
            "cron": b.cron,
            "durationMinutes": int(b.duration.total_seconds() // 60) if b.duration else None,
            "from": b.start.isoformat() if b.start else None,
            "to": b.end.isoformat() if b.end else None,
        }
        for b in blackouts
    ]


def blackouts_of(data: list[dict[str, Any]] | None) -> tuple[Blackout, ...]:
    return tuple(
        Blackout(
            cron=b.get("cron"),
            duration=timedelta(minutes=b["durationMinutes"]) if b.get("durationMinutes") else None,
            start=datetime.fromisoformat(b["from"]) if b.get("from") else None,
            end=datetime.fromisoformat(b["to"]) if b.get("to") else None,
        )
        for b in data or []
    )


def spec_of(row: Schedule) -> ScheduleSpec:
    """The stored schedule as a spec (validated when it was written)."""
    return ScheduleSpec(
        kind=Kind(row.kind),
        timezone=row.timezone,
        anchor=row.anchor,
        cron=row.cron,
        interval_seconds=row.interval_seconds,
        run_at=row.run_at,
        recurring=recurring_of(row.recurring),
        start_at=row.start_at,
        end_at=row.end_at,
        max_runs=row.max_runs,
        jitter_seconds=row.jitter_seconds,
        misfire_policy=MisfirePolicy(row.misfire_policy),
        catch_up_window_seconds=row.catch_up_window_seconds,
        overlap_policy=OverlapPolicy(row.overlap_policy),
        dst_gap_policy=DstGapPolicy(row.dst_gap_policy),
        dst_overlap_policy=DstOverlapPolicy(row.dst_overlap_policy),
        blackouts=blackouts_of(row.blackouts),
    )


def _apply(row: Schedule, draft: ScheduleDraft, spec: ScheduleSpec) -> None:
    row.job_id = draft.job_id
    row.name = draft.name
    row.kind = spec.kind.value
    row.timezone = spec.timezone
    row.cron = spec.cron
    row.interval_seconds = spec.interval_seconds
    row.run_at = spec.run_at
    row.recurring = _recurring_json(spec.recurring)
    row.anchor = spec.anchor
    row.start_at = spec.start_at
    row.end_at = spec.end_at
    row.max_runs = spec.max_runs
    row.jitter_seconds = spec.jitter_seconds
    row.misfire_policy = spec.misfire_policy.value
    row.catch_up_window_seconds = spec.catch_up_window_seconds
    row.overlap_policy = spec.overlap_policy.value
    row.dst_gap_policy = spec.dst_gap_policy.value
    row.dst_overlap_policy = spec.dst_overlap_policy.value
    row.blackouts = _blackouts_json(spec.blackouts)
    row.parameters = draft.parameters
    row.target_ids = draft.target_ids
    row.enabled = draft.enabled


def refresh_next(row: Schedule, *, now: datetime | None = None, fire_count: int | None = None) -> None:
    """Set ``next_fire_at`` (the next nominal time that runs) and ``next_due_at`` (when the loop
    must act: the next slot of any kind, plus jitter) from the cursor. Does not save."""
    row.next_fire_at = row.next_due_at = None
    if not row.enabled or row.is_deleted:
        return
    after = row.cursor_at or now or now_utc()
    count = row.fire_count if fire_count is None else fire_count
    for index, slot in enumerate(slots(spec_of(row), schedule_id=row.id, after=after, fire_count=count)):
        if row.next_due_at is None:
            row.next_due_at = slot.fire_at
        if slot.outcome is None:
            row.next_fire_at = slot.scheduled_for
            break
        if index > 500:  # a long run of skipped times: the loop records them as it gets there
            break


# ---- operations ------------------------------------------------------------------------------


def _owner_may_run(actor: Identity | None) -> str:
    if actor is None or actor.kind != "user":
        raise ForbiddenError("a schedule runs as the user who defines it: sign in as a user", "jobs:execute")
    if not actor.has("jobs:execute"):
        raise ForbiddenError("a schedule runs as you: you need jobs:execute", "jobs:execute")
    return actor.subject


async def _check_job(jobs: JobDirectory, job_id: str) -> None:
    if not await jobs.exists(job_id):
        raise NotFoundError(f"job {job_id} not found", id=job_id)


def _check_run_at(draft: ScheduleDraft, now: datetime) -> None:
    if draft.kind is Kind.ONCE and draft.run_at is not None and draft.run_at <= now:
        raise InvalidScheduleError("runAt is in the past", field="runAt")


async def save_new_schedule(
    *,
    draft: ScheduleDraft,
    owner_id: str | None,
    now: datetime,
    spec: ScheduleSpec | None = None,
    schedule_id: str | None = None,
) -> Schedule:
    """Write a new schedule whose history starts at ``now`` (no job check, no event: createSchedule
    adds those; the legacy importer passes the legacy creation time and writes the history itself)."""
    spec = spec or draft.spec(anchor=now)
    row = Schedule(id=schedule_id or str(new_uuid7()), owner_id=owner_id, cursor_at=now)
    _apply(row, draft, spec)
    refresh_next(row, now=now)
    await row.save()
    return row


async def create_schedule(
    *, draft: ScheduleDraft, actor: Identity | None, jobs: JobDirectory, now: datetime | None = None
) -> Schedule:
    owner = _owner_may_run(actor)
    now = now or now_utc()
    spec = draft.spec(anchor=now)
    _check_run_at(draft, now)
    await _check_job(jobs, draft.job_id)
    row = await save_new_schedule(draft=draft, owner_id=owner, now=now, spec=spec)
    await record_event(Outbox, events.schedule_changed(events.SCHEDULE_CREATED, row, actor=owner))
    return row


async def get_schedule(schedule_id: str, *, lock: bool = False) -> Schedule:
    query: QuerySet[Schedule] = Schedule.filter(id=schedule_id, is_deleted=False)
    if lock:
        query = query.select_for_update()
    row = await query.first()
    if row is None:
        raise NotFoundError(f"schedule {schedule_id} not found", id=schedule_id)
    return row


async def update_schedule(
    *,
    schedule_id: str,
    draft: ScheduleDraft,
    actor: Identity | None,
    jobs: JobDirectory,
    now: datetime | None = None,
) -> Schedule:
    """Replace the definition; whoever defines it last owns it (its runs act for them). History stays."""
    owner = _owner_may_run(actor)
    now = now or now_utc()
    row = await get_schedule(schedule_id, lock=True)
    spec = draft.spec(anchor=row.created_at if row.start_at is None and draft.start_at is None else now)
    if draft.kind is Kind.ONCE and draft.run_at != row.run_at:
        _check_run_at(draft, now)
    if draft.job_id != row.job_id:
        await _check_job(jobs, draft.job_id)
    _apply(row, draft, spec)
    row.owner_id = owner
    row.version += 1
    row.cursor_at = max(row.cursor_at or now, now)  # no catch-up for times the old definition had
    refresh_next(row, now=now)
    await row.save()
    await record_event(Outbox, events.schedule_changed(events.SCHEDULE_UPDATED, row, actor=owner))
    return row


async def delete_schedule(*, schedule_id: str, actor: Identity | None) -> Schedule:
    row = await get_schedule(schedule_id, lock=True)
    row.is_deleted, row.enabled = True, False
    refresh_next(row)
    await row.save()
    await record_event(
        Outbox, events.schedule_changed(events.SCHEDULE_DELETED, row, actor=actor.subject if actor else None)
    )
    return row


async def set_enabled(
    *, schedule_id: str, enabled: bool, actor: Identity | None, now: datetime | None = None
) -> Schedule:
    """Pause or resume. A resumed schedule goes on from now: times inside the pause are not missed fires."""
    now = now or now_utc()
    row = await get_schedule(schedule_id, lock=True)
    if row.enabled == enabled:
        return row
    row.enabled = enabled
    if enabled:
        row.cursor_at = max(row.cursor_at or now, now)
    refresh_next(row, now=now)
    await row.save()
    kind = events.SCHEDULE_RESUMED if enabled else events.SCHEDULE_PAUSED
    await record_event(Outbox, events.schedule_changed(kind, row, actor=actor.subject if actor else None))
    return row


async def delete_schedules_of_job(*, job_id: str, actor: str | None) -> int:
    """The job was deleted (``jobs.job_deleted``): its schedules go too (history stays)."""
    rows = await Schedule.filter(job_id=job_id, is_deleted=False).select_for_update()
    for row in rows:
        row.is_deleted, row.enabled = True, False
        refresh_next(row)
        await row.save()
        await record_event(Outbox, events.schedule_changed(events.SCHEDULE_DELETED, row, actor=actor))
    return len(rows)


def draft_of(row: Schedule) -> ScheduleDraft:
    """The row's definition as a draft (what runScheduleNow and the importer start from)."""
    spec = spec_of(row)
    return replace(
        ScheduleDraft(job_id=row.job_id, kind=spec.kind, timezone=spec.timezone),
        name=row.name,
        cron=spec.cron,
        interval_seconds=spec.interval_seconds,
        run_at=spec.run_at,
        recurring=spec.recurring,
        start_at=spec.start_at,
        end_at=spec.end_at,
        max_runs=spec.max_runs,
        enabled=row.enabled,
        jitter_seconds=spec.jitter_seconds,
        misfire_policy=spec.misfire_policy,
        catch_up_window_seconds=spec.catch_up_window_seconds,
        overlap_policy=spec.overlap_policy,
        dst_gap_policy=spec.dst_gap_policy,
        dst_overlap_policy=spec.dst_overlap_policy,
        blackouts=spec.blackouts,
        parameters=row.parameters,
        target_ids=row.target_ids,
    )


def history(schedule_id: str) -> QuerySet[ScheduleFire]:
    """History of one schedule, newest nominal time first (claims still starting left out)."""
    return ScheduleFire.filter(schedule_id=schedule_id).exclude(outcome=STARTING).order_by("-scheduled_for")

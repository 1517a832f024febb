"""GraphQL types of the schedules subgraph, its error types and its one error table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

import strawberry
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet
from strawberry.scalars import JSON

from opsconductor_schedules import service
from opsconductor_schedules.errors import InvalidScheduleError, ScheduleNotRunnableError
from opsconductor_schedules.models import Schedule as ScheduleRow
from opsconductor_schedules.models import ScheduleFire as FireRow
from opsconductor_schedules.settings import Settings
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import AUTHENTICATED, check_permission, entity_permission
from opsconductor_shared.errors import Error
from opsconductor_shared.paging import Connection, paginate
from opsconductor_shared.unit_of_work import ErrorTable

Info = strawberry.Info[RequestContext[Settings, service.Deps], None]

ScheduleKind = strawberry.enum(service.Kind, name="ScheduleKind", description="How a schedule says when.")
FireOutcome = strawberry.enum(service.FireOutcome, description="What happened at one nominal fire time.")
MisfirePolicy = strawberry.enum(
    service.MisfirePolicy, description="Fires missed while no scheduler ran: none, one catch-up, or each."
)
OverlapPolicy = strawberry.enum(
    service.OverlapPolicy, description="A fire while the job's previous run still runs: run, skip or queue."
)
DstGapPolicy = strawberry.enum(
    service.DstGapPolicy,
    description="A wall time that does not exist (spring forward): fire at the transition, or skip.",
)
DstOverlapPolicy = strawberry.enum(
    service.DstOverlapPolicy,
    description="A wall time that happens twice (fall back): fire at the first, or at both.",
)
RecurringUnit = strawberry.enum(service.RecurringUnit, description="The unit of a legacy recurring schedule.")
Weekday = strawberry.enum(service.Weekday, description="A weekday by name (never by number).")


@strawberry.federation.type(
    keys=[Key(fields=FieldSet("id"), resolvable=False)], description="A user (the users subgraph)."
)
class User:
    id: strawberry.ID


@strawberry.federation.type(
    keys=[Key(fields=FieldSet("id"), resolvable=False)], description="A run (the executions subgraph)."
)
class Execution:
    id: strawberry.ID


# ---- inputs -----------------------------------------------------------------------------------


@strawberry.input(description="A legacy recurring rule: every N units, at a wall time, on weekdays by name.")
class RecurringInput:
    unit: RecurringUnit  # pyright: ignore[reportInvalidTypeForm]
    every: int = strawberry.field(description="Every N units (1..1000).")
    at: str | None = strawberry.field(default=None, description="Wall time HH:MM (DAYS, WEEKS, MONTHS).")
    weekdays: list[Weekday] | None = strawberry.field(default=None, description="WEEKS: the days.")  # pyright: ignore[reportInvalidTypeForm]
    day_of_month: int | None = strawberry.field(
        default=None, description="MONTHS: 1..31 (months without it are skipped)."
    )

    def to_service(self) -> service.Recurring:
        from opsconductor_schedules.service.spec import parse_hhmm

        return service.Recurring(
            unit=service.RecurringUnit(self.unit),
            every=self.every,
            at=parse_hhmm(self.at) if self.at else None,
            weekdays=tuple(service.Weekday(d) for d in self.weekdays or ()),
            day_of_month=self.day_of_month,
        )


@strawberry.input(description="No fire inside: `cron` + `durationMinutes` (wall clock), or `from` + `to`.")
class BlackoutInput:
    cron: str | None = None
    duration_minutes: int | None = None
    from_: datetime | None = strawberry.field(default=None, name="from")
    to: datetime | None = None

    def to_service(self) -> service.Blackout:
        return service.Blackout(
            cron=self.cron,
            duration=timedelta(minutes=self.duration_minutes) if self.duration_minutes is not None else None,
            start=self.from_,
            end=self.to,
        )


@strawberry.input(description="A schedule's definition (createSchedule, updateSchedule, previewSchedule).")
class ScheduleInput:
    job_id: strawberry.ID
    kind: ScheduleKind  # pyright: ignore[reportInvalidTypeForm]
    timezone: str = strawberry.field(description="IANA name (Europe/Berlin); required.")
    name: str | None = None
    cron: str | None = strawberry.field(
        default=None,
        description="CRON: 5 fields, standard meaning (day-of-week 0 or 7 = Sunday, names allowed).",
    )
    interval_seconds: int | None = strawberry.field(
        default=None, description="INTERVAL: >= 1, from startAt or creation."
    )
    run_at: datetime | None = strawberry.field(default=None, description="ONCE: when.")
    recurring: RecurringInput | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    enabled: bool | None = True
    jitter_seconds: int | None = None
    misfire_policy: MisfirePolicy | None = service.MisfirePolicy.RUN_ONCE  # pyright: ignore[reportInvalidTypeForm]
    catch_up_window_seconds: int | None = 3600
    overlap_policy: OverlapPolicy | None = service.OverlapPolicy.SKIP  # pyright: ignore[reportInvalidTypeForm]
    dst_gap_policy: DstGapPolicy | None = service.DstGapPolicy.RUN_AT_TRANSITION  # pyright: ignore[reportInvalidTypeForm]
    dst_overlap_policy: DstOverlapPolicy | None = service.DstOverlapPolicy.FIRST  # pyright: ignore[reportInvalidTypeForm]
    blackouts: list[BlackoutInput] | None = None
    parameters: JSON | None = None
    target_ids: list[strawberry.ID] | None = None

    def to_service(self) -> service.ScheduleDraft:
        parameters: Any = self.parameters
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidScheduleError("parameters must be a JSON object", field="parameters")
        return service.ScheduleDraft(
            job_id=str(self.job_id),
            kind=service.Kind(self.kind),
            timezone=self.timezone,
            name=self.name,
            cron=self.cron,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            recurring=self.recurring.to_service() if self.recurring else None,
            start_at=self.start_at,
            end_at=self.end_at,
            max_runs=self.max_runs,
            enabled=self.enabled is not False,
            jitter_seconds=self.jitter_seconds or 0,
            misfire_policy=service.MisfirePolicy(self.misfire_policy or service.MisfirePolicy.RUN_ONCE),
            catch_up_window_seconds=3600
            if self.catch_up_window_seconds is None
            else self.catch_up_window_seconds,
            overlap_policy=service.OverlapPolicy(self.overlap_policy or service.OverlapPolicy.SKIP),
            dst_gap_policy=service.DstGapPolicy(
                self.dst_gap_policy or service.DstGapPolicy.RUN_AT_TRANSITION
            ),
            dst_overlap_policy=service.DstOverlapPolicy(
                self.dst_overlap_policy or service.DstOverlapPolicy.FIRST
            ),
            blackouts=tuple(b.to_service() for b in self.blackouts or ()),
            parameters=dict(parameters) if parameters is not None else None,
            target_ids=[str(t) for t in self.target_ids] if self.target_ids else None,
        )


@strawberry.input(description="Narrow the schedule list.")
class ScheduleFilter:
    job_id: strawberry.ID | None = None
    enabled: bool | None = None
    kind: ScheduleKind | None = None  # pyright: ignore[reportInvalidTypeForm]


# ---- objects ----------------------------------------------------------------------------------


@strawberry.type(description="One nominal fire time of a schedule and what happened to it.")
class ScheduleFire:
    id: strawberry.ID
    scheduled_for: datetime = strawberry.field(description="The nominal time (UTC); unique per schedule.")
    fired_at: datetime | None = strawberry.field(description="When the run was started (FIRED only).")
    outcome: FireOutcome  # pyright: ignore[reportInvalidTypeForm]
    reason: str | None = strawberry.field(description="Why (skips, misses, failures), or a DST note.")
    late_ms: int | None = strawberry.field(
        description="When the scheduler started the fire minus its nominal time, in ms (FIRED only; a QUEUED fire counts from its start)."
    )
    schedule_id: strawberry.ID
    execution_id: strawberry.Private[str | None]

    @strawberry.field(description="The run this fire started.")
    def execution(self) -> Execution | None:
        return Execution(id=strawberry.ID(self.execution_id)) if self.execution_id else None

    @classmethod
    def from_record(cls, row: FireRow) -> ScheduleFire:
        outcome = (
            service.FireOutcome(row.outcome)
            if row.outcome != service.STARTING
            else service.FireOutcome.QUEUED
        )
        return cls(
            id=strawberry.ID(row.id),
            scheduled_for=row.scheduled_for,
            fired_at=row.fired_at,
            outcome=outcome,
            reason=row.reason,
            late_ms=row.late_ms,
            schedule_id=strawberry.ID(row.schedule_id),
            execution_id=row.execution_id,
        )


@strawberry.type(description="A legacy recurring rule.")
class RecurringRule:
    unit: RecurringUnit  # pyright: ignore[reportInvalidTypeForm]
    every: int
    at: str | None
    weekdays: list[Weekday]  # pyright: ignore[reportInvalidTypeForm]
    day_of_month: int | None


@strawberry.federation.type(keys=["id"], description="When a job runs by itself, and as whom.")
class Schedule:
    id: strawberry.ID
    name: str | None
    kind: ScheduleKind  # pyright: ignore[reportInvalidTypeForm]
    timezone: str
    cron: str | None
    interval_seconds: int | None
    run_at: datetime | None
    recurring: RecurringRule | None
    start_at: datetime | None
    enabled: bool
    misfire_policy: MisfirePolicy  # pyright: ignore[reportInvalidTypeForm]
    catch_up_window_seconds: int
    overlap_policy: OverlapPolicy  # pyright: ignore[reportInvalidTypeForm]
    dst_gap_policy: DstGapPolicy  # pyright: ignore[reportInvalidTypeForm]
    dst_overlap_policy: DstOverlapPolicy  # pyright: ignore[reportInvalidTypeForm]
    jitter_seconds: int
    next_fire_at: datetime | None = strawberry.field(description="The next nominal time that runs.")
    last_fire_at: datetime | None = strawberry.field(description="The latest nominal time that ran.")
    fire_count: int = strawberry.field(description="Runs started so far (counts towards maxRuns).")
    max_runs: int | None
    end_at: datetime | None
    parameters: JSON | None
    target_ids: list[strawberry.ID] | None
    job_id: strawberry.Private[str]
    owner_id: strawberry.Private[str | None]
    row: strawberry.Private[ScheduleRow]

    @strawberry.field(description="The job it runs.")
    def job(self) -> Job:
        return Job(id=strawberry.ID(self.job_id))

    @strawberry.field(description="The user its runs act for (whoever defined it last).")
    def owner(self) -> User | None:
        return User(id=strawberry.ID(self.owner_id)) if self.owner_id else None

    @strawberry.field(description="The schedule in words.")
    def description(self) -> str:
        from opsconductor_schedules.service.describe import describe

        return describe(service.spec_of(self.row))

    @strawberry.field(description="Every nominal time so far and what happened, newest first.")
    async def history(self, first: int | None = 20, after: str | None = None) -> Connection[ScheduleFire]:
        return await paginate(
            service.history(str(self.id)), first=first, after=after, convert=ScheduleFire.from_record
        )

    @classmethod
    def from_record(cls, row: ScheduleRow) -> Schedule:
        recurring = service.recurring_of(row.recurring)
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            kind=service.Kind(row.kind),
            timezone=row.timezone,
            cron=row.cron,
            interval_seconds=row.interval_seconds,
            run_at=row.run_at,
            recurring=RecurringRule(
                unit=recurring.unit,
                every=recurring.every,
                at=recurring.at.strftime("%H:%M") if recurring.at else None,
                weekdays=list(recurring.weekdays),
                day_of_month=recurring.day_of_month,
            )
            if recurring
            else None,
            start_at=row.start_at,
            enabled=row.enabled,
            misfire_policy=service.MisfirePolicy(row.misfire_policy),
            catch_up_window_seconds=row.catch_up_window_seconds,
            overlap_policy=service.OverlapPolicy(row.overlap_policy),
            dst_gap_policy=service.DstGapPolicy(row.dst_gap_policy),
            dst_overlap_policy=service.DstOverlapPolicy(row.dst_overlap_policy),
            jitter_seconds=row.jitter_seconds,
            next_fire_at=row.next_fire_at,
            last_fire_at=row.last_fire_at,
            fire_count=row.fire_count,
            max_runs=row.max_runs,
            end_at=row.end_at,
            parameters=cast(JSON, row.parameters),
            target_ids=[strawberry.ID(t) for t in row.target_ids] if row.target_ids else None,
            job_id=row.job_id,
            owner_id=row.owner_id,
            row=row,
        )

    @classmethod
    @entity_permission("jobs:read")
    async def resolve_reference(cls, id: strawberry.ID) -> Schedule | None:
        row = await ScheduleRow.filter(id=str(id), is_deleted=False).first()
        return cls.from_record(row) if row else None


@strawberry.federation.type(
    keys=["id"], description="A job (owned by the jobs subgraph); adds its schedules."
)
class Job:
    id: strawberry.ID

    @strawberry.field(description="Its schedules (several per job), oldest first.")
    async def schedules(self, info: Info) -> list[Schedule]:
        check_permission(info.context, "jobs:read")
        return [Schedule.from_record(r) for r in await service.schedules_of_job(str(self.id))]

    @strawberry.field(description="The earliest next fire of its enabled schedules.")
    async def next_run_at(self, info: Info) -> datetime | None:
        check_permission(info.context, "jobs:read")
        return await service.next_run_of_job(str(self.id))

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Job:
        return cls(id=id)


@strawberry.type(description="A schedule's next fire times in words, with notes on DST shifts and skips.")
class SchedulePreview:
    description: str
    next_fire_times: list[datetime]
    notes: list[str]


@strawberry.type(description="One entry of the calendar of upcoming fires.")
class UpcomingFire:
    schedule: Schedule
    fire_at: datetime


# ---- results ----------------------------------------------------------------------------------


@strawberry.type
class ScheduleCreated:
    schedule: Schedule


@strawberry.type
class ScheduleUpdated:
    schedule: Schedule


@strawberry.type
class ScheduleDeleted:
    id: strawberry.ID


@strawberry.type(description="A run was started now (or the fire says why not).")
class ScheduleFireStarted:
    fire: ScheduleFire


@strawberry.type(description="The schedule cannot run now; the message says why.")
class ScheduleNotRunnable(Error):
    pass


ERRORS = ErrorTable({ScheduleNotRunnableError: lambda e: ScheduleNotRunnable(message=e.message)})

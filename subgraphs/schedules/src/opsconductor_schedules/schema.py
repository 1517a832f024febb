"""Schedules subgraph: resolvers only (API.md "Schedules")."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry

from opsconductor_schedules import service
from opsconductor_schedules.errors import ScheduleNotRunnableError
from opsconductor_schedules.models import ScheduleFire as FireRow
from opsconductor_schedules.types import (
    ERRORS,
    Info,
    Job,
    Schedule,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleFilter,
    ScheduleFire,
    ScheduleFireStarted,
    ScheduleInput,
    ScheduleNotRunnable,
    SchedulePreview,
    ScheduleUpdated,
    UpcomingFire,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import DependencyUnavailable, NotFound, PermissionDenied, ValidationFailed
from opsconductor_shared.paging import Connection, paginate
from opsconductor_shared.unit_of_work import maps_errors, transactional

CreateScheduleResult = Annotated[
    ScheduleCreated | ValidationFailed | NotFound | PermissionDenied | DependencyUnavailable,
    strawberry.union("CreateScheduleResult"),
]
UpdateScheduleResult = Annotated[
    ScheduleUpdated | ValidationFailed | NotFound | PermissionDenied | DependencyUnavailable,
    strawberry.union("UpdateScheduleResult"),
]
DeleteScheduleResult = Annotated[ScheduleDeleted | NotFound, strawberry.union("DeleteScheduleResult")]
ScheduleResult = Annotated[ScheduleUpdated | NotFound, strawberry.union("ScheduleResult")]
RunScheduleNowResult = Annotated[
    ScheduleFireStarted | ScheduleNotRunnable | NotFound | DependencyUnavailable,
    strawberry.union("RunScheduleNowResult"),
]
SchedulePreviewResult = SchedulePreview

READ = "jobs:read"
WRITE = "jobs:write"
EXECUTE = "jobs:execute"


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires(READ)], description="One schedule by id; null when unknown or deleted."
    )
    async def schedule(self, id: strawberry.ID) -> Schedule | None:
        row = await service.list_schedules().filter(id=str(id)).first()
        return Schedule.from_record(row) if row else None

    @strawberry.field(
        permission_classes=[requires(READ)], description="Schedules, oldest first (Relay connection)."
    )
    async def schedules(
        self, first: int | None = 50, after: str | None = None, filter: ScheduleFilter | None = None
    ) -> Connection[Schedule]:
        query = service.list_schedules(
            job_id=str(filter.job_id) if filter and filter.job_id else None,
            enabled=filter.enabled if filter else None,
            kind=service.Kind(filter.kind) if filter and filter.kind else None,
        )
        return await paginate(query, first=first, after=after, convert=Schedule.from_record)

    @strawberry.field(
        permission_classes=[requires(READ)],
        description="What a definition would do: a description in words, the next fire times after "
        "`after` (default now; `count` 1..100, default 10) and notes on DST shifts and skips. Invalid "
        "input is a top-level BAD_USER_INPUT error naming the field.",
    )
    async def preview_schedule(
        self, input: ScheduleInput, count: int | None = 10, after: datetime | None = None
    ) -> SchedulePreview:
        result = service.preview_draft(input.to_service(), count=count, after=after)
        return SchedulePreview(
            description=result.description, next_fire_times=result.next_fire_times, notes=result.notes
        )

    @strawberry.field(
        permission_classes=[requires(READ)],
        description="A calendar: every fire that would run between `from` and `to` (at most 366 days, "
        "1000 entries), time order; one job's when `jobId` is given.",
    )
    async def upcoming_fires(
        self,
        start: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        job_id: strawberry.ID | None = None,
    ) -> list[UpcomingFire]:
        found = await service.upcoming_fires(start=start, end=to, job_id=str(job_id) if job_id else None)
        return [UpcomingFire(schedule=Schedule.from_record(f.schedule), fire_at=f.fire_at) for f in found]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires(WRITE)],
        description="A new schedule for a job. Its runs act for you: you need jobs:execute too.",
    )
    @transactional(ERRORS)
    async def create_schedule(self, info: Info, input: ScheduleInput) -> CreateScheduleResult:
        row = await service.create_schedule(
            draft=input.to_service(), actor=info.context.identity, jobs=info.context.deps.jobs
        )
        return ScheduleCreated(schedule=Schedule.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires(WRITE)],
        description="Replace a schedule's definition; you become its owner (its runs act for you). History stays.",
    )
    @transactional(ERRORS)
    async def update_schedule(
        self, info: Info, id: strawberry.ID, input: ScheduleInput
    ) -> UpdateScheduleResult:
        row = await service.update_schedule(
            schedule_id=str(id),
            draft=input.to_service(),
            actor=info.context.identity,
            jobs=info.context.deps.jobs,
        )
        return ScheduleUpdated(schedule=Schedule.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires(WRITE)], description="Delete a schedule (its history stays)."
    )
    @transactional(ERRORS)
    async def delete_schedule(self, info: Info, id: strawberry.ID) -> DeleteScheduleResult:
        row = await service.delete_schedule(schedule_id=str(id), actor=info.context.identity)
        return ScheduleDeleted(id=strawberry.ID(row.id))

    @strawberry.mutation(permission_classes=[requires(WRITE)], description="Stop firing until resumed.")
    @transactional(ERRORS)
    async def pause_schedule(self, info: Info, id: strawberry.ID) -> ScheduleResult:
        row = await service.set_enabled(schedule_id=str(id), enabled=False, actor=info.context.identity)
        return ScheduleUpdated(schedule=Schedule.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires(WRITE)],
        description="Fire again from now on (times inside the pause are not caught up).",
    )
    @transactional(ERRORS)
    async def resume_schedule(self, info: Info, id: strawberry.ID) -> ScheduleResult:
        row = await service.set_enabled(schedule_id=str(id), enabled=True, actor=info.context.identity)
        return ScheduleUpdated(schedule=Schedule.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires(EXECUTE)],
        description="Run the schedule's job now, as the schedule's owner, with its parameters and targets; "
        "recorded in its history like any fire (overlap policy applies).",
    )
    @maps_errors(ERRORS)
    async def run_schedule_now(self, info: Info, id: strawberry.ID) -> RunScheduleNowResult:
        row = await service.get_schedule(str(id))
        identity = info.context.identity
        fire = await info.context.deps.scheduler.run_now(row, actor=identity.subject if identity else None)
        if fire.outcome == service.STARTING:
            raise ScheduleNotRunnableError(
                "the run could not be started yet (a service did not answer); it is retried"
            )
        return ScheduleFireStarted(fire=ScheduleFire.from_record(fire))


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[requires(READ)],
        description="History rows as they are written (every outcome), for one schedule or one job, or all.",
    )
    async def schedule_fires(
        self, info: Info, schedule_id: strawberry.ID | None = None, job_id: strawberry.ID | None = None
    ) -> AsyncGenerator[ScheduleFire, None]:
        async with info.context.deps.broadcaster.listen(service.FIRES_CHANNEL) as live:
            async for message in live:
                try:
                    payload = json.loads(message)
                except ValueError:
                    continue
                if schedule_id is not None and payload.get("scheduleId") != str(schedule_id):
                    continue
                if job_id is not None and payload.get("jobId") != str(job_id):
                    continue
                with info.context.runtime.db.bind():
                    row = await FireRow.get_or_none(id=str(payload.get("id")))
                if row is not None and row.outcome != service.STARTING:
                    yield ScheduleFire.from_record(row)


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription, types=[Job, Schedule])

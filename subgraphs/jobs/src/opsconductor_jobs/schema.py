"""Jobs subgraph: job, jobs, createJob, deleteJob, and the `Job` entity."""

from __future__ import annotations

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_jobs import service
from opsconductor_jobs.types import (
    CreateJobInput,
    CreateJobResult,
    DeleteJobResult,
    Job,
    JobCreated,
    JobDeleted,
    JobFilter,
    Target,
    UnknownTargets,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import DependencyUnavailable, NotFound, ValidationError, to_graphql_error
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor

Info = strawberry.Info[RequestContext, None]

CURSOR_KIND = "job"


def _actor(info: Info) -> str | None:
    identity = info.context.identity
    return identity.subject if identity else None


def _draft(data: CreateJobInput) -> service.JobDraft:
    return service.JobDraft(
        name=data.name,
        description=data.description,
        steps=[
            service.StepDraft(
                name=s.name,
                command=s.command,
                timeout_seconds=s.timeout_seconds,
                continue_on_error=s.continue_on_error,
            )
            for s in data.steps
        ],
        target_ids=[str(t) for t in data.target_ids],
        max_parallel=data.policy.max_parallel if data.policy else None,
    )


def _targets(info: Info) -> service.TargetDirectory:
    runtime = info.context.runtime
    settings = runtime.settings
    return service.TargetsSubgraph(
        runtime.client(settings.targets_url, timeout=settings.targets_timeout_seconds)
    )


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("jobs:read")],
        description="One job by id; null when it does not exist or was deleted.",
    )
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        row = await service.get_job(str(id))
        return None if row is None else Job.from_model(row)

    @strawberry.field(permission_classes=[requires("jobs:read")], description="Jobs, newest first.")
    async def jobs(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: JobFilter | None = None
    ) -> Connection[Job]:
        cursor = decode_cursor(after, CURSOR_KIND)
        if cursor is not None and not cursor.isdigit():
            raise ValidationError("invalid cursor", field="after")
        page = await service.list_jobs(
            first=check_first(first),
            after=int(cursor) if cursor is not None else None,
            search=filter.search if filter else None,
        )
        return build_connection(
            page.rows,
            node=Job.from_model,
            key=lambda row: str(row.number),
            has_next=page.has_next,
            total=page.total,
            after=after,
            kind=CURSOR_KIND,
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Define a job; its target ids are checked with the targets service.",
    )
    async def create_job(self, info: Info, input: CreateJobInput) -> CreateJobResult:
        try:
            valid = service.validate_job(_draft(input))
            # Outside the transaction: no database transaction waits on another service.
            await service.check_targets(_targets(info), valid.target_ids)
        except ValidationError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        except service.UnknownTargetsError as exc:
            return UnknownTargets(message=exc.message, target_ids=[strawberry.ID(t) for t in exc.target_ids])
        except service.DependencyUnavailableError as exc:
            return DependencyUnavailable(message=exc.message, service=exc.service)
        async with in_transaction():
            row = await service.create_job(valid, actor=_actor(info))
        info.context.runtime.events_committed()
        created = await service.get_job(str(row.id))
        assert created is not None  # just committed
        return JobCreated(job=Job.from_model(created))

    @strawberry.mutation(
        permission_classes=[requires("jobs:write")],
        description="Delete a job (soft: runs and audit still refer to it).",
    )
    async def delete_job(self, info: Info, id: strawberry.ID) -> DeleteJobResult:
        async with in_transaction():
            row = await service.delete_job(str(id), actor=_actor(info))
        if row is None:
            return NotFound(message=f"job {id} not found", id=id)
        info.context.runtime.events_committed()
        return JobDeleted(id=id)


schema = build_schema(query=Query, mutation=Mutation, types=[Job, Target])

"""GraphQL types of the jobs subgraph (separate from ORM rows: built with ``from_model``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.federation.schema_directives import Key

from opsconductor_jobs import models
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import check_permission
from opsconductor_shared.errors import DependencyUnavailable, Error, NotFound, ValidationFailed

Info = strawberry.Info[RequestContext, None]


@strawberry.federation.type(
    keys=[Key(fields="id", resolvable=False)],
    description="A target; the targets subgraph owns it and resolves its fields.",
)
class Target:
    id: strawberry.ID


@strawberry.type(description="One step of a job: a command run on every target, in `order`.")
class JobStep:
    order: int = strawberry.field(description="1-based position; steps run in this order on each target.")
    name: str
    type: str = strawberry.field(description="What the step does; `command` (a shell command) for now.")
    command: str
    timeout_seconds: int = strawberry.field(description="The step fails when it runs longer than this.")
    continue_on_error: bool = strawberry.field(
        description="When the step fails, run the next steps on that target anyway."
    )

    @classmethod
    def from_model(cls, row: models.JobStep) -> JobStep:
        return cls(
            order=row.order,
            name=row.name,
            type=row.type,
            command=row.command,
            timeout_seconds=row.timeout_seconds,
            continue_on_error=row.continue_on_error,
        )


@strawberry.type(description="How a run of the job is carried out.")
class JobPolicy:
    max_parallel: int = strawberry.field(description="At most this many targets run at the same time.")


@strawberry.federation.type(
    keys=["id"], description="A job definition: ordered steps to run on a set of targets."
)
class Job:
    id: strawberry.ID
    serial: str = strawberry.field(description="Human-readable handle, `JOB-000001`.")
    name: str
    description: str | None
    version: int = strawberry.field(description="Starts at 1; incremented on every edit of the definition.")
    created_at: datetime
    updated_at: datetime
    steps: list[JobStep] = strawberry.field(description="In execution order.")
    policy: JobPolicy
    target_ids: list[strawberry.ID] = strawberry.field(description="The targets the job runs on, by id.")

    @strawberry.field(description="The targets the job runs on (resolved by the targets subgraph).")
    def targets(self) -> list[Target]:
        return [Target(id=t) for t in self.target_ids]

    @classmethod
    def from_model(cls, row: models.Job) -> Job:
        policy = row.policy or {}
        return cls(
            id=strawberry.ID(str(row.id)),
            serial=row.serial,
            name=row.name,
            description=row.description,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            steps=[JobStep.from_model(s) for s in row.ordered_steps()],
            policy=JobPolicy(max_parallel=int(policy.get("maxParallel", models.DEFAULT_MAX_PARALLEL))),
            target_ids=[strawberry.ID(t) for t in row.target_ids()],
        )

    @classmethod
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> Job | None:
        """`_entities`: a deleted or unknown job resolves to null. Batched per request."""
        check_permission(info.context, "jobs:read")
        row = await job_loader(info).load(str(id))
        return None if row is None else cls.from_model(row)


def job_loader(info: Info) -> strawberry.dataloader.DataLoader[str, models.Job | None]:
    """One loader per request, so `_entities` for many jobs costs one query (plus prefetches)."""
    loaders = info.context.loaders
    if "jobs" not in loaders:

        async def load(ids: list[str]) -> list[models.Job | None]:
            found = await models.live_jobs_by_id(ids)
            return [found.get(i) for i in ids]

        loaders["jobs"] = strawberry.dataloader.DataLoader(load_fn=load)
    return loaders["jobs"]


@strawberry.input(description="Narrows `jobs`.")
class JobFilter:
    search: str | None = strawberry.field(
        default=None, description="Case-insensitive match on name, serial or description."
    )


# ---- inputs -----------------------------------------------------------------------------------


@strawberry.input(description="One step of a new job.")
class JobStepInput:
    name: str
    command: str = strawberry.field(description="Shell command; at most 64 KiB.")
    timeout_seconds: int | None = strawberry.field(default=None, description="1..86400; default 300.")
    continue_on_error: bool | None = strawberry.field(default=None, description="Default false.")


@strawberry.input(description="How a run of the job is carried out.")
class JobPolicyInput:
    max_parallel: int | None = strawberry.field(default=None, description="1..1000; default 50.")


@strawberry.input(description="A new job definition.")
class CreateJobInput:
    name: str = strawberry.field(description="1..255 characters.")
    steps: list[JobStepInput] = strawberry.field(description="At least one; run in the given order.")
    target_ids: list[strawberry.ID] = strawberry.field(
        description="At least one existing target; duplicates count once."
    )
    description: str | None = None
    policy: JobPolicyInput | None = None


# ---- results ----------------------------------------------------------------------------------


@strawberry.type(description="The job was created.")
class JobCreated:
    job: Job


@strawberry.type(description="The job was deleted; it no longer appears in `job` or `jobs`.")
class JobDeleted:
    id: strawberry.ID


@strawberry.federation.type(shareable=True, description="Some target ids do not name an existing target.")
class UnknownTargets(Error):
    target_ids: list[strawberry.ID] = strawberry.field(description="The ids that were not found.")


CreateJobResult = Annotated[
    JobCreated | ValidationFailed | UnknownTargets | DependencyUnavailable,
    strawberry.union("CreateJobResult"),
]
DeleteJobResult = Annotated[JobDeleted | NotFound, strawberry.union("DeleteJobResult")]

"""GraphQL types of the executions subgraph (separate from ORM rows)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.federation.schema_directives import Key

from opsconductor_executions.models import Execution as ExecutionRow
from opsconductor_executions.models import StepResult as StepRow
from opsconductor_executions.models import TargetRun as TargetRunRow
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import DependencyUnavailable, NotFound, ValidationFailed
from opsconductor_shared.paging import Connection, paginate


@strawberry.enum(description="Lifecycle of a run.")
class ExecutionStatus(Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="What an execution event reports.")
class ExecutionEventType(Enum):
    EXECUTION_STARTED = "EXECUTION_STARTED"
    TARGET_STARTED = "TARGET_STARTED"
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    STEP_FINISHED = "STEP_FINISHED"
    TARGET_FINISHED = "TARGET_FINISHED"
    EXECUTION_FINISHED = "EXECUTION_FINISHED"


@strawberry.federation.type(
    keys=[Key(fields="id", resolvable=False)], description="Owned by the targets subgraph."
)
class Target:
    id: strawberry.ID


@strawberry.type(description="One step's result on one target.")
class StepRun:
    index: int
    name: str
    command: str = strawberry.field(description="The command as it was run.")
    status: str = strawberry.field(description="SUCCEEDED, FAILED, TIMED_OUT, SKIPPED or CANCELLED.")
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: float | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: StepRow) -> StepRun:
        return cls(
            index=row.step_index,
            name=row.name,
            command=row.command,
            status=row.status,
            exit_code=row.exit_code,
            stdout=row.stdout,
            stderr=row.stderr,
            duration_ms=row.duration_ms,
            finished_at=row.finished_at,
        )


@strawberry.type(description="A run's progress and result on one target.")
class TargetRun:
    target_id: strawberry.ID
    target_name: str
    host: str
    status: str = strawberry.field(description="PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    exit_code: int | None = strawberry.field(description="Exit code of the last step that ran.")
    message: str | None = strawberry.field(description="Why the target failed, when it could not run.")
    connection_reused: bool | None = strawberry.field(description="A warm pooled connection was used.")
    started_at: datetime | None
    finished_at: datetime | None
    _row: strawberry.Private[TargetRunRow]

    @strawberry.field(description="The target (resolved by the targets subgraph).")
    def target(self) -> Target:
        return Target(id=self.target_id)

    @strawberry.field(description="Per-step results in order.")
    async def steps(self) -> list[StepRun]:
        rows = await StepRow.filter(target_run_id=self._row.id).order_by("step_index")
        return [StepRun.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: TargetRunRow) -> TargetRun:
        return cls(
            target_id=strawberry.ID(row.target_id),
            target_name=row.target_name,
            host=row.host,
            status=row.status,
            exit_code=row.exit_code,
            message=row.message,
            connection_reused=row.connection_reused,
            started_at=row.started_at,
            finished_at=row.finished_at,
            _row=row,
        )


@strawberry.federation.type(keys=["id"], description="One run of a job.")
class Execution:
    id: strawberry.ID
    number: int = strawberry.field(description="1, 2, 3 ... per job.")
    status: ExecutionStatus
    message: str | None
    job_id: strawberry.ID
    job_version: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total_targets: int
    succeeded_targets: int
    failed_targets: int
    cancelled_targets: int
    last_seq: int = strawberry.field(description="Highest event sequence number recorded so far.")

    @strawberry.field(description="The job this run belongs to.")
    def job(self) -> Job:
        return Job(id=self.job_id)

    @strawberry.field(description="Per-target runs.")
    async def target_runs(self) -> list[TargetRun]:
        rows = await TargetRunRow.filter(execution_id=str(self.id)).order_by("id")
        return [TargetRun.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: ExecutionRow) -> Execution:
        return cls(
            id=strawberry.ID(row.id),
            number=row.number,
            status=ExecutionStatus(row.status),
            message=row.message,
            job_id=strawberry.ID(row.job_id),
            job_version=row.job_version,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            total_targets=row.total_targets,
            succeeded_targets=row.succeeded_targets,
            failed_targets=row.failed_targets,
            cancelled_targets=row.cancelled_targets,
            last_seq=row.last_seq,
        )

    @classmethod
    async def resolve_reference(cls, id: strawberry.ID) -> Execution | None:
        row = await ExecutionRow.get_or_none(id=str(id))
        return cls.from_row(row) if row else None


@strawberry.federation.type(keys=["id"], description="A job (owned by the jobs subgraph); adds its runs.")
class Job:
    id: strawberry.ID

    @strawberry.field(
        description="Runs of this job, newest first.", permission_classes=[requires("executions:read")]
    )
    async def executions(self, first: int | None = 20, after: str | None = None) -> Connection[Execution]:
        query = ExecutionRow.filter(job_id=str(self.id)).order_by("-number")
        return await paginate(query, first=first, after=after, convert=Execution.from_row)

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> Job:
        return cls(id=id)


@strawberry.type(description="One event of a run, in sequence.")
class ExecutionEvent:
    seq: int
    type: ExecutionEventType
    target_id: strawberry.ID | None
    step_index: int | None
    step_name: str | None
    data: str | None = strawberry.field(description="Output text, or a message / JSON summary.")
    exit_code: int | None
    status: str | None
    at: datetime

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> ExecutionEvent:
        return cls(
            seq=p["seq"],
            type=ExecutionEventType(p["type"]),
            target_id=strawberry.ID(p["targetId"]) if p.get("targetId") else None,
            step_index=p.get("stepIndex"),
            step_name=p.get("stepName"),
            data=p.get("data"),
            exit_code=p.get("exitCode"),
            status=p.get("status"),
            at=datetime.fromisoformat(p["at"]),
        )


@strawberry.type(description="The run was created and handed to the engine.")
class ExecutionStarted:
    execution: Execution


@strawberry.type(description="Cancellation was requested; the run ends CANCELLED shortly.")
class ExecutionCancelling:
    execution: Execution


RunJobResult = Annotated[
    ExecutionStarted | NotFound | ValidationFailed | DependencyUnavailable, strawberry.union("RunJobResult")
]
CancelExecutionResult = Annotated[
    ExecutionCancelling | NotFound | ValidationFailed, strawberry.union("CancelExecutionResult")
]
ExecutionConnection = Connection[Execution]

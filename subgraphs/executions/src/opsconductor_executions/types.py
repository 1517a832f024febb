"""GraphQL types of the executions subgraph (separate from ORM rows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON

from opsconductor_executions import loaders, service
from opsconductor_executions.errors import DangerousCommandBlockedError, JobAlreadyRunningError
from opsconductor_executions.models import Execution as ExecutionRow
from opsconductor_executions.models import StepResult as StepRow
from opsconductor_executions.models import TargetRun as TargetRunRow
from opsconductor_executions.settings import Settings
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import AUTHENTICATED, entity_permission, requires
from opsconductor_shared.errors import (
    DependencyUnavailable,
    Error,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from opsconductor_shared.paging import (
    Connection,
    build_connection,
    check_first,
    encode_cursor,
    paginate,
)
from opsconductor_shared.runplan import Step
from opsconductor_shared.unit_of_work import ErrorTable


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


@strawberry.input(description="Narrow a target's runs.")
class TargetRunFilter:
    status: str | None = strawberry.field(
        default=None, description="PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED."
    )
    job_id: strawberry.ID | None = None
    created_after: datetime | None = strawberry.field(default=None, description="Runs created at or after.")
    created_before: datetime | None = strawberry.field(default=None, description="Runs created before.")


TARGET_RUNS_DEFAULT = 1000
TARGET_RUNS_MAX = 1000
"""Execution.targetRuns returns at most this many rows per call (M8); page with `after`."""


@strawberry.federation.type(keys=["id"], description="Owned by the targets subgraph; adds its runs.")
class Target:
    id: strawberry.ID

    @strawberry.field(
        description="This target's runs, newest first.", permission_classes=[requires("executions:read")]
    )
    async def runs(
        self, first: int | None = 20, after: str | None = None, filter: TargetRunFilter | None = None
    ) -> Connection[TargetRun]:
        query = TargetRunRow.filter(target_id=str(self.id))
        if filter is not None:
            if filter.status:
                query = query.filter(status=filter.status)
            if filter.job_id:
                query = query.filter(execution__job_id=str(filter.job_id))
            if filter.created_after:
                query = query.filter(execution__created_at__gte=filter.created_after)
            if filter.created_before:
                query = query.filter(execution__created_at__lt=filter.created_before)
        return await paginate(query.order_by("-id"), first=first, after=after, convert=TargetRun.from_record)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Target:
        return cls(id=id)


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
    truncated: bool = strawberry.field(description="stdout or stderr was cut at the per-step output limit.")

    @strawberry.field(description="When the step started (its end minus its duration).")
    def started_at(self) -> datetime | None:
        if self.finished_at is None or self.duration_ms is None:
            return None
        return self.finished_at - timedelta(milliseconds=self.duration_ms)

    @classmethod
    def from_record(cls, row: StepRow, output: loaders.StepOutput | None = None) -> StepRun:
        """``output``: the target's output from the event rows (rows written before output was
        stored once keep theirs)."""
        out = {} if output is None or row.stdout or row.stderr else output
        return cls(
            index=row.step_index,
            name=row.name,
            command=row.command,
            status=row.status,
            exit_code=row.exit_code,
            stdout=out.get((row.step_index, "STDOUT"), row.stdout),
            stderr=out.get((row.step_index, "STDERR"), row.stderr),
            duration_ms=row.duration_ms,
            finished_at=row.finished_at,
            truncated=row.truncated,
        )


@strawberry.type(description="A run's progress and result on one target.")
class TargetRun:
    target_id: strawberry.ID
    execution_id: strawberry.ID
    target_name: str
    host: str
    status: str = strawberry.field(description="PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    exit_code: int | None = strawberry.field(description="Exit code of the last step that ran.")
    message: str | None = strawberry.field(description="Why the target failed, when it could not run.")
    connection_reused: bool | None = strawberry.field(description="A warm pooled connection was used.")
    started_at: datetime | None
    finished_at: datetime | None
    _row: strawberry.Private[TargetRunRow]

    @strawberry.field(description="This row's position: pass it as Execution.targetRuns(after:) to read on.")
    def cursor(self) -> str:
        return encode_cursor(str(self._row.id), "tr")

    @strawberry.field(description="The target (resolved by the targets subgraph).")
    def target(self) -> Target:
        return Target(id=self.target_id)

    @strawberry.field(description="The run this belongs to.")
    async def execution(self, info: strawberry.Info) -> Execution:
        # one query per request for all the runs asked for, not one (with its plan) per row (M8)
        return Execution.from_record(
            await loaders.executions(info.context.loaders).load(str(self.execution_id))
        )

    @strawberry.field(description="Per-step results in order.")
    async def steps(self, info: strawberry.Info) -> list[StepRun]:
        rows = await loaders.step_results(info.context.loaders).load(self._row.id)
        output = None
        if any(not (r.stdout or r.stderr) for r in rows):  # stored once: in the event rows
            key = (str(self.execution_id), str(self.target_id))
            output = await loaders.step_output(info.context.loaders).load(key)
        return [StepRun.from_record(r, output) for r in rows]

    @classmethod
    def from_record(cls, row: TargetRunRow) -> TargetRun:
        return cls(
            target_id=strawberry.ID(row.target_id),
            execution_id=strawberry.ID(row.execution_id),  # type: ignore[attr-defined]
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


@strawberry.input(description="Narrow a list of executions.")
class ExecutionFilter:
    job_id: strawberry.ID | None = None
    target_id: strawberry.ID | None = strawberry.field(
        default=None, description="Runs that include this target."
    )
    status: ExecutionStatus | None = None
    statuses: list[ExecutionStatus] | None = strawberry.field(default=None, description="Any of these.")
    created_after: datetime | None = strawberry.field(default=None, description="Created at or after.")
    created_before: datetime | None = strawberry.field(default=None, description="Created before.")


def filter_executions(query: Any, f: ExecutionFilter | None) -> Any:
    if f is None:
        return query
    if f.job_id:
        query = query.filter(job_id=str(f.job_id))
    if f.target_id:
        query = query.filter(target_runs__target_id=str(f.target_id)).distinct()
    if f.status:
        query = query.filter(status=f.status.value)
    if f.statuses:
        query = query.filter(status__in=[s.value for s in f.statuses])
    if f.created_after:
        query = query.filter(created_at__gte=f.created_after)
    if f.created_before:
        query = query.filter(created_at__lt=f.created_before)
    return query


@strawberry.type(description="An environment variable of a step.")
class PlannedEnvVar:
    name: str
    value: str


@strawberry.type(description="A step as it runs: parameters substituted.")
class PlannedStep:
    order: int
    name: str
    type: str = strawberry.field(description="command, script or file_transfer.")
    command: str
    timeout_seconds: int
    continue_on_error: bool
    working_directory: str | None
    env: list[PlannedEnvVar]
    expected_exit_codes: list[int]
    script: JSON | None = strawberry.field(description="{interpreter, body, arguments} for script steps.")
    transfer: JSON | None = strawberry.field(
        description="{direction, source, destination, mode} for transfers."
    )

    @classmethod
    def from_step(cls, step: Step) -> PlannedStep:
        transfer = step.transfer.model_dump(mode="json", by_alias=True) if step.transfer else None
        if transfer and transfer.get("content") is not None:
            transfer["content"] = f"<{len(transfer['content'])} characters>"
        return cls(
            order=step.order,
            name=step.name,
            type=step.type,
            command=step.command,
            timeout_seconds=step.timeout_seconds,
            continue_on_error=step.continue_on_error,
            working_directory=step.working_directory,
            env=[PlannedEnvVar(name=e.name, value=e.value) for e in step.env],
            expected_exit_codes=list(step.expected_exit_codes),
            script=cast(JSON, step.script.model_dump(mode="json", by_alias=True)) if step.script else None,
            transfer=cast(JSON, transfer),
        )


def _planned_steps(plan: Any) -> list[PlannedStep]:
    return [PlannedStep.from_step(s) for s in sorted(plan.steps, key=lambda s: s.order)]


@strawberry.type(description="A dangerous-command rule a step matched.")
class DangerousCommandFinding:
    step_name: str
    rule: str
    reason: str
    match: str

    @classmethod
    def from_dict(cls, f: dict[str, Any]) -> DangerousCommandFinding:
        return cls(
            step_name=f.get("stepName", ""),
            rule=f.get("rule", ""),
            reason=f.get("reason", ""),
            match=f.get("match", ""),
        )


@strawberry.type(description="A target as the plan resolved it.")
class PlannedTarget:
    id: strawberry.ID
    name: str
    host: str
    port: int
    method: str


@strawberry.type(description="What a run would do: resolved targets, steps, policy and batches.")
class ExecutionPlanPreview:
    job_id: strawberry.ID
    serial: str | None
    name: str
    version: int
    targets: list[PlannedTarget]
    steps: list[PlannedStep]
    policy: JSON
    parameters: JSON
    dangerous: list[DangerousCommandFinding]
    batches: list[list[strawberry.ID]] = strawberry.field(
        description="Target ids per rolling batch, in order."
    )

    @classmethod
    def from_record(cls, preview: service.PlanPreview) -> ExecutionPlanPreview:
        plan = preview.job_run.plan
        return cls(
            job_id=strawberry.ID(plan.job_id),
            serial=plan.serial or None,
            name=plan.name,
            version=plan.version,
            targets=[
                PlannedTarget(
                    id=strawberry.ID(t["id"]),
                    name=t["name"],
                    host=t["host"],
                    port=int(t["port"]),
                    method=t["method"],
                )
                for t in preview.targets
            ],
            steps=_planned_steps(plan),
            policy=cast(JSON, plan.policy.model_dump(mode="json", by_alias=True)),
            parameters=cast(JSON, plan.parameters),
            dangerous=[DangerousCommandFinding.from_dict(f) for f in preview.job_run.dangerous],
            batches=[[strawberry.ID(t) for t in b] for b in preview.batches],
        )


@strawberry.federation.type(keys=["id"], description="One run of a job.")
class Execution:
    id: strawberry.ID
    number: int = strawberry.field(description="1, 2, 3 ... per job.")
    status: ExecutionStatus
    message: str | None
    job_id: strawberry.ID
    job_version: int = strawberry.field(description="The job version this run ran.")
    job_serial: str | None
    legacy_serial: str | None = strawberry.field(description="The legacy execution serial (imported runs).")
    job_name: str
    requested_by: str | None = strawberry.field(description="Subject (user or service id) who started it.")
    parameters: JSON = strawberry.field(description="Effective job parameters of this run.")
    retry_of: strawberry.ID | None = strawberry.field(description="The execution this one retries.")
    queued: bool = strawberry.field(description="Waiting for another run of the job (concurrency: queue).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    total_targets: int
    succeeded_targets: int
    failed_targets: int
    cancelled_targets: int
    last_seq: int = strawberry.field(description="Highest event sequence number recorded so far.")
    cancel_requested: bool = strawberry.field(
        description="cancelExecution was asked and the run has not ended yet (CANCELLING): it ends "
        "CANCELLED once the engine confirms."
    )
    _row: strawberry.Private[ExecutionRow]

    @strawberry.field(description="The steps exactly as run (parameters substituted).")
    def steps(self) -> list[PlannedStep]:
        return _planned_steps(service.stored_plan(self._row).plan)

    @strawberry.field(description="The run policy as run.")
    def policy(self) -> JSON:
        return cast(JSON, service.stored_plan(self._row).plan.policy.model_dump(mode="json", by_alias=True))

    @strawberry.field(description="Dangerous-command findings that were confirmed for this run.")
    def dangerous(self) -> list[DangerousCommandFinding]:
        return [DangerousCommandFinding.from_dict(f) for f in service.stored_plan(self._row).dangerous]

    @strawberry.field(description="The job this run belongs to.")
    def job(self) -> Job:
        return Job(id=self.job_id)

    @strawberry.field(
        description=f"Per-target runs in order, at most `first` (default and maximum "
        f"{TARGET_RUNS_MAX}); `after`: the cursor of targetRunsConnection's pageInfo.endCursor (or "
        "of a TargetRun's position) to read on. For paging through big runs use targetRunsConnection."
    )
    async def target_runs(
        self, first: int | None = TARGET_RUNS_DEFAULT, after: str | None = None
    ) -> list[TargetRun]:
        limit = check_first(first, default=TARGET_RUNS_DEFAULT, maximum=TARGET_RUNS_MAX)
        rows = await loaders.target_runs_query(str(self.id), after, None).limit(limit)
        return [TargetRun.from_record(r) for r in rows]

    @strawberry.field(
        description="Per-target runs as a Relay connection (first: 1-1000, default 100), optionally "
        "of one status (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)."
    )
    async def target_runs_connection(
        self, first: int | None = 100, after: str | None = None, status: str | None = None
    ) -> Connection[TargetRun]:
        limit = check_first(first, default=100, maximum=TARGET_RUNS_MAX)
        base = TargetRunRow.filter(execution_id=str(self.id))
        if status:
            base = base.filter(status=status)
        total = await base.count()
        rows = await loaders.target_runs_query(str(self.id), after, status).limit(limit + 1)
        page = list(rows[:limit])
        return build_connection(
            page,
            node=TargetRun.from_record,
            key=lambda r: str(r.id),
            has_next=len(rows) > limit,
            total=total,
            after=after,
            kind="tr",
        )

    @classmethod
    def from_record(cls, row: ExecutionRow) -> Execution:
        return cls(
            id=strawberry.ID(row.id),
            number=row.number,
            status=ExecutionStatus(row.status),
            message=row.message,
            job_id=strawberry.ID(row.job_id),
            job_version=row.job_version,
            job_serial=row.job_serial,
            legacy_serial=row.legacy_serial,
            job_name=row.job_name,
            requested_by=row.requested_by,
            parameters=cast(JSON, row.parameters or {}),
            retry_of=strawberry.ID(row.retry_of) if row.retry_of else None,
            queued=row.waiting,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            total_targets=row.total_targets,
            succeeded_targets=row.succeeded_targets,
            failed_targets=row.failed_targets,
            cancelled_targets=row.cancelled_targets,
            last_seq=row.last_seq,
            cancel_requested=bool(row.cancel_requested)
            and row.status not in ("SUCCEEDED", "FAILED", "CANCELLED"),
            _row=row,
        )

    @classmethod
    @entity_permission("executions:read")
    async def resolve_reference(cls, id: strawberry.ID) -> Execution | None:
        row = await ExecutionRow.get_or_none(id=str(id))
        return cls.from_record(row) if row else None


@strawberry.federation.type(keys=["id"], description="A job (owned by the jobs subgraph); adds its runs.")
class Job:
    id: strawberry.ID

    @strawberry.field(
        description="Runs of this job, newest first.", permission_classes=[requires("executions:read")]
    )
    async def executions(
        self, first: int | None = 20, after: str | None = None, filter: ExecutionFilter | None = None
    ) -> Connection[Execution]:
        query = filter_executions(ExecutionRow.filter(job_id=str(self.id)), filter)
        return await paginate(
            query.order_by("-number"), first=first, after=after, convert=Execution.from_record
        )

    @classmethod
    @entity_permission(AUTHENTICATED)
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


@strawberry.type(description="Consecutive events of a run, in sequence (executionEventBatches).")
class ExecutionEventBatch:
    events: list[ExecutionEvent]
    last_seq: int = strawberry.field(description="The last event's seq: resume with afterSeq: lastSeq.")
    finished: bool = strawberry.field(description="The batch ends with EXECUTION_FINISHED; the stream ends.")


@strawberry.type(description="The run was created and handed to the engine.")
class ExecutionStarted:
    execution: Execution


@strawberry.type(description="The run was created and waits for another run of the job (concurrency: queue).")
class ExecutionQueued:
    execution: Execution


@strawberry.type(description="Dry run: the resolved plan; nothing was started.")
class ExecutionPlanned:
    plan: ExecutionPlanPreview


@strawberry.type(
    description="The job has dangerous steps: it runs only for a holder of jobs:execute-dangerous "
    "who passes confirmDangerous: true. The decision was recorded."
)
class DangerousCommandBlocked(Error):
    findings: list[DangerousCommandFinding]


@strawberry.type(description="The job already has an active run and its concurrency policy is skip.")
class JobAlreadyRunning(Error):
    execution_id: strawberry.ID = strawberry.field(description="The active run.")


@strawberry.type(description="One chunk of a target's output, in sequence.")
class OutputChunk:
    seq: int
    stream: str = strawberry.field(description="STDOUT or STDERR.")
    step_index: int | None
    step_name: str | None
    text: str
    at: datetime


@strawberry.type(description="Cancellation was requested; the run ends CANCELLED shortly.")
class ExecutionCancelling:
    execution: Execution


ERRORS = ErrorTable(
    {
        DangerousCommandBlockedError: lambda e: DangerousCommandBlocked(
            message=e.message, findings=[DangerousCommandFinding.from_dict(f) for f in e.findings]
        ),
        JobAlreadyRunningError: lambda e: JobAlreadyRunning(
            message=e.message, execution_id=strawberry.ID(e.execution_id)
        ),
    }
)
"""Domain errors -> this subgraph's GraphQL error types (the shared ones are in every table)."""

Info = strawberry.Info[RequestContext[Settings, service.ExecutionService], None]

RunJobResult = Annotated[
    ExecutionStarted
    | ExecutionQueued
    | ExecutionPlanned
    | DangerousCommandBlocked
    | JobAlreadyRunning
    | NotFound
    | ValidationFailed
    | DependencyUnavailable
    | PermissionDenied,
    strawberry.union("RunJobResult"),
]
RetryExecutionResult = Annotated[
    ExecutionStarted
    | ExecutionQueued
    | DangerousCommandBlocked
    | JobAlreadyRunning
    | NotFound
    | ValidationFailed
    | DependencyUnavailable,
    strawberry.union("RetryExecutionResult"),
]
CancelExecutionResult = Annotated[
    ExecutionCancelling | NotFound | ValidationFailed, strawberry.union("CancelExecutionResult")
]
ExecutionConnection = Connection[Execution]
TargetRunConnection = Connection[TargetRun]
OutputChunkConnection = Connection[OutputChunk]

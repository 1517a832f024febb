"""Executions subgraph: runJob (dry run, parameters, dangerous gate, concurrency), retryExecution,
cancelExecution, execution(s), targetOutput, Job.executions, Target.runs, executionEvents,
executionEventBatches."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from typing import Annotated, Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.scalars import JSON

from opsconductor_executions import service
from opsconductor_executions.models import Execution as ExecutionRow
from opsconductor_executions.models import ExecutionEvent as EventRow
from opsconductor_executions.types import (
    ERRORS,
    CancelExecutionResult,
    Execution,
    ExecutionCancelling,
    ExecutionEvent,
    ExecutionEventBatch,
    ExecutionFilter,
    ExecutionPlanned,
    ExecutionPlanPreview,
    ExecutionQueued,
    ExecutionStarted,
    Info,
    Job,
    OutputChunk,
    RetryExecutionResult,
    RunJobResult,
    Target,
    filter_executions,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import ForbiddenError, ValidationError
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor, paginate
from opsconductor_shared.unit_of_work import maps_errors, unit_of_work


def _started(row: ExecutionRow) -> ExecutionStarted | ExecutionQueued:
    if row.waiting:
        return ExecutionQueued(execution=Execution.from_record(row))
    return ExecutionStarted(execution=Execution.from_record(row))


def _parameters(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("parameters must be a JSON object", field="parameters")
    return value


def _caller(info: Info, confirm_dangerous: bool | None) -> service.Caller:
    identity = info.context.identity
    return service.Caller(
        actor=identity.subject if identity else None,
        may_run_dangerous=bool(identity and identity.has("jobs:execute-dangerous")),
        confirm_dangerous=bool(confirm_dangerous),
    )


async def _launch(
    info: Info, prepared: Awaitable[service.Launch | ExecutionRow]
) -> ExecutionStarted | ExecutionQueued:
    """runJob and retryExecution after their plan: the dangerous-command decision is committed
    whether or not it blocks (its own unit of work), then the run's rows; the run is handed to
    the engine once they are committed."""
    svc = info.context.deps
    launch = await prepared
    if isinstance(launch, ExecutionRow):
        return _started(launch)  # a repeated request: the run the first one created
    async with unit_of_work(info.context.runtime):
        blocked = await svc.decide_dangerous(launch=launch)
    if blocked is not None:
        raise blocked
    async with unit_of_work(info.context.runtime):
        row = await svc.create_run(launch=launch)
    svc.start(execution=row, launch=launch)
    return _started(row)


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[requires("executions:read")], description="One run by id.")
    async def execution(self, id: strawberry.ID) -> Execution | None:
        row = await ExecutionRow.get_or_none(id=str(id))
        return Execution.from_record(row) if row else None

    @strawberry.field(
        permission_classes=[requires("executions:read")],
        description="Runs, newest first; filter by job, target, status and creation date.",
    )
    async def executions(
        self, first: int | None = 50, after: str | None = None, filter: ExecutionFilter | None = None
    ) -> Connection[Execution]:
        query = filter_executions(ExecutionRow.all(), filter)
        return await paginate(
            query.order_by("-created_at", "-number"), first=first, after=after, convert=Execution.from_record
        )

    @strawberry.field(
        permission_classes=[requires("executions:read")],
        description="A target's output in a run, chunk by chunk in sequence (pages for very long logs); "
        "optionally one step only.",
    )
    async def target_output(
        self,
        execution_id: strawberry.ID,
        target_id: strawberry.ID,
        first: int | None = 500,
        after: str | None = None,
        step_index: int | None = None,
    ) -> Connection[OutputChunk]:
        limit = check_first(first, default=500, maximum=5000)
        key = decode_cursor(after, "s")
        if key is not None and not key.isdigit():
            raise ValidationError("invalid cursor", field="after")
        query = EventRow.filter(
            execution_id=str(execution_id), target_id=str(target_id), type__in=["STDOUT", "STDERR"]
        )
        if step_index is not None:
            query = query.filter(step_index=step_index)
        total = await query.count()
        if key is not None:
            query = query.filter(seq__gt=int(key))
        rows = await query.order_by("seq").limit(limit + 1)
        page = list(rows[:limit])
        return build_connection(
            page,
            node=lambda r: OutputChunk(
                seq=r.seq,
                stream=r.type,
                step_index=r.step_index,
                step_name=r.step_name,
                text=r.data or "",
                at=r.at,
            ),
            key=lambda r: str(r.seq),
            has_next=len(rows) > limit,
            total=total,
            after=after,
            kind="s",
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("jobs:execute")],
        description="Run a job now on all its targets or a subset, with parameters. dryRun returns the "
        "resolved plan without starting anything. Dangerous steps need jobs:execute-dangerous and "
        "confirmDangerous: true. The job's concurrency policy applies (skip: JobAlreadyRunning, "
        "queue: ExecutionQueued).",
    )
    @maps_errors(ERRORS)
    async def run_job(
        self,
        info: Info,
        job_id: strawberry.ID,
        target_ids: list[strawberry.ID] | None = None,
        parameters: JSON | None = None,
        dry_run: bool | None = False,
        confirm_dangerous: bool | None = False,
        idempotency_key: Annotated[
            str | None,
            strawberry.argument(
                description="Retry-safe: a repeat of this request (same caller, job and key, within "
                "24 h) returns the run the first one created instead of running the job again."
            ),
        ] = None,
    ) -> RunJobResult:
        svc = info.context.deps
        subset = [str(t) for t in target_ids or []] or None
        params = _parameters(parameters)
        if dry_run:
            # L17: a dry run shows targets (names, hosts): only with the caller's own
            # targets:read, not the executions service's.
            identity = info.context.identity
            if identity is None or not identity.has("targets:read"):
                raise ForbiddenError(
                    "a dry run shows the job's targets: it needs targets:read", permission="targets:read"
                )
            preview = await svc.dry_run(job_id=str(job_id), target_ids=subset, parameters=params)
            return ExecutionPlanned(plan=ExecutionPlanPreview.from_record(preview))
        return await _launch(
            info,
            svc.prepare_run(
                job_id=str(job_id),
                target_ids=subset,
                parameters=params,
                caller=_caller(info, confirm_dangerous),
                idempotency_key=idempotency_key,
            ),
        )

    @strawberry.mutation(
        permission_classes=[requires("jobs:execute")],
        description="Run a finished execution again: same job version and steps as run, on the targets "
        "that did not succeed (onlyFailed, the default) or on all of them.",
    )
    @maps_errors(ERRORS)
    async def retry_execution(
        self,
        info: Info,
        id: strawberry.ID,
        only_failed: bool | None = True,
        confirm_dangerous: bool | None = False,
    ) -> RetryExecutionResult:
        return await _launch(
            info,
            info.context.deps.prepare_retry(
                execution_id=str(id),
                only_failed=only_failed is not False,
                caller=_caller(info, confirm_dangerous),
            ),
        )

    @strawberry.mutation(
        permission_classes=[requires("executions:cancel")],
        description="Stop a running execution: remote processes are signalled, the rest cancelled. "
        "The answer is ExecutionCancelling (cancelRequested: true) until the engine confirms; the run "
        "then ends CANCELLED (or as it ended, if it finished first).",
    )
    @maps_errors(ERRORS)
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> CancelExecutionResult:
        async with unit_of_work(info.context.runtime):
            row = await service.request_cancel(
                execution_id=str(id), actor=info.context.identity.subject if info.context.identity else None
            )
        row = await info.context.deps.deliver_cancel(row)
        return ExecutionCancelling(execution=Execution.from_record(row))


MAX_EVENT_BATCH = 5000


def _event_batches(
    info: Info, execution_id: str, after_seq: int
) -> AsyncGenerator[list[dict[str, Any]], None]:
    return service.event_batches(
        broadcaster=info.context.deps.broadcaster,
        db=info.context.runtime.db,
        execution_id=execution_id,
        after_seq=after_seq,
        inbox_messages=info.context.settings.subscription_queue_messages,
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[requires("executions:read")],
        description="Events of a run: replays everything after `afterSeq` from the database, then live; "
        "ends after EXECUTION_FINISHED.",
    )
    async def execution_events(
        self, info: Info, execution_id: strawberry.ID, after_seq: int | None = 0
    ) -> AsyncGenerator[ExecutionEvent, None]:
        async for batch in _event_batches(info, str(execution_id), after_seq or 0):
            for payload in batch:
                yield ExecutionEvent.from_payload(payload)

    @strawberry.subscription(
        permission_classes=[requires("executions:read")],
        description="The same events as executionEvents, several per message: the database's pages "
        "after `afterSeq`, then each batch as it is persisted, at most `maxBatch` events (1-5000) and "
        "about 1 MiB of output a message. For views of many targets: one message per batch instead of one per line. Resume "
        "with `afterSeq: lastSeq`; ends after the batch holding EXECUTION_FINISHED.",
    )
    async def execution_event_batches(
        self, info: Info, execution_id: strawberry.ID, after_seq: int | None = 0, max_batch: int = 1000
    ) -> AsyncGenerator[ExecutionEventBatch, None]:
        if not 1 <= max_batch <= MAX_EVENT_BATCH:
            raise StrawberryGraphQLError(
                f"maxBatch must be between 1 and {MAX_EVENT_BATCH}",
                extensions={"code": ValidationError.code, "field": "maxBatch"},
            )
        async for batch in _event_batches(info, str(execution_id), after_seq or 0):
            for chunk in service.chunk_events(batch, max_batch):
                yield ExecutionEventBatch(
                    events=[ExecutionEvent.from_payload(p) for p in chunk],
                    last_seq=chunk[-1]["seq"],
                    finished=chunk[-1]["type"] == "EXECUTION_FINISHED",
                )


schema = build_schema(
    query=Query, mutation=Mutation, subscription=Subscription, types=[Execution, Job, Target]
)

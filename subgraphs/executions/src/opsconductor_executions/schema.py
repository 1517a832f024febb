"""Executions subgraph: runJob (dry run, parameters, dangerous gate, concurrency), retryExecution,
cancelExecution, execution(s), targetOutput, Job.executions, Target.runs, executionEvents,
executionEventBatches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.scalars import JSON

from opsconductor_executions.models import Execution as ExecutionRow
from opsconductor_executions.models import ExecutionEvent as EventRow
from opsconductor_executions.service import (
    TERMINAL,
    DangerousCommandBlockedError,
    Deps,
    JobAlreadyRunningError,
    channel,
    chunk_events,
    decode_live,
    event_payload,
)
from opsconductor_executions.types import (
    CancelExecutionResult,
    DangerousCommandBlocked,
    DangerousCommandFinding,
    Execution,
    ExecutionCancelling,
    ExecutionEvent,
    ExecutionEventBatch,
    ExecutionFilter,
    ExecutionPlanned,
    ExecutionPlanPreview,
    ExecutionQueued,
    ExecutionStarted,
    Job,
    JobAlreadyRunning,
    OutputChunk,
    RetryExecutionResult,
    RunJobResult,
    Target,
    filter_executions,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import DomainError, PermissionDenied, ValidationError, to_graphql_error
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor, paginate

Info = strawberry.Info[RequestContext, None]
REPLAY_PAGE = 1000
LIVE_QUIET_SECONDS = 2.0  # then look in the database (a missed message, another replica)


def _deps(info: Info) -> Deps:
    return info.context.deps


def _error(exc: DomainError) -> Any:
    if isinstance(exc, DangerousCommandBlockedError):
        return DangerousCommandBlocked(
            message=exc.message, findings=[DangerousCommandFinding.from_dict(f) for f in exc.findings]
        )
    if isinstance(exc, JobAlreadyRunningError):
        return JobAlreadyRunning(message=exc.message, execution_id=strawberry.ID(exc.execution_id))
    return to_graphql_error(exc)


def _started(row: ExecutionRow) -> Any:
    if row.waiting:
        return ExecutionQueued(execution=Execution.from_row(row))
    return ExecutionStarted(execution=Execution.from_row(row))


def _parameters(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError("parameters must be a JSON object", field="parameters")
    return value


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[requires("executions:read")], description="One run by id.")
    async def execution(self, id: strawberry.ID) -> Execution | None:
        row = await ExecutionRow.get_or_none(id=str(id))
        return Execution.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[requires("executions:read")],
        description="Runs, newest first; filter by job, target, status and creation date.",
    )
    async def executions(
        self, first: int | None = 50, after: str | None = None, filter: ExecutionFilter | None = None
    ) -> Connection[Execution]:
        query = filter_executions(ExecutionRow.all(), filter)
        return await paginate(
            query.order_by("-created_at", "-number"), first=first, after=after, convert=Execution.from_row
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
        identity = info.context.identity
        deps = _deps(info)
        subset = [str(t) for t in target_ids or []] or None
        try:
            params = _parameters(parameters)
            if dry_run:
                # L17: a dry run shows targets (names, hosts): only with the caller's own
                # targets:read, not the executions service's.
                if identity is None or not identity.has("targets:read"):
                    return PermissionDenied(  # type: ignore[return-value]
                        message="a dry run shows the job's targets: it needs targets:read",
                        permission="targets:read",
                    )
                plan = await deps.dry_run(job_id=str(job_id), target_ids=subset, parameters=params)
                return ExecutionPlanned(plan=ExecutionPlanPreview.from_plan(plan))  # type: ignore[return-value]
            row = await deps.run_job(
                job_id=str(job_id),
                target_ids=subset,
                parameters=params,
                actor=identity.subject if identity else None,
                notify=info.context.runtime.events_committed,
                may_run_dangerous=bool(identity and identity.has("jobs:execute-dangerous")),
                confirm_dangerous=bool(confirm_dangerous),
                idempotency_key=idempotency_key,
            )
        except DomainError as exc:
            return _error(exc)  # type: ignore[no-any-return]
        return _started(row)  # type: ignore[no-any-return]

    @strawberry.mutation(
        permission_classes=[requires("jobs:execute")],
        description="Run a finished execution again: same job version and steps as run, on the targets "
        "that did not succeed (onlyFailed, the default) or on all of them.",
    )
    async def retry_execution(
        self,
        info: Info,
        id: strawberry.ID,
        only_failed: bool | None = True,
        confirm_dangerous: bool | None = False,
    ) -> RetryExecutionResult:
        identity = info.context.identity
        try:
            row = await _deps(info).retry(
                execution_id=str(id),
                only_failed=only_failed is not False,
                actor=identity.subject if identity else None,
                notify=info.context.runtime.events_committed,
                may_run_dangerous=bool(identity and identity.has("jobs:execute-dangerous")),
                confirm_dangerous=bool(confirm_dangerous),
            )
        except DomainError as exc:
            return _error(exc)  # type: ignore[no-any-return]
        return _started(row)  # type: ignore[no-any-return]

    @strawberry.mutation(
        permission_classes=[requires("executions:cancel")],
        description="Stop a running execution: remote processes are signalled, the rest cancelled. "
        "The answer is ExecutionCancelling (cancelRequested: true) until the engine confirms; the run "
        "then ends CANCELLED (or as it ended, if it finished first).",
    )
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> CancelExecutionResult:
        try:
            row = await _deps(info).cancel(str(id))
        except DomainError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return ExecutionCancelling(execution=Execution.from_row(row))


MAX_EVENT_BATCH = 5000


class LiveInbox:
    """The live messages one subscription has not read yet, at most ``size`` (M9): a reader slower
    than the run loses the oldest live messages, never memory; the gap this leaves is filled from
    the database (which holds every event before it is published), so it still gets every event."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max(1, size))
        self.dropped = 0

    def put(self, message: str) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(message)


async def _event_batches(
    info: Info, execution_id: str, after_seq: int
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """A run's events after ``after_seq`` as gapless, in-order lists: database pages first, then
    each live message (one persisted batch) as it comes; ends with the list holding
    EXECUTION_FINISHED. A gap in the live messages (one missed, another replica) is filled from
    the database, which always holds an event before it is published."""
    deps = _deps(info)
    db = info.context.runtime.db
    with db.bind():
        if not await ExecutionRow.exists(id=execution_id):
            raise StrawberryGraphQLError(
                f"execution {execution_id} not found", extensions={"code": "NOT_FOUND"}
            )
    last = after_seq

    def take(payloads: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """The events that continue the sequence; True if it stopped at a gap."""
        nonlocal last
        fresh = []
        for payload in payloads:
            if payload["seq"] <= last:
                continue
            if payload["seq"] > last + 1:
                return fresh, True
            fresh.append(payload)
            last = payload["seq"]
            if payload["type"] == "EXECUTION_FINISHED":
                break
        return fresh, False

    async def replay() -> AsyncGenerator[list[dict[str, Any]], None]:
        while True:
            with db.bind():
                rows = (
                    await EventRow.filter(execution_id=execution_id, seq__gt=last)
                    .order_by("seq")
                    .limit(REPLAY_PAGE)
                )
            fresh, _ = take([event_payload(row) for row in rows])
            if fresh:
                yield fresh
            if len(rows) < REPLAY_PAGE or not fresh:
                return

    def finished(batch: list[dict[str, Any]]) -> bool:
        return bool(batch) and batch[-1]["type"] == "EXECUTION_FINISHED"

    async with deps.broadcaster.listen(channel(execution_id)) as live:
        # Subscribed before replaying, so nothing published in between is missed. The live
        # iterator is drained by its own task into a queue: timing out on the queue is safe,
        # whereas cancelling the iterator's __anext__ would close it for good.
        inbox = LiveInbox(deps.settings.subscription_queue_messages)
        queue = inbox.queue

        async def pump() -> None:
            async for message in live:
                inbox.put(message)

        pumping = asyncio.create_task(pump())
        try:
            async for page in replay():
                yield page
                if finished(page):
                    return
            while True:
                try:
                    messages = [await asyncio.wait_for(queue.get(), timeout=LIVE_QUIET_SECONDS)]
                except TimeoutError:
                    messages = []  # quiet: check the database in case a live message was missed
                while not queue.empty():  # what queued up meanwhile goes out together
                    messages.append(queue.get_nowait())
                batch, gap = take([p for m in messages for p in decode_live(m)])
                if gap or not messages:
                    async for page in replay():
                        batch += page
                if batch:
                    yield batch
                    if finished(batch):
                        return
                if not messages:
                    with db.bind():
                        row = await ExecutionRow.get_or_none(id=execution_id)
                    if row is not None and row.status in TERMINAL and row.last_seq <= last:
                        return
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping


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
            for chunk in chunk_events(batch, max_batch):
                yield ExecutionEventBatch(
                    events=[ExecutionEvent.from_payload(p) for p in chunk],
                    last_seq=chunk[-1]["seq"],
                    finished=chunk[-1]["type"] == "EXECUTION_FINISHED",
                )


schema = build_schema(
    query=Query, mutation=Mutation, subscription=Subscription, types=[Execution, Job, Target]
)

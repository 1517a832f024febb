"""Executions subgraph: runJob, cancelExecution, execution(s), Job.executions, executionEvents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.exceptions import StrawberryGraphQLError

from opsconductor_executions.models import Execution as ExecutionRow
from opsconductor_executions.models import ExecutionEvent as EventRow
from opsconductor_executions.service import TERMINAL, Deps, channel, event_payload
from opsconductor_executions.types import (
    CancelExecutionResult,
    Execution,
    ExecutionCancelling,
    ExecutionEvent,
    ExecutionStarted,
    ExecutionStatus,
    Job,
    RunJobResult,
)
from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import DomainError, to_graphql_error
from opsconductor_shared.paging import Connection, paginate

Info = strawberry.Info[RequestContext, None]
REPLAY_PAGE = 1000


def _deps(info: Info) -> Deps:
    return info.context.deps


@strawberry.input(description="Narrow the list of executions.")
class ExecutionFilter:
    job_id: strawberry.ID | None = None
    status: ExecutionStatus | None = None


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[requires("executions:read")], description="One run by id.")
    async def execution(self, id: strawberry.ID) -> Execution | None:
        row = await ExecutionRow.get_or_none(id=str(id))
        return Execution.from_row(row) if row else None

    @strawberry.field(permission_classes=[requires("executions:read")], description="Runs, newest first.")
    async def executions(
        self, first: int | None = 50, after: str | None = None, filter: ExecutionFilter | None = None
    ) -> Connection[Execution]:
        query = ExecutionRow.all()
        if filter and filter.job_id:
            query = query.filter(job_id=str(filter.job_id))
        if filter and filter.status:
            query = query.filter(status=filter.status.value)
        return await paginate(
            query.order_by("-created_at"), first=first, after=after, convert=Execution.from_row
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("jobs:execute")],
        description="Run a job now on all its targets or a subset.",
    )
    async def run_job(
        self, info: Info, job_id: strawberry.ID, target_ids: list[strawberry.ID] | None = None
    ) -> RunJobResult:
        identity = info.context.identity
        try:
            row = await _deps(info).run_job(
                job_id=str(job_id),
                target_ids=[str(t) for t in target_ids or []] or None,
                actor=identity.subject if identity else None,
                notify=info.context.runtime.events_committed,
            )
        except DomainError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return ExecutionStarted(execution=Execution.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("executions:cancel")],
        description="Stop a running execution: remote processes are signalled, the rest cancelled.",
    )
    async def cancel_execution(self, info: Info, id: strawberry.ID) -> CancelExecutionResult:
        try:
            row = await _deps(info).cancel(str(id))
        except DomainError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        return ExecutionCancelling(execution=Execution.from_row(row))


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
        deps = _deps(info)
        db = info.context.runtime.db
        execution_id = str(execution_id)
        with db.bind():
            if not await ExecutionRow.exists(id=execution_id):
                raise StrawberryGraphQLError(
                    f"execution {execution_id} not found", extensions={"code": "NOT_FOUND"}
                )
        last = after_seq or 0

        async def replay() -> AsyncGenerator[dict[str, Any], None]:
            nonlocal last
            while True:
                with db.bind():
                    rows = (
                        await EventRow.filter(execution_id=execution_id, seq__gt=last)
                        .order_by("seq")
                        .limit(REPLAY_PAGE)
                    )
                for row in rows:
                    yield event_payload(row)
                if len(rows) < REPLAY_PAGE:
                    return

        async with deps.broadcaster.listen(channel(execution_id)) as live:
            # Subscribed before replaying, so nothing published in between is missed.
            async for payload in replay():
                last = payload["seq"]
                yield ExecutionEvent.from_payload(payload)
                if payload["type"] == "EXECUTION_FINISHED":
                    return
            iterator = live.__aiter__()
            while True:
                try:
                    message = await asyncio.wait_for(iterator.__anext__(), timeout=5.0)
                except TimeoutError:
                    message = None  # quiet: check the database in case a live message was missed
                payloads = [json.loads(message)] if message is not None else []
                if not payloads or payloads[0]["seq"] > last + 1:
                    payloads = [p async for p in replay()] + payloads
                for payload in payloads:
                    if payload["seq"] <= last:
                        continue
                    last = payload["seq"]
                    yield ExecutionEvent.from_payload(payload)
                    if payload["type"] == "EXECUTION_FINISHED":
                        return
                if message is None:
                    with db.bind():
                        row = await ExecutionRow.get_or_none(id=execution_id)
                    if row is not None and row.status in TERMINAL and row.last_seq <= last:
                        return


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription, types=[Execution, Job])

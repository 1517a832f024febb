"""Executions domain: start a run on the engine, follow its events, persist and fan them out.

A run: jobs' ``jobPlan`` gives the typed :class:`~opsconductor_shared.runplan.RunPlan`
(parameters substituted, targets resolved, dangerous findings); the dangerous-command gate and
the job's concurrency policy apply; a short-lived connection grant for its targets comes from the
targets subgraph (secrets stay there until the engine's pool asks at connect time); the rows are
created; a follower starts the run on an execution coordinator, pulls its event batches,
persists them (one transaction per batch) and publishes them to live subscribers.

Modules: ``plans`` (jobs/targets calls, the stored plan, the engine plan), ``launch`` (dry run,
runJob, retry, queue admission), ``follow`` (followers, cancel, the sweep), ``persist`` (event
batches into rows), ``live`` (the live channel and the replay/live merge), ``lifecycle`` (engine
calls, leases, ending a run without the engine, idempotency keys). :class:`ExecutionService`
wires them: it owns the followers and the sweeper, and hands queue admission to the followers as
their ``on_run_ended`` hook (launch → follow only, never back).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from opsconductor_executions.models import Execution
from opsconductor_executions.service.follow import Followers, request_cancel
from opsconductor_executions.service.launch import (
    Caller,
    Launch,
    PlanPreview,
    create_run,
    decide_dangerous,
    dry_run,
    prepare_retry,
    prepare_run,
    start,
    start_next,
)
from opsconductor_executions.service.lifecycle import EngineCallTimeout
from opsconductor_executions.service.live import (
    LiveInbox,
    chunk_events,
    decode_live,
    event_batches,
    event_payload,
)
from opsconductor_executions.service.plans import JobRun, PlanSource, stored_plan
from opsconductor_executions.settings import Settings
from opsconductor_shared.client import ServiceClient
from opsconductor_shared.events import Broadcaster
from opsconductor_shared.unit_of_work import Committer

__all__ = [
    "Caller",
    "EngineCallTimeout",
    "ExecutionService",
    "JobRun",
    "Launch",
    "LiveInbox",
    "PlanPreview",
    "chunk_events",
    "decode_live",
    "event_batches",
    "event_payload",
    "request_cancel",
    "stored_plan",
]


def _replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class ExecutionService:
    """The executions domain as the resolvers and app.py see it."""

    settings: Settings
    engine: Any | None  # opsconductor_ray.client.EngineClient
    jobs: ServiceClient
    targets: ServiceClient
    broadcaster: Broadcaster
    runtime: Committer
    """Wakes the outbox relay after background work committed events (finished runs)."""
    replica: str = field(default_factory=_replica_name)
    sweeper: asyncio.Task[None] | None = None
    plans: PlanSource = field(init=False)
    followers: Followers = field(init=False)

    def __post_init__(self) -> None:
        self.plans = PlanSource(jobs=self.jobs, targets=self.targets)
        self.followers = Followers(
            settings=self.settings,
            engine=self.engine,
            broadcaster=self.broadcaster,
            runtime=self.runtime,
            plans=self.plans,
            replica=self.replica,
            on_run_ended=self.admit_next,
        )

    # -- starting runs (the resolver owns the transactions: see schema._launch) -----------------

    async def dry_run(
        self, *, job_id: str, target_ids: list[str] | None, parameters: dict[str, Any] | None
    ) -> PlanPreview:
        return await dry_run(plans=self.plans, job_id=job_id, target_ids=target_ids, parameters=parameters)

    async def prepare_run(
        self,
        *,
        job_id: str,
        target_ids: list[str] | None,
        parameters: dict[str, Any] | None,
        caller: Caller,
        idempotency_key: str | None,
    ) -> Launch | Execution:
        return await prepare_run(
            plans=self.plans,
            engine=self.engine,
            settings=self.settings,
            job_id=job_id,
            target_ids=target_ids,
            parameters=parameters,
            caller=caller,
            idempotency_key=idempotency_key,
        )

    async def prepare_retry(self, *, execution_id: str, only_failed: bool, caller: Caller) -> Launch:
        return await prepare_retry(
            engine=self.engine, execution_id=execution_id, only_failed=only_failed, caller=caller
        )

    async def decide_dangerous(self, *, launch: Launch) -> Exception | None:
        return await decide_dangerous(launch=launch)

    async def create_run(self, *, launch: Launch) -> Execution:
        return await create_run(plans=self.plans, settings=self.settings, replica=self.replica, launch=launch)

    def start(self, *, execution: Execution, launch: Launch) -> None:
        start(followers=self.followers, settings=self.settings, execution=execution, launch=launch)

    async def admit_next(self, job_id: str) -> None:
        """Queue admission: the followers' ``on_run_ended`` hook."""
        await start_next(followers=self.followers, plans=self.plans, settings=self.settings, job_id=job_id)

    # -- cancelling ----------------------------------------------------------------------------

    async def deliver_cancel(self, execution: Execution) -> Execution:
        return await self.followers.deliver_cancel(execution)

    # -- background work -----------------------------------------------------------------------

    async def reattach(self) -> None:
        """On start-up: adopt what no live replica follows, end what is stale."""
        await self.followers.sweep()

    async def sweep(self) -> None:
        await self.followers.sweep()

    def start_sweeper(self) -> None:
        self.sweeper = asyncio.create_task(self.followers.run_sweeper(), name="executions-sweeper")

    async def stop(self) -> None:
        """On shutdown: stop the sweeper and the followers, release the leases."""
        if self.sweeper is not None:
            self.sweeper.cancel()
        await self.followers.release_leases()

    async def release_leases(self) -> None:
        await self.followers.release_leases()

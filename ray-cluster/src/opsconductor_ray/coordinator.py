"""`ExecutionCoordinator`: one detached async actor per run, named `exec-<execution_id>`.

It fans the plan's targets out to the pool shards (one batch call per shard), numbers
the events the pools push back, and keeps them all in memory so that a restarted
executions service can re-attach and read from any sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import ray
from ray.actor import exit_actor
from ray.exceptions import RayActorError

from opsconductor_ray.config import ActorHandle, PoolConfig, pool_name, shard_of
from opsconductor_ray.protocol import EngineEvent, EventType, ExecutionPlan, Status, TargetSpec

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_CALL = 5000
"""A long poll returns at most this many events (the caller asks again from the last)."""
MAX_WAIT_S = 30.0


def coordinator_name(execution_id: str) -> str:
    return f"exec-{execution_id}"


def split_parallelism(max_parallel: int, sizes: dict[int, int]) -> dict[int, int]:
    """Share `max_parallel` among shards in proportion to their target counts.

    Every shard with targets gets at least 1, so the sum exceeds `max_parallel` only when
    there are more busy shards than `max_parallel` (the coordinator then gates the batch
    calls themselves). No shard gets more than it has targets.
    """
    busy = {shard: size for shard, size in sizes.items() if size > 0}
    total = sum(busy.values())
    if not busy:
        return {}
    budget = max(1, max_parallel)
    exact = {shard: budget * size / total for shard, size in busy.items()}
    limits = {shard: max(1, min(busy[shard], int(share))) for shard, share in exact.items()}
    spare = budget - sum(limits.values())
    for shard in sorted(busy, key=lambda s: exact[s] - int(exact[s]), reverse=True):
        if spare <= 0:
            break
        if limits[shard] < busy[shard]:
            limits[shard] += 1
            spare -= 1
    # Leftover budget (rounding, or shards capped by their size) goes where targets wait.
    for shard in sorted(busy, key=lambda s: busy[s] - limits[s], reverse=True):
        grant = min(spare, busy[shard] - limits[shard])
        if grant > 0:
            limits[shard] += grant
            spare -= grant
    return limits


# Never restarted, never retried: a second coordinator would run the commands again.
# (The pyright ignore: ray's typed overload of remote() lacks max_concurrency.)
@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=0, max_task_retries=0)  # pyright: ignore[reportCallIssue]
class ExecutionCoordinator:
    """Runs one `ExecutionPlan` and serves its event stream until `release()`."""

    def __init__(
        self,
        plan: ExecutionPlan,
        num_shards: int,
        pool_config: PoolConfig,
        namespace: str,
        pools: dict[int, ActorHandle] | None = None,
    ) -> None:
        self._plan = plan
        self._num_shards = num_shards
        self._pool_config = pool_config
        self._namespace = namespace
        self._events: list[EngineEvent] = []
        self._changed: asyncio.Event | None = None
        self._target_seq: dict[str, int] = {}
        self._target_status: dict[str, str] = {}
        self._shards: dict[int, list[TargetSpec]] = {}
        for target in plan.targets:
            self._shards.setdefault(shard_of(target.target_id, num_shards), []).append(target)
        # Handles passed in by the client: a name lookup from a new actor process costs about a second.
        self._pools: dict[int, ActorHandle] = dict(pools or {})
        self._run: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self._final_status: str | None = None
        self._started_at: float | None = None

    # ----------------------------------------------------------------- public methods

    async def start(self) -> None:
        """Begin the run; returns at once. Calling it again does nothing."""
        if self._run is None:
            self._started_at = time.time()
            self._run = asyncio.create_task(self._execute())

    async def push(self, events: list[EngineEvent]) -> None:
        """Pools deliver their events here, in order per pool."""
        for event in events:
            if event.type == EventType.TARGET_FINISHED and event.target_id in self._target_status:
                logger.warning("dropping a second TARGET_FINISHED for %s", event.target_id)
                continue
            self._append(event)

    async def events(self, after_seq: int, wait_s: float) -> list[EngineEvent]:
        """Events with seq > `after_seq`; if none yet, wait up to `wait_s` for some."""
        if len(self._events) <= after_seq and self._final_status is None and wait_s > 0:
            changed = self._changed_event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(wait_s, MAX_WAIT_S))
        return self._events[max(0, after_seq) : max(0, after_seq) + MAX_EVENTS_PER_CALL]

    async def cancel(self) -> None:
        """Stop the run: running commands get SIGTERM, pending targets end CANCELLED."""
        if self._cancel_requested or self._final_status is not None:
            return
        self._cancel_requested = True
        pools = await asyncio.gather(*(self._pool(shard) for shard in self._shards))
        results = await asyncio.gather(
            *(pool.cancel.remote(self._plan.execution_id) for pool in pools), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("could not cancel on a pool: %s", result)

    async def status(self) -> dict[str, Any]:
        finished = len(self._target_status)
        return {
            "execution_id": self._plan.execution_id,
            "state": self._state(),
            "status": self._final_status,
            "cancel_requested": self._cancel_requested,
            "last_seq": len(self._events),
            "targets_total": len(self._plan.targets),
            "targets_finished": finished,
            "started_at": self._started_at,
        }

    def _state(self) -> str:
        if self._final_status is not None:
            return "FINISHED"
        return "RUNNING" if self._run is not None else "CREATED"

    async def release(self) -> None:
        """Exit this actor (cancelling the run first if it is still going)."""
        if self._final_status is None:
            await self.cancel()
        self._changed_event().set()  # let long polls return before the actor exits
        exit_actor()

    # ----------------------------------------------------------------- the run

    async def _execute(self) -> None:
        plan = self._plan
        self._append_new(
            EventType.EXECUTION_STARTED,
            data=json.dumps({"targets": len(plan.targets), "steps": len(plan.steps)}),
        )
        limits = split_parallelism(plan.max_parallel, {shard: len(ts) for shard, ts in self._shards.items()})
        gate = (
            asyncio.Semaphore(max(1, plan.max_parallel)) if sum(limits.values()) > plan.max_parallel else None
        )
        try:
            await asyncio.gather(
                *(
                    self._run_shard(shard, targets, limits[shard], gate)
                    for shard, targets in self._shards.items()
                )
            )
        except Exception:
            logger.exception("execution %s: unexpected coordinator error", plan.execution_id)
        for target in plan.targets:  # whatever happened, every target ends
            if target.target_id not in self._target_status:
                self._finish_target(target, Status.FAILED, "the engine lost track of this target")
        self._finish()

    async def _run_shard(
        self, shard: int, targets: Sequence[TargetSpec], limit: int, gate: asyncio.Semaphore | None
    ) -> None:
        if gate is not None:
            async with gate:
                await self._call_pool(shard, targets, limit)
        else:
            await self._call_pool(shard, targets, limit)

    async def _call_pool(self, shard: int, targets: Sequence[TargetSpec], limit: int) -> None:
        if self._cancel_requested:
            for target in targets:
                self._finish_target(target, Status.CANCELLED, "cancelled before the target started")
            return
        plan = self._plan
        try:
            pool = await self._pool(shard)
            me = ray.get_runtime_context().current_actor
            await pool.run_targets.remote(
                plan.execution_id,
                plan.steps,
                tuple(targets),
                plan.credentials,
                plan.connect_timeout_s,
                limit,
                me,
            )
        except RayActorError as exc:
            reason = f"execution pool died: {_first_line(exc)}"
            logger.error("execution %s, shard %d: %s", plan.execution_id, shard, reason)
            for target in targets:
                if target.target_id not in self._target_status:
                    self._finish_target(target, Status.FAILED, reason)
        except Exception as exc:
            reason = f"execution pool failed: {type(exc).__name__}: {_first_line(exc)}"
            logger.exception("execution %s, shard %d", plan.execution_id, shard)
            for target in targets:
                if target.target_id not in self._target_status:
                    self._finish_target(target, Status.FAILED, reason)

    async def _pool(self, shard: int) -> ActorHandle:
        pool = self._pools.get(shard)
        if pool is None:
            pool = await asyncio.to_thread(self._find_or_create_pool, shard)
            self._pools[shard] = pool
        return pool

    def _find_or_create_pool(self, shard: int) -> ActorHandle:
        try:
            return ray.get_actor(pool_name(shard), namespace=self._namespace)
        except ValueError:
            # Only the first runs create pools; importing the SSH code costs every
            # coordinator process about a second, so it happens only then.
            from opsconductor_ray.pool import get_pool

            return get_pool(shard, self._pool_config, self._namespace)

    def _finish(self) -> None:
        statuses = list(self._target_status.values())
        counts = {
            "total": len(self._plan.targets),
            "succeeded": statuses.count(Status.SUCCEEDED),
            "failed": statuses.count(Status.FAILED),
            "cancelled": statuses.count(Status.CANCELLED),
        }
        if counts["failed"]:
            status = Status.FAILED
        elif self._cancel_requested or counts["cancelled"]:
            status = Status.CANCELLED
        else:
            status = Status.SUCCEEDED
        self._append_new(EventType.EXECUTION_FINISHED, status=status, data=json.dumps(counts))
        self._final_status = status

    # ----------------------------------------------------------------- the event log

    def _changed_event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _finish_target(self, target: TargetSpec, status: Status, message: str) -> None:
        self._append_new(
            EventType.TARGET_FINISHED,
            target_id=target.target_id,
            target_seq=self._target_seq.get(target.target_id, 0) + 1,
            status=status,
            data=message,
        )

    def _append_new(self, type: EventType, **fields: Any) -> None:
        self._append(EngineEvent(seq=0, type=type, at=time.time(), **fields))

    def _append(self, event: EngineEvent) -> None:
        event = replace(event, seq=len(self._events) + 1)
        self._events.append(event)
        if event.target_id is not None and event.target_seq is not None:
            self._target_seq[event.target_id] = event.target_seq
        if event.type == EventType.TARGET_FINISHED and event.target_id is not None:
            self._target_status[event.target_id] = event.status or Status.FAILED
        changed = self._changed_event()
        self._changed = asyncio.Event()
        changed.set()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]

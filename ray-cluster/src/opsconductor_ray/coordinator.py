"""`ExecutionCoordinator`: long-lived detached async actors `coordinator-<k>` that host runs.

Creating an actor costs a Ray worker process (~2 s), so runs do not get their own actor:
a run lives in the coordinator `coordinator_index(execution_id)` as a `_Run`, which fans
the plan's targets out to the pool shards (one call per shard and batch), numbers the
events the pools push back and keeps them in memory until `release()`, so that a restarted
executions service can re-attach by execution id and read from any sequence number.

Each run stays one named thing on the Ray dashboard: its pool calls are Ray tasks named
`exec-<execution_id>/pool-<k>`, and `runs()` lists what a coordinator hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, cast

import ray
from ray.exceptions import RayActorError

from opsconductor_ray.config import ActorHandle, PoolConfig, pool_name, shard_of
from opsconductor_ray.pool.request import BatchRequest
from opsconductor_ray.protocol import (
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
)
from opsconductor_ray.retention import EventBudget, EventLog, RetentionLimits
from opsconductor_ray.settings import EventRetentionSettings

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_CALL = 5000
"""A long poll returns at most this many events (the caller asks again from the last)."""
MAX_WAIT_S = 30.0
MAX_GATHER_S = 0.001
"""`events(gather_s=...)` collects for at most this long once there are events: live output
must not wait for a batch to fill. Under load the caller is behind anyway, and finds many
events waiting when it asks again (coalescing comes from that, not from waiting)."""
FINISHED_RETENTION_S = 6 * 3600.0
"""A finished run nobody released is dropped after this long (its events are lost)."""
RELEASED_MEMORY_S = 24 * 3600.0
"""A released execution id is remembered this long, so a late second `start` never reruns it."""


def coordinator_host_name(index: int) -> str:
    return f"coordinator-{index}"


def coordinator_name(execution_id: str) -> str:
    """The run's name on the dashboard (prefix of its pool tasks' names)."""
    return f"exec-{execution_id}"


def coordinator_index(execution_id: str, num_coordinators: int) -> int:
    return shard_of(execution_id, num_coordinators)


def split_parallelism(max_parallel: int, sizes: dict[int, int]) -> dict[int, int]:
    """Share `max_parallel` among shards in proportion to their target counts.

    Every shard with targets gets at least 1, so the sum exceeds `max_parallel` only when
    there are more busy shards than `max_parallel` (the run then gates the shard calls
    themselves). No shard gets more than it has targets.
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


class _Run:
    """One execution inside a coordinator: its plan, event log and the task running it."""

    def __init__(
        self,
        plan: ExecutionPlan,
        pools: dict[int, ActorHandle],
        num_shards: int,
        budget: EventBudget | None = None,
    ) -> None:
        self.plan = plan
        self.pools = pools
        self.num_shards = num_shards
        self.lookup: Callable[[int], Awaitable[ActorHandle | None]] | None = None
        """Finds a shard's pool by name again (set by the host): a handle the client passed may
        belong to a pool killed for good and created again under the same name."""
        self.log = EventLog(budget if budget is not None else EventBudget())
        """The run's events, bounded (retention.py, review M12)."""
        self.changed = asyncio.Event()
        self.done = asyncio.Event()
        """Set with EXECUTION_FINISHED (or on release): ends a gathering long poll at once."""
        self.target_seq: dict[str, int] = {}
        self.target_status: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None
        self.background: set[asyncio.Task[None]] = set()
        self.me: ActorHandle | None = None
        self.cancel_requested = False
        self.stop_reason: str | None = None
        """Set by fail-fast or the run timeout: targets not started yet end CANCELLED with it."""
        self.timed_out = False
        self.failed_targets = 0
        self.final_status: str | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None

    # ----------------------------------------------------------------- the event log

    def append_new(self, type: EventType, **fields: Any) -> None:
        self.append(EngineEvent(seq=0, type=type, at=time.time(), **fields))

    def append(self, event: EngineEvent) -> None:
        admitted = self.log.admit(event)
        if admitted is None:
            return  # output over the retention limits (a marker was kept in its place)
        target_seq = admitted.target_seq
        if admitted.target_id is not None:
            # numbered here, so that dropped output leaves no gap
            target_seq = self.target_seq.get(admitted.target_id, 0) + 1
            self.target_seq[admitted.target_id] = target_seq
        event = admitted.numbered(self.log.last_seq + 1, target_seq)
        self.log.append(event)
        if event.type == EventType.TARGET_FINISHED and event.target_id is not None:
            self.target_status[event.target_id] = event.status or Status.FAILED
            if event.status == Status.FAILED:
                self.failed_targets += 1
        changed = self.changed
        self.changed = asyncio.Event()
        changed.set()

    def push(self, events: Sequence[EngineEvent]) -> None:
        for event in events:
            if event.type == EventType.TARGET_FINISHED and event.target_id in self.target_status:
                logger.warning("dropping a second TARGET_FINISHED for %s", event.target_id)
                continue
            self.append(event)
        threshold = self.plan.policy.fail_fast_threshold
        if threshold is not None and self.stop_reason is None and self.failed_targets >= threshold:
            self.stop_reason = f"fail-fast: {self.failed_targets} targets failed"
            task = asyncio.create_task(self._tell_pools("stop_new", self.stop_reason))
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    def finish_target(self, target: TargetSpec, status: Status, message: str) -> None:
        self.append_new(
            EventType.TARGET_FINISHED,
            target_id=target.target_id,
            target_seq=self.target_seq.get(target.target_id, 0) + 1,
            status=status,
            data=message,
        )

    def state(self) -> str:
        if self.final_status is not None:
            return "FINISHED"
        return "RUNNING" if self.task is not None else "CREATED"

    def summary(self) -> dict[str, Any]:
        return {
            "execution_id": self.plan.execution_id,
            "name": coordinator_name(self.plan.execution_id),
            "state": self.state(),
            "status": self.final_status,
            "cancel_requested": self.cancel_requested,
            "last_seq": self.log.last_seq,
            "targets_total": len(self.plan.targets),
            "targets_finished": len(self.target_status),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }

    # ----------------------------------------------------------------- running

    async def execute(self) -> None:
        plan = self.plan
        self.append_new(
            EventType.EXECUTION_STARTED,
            data=json.dumps({"targets": len(plan.targets), "steps": len(plan.steps)}),
        )
        timer = None
        if plan.policy.timeout_seconds is not None:
            timer = asyncio.get_running_loop().call_later(
                max(0.0, plan.policy.timeout_seconds), self._start_time_out
            )
        try:
            by_id = {t.target_id: t for t in plan.targets}
            for batch_ids in plan.policy.batches([t.target_id for t in plan.targets]):
                batch = [by_id[i] for i in batch_ids]
                if self.cancel_requested or self.stop_reason is not None:
                    reason = self.stop_reason or "cancelled before the target started"
                    for target in batch:
                        self.finish_target(target, Status.CANCELLED, reason)
                    continue
                await self.run_batch(batch)
        except Exception:
            logger.exception("execution %s: unexpected coordinator error", plan.execution_id)
        finally:
            if timer is not None:
                timer.cancel()
        for target in plan.targets:  # whatever happened, every target ends
            if target.target_id not in self.target_status:
                self.finish_target(target, Status.FAILED, "the engine lost track of this target")
        self.finish()

    async def run_batch(self, targets: Sequence[TargetSpec]) -> None:
        shards: dict[int, list[TargetSpec]] = {}
        for target in targets:
            shards.setdefault(shard_of(target.target_id, self.num_shards), []).append(target)
        parallel = self.plan.policy.max_parallel
        limits = split_parallelism(parallel, {shard: len(ts) for shard, ts in shards.items()})
        gate = asyncio.Semaphore(parallel) if sum(limits.values()) > parallel else None

        async def one(shard: int, members: list[TargetSpec]) -> None:
            if gate is None:
                await self.call_pool(shard, members, limits[shard])
            else:
                async with gate:
                    await self.call_pool(shard, members, limits[shard])

        await asyncio.gather(*(one(shard, members) for shard, members in shards.items()))

    async def call_pool(self, shard: int, targets: Sequence[TargetSpec], limit: int) -> None:
        if self.cancel_requested or self.stop_reason is not None:
            for target in targets:
                self.finish_target(
                    target, Status.CANCELLED, self.stop_reason or "cancelled before the target started"
                )
            return
        plan = self.plan
        try:
            pool = await self._live_pool(shard)
            me = self.me if self.me is not None else _current_actor()
            request = BatchRequest(
                execution_id=plan.execution_id,
                steps=tuple(plan.steps),
                targets=tuple(targets),
                credentials=plan.credentials,
                connect_timeout_s=plan.connect_timeout_s,
                max_parallel=limit,
                sink=me,
                policy=plan.policy,
                max_output_bytes=plan.max_output_bytes,
            )
            await pool.run_targets.options(name=f"{coordinator_name(plan.execution_id)}/pool-{shard}").remote(
                request
            )
        except RayActorError as exc:
            reason = f"execution pool died: {_first_line(exc)}"
            logger.error("execution %s, shard %d: %s", plan.execution_id, shard, reason)
            self._fail_unfinished(targets, reason)
        except Exception as exc:
            reason = f"execution pool failed: {type(exc).__name__}: {_first_line(exc)}"
            logger.exception("execution %s, shard %d", plan.execution_id, shard)
            self._fail_unfinished(targets, reason)

    async def _live_pool(self, shard: int) -> ActorHandle:
        """The shard's pool, checked with one idempotent call. A dead handle is looked up again
        by name once (a pool replaced under its name); a restarting pool is waited for."""
        pool = self.pools[shard]
        try:
            await pool.stats.remote()
            return pool
        except RayActorError:
            fresh = await self.lookup(shard) if self.lookup is not None else None
            if fresh is not None:
                pool = self.pools[shard] = fresh
        await _answering(pool)
        return pool

    def _fail_unfinished(self, targets: Sequence[TargetSpec], reason: str) -> None:
        for target in targets:
            if target.target_id not in self.target_status:
                self.finish_target(target, Status.FAILED, reason)

    async def cancel(self, reason: str | None = None) -> None:
        if self.cancel_requested or self.final_status is not None:
            return
        self.cancel_requested = True
        await self._tell_pools("cancel", reason)

    def _start_time_out(self) -> None:
        task = asyncio.create_task(self.time_out())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def time_out(self) -> None:
        if self.final_status is not None:
            return
        self.timed_out = True
        self.stop_reason = "run timed out"
        await self._tell_pools("cancel", "run timed out")

    async def _tell_pools(self, method: str, reason: str | None) -> None:
        eid = self.plan.execution_id
        results = await asyncio.gather(
            *(getattr(pool, method).remote(eid, reason) for pool in self.pools.values()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("could not %s on a pool: %s", method, result)

    def finish(self) -> None:
        statuses = list(self.target_status.values())
        counts: dict[str, Any] = {
            "total": len(self.plan.targets),
            "succeeded": statuses.count(Status.SUCCEEDED),
            "failed": statuses.count(Status.FAILED),
            "cancelled": statuses.count(Status.CANCELLED),
        }
        if self.timed_out:
            status = Status.FAILED
            counts["reason"] = "run timed out"
        elif counts["failed"]:
            status = Status.FAILED
        elif self.cancel_requested or counts["cancelled"]:
            status = Status.CANCELLED
        else:
            status = Status.SUCCEEDED
        if self.stop_reason is not None and "reason" not in counts:
            counts["reason"] = self.stop_reason
        self.append_new(EventType.EXECUTION_FINISHED, status=status, data=json.dumps(counts))
        self.final_status = status
        self.finished_at = time.time()
        self.log.finished_at = time.monotonic()
        self.done.set()


# Restarted if its process dies (a new process knows no runs, so callers get
# ExecutionNotFound and pools pushing to it stop their batches), never retried: a second
# start of a call would run the commands again.
# (The pyright ignore: ray's typed overload of remote() lacks max_concurrency.)
@ray.remote(num_cpus=0, max_concurrency=10000, max_restarts=-1, max_task_retries=0)  # pyright: ignore[reportCallIssue, reportUntypedClassDecorator]
class ExecutionCoordinator:
    """Hosts many runs; every method takes the execution id."""

    def __init__(self, index: int, num_shards: int, pool_config: PoolConfig, namespace: str) -> None:
        self._index = index
        self._num_shards = num_shards
        self._pool_config = pool_config
        self._namespace = namespace
        self._runs: dict[str, _Run] = {}
        self._budget = EventBudget(RetentionLimits.from_settings(EventRetentionSettings()))
        """Bounds the events all runs here keep (M12)."""
        self._released: dict[str, float] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._forbidden: dict[str, float] = {}
        """Execution ids `forbid` settled as never started here (kept RELEASED_MEMORY_S)."""
        self._me: ActorHandle | None = None
        self._handles: dict[str, ActorHandle] = {}
        """Every pool handle seen, kept for good: when a process drops its last handle of an
        actor, Ray forgets the actor's address and the next handle waits for the GCS (seconds
        on a busy machine) before its first call."""

    async def _lookup_pool(self, shard: int) -> ActorHandle | None:
        """The pool named for ``shard`` as it is now (None when there is none)."""
        try:
            handle = cast(
                ActorHandle,
                await asyncio.to_thread(ray.get_actor, pool_name(shard), namespace=self._namespace),  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
            )
        except ValueError:
            return None
        return self._handles.setdefault(handle._actor_id.hex(), handle)

    # ----------------------------------------------------------------- public methods

    async def start(self, plan: ExecutionPlan, pools: dict[int, ActorHandle]) -> bool:
        """Begin the run; returns at once. False (and nothing runs) if this execution id was
        already started here — running twice is never an option."""
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap())
        eid = plan.execution_id
        if eid in self._runs or eid in self._released:
            return False
        for handle in pools.values():
            self._handles.setdefault(handle._actor_id.hex(), handle)
        pools = {shard: self._handles[handle._actor_id.hex()] for shard, handle in pools.items()}
        # The shards of the client that started the run (it hands over every pool it has):
        # its targets' shards are computed with that count, whatever this coordinator was made with.
        run = _Run(plan, dict(pools), len(pools) or self._num_shards, self._budget)
        run.lookup = self._lookup_pool
        if self._me is None:
            self._me = _current_actor()
        run.me = self._me
        self._runs[eid] = run
        run.started_at = time.time()
        run.task = asyncio.create_task(run.execute(), name=coordinator_name(eid))
        return True

    async def push(self, execution_id: str, events: list[EngineEvent]) -> bool:
        """Pools deliver their events here, in order per pool. False: no such run here
        (this coordinator restarted or the run was released), so the pool stops."""
        run = self._runs.get(execution_id)
        if run is None or run.final_status is not None:
            return False
        run.push(events)
        return True

    async def events(
        self, execution_id: str, after_seq: int, wait_s: float, gather_s: float = 0.0
    ) -> list[EngineEvent] | None:
        """Events with seq > `after_seq`; if none yet, wait up to `wait_s` (woken by the first
        new event). With `gather_s`, a caller that had to wait keeps collecting for up to
        `min(gather_s, MAX_GATHER_S)` so that the rest of a burst comes in the same call (but
        never past EXECUTION_FINISHED: the run's end returns at once); a caller that finds
        events waiting gets them at once. None: unknown run."""
        run = self._runs.get(execution_id)
        if run is None:
            return None
        run.log.acknowledge(after_seq)
        waited = False
        if run.log.last_seq <= after_seq and run.final_status is None and wait_s > 0:
            waited = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), min(wait_s, MAX_WAIT_S))
        gather = min(gather_s, MAX_GATHER_S)
        if (
            waited
            and gather > 0
            and run.log.last_seq > after_seq
            and run.final_status is None
            and run.log.last_seq - after_seq < MAX_EVENTS_PER_CALL
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.done.wait(), gather)
        return run.log.read(after_seq, MAX_EVENTS_PER_CALL)

    async def cancel(self, execution_id: str) -> bool:
        """Running commands get SIGTERM, pending targets end CANCELLED. False: unknown run."""
        run = self._runs.get(execution_id)
        if run is None:
            return False
        await run.cancel()
        return True

    async def status(self, execution_id: str) -> dict[str, Any] | None:
        run = self._runs.get(execution_id)
        return None if run is None else run.summary()

    async def forbid(self, execution_id: str) -> str:
        """Settle whether the run exists here, for good: "known" (started here: running or
        finished), "released", or "forbidden" (it never started here and now never will: a later
        `start` of this id returns False). The executions service asks this instead of guessing
        when a `start` of its own may still be on its way (cancel, a start that timed out)."""
        forbidden = self._forbidden
        mono = time.monotonic()
        for eid in [e for e, at in forbidden.items() if mono - at > RELEASED_MEMORY_S]:
            forbidden.pop(eid, None)
        if execution_id in forbidden:
            return "forbidden"
        if execution_id in self._runs:
            return "known"
        if execution_id in self._released:
            return "released"
        forbidden[execution_id] = mono
        self._released[execution_id] = mono  # what `start` refuses (and the reaper forgets)
        return "forbidden"

    async def update_credentials(self, execution_id: str, credentials: CredentialRef) -> bool:
        """A renewed connection grant for the run's later batches (each batch's pool call takes
        the plan's credentials when it starts). False: unknown or finished run."""
        run = self._runs.get(execution_id)
        if run is None or run.final_status is not None:
            return False
        run.plan = replace(run.plan, credentials=credentials)
        return True

    async def release(self, execution_id: str) -> None:
        """Forget the run (cancelling it first if it is still going). Idempotent."""
        run = self._runs.get(execution_id)
        if run is None:
            return
        if run.final_status is None:
            await run.cancel()
            if run.task is not None:
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(run.task), 30)
        run.changed.set()  # let long polls return
        run.done.set()
        self._runs.pop(execution_id, None)
        self._budget.forget(run.log)
        self._released[execution_id] = time.monotonic()

    async def runs(self) -> list[dict[str, Any]]:
        """What this coordinator hosts (for operators and the dashboard's actor view)."""
        return [run.summary() for run in self._runs.values()]

    async def ping(self) -> int:
        return self._index

    async def prepare(self, pools: dict[int, ActorHandle]) -> None:
        """Called by `EngineClient.connect()`: learn the pools and make the first calls both
        ways now, so that no run pays this process's first-contact costs (seconds when busy)."""
        if self._me is None:
            self._me = _current_actor()
        for handle in pools.values():
            self._handles[handle._actor_id.hex()] = handle
        await asyncio.gather(*(_answering(h) for h in pools.values()))
        await asyncio.gather(*(h.know.remote(self._me) for h in pools.values()), return_exceptions=True)

    # ----------------------------------------------------------------- housekeeping

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(60)
            wall, mono = time.time(), time.monotonic()
            for eid, run in list(self._runs.items()):
                if run.finished_at is not None and wall - run.finished_at > FINISHED_RETENTION_S:
                    logger.warning("dropping finished execution %s that nobody released", eid)
                    self._runs.pop(eid, None)
                    self._budget.forget(run.log)
                    self._released[eid] = mono
            self._released = {e: at for e, at in self._released.items() if mono - at < RELEASED_MEMORY_S}


async def _answering(pool: ActorHandle, timeout_s: float = 15.0) -> None:
    """Wait until the pool answers an idempotent call, so that the real (never retried) call
    is not the one that finds out the pool had restarted since this process last used it."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await pool.stats.remote()
            return
        except RayActorError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def _current_actor() -> ActorHandle:
    """This actor's own handle (ray leaves the property untyped)."""
    return cast(ActorHandle, ray.get_runtime_context().current_actor)  # pyright: ignore[reportUnknownMemberType]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]

"""Following runs: start a run on the engine, pull its event batches, persist and publish them;
cancel; adopt or end runs no replica follows (the sweep).

Several replicas may run: the one following a run holds a lease on it (``lease_owner`` /
``lease_until``, renewed while following, released on shutdown). A periodic sweep (and the
start-up one) adopts runs whose lease expired while their coordinator lives, and ends runs with
no coordinator beyond ``stale_after_seconds`` as FAILED "stale: ...". Because the coordinator
keeps every event and the database records the highest persisted sequence number (checked
under a row lock on every batch), adoption continues exactly where the last follower stopped.

When a run ends, ``on_run_ended(job_id)`` is called: the facade admits the next queued run of the
job (queue admission lives in ``launch``; this module never imports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tortoise.expressions import Q

from opsconductor_executions import events
from opsconductor_executions.models import ACTIVE, TERMINAL, Execution, Outbox
from opsconductor_executions.service.lifecycle import (
    GrantClock,
    claim,
    end_without_engine,
    engine_call,
    engine_has,
    now,
    prune_keys,
    renew,
    settle,
)
from opsconductor_executions.service.live import event_payload, publish_events
from opsconductor_executions.service.persist import RunWriter, Staged, merge_staged
from opsconductor_executions.service.plans import PlanSource, credentials, stored_plan
from opsconductor_executions.settings import Settings
from opsconductor_ray.protocol import EngineEvent, ExecutionPlan
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.events import Broadcaster, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import Committer, unit_of_work

log = get_logger("opsconductor.executions")

STORE_QUEUE_BATCHES = 64
"""Batches published but not stored yet, at most (then the follower waits for the database)."""
STORE_EVERY_S = 0.05
"""Storing (behind publishing) begins a transaction at most this often per run, each with every
batch queued since the previous one: at 100 targets x 50 lines/s the follower gets a few
hundred batches a second, and a transaction per batch (five statements, each a hand-over to the
database driver) cost more CPU than the rows themselves (issue 15)."""


async def _nothing(_job_id: str) -> None:
    return None


@dataclass
class Followers:
    """The runs this replica follows (one task each) and what it remembers about them."""

    settings: Settings
    engine: Any | None  # opsconductor_ray.client.EngineClient
    broadcaster: Broadcaster
    runtime: Committer
    plans: PlanSource
    replica: str
    on_run_ended: Callable[[str], Awaitable[None]] = _nothing
    """Called with the job id after a run of it ended (queue admission)."""
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    grant_clocks: dict[str, GrantClock] = field(default_factory=dict)
    """When the connection grant of a run this replica started must be renewed (M3)."""
    cancel_sent: set[str] = field(default_factory=set)
    """Runs whose coordinator got our cancel request (no need to send it again)."""

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    def _timeout(self) -> float:
        return self.settings.engine_call_timeout_seconds

    # -- following -----------------------------------------------------------------------------

    def follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        """Follow a run in the background; with ``plan``, start it on the engine first."""
        if execution_id in self.tasks and not self.tasks[execution_id].done():
            return
        task = asyncio.create_task(self._follow(execution_id, plan), name=f"follow-{execution_id}")
        self.tasks[execution_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(execution_id, None))

    async def _follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        assert self.engine is not None
        if plan is not None and not await self._start(execution_id, plan):
            return
        execution = await Execution.get(id=execution_id)
        run_plan = stored_plan(execution).plan
        steps = sorted(run_plan.steps, key=lambda s: s.order)
        # Output is stored as the engine sent it: the engine alone cuts it
        # (ExecutionPlan.max_output_bytes) and reports it on STEP_FINISHED (`truncated`).
        writer = RunWriter(
            execution,
            runtime=self.runtime,
            steps={i: (s.name, s.command) for i, s in enumerate(steps)},
        )
        failures = 0
        renew_every = max(self.settings.lease_seconds / 3, 0.5)
        renewed_at = asyncio.get_running_loop().time()
        engine = self.engine
        timeout = self._timeout()
        # A rolling run (several batches) fetches credentials per batch: its grant is renewed
        # before it expires (M3). A run adopted from another replica gets a fresh one at once.
        rolling = len(run_plan.policy.batches(run_plan.target_ids)) > 1
        clock = self.grant_clocks.get(execution_id) or GrantClock(renew_at=0.0)

        def fetch(after_seq: int) -> asyncio.Task[list[EngineEvent]]:
            # The coordinator collects for event_batch_wait_seconds after the first new event
            # and answers at once when the run ends.
            gather = self.settings.event_batch_wait_seconds
            return asyncio.ensure_future(
                engine_call(
                    engine.events(execution_id, after_seq, wait_s=1.0, gather_s=gather),
                    timeout + 1.0 + gather,
                    "events",
                )
            )

        ahead: asyncio.Task[list[EngineEvent]] | None = None
        """The next batch, asked for while this one is published and stored (no round trip)."""
        # Publish first, store behind: each batch goes to live subscribers as soon as it is
        # staged (its seqs were assigned by the coordinator), and one task stores the batches in
        # order. Subscribers fill a gap (published, not stored yet) from later live messages or
        # wait for the database (live.event_batches): nothing is skipped or repeated.
        storing: asyncio.Queue[Staged | None] = asyncio.Queue(maxsize=STORE_QUEUE_BATCHES)

        finishing = asyncio.Event()
        """Set by drain(): store what is queued now, without the pause."""

        async def store_in_order() -> None:
            # Paced: a new transaction no sooner than STORE_EVERY_S after the previous one began,
            # with every batch queued meanwhile (a run printing thousands of lines a second is
            # stored in a few transactions a second, not one per live batch).
            clock = asyncio.get_running_loop().time
            began = float("-inf")
            while True:
                pause = began + STORE_EVERY_S - clock()
                if pause > 0 and not finishing.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(finishing.wait(), pause)
                queued = [await storing.get()]
                while queued[-1] is not None and not storing.empty():
                    queued.append(storing.get_nowait())
                batches = [staged for staged in queued if staged is not None]
                if batches:
                    began = clock()
                    await writer.store(merge_staged(batches))
                if queued[-1] is None:
                    return

        store_task = asyncio.create_task(store_in_order(), name=f"store-{execution_id}")

        async def enqueue(item: Staged | None) -> None:
            """Hand a batch to the store task; its failure (a database error) ends the follower."""
            put = asyncio.ensure_future(storing.put(item))
            await asyncio.wait({put, store_task}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():
                put.cancel()
            if store_task.done() and not (item is None and put.done()):
                store_task.result()  # raises what failed the store
                raise RuntimeError("the store task ended early")

        async def drain() -> None:
            """Everything staged is stored (before writing anything else, e.g. a final event)."""
            finishing.set()
            await enqueue(None)
            await store_task

        try:
            while True:
                loop_time = asyncio.get_running_loop().time()
                if loop_time - renewed_at >= renew_every:
                    if not await renew(execution_id, replica=self.replica, lease=self.lease):
                        log.warning("another replica took over the execution", execution_id=execution_id)
                        return
                    renewed_at = loop_time
                    await self.forward_cancel(execution_id)
                if rolling and not writer.finished and clock.due():
                    clock = await self._renew_grant(execution_id, run_plan.target_ids)
                    self.grant_clocks[execution_id] = clock
                pending, ahead = ahead or fetch(writer.staged_seq), None
                try:
                    batch = await pending
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    exists = await engine_has(engine, execution_id, timeout)
                    if exists is False:
                        # settled: no coordinator has the run (it restarted): nothing runs it any more
                        log.error("lost the execution coordinator", execution_id=execution_id, error=str(exc))
                        await drain()
                        await self.finish_without_engine(execution_id, f"execution coordinator lost: {exc}")
                        return
                    # unknown (timeout, Ray error) or a passing failure: never a guess, ask again
                    log.warning(
                        "could not read the run's events; retrying",
                        execution_id=execution_id,
                        error=str(exc),
                        failures=failures,
                    )
                    await asyncio.sleep(min(0.5 * failures, 5.0))
                    continue
                if not batch:
                    continue
                ending = batch[-1].type == "EXECUTION_FINISHED"
                if not ending:
                    ahead = fetch(batch[-1].seq)
                staged = writer.stage(batch)
                payloads = staged.payloads
                # EXECUTION_FINISHED goes out once the run is stored: a subscriber that saw the
                # end reads the run's final state (everything before it went out at once).
                last = payloads[-1:] if ending else []
                if staged.events:
                    await publish_events(
                        self.broadcaster, execution_id, payloads[: len(payloads) - len(last)]
                    )
                    await enqueue(staged)
                if ending:
                    await drain()
                    await publish_events(self.broadcaster, execution_id, last)
                    self._forget(execution_id)
                    with contextlib.suppress(Exception):
                        await engine_call(engine.release(execution_id), timeout + 30, "release")
                    with contextlib.suppress(Exception):
                        await self.on_run_ended(writer.execution.job_id)
                    return
        finally:
            if ahead is not None:
                ahead.cancel()
                ahead.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, not logged
            if not store_task.done():
                store_task.cancel()
            store_task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _renew_grant(self, execution_id: str, target_ids: tuple[str, ...]) -> GrantClock:
        """Issue a fresh grant for the run's targets and hand it to its coordinator. On failure the
        clock retries in a few seconds (the old grant may still cover the next batch)."""
        assert self.engine is not None
        try:
            grant = await self.plans.grant(target_ids)
            accepted = await engine_call(
                self.engine.update_credentials(execution_id, credentials(grant)),
                self._timeout(),
                "update_credentials",
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "could not renew the run's connection grant", execution_id=execution_id, error=str(exc)
            )
            return GrantClock(renew_at=time.time() + 5)
        log.info("renewed the run's connection grant", execution_id=execution_id, accepted=bool(accepted))
        return GrantClock.of(grant.expires_at, self.settings.grant_renew_fraction)

    async def _cancel_requested(self, execution_id: str) -> bool:
        return await Execution.filter(id=execution_id, cancel_requested=True).exists()

    async def _start(self, execution_id: str, plan: ExecutionPlan) -> bool:
        """Hand the run to the engine. True: follow it. A cancel recorded before the start is
        honoured here (the run is forbidden on the engine and ends CANCELLED, nothing starts). A
        start whose outcome is unknown (timeout, Ray error) is settled with the engine (`forbid`):
        either it runs (follow it) or it never will (end it) — never recorded as ended while it
        might run (L9, M2)."""
        assert self.engine is not None
        error: str | None = None
        started = False
        if await self._cancel_requested(execution_id):
            error = "cancelled before it ran"
        else:
            try:
                started = await engine_call(
                    self.engine.start(plan), self.settings.engine_start_timeout_seconds, "start"
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "the engine start did not answer cleanly; settling",
                    execution_id=execution_id,
                    error=str(exc),
                )
                started, error = False, str(exc)
        if started:
            await self.forward_cancel(execution_id)
            return True
        # Not started by this call (a repeat, a forbidden id, or an unknown outcome): ask the engine.
        for attempt in range(5):
            settled = await settle(self.engine, execution_id, self._timeout())
            if settled == "known":
                await self.forward_cancel(execution_id)
                return True
            if settled in ("forbidden", "released"):
                if await self._cancel_requested(execution_id):
                    await self.finish_without_engine(
                        execution_id, "cancelled before it ran", status="CANCELLED"
                    )
                else:
                    reason = error or "the engine did not take the run"
                    await self.finish_without_engine(
                        execution_id, f"execution engine failed to start the run: {reason}"
                    )
                return False
            await asyncio.sleep(min(1.0 * (attempt + 1), 5.0))
        # Still unknown: stop renewing the lease; the sweep settles the run once it is stale.
        log.error("could not settle the run's start with the engine", execution_id=execution_id)
        return False

    def _forget(self, execution_id: str) -> None:
        self.grant_clocks.pop(execution_id, None)
        self.cancel_sent.discard(execution_id)

    async def finish_without_engine(
        self, execution_id: str, message: str, *, status: str = "FAILED", only_waiting: bool = False
    ) -> bool:
        """End a run the engine does not run (``lifecycle.end_without_engine``), publish its end
        and admit the job's next queued run. False: nothing done."""
        async with unit_of_work(self.runtime):
            ended = await end_without_engine(execution_id, message, status=status, only_waiting=only_waiting)
        if ended is None:
            return False
        execution, row = ended
        self._forget(execution_id)
        await publish_events(self.broadcaster, execution_id, [event_payload(row)])
        with contextlib.suppress(Exception):
            await self.on_run_ended(execution.job_id)
        return True

    # -- cancelling ----------------------------------------------------------------------------

    async def forward_cancel(self, execution_id: str) -> None:
        """Send a recorded cancel request to the engine (again) until its coordinator got it."""
        if execution_id in self.cancel_sent or self.engine is None:
            return
        if await self._cancel_requested(execution_id):
            await self._send_cancel(execution_id)

    async def _send_cancel(self, execution_id: str) -> str | None:
        """Ask the engine to cancel the run. "cancelling": its coordinator ends it (the follower
        persists CANCELLED); "never-started": settled that it never ran and never will, so it ends
        CANCELLED now; None: the engine could not be asked — the request stays recorded and the
        follower (or the sweep's adoption) sends it again."""
        assert self.engine is not None
        try:
            outcome = str(
                await engine_call(self.engine.cancel_run(execution_id), self._timeout() * 2, "cancel")
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "cancel request not delivered to the engine yet", execution_id=execution_id, error=str(exc)
            )
            return None
        if outcome == "never-started":
            task = self.tasks.get(execution_id)
            if task is not None and task is not asyncio.current_task():
                task.cancel()  # its start can no longer run anything
            await self.finish_without_engine(execution_id, "cancelled before it ran", status="CANCELLED")
        else:
            self.cancel_sent.add(execution_id)
        return outcome

    async def deliver_cancel(self, execution: Execution) -> Execution:
        """After ``request_cancel`` committed: a run waiting behind another (never handed to the
        engine) ends CANCELLED at once; otherwise the request goes to the engine, and the run
        ends CANCELLED only when the engine ends it so, or settles that it never started (and
        never will). If the engine cannot be asked now, the run stays CANCELLING and the follower
        sends the request again: never a guess."""
        if execution.waiting and await self.finish_without_engine(
            execution.id, "cancelled while queued", status="CANCELLED", only_waiting=True
        ):
            return await Execution.get(id=execution.id)
        if self.engine is not None:
            await self._send_cancel(execution.id)
        return await Execution.get(id=execution.id)

    # -- adoption and the sweep ----------------------------------------------------------------

    async def sweep(self) -> None:
        """Adopt active runs whose lease expired while their coordinator lives; end runs whose
        coordinator is gone (beyond ``stale_after_seconds``, and only once the engine settled that
        none has or will start them) as FAILED "stale: ..."; start queued runs whose predecessors
        ended; forget expired idempotency keys."""
        t = now()
        orphans = await Execution.filter(status__in=ACTIVE, waiting=False).filter(
            Q(lease_until__isnull=True) | Q(lease_until__lt=t) | Q(lease_owner=self.replica)
        )
        for execution in orphans:
            task = self.tasks.get(execution.id)
            if (task is not None and not task.done()) or self.engine is None:
                continue
            exists = await engine_has(self.engine, execution.id, self._timeout())
            if exists is None:
                continue  # the engine cannot be asked: next sweep
            if exists:
                if await claim(execution.id, replica=self.replica, lease=self.lease):
                    log.info(
                        "re-attaching to running execution",
                        execution_id=execution.id,
                        after_seq=execution.last_seq,
                    )
                    self.follow(execution.id)
                continue
            since = execution.lease_until or execution.started_at or execution.created_at
            idle = (t - since).total_seconds()
            if idle >= self.settings.stale_after_seconds and await claim(
                execution.id, replica=self.replica, lease=self.lease
            ):
                # a start may still be on its way to the engine: settle it before judging (L9)
                settled = await settle(self.engine, execution.id, self._timeout())
                if settled == "known":
                    self.follow(execution.id)
                elif settled is not None:
                    await self.finish_without_engine(
                        execution.id,
                        f"stale: no live execution coordinator for {int(idle)}s (service or cluster restarted)",
                    )
        waiting_jobs = (
            await Execution.filter(status="QUEUED", waiting=True).distinct().values_list("job_id", flat=True)
        )
        for job_id in set(waiting_jobs):
            with contextlib.suppress(Exception):
                await self.on_run_ended(str(job_id))
        with contextlib.suppress(Exception):
            await prune_keys(timedelta(hours=self.settings.idempotency_key_hours))
        # bookkeeping of runs this replica no longer follows (another one finished them)
        for eid in [e for e in self.grant_clocks if e not in self.tasks]:
            self.grant_clocks.pop(eid, None)
        self.cancel_sent &= set(self.tasks)

    async def run_sweeper(self) -> None:
        """Periodic sweep; errors are logged, never fatal."""
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("execution sweep failed")

    async def release_leases(self) -> None:
        """On shutdown: stop following and let another replica (or our successor) adopt at once."""
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await Execution.filter(lease_owner=self.replica, status__in=ACTIVE).update(
                lease_owner=None, lease_until=None
            )


async def request_cancel(*, execution_id: str, actor: str | None = None) -> Execution:
    """Record a cancel request (the caller's transaction): ``cancel_requested`` (CANCELLING), audited."""
    execution = await Execution.select_for_update().get_or_none(id=execution_id)
    if execution is None:
        raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
    if execution.status in TERMINAL:
        raise ValidationError(f"execution already {execution.status.lower()}", field="id")
    if not execution.cancel_requested:
        execution.cancel_requested = True
        await execution.save(update_fields=["cancel_requested"])
        await record_event(Outbox, events.execution_cancelled(execution, actor=actor))
    return execution

"""The firing loop: every nominal time gets exactly one history row, and at most one run.

Every replica may run :class:`Scheduler`. For a due schedule it takes the schedule row's lock,
reads the slots from its cursor up to now, lets the misfire policy decide, and writes one
:class:`~opsconductor_schedules.models.ScheduleFire` per nominal time in that transaction — the
``(schedule, scheduled_for)`` unique row is the claim: a second replica, a restart or a clock jump
can never claim the same time again. Fires that run are claimed as STARTING; after the commit the
run is started through executions' ``runJob`` with the fire id as idempotency key (a crash between
claim and start is resumed by any replica with the same key: the same run, never a second). Then
the row settles: FIRED (execution, lateness), SKIPPED_OVERLAP, QUEUED or FAILED (with the reason).

The loop sleeps until the earliest ``next_due_at`` and is woken at once by any schedule change
(:meth:`Scheduler.wake`); no fixed poll (a long ceiling only guards against lost wake-ups; queued
and stale claimed fires are looked at every ``queue_recheck``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from tortoise.expressions import F

from opsconductor_schedules import events
from opsconductor_schedules.models import Outbox, Schedule, ScheduleFire
from opsconductor_schedules.service.clients import OwnerCheck, RunStarter
from opsconductor_schedules.service.definitions import STARTING, now_utc, refresh_next, spec_of
from opsconductor_schedules.service.misfire import plan_due
from opsconductor_schedules.service.spec import FireOutcome, MisfirePolicy, OverlapPolicy
from opsconductor_schedules.service.timeline import slots
from opsconductor_shared.client import ServiceCallError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_shared.live import Broadcaster
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import Committer, unit_of_work

__all__ = ["FIRES_CHANNEL", "Scheduler", "SchedulerConfig"]

log = get_logger("opsconductor.schedules.firing")

FIRES_CHANNEL = "schedules.fires"
MAX_SLOTS_PER_PASS = 1000


@dataclass(frozen=True)
class SchedulerConfig:
    misfire_grace: timedelta = timedelta(seconds=30)
    claim_timeout: timedelta = timedelta(seconds=60)
    queue_recheck: timedelta = timedelta(seconds=5)
    max_sleep: timedelta = timedelta(seconds=60)
    batch: int = 100


async def _pending(schedule_id: str) -> int:
    """Fires of the schedule being started or queued (not yet FIRED)."""
    return await ScheduleFire.filter(
        schedule_id=schedule_id, outcome__in=[STARTING, FireOutcome.QUEUED.value]
    ).count()


def fire_message(fire: ScheduleFire) -> str:
    return json.dumps({"id": fire.id, "scheduleId": fire.schedule_id, "jobId": fire.job_id})


class Scheduler:
    """One replica's loop (built in app.py; several replicas share the database safely)."""

    def __init__(
        self,
        *,
        committer: Committer,
        owners: OwnerCheck,
        runs: RunStarter,
        broadcaster: Broadcaster,
        config: SchedulerConfig,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.committer = committer
        self.owners = owners
        self.runs = runs
        self.broadcaster = broadcaster
        self.config = config
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._starts: set[asyncio.Task[None]] = set()
        self._next_retry = 0.0  # monotonic: when QUEUED and stale STARTING fires are looked at next

    # ---- lifecycle ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="schedules-firing")

    async def stop(self) -> None:
        for start in list(self._starts):  # a cancelled start stays STARTING: resumed by key later
            start.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        while True:
            # cleared before the pass: a change committed while it runs wakes the next one at once
            # (the loop's own commits do not wake it: app.py gives it a committer that only tells
            # the relay; a wake per fire row was one more pass per commit)
            self._wake.clear()
            try:
                await self.tick()
                delay = await self.sleep_for()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the loop outlives any one failure (database blip ...)
                log.warning("firing pass failed", error=f"{type(exc).__name__}: {exc}")
                delay = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.0))

    async def sleep_for(self) -> float:
        """Seconds until the earliest due schedule or the next look at queued and stale fires."""
        now = self.clock()
        retry = max(0.0, self._next_retry - time.monotonic())
        limit = now + min(self.config.max_sleep, timedelta(seconds=retry))
        due = (
            await Schedule.filter(next_due_at__isnull=False)  # see tick: next_due_at alone
            .order_by("next_due_at")
            .limit(1)
            .values_list("next_due_at", flat=True)
        )
        if due and isinstance(due[0], datetime):
            limit = min(limit, due[0])
        return (limit - now).total_seconds()

    # ---- one pass -----------------------------------------------------------------------------

    async def tick(self) -> int:
        """Process everything due now; the number of history rows written."""
        now = self.clock()
        written = 0
        # next_due_at alone: it is NULL whenever a schedule is paused, deleted or ended (refresh_next),
        # so the index on it answers; with `enabled`/`is_deleted` in the filter SQLite chose the
        # is_deleted index and sorted every schedule on every pass (bench: 10,000 schedules)
        due = await (
            Schedule.filter(next_due_at__lte=now)
            .order_by("next_due_at")
            .limit(self.config.batch)
            .values_list("id", flat=True)
        )
        for schedule_id in due:
            written += await self.process(str(schedule_id))
        if time.monotonic() >= self._next_retry:  # every queue_recheck, not every pass
            self._next_retry = time.monotonic() + self.config.queue_recheck.total_seconds()
            await self.retry_pending()
        return written

    async def process(self, schedule_id: str) -> int:
        """Claim and record every due nominal time of one schedule, then start the runs."""
        row, recorded, claimed = await self._claim(schedule_id)
        for fire in claimed:  # concurrently: a slow runJob never delays the next schedule's fire
            task = asyncio.create_task(self.start_run(fire, row), name=f"schedules-start-{fire.id}")
            self._starts.add(task)
            task.add_done_callback(self._starts.discard)
        return len(recorded) + len(claimed)

    async def claim(self, schedule_id: str) -> tuple[list[ScheduleFire], list[ScheduleFire]]:
        """One transaction: a history row for every due nominal time (decided ones final, runs
        claimed STARTING) and the cursor moved past them. (recorded, claimed)."""
        _, recorded, claimed = await self._claim(schedule_id)
        return recorded, claimed

    async def _claim(
        self, schedule_id: str
    ) -> tuple[Schedule | None, list[ScheduleFire], list[ScheduleFire]]:
        claimed: list[ScheduleFire] = []
        recorded: list[ScheduleFire] = []
        async with unit_of_work(self.committer):
            row = await Schedule.filter(id=schedule_id).select_for_update().first()
            now = self.clock()
            if row is not None and (not row.enabled or row.is_deleted) and row.next_due_at is not None:
                refresh_next(row, now=now)  # never due while paused or deleted (else: a busy loop)
                await row.save(update_fields=["next_fire_at", "next_due_at", "updated_at"])
                return None, [], []
            if row is None or row.next_due_at is None or row.next_due_at > now:
                return None, [], []  # another replica got here first, or it changed
            spec = spec_of(row)
            after = row.cursor_at or row.created_at
            # runs being started or queued count towards maxRuns before they settle as FIRED
            started = row.fire_count + (await _pending(row.id) if row.max_runs is not None else 0)
            # in nominal order; with jitter a later slot may fall due before an earlier one: stop at
            # the first that is not due yet, the rest wait for their turn.
            ready = []
            for slot in islice(
                slots(spec, schedule_id=row.id, after=after, fire_count=started), MAX_SLOTS_PER_PASS
            ):
                if slot.fire_at > now:
                    break
                ready.append(slot)
            decisions = plan_due(
                ready,
                now=now,
                policy=MisfirePolicy(row.misfire_policy),
                catch_up_window=timedelta(seconds=row.catch_up_window_seconds),
                grace=self.config.misfire_grace,
            )
            for decision in decisions:
                slot = decision.slot
                fire = ScheduleFire(
                    id=str(new_uuid7()),
                    schedule_id=row.id,
                    job_id=row.job_id,
                    scheduled_for=slot.scheduled_for,
                    fired_at=now if decision.outcome is None else None,  # when the scheduler acted
                    outcome=decision.outcome.value if decision.outcome else STARTING,
                    reason=decision.reason or slot.note,
                    catch_up=decision.catch_up,
                )
                await fire.save()
                if decision.outcome is None:
                    claimed.append(fire)
                else:
                    recorded.append(fire)
                    await record_event(Outbox, events.fire_recorded(fire, owner_id=row.owner_id))
            if ready:
                row.cursor_at = ready[-1].scheduled_for
            refresh_next(row, now=now, fire_count=started + len(claimed))
            await row.save(update_fields=["cursor_at", "next_fire_at", "next_due_at", "updated_at"])
        for fire in recorded:
            await self._announce(fire)
        return row, recorded, claimed

    async def retry_pending(self) -> None:
        """QUEUED fires whose job is free now, and claims a crashed replica left STARTING."""
        stale = self.clock() - self.config.claim_timeout
        pending = (
            await ScheduleFire.filter(outcome=FireOutcome.QUEUED.value).order_by("scheduled_for").limit(50)
        )
        pending += (
            await ScheduleFire.filter(outcome=STARTING, updated_at__lt=stale)
            .order_by("scheduled_for")
            .limit(50)
        )
        for fire in pending:
            await self.start_run(fire)

    # ---- starting one run ---------------------------------------------------------------------

    async def start_run(self, fire: ScheduleFire, schedule: Schedule | None = None) -> None:
        """``schedule``: the row as the claim read it (saves a read), else read here."""
        if schedule is None:
            schedule = await Schedule.get_or_none(id=fire.schedule_id)
        if schedule is None:
            return
        outcome, reason, execution_id = await self._try_start(schedule, fire)
        await self.settle(fire, schedule, outcome=outcome, reason=reason, execution_id=execution_id)

    async def _try_start(
        self, schedule: Schedule, fire: ScheduleFire
    ) -> tuple[FireOutcome | None, str | None, str | None]:
        """(outcome, reason, execution id); outcome None means: leave it for a later pass."""
        try:
            problem = await self.owners.problem(schedule.owner_id)
            if problem is not None:
                return FireOutcome.FAILED, problem, None
            policy = OverlapPolicy(schedule.overlap_policy)
            if policy is not OverlapPolicy.ALLOW:
                active = await self.runs.active_run(schedule.job_id)
                if active is not None:
                    if policy is OverlapPolicy.SKIP:
                        return (
                            FireOutcome.SKIPPED_OVERLAP,
                            f"execution {active} of the job is still running",
                            None,
                        )
                    queued = ScheduleFire.filter(schedule_id=schedule.id, outcome=FireOutcome.QUEUED.value)
                    if await queued.exclude(id=fire.id).exists():  # one waits; more would pile up
                        return FireOutcome.SKIPPED_OVERLAP, "a fire of this schedule is already queued", None
                    return FireOutcome.QUEUED, f"waiting for execution {active} to finish", None
            started = await self.runs.run_job(
                job_id=schedule.job_id,
                target_ids=schedule.target_ids,
                parameters=schedule.parameters,
                key=f"schedule-fire:{fire.id}",
            )
        except ServiceCallError as exc:
            if fire.outcome == STARTING and self.clock() - fire.created_at < self.config.claim_timeout * 10:
                log.warning("could not start a scheduled run yet; retrying", fire=fire.id, error=str(exc))
                return None, None, None
            return FireOutcome.FAILED, f"could not start the run: {exc}", None
        if started.execution_id is not None:
            return FireOutcome.FIRED, fire.reason, started.execution_id
        if started.already_running:
            return FireOutcome.SKIPPED_OVERLAP, started.error, None
        return FireOutcome.FAILED, started.error, None

    async def settle(
        self,
        fire: ScheduleFire,
        schedule: Schedule,
        *,
        outcome: FireOutcome | None,
        reason: str | None,
        execution_id: str | None,
    ) -> None:
        if outcome is None or (outcome is FireOutcome.QUEUED and fire.outcome == FireOutcome.QUEUED.value):
            return  # unchanged: still waiting
        async with unit_of_work(self.committer):
            now = self.clock()
            current = fire
            was_queued = fire.outcome == FireOutcome.QUEUED.value
            if outcome is FireOutcome.FIRED and (was_queued or fire.fired_at is None):
                current.fired_at = now  # a queued fire starts now
            started_at = current.fired_at or now
            late_ms = max(0, int((started_at - current.scheduled_for).total_seconds() * 1000))
            # only from the state this replica saw: if another replica settled it meanwhile, no-op
            changed = await ScheduleFire.filter(id=fire.id, outcome=fire.outcome).update(
                outcome=outcome.value,
                reason=reason,
                execution_id=execution_id,
                fired_at=current.fired_at,
                late_ms=late_ms if outcome is FireOutcome.FIRED else None,
                updated_at=now,
            )
            if not changed:
                return  # another replica settled it
            current.outcome, current.reason, current.execution_id = outcome.value, reason, execution_id
            if outcome is FireOutcome.FIRED:
                current.late_ms = late_ms
                if schedule.max_runs is None:  # nothing to recompute: count it in one statement
                    await Schedule.filter(id=schedule.id).update(
                        fire_count=F("fire_count") + 1, last_fire_at=current.scheduled_for, updated_at=now
                    )
                elif row := await Schedule.filter(id=schedule.id).select_for_update().first():
                    row.fire_count += 1
                    row.last_fire_at = current.scheduled_for
                    # this fire is FIRED in the database already (counted in fire_count, not pending)
                    refresh_next(row, now=now, fire_count=row.fire_count + await _pending(row.id))
                    await row.save(
                        update_fields=[
                            "fire_count",
                            "last_fire_at",
                            "next_fire_at",
                            "next_due_at",
                            "updated_at",
                        ]
                    )
            await record_event(Outbox, events.fire_recorded(current, owner_id=schedule.owner_id))
        await self._announce(current)

    async def _announce(self, fire: ScheduleFire) -> None:
        with contextlib.suppress(Exception):  # live fan-out is best effort; history is the record
            await self.broadcaster.publish(FIRES_CHANNEL, fire_message(fire))

    async def run_now(self, schedule: Schedule, *, actor: str | None) -> ScheduleFire:
        """runScheduleNow: a fire claimed for this instant, started like any other (owner checked)."""
        async with unit_of_work(self.committer):
            fire = ScheduleFire(
                id=str(new_uuid7()),
                schedule_id=schedule.id,
                job_id=schedule.job_id,
                scheduled_for=self.clock(),
                fired_at=self.clock(),
                outcome=STARTING,
                reason=f"run now by {actor}" if actor else "run now",
            )
            await fire.save()
        await self.start_run(fire)
        return await ScheduleFire.get(id=fire.id)

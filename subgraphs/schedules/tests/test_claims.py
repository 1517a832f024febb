"""The claim: one history row per (schedule, nominal time), however often the loop looks.

On a PostgreSQL database of its own (no other service: only the claiming half of the loop runs here;
starting runs is covered against the real platform in test_firing_api.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError

from opsconductor_schedules.models import Schedule, ScheduleFire
from opsconductor_schedules.service import (
    DstGapPolicy,
    FireOutcome,
    Kind,
    MisfirePolicy,
    ScheduleDraft,
    Scheduler,
    SchedulerConfig,
)
from opsconductor_schedules.service.definitions import STARTING, save_new_schedule
from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.live import InProcessBroadcaster

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2027, 6, 1, 12, tzinfo=UTC)


class Commits:
    """What the runtime is to the loop here: counts commits (no relay in this test)."""

    def __init__(self) -> None:
        self.count = 0

    def events_committed(self) -> None:
        self.count += 1


def scheduler(clock: datetime) -> Scheduler:
    return Scheduler(
        committer=Commits(),
        owners=None,  # type: ignore[arg-type] - claim() never calls them
        runs=None,  # type: ignore[arg-type]
        broadcaster=InProcessBroadcaster(),
        config=SchedulerConfig(),
        clock=lambda: clock,
    )


async def test_an_outage_is_claimed_once_with_the_misfire_policy(db: ServiceDatabase) -> None:
    draft = ScheduleDraft(
        job_id="job-1",
        kind=Kind.INTERVAL,
        timezone="UTC",
        interval_seconds=10,
        misfire_policy=MisfirePolicy.RUN_ALL,
        catch_up_window_seconds=60,
    )
    row = await save_new_schedule(draft=draft, owner_id="u1", now=T0)
    assert row.next_fire_at == T0 + timedelta(seconds=10)
    now = T0 + timedelta(seconds=95)  # stopped for 95 s
    recorded, claimed = await scheduler(now).claim(row.id)
    assert [f.outcome for f in recorded] == [FireOutcome.MISSED.value] * 3  # 10, 20, 30 s: older than 60 s
    assert len(claimed) == 6 and all(f.outcome == STARTING for f in claimed)  # 40..90 s
    assert sum(f.catch_up for f in claimed) == 3  # 40, 50, 60 s: 55, 45, 35 s late; 70..90 s are on time
    # a second replica (or a restart) at the same moment finds nothing left to claim
    assert await scheduler(now).claim(row.id) == ([], [])
    rows = await ScheduleFire.filter(schedule_id=row.id).order_by("scheduled_for")
    assert len(rows) == 9 and len({r.scheduled_for for r in rows}) == 9
    fresh = await Schedule.get(id=row.id)
    assert fresh.cursor_at == T0 + timedelta(seconds=90)
    assert fresh.next_due_at == T0 + timedelta(seconds=100)


async def test_the_unique_row_refuses_a_second_claim(db: ServiceDatabase) -> None:
    draft = ScheduleDraft(job_id="job-2", kind=Kind.INTERVAL, timezone="UTC", interval_seconds=10)
    row = await save_new_schedule(draft=draft, owner_id="u1", now=T0)
    await ScheduleFire.create(id="a", schedule_id=row.id, job_id="job-2", scheduled_for=T0, outcome=STARTING)
    with pytest.raises(IntegrityError):
        await ScheduleFire.create(
            id="b", schedule_id=row.id, job_id="job-2", scheduled_for=T0, outcome=STARTING
        )


async def test_max_runs_counts_claims_that_have_not_settled(db: ServiceDatabase) -> None:
    draft = ScheduleDraft(job_id="job-3", kind=Kind.INTERVAL, timezone="UTC", interval_seconds=10, max_runs=2)
    row = await save_new_schedule(draft=draft, owner_id="u1", now=T0)
    _, first = await scheduler(T0 + timedelta(seconds=10)).claim(row.id)
    _, second = await scheduler(T0 + timedelta(seconds=20)).claim(row.id)
    assert len(first) == len(second) == 1  # still STARTING: fire_count is 0 in the row
    assert await scheduler(T0 + timedelta(seconds=30)).claim(row.id) == ([], [])
    assert (await Schedule.get(id=row.id)).next_due_at is None


async def test_a_dst_skip_is_a_history_row_without_a_run(db: ServiceDatabase) -> None:
    draft = ScheduleDraft(
        job_id="job-4",
        kind=Kind.CRON,
        timezone="America/New_York",
        cron="30 2 * * *",
        dst_gap_policy=DstGapPolicy.SKIP,
    )
    row = await save_new_schedule(draft=draft, owner_id="u1", now=datetime(2027, 3, 13, 12, tzinfo=UTC))
    recorded, claimed = await scheduler(datetime(2027, 3, 14, 7, 0, 5, tzinfo=UTC)).claim(row.id)
    assert claimed == [] and [f.outcome for f in recorded] == [FireOutcome.SKIPPED_DST.value]
    assert recorded[0].scheduled_for == datetime(2027, 3, 14, 7, tzinfo=UTC)
    assert "02:30 does not exist" in (recorded[0].reason or "")
    assert (await Schedule.get(id=row.id)).next_fire_at == datetime(2027, 3, 15, 6, 30, tzinfo=UTC)


async def test_two_replicas_claiming_at_once_never_claim_a_time_twice(db: ServiceDatabase) -> None:
    """Two loops (each its own transactions and connections) race over the same due schedules, pass
    after pass: every nominal time gets exactly one row, whichever replica wrote it."""
    import asyncio

    ids = []
    for n in range(20):
        draft = ScheduleDraft(job_id=f"race-{n}", kind=Kind.INTERVAL, timezone="UTC", interval_seconds=1)
        ids.append((await save_new_schedule(draft=draft, owner_id="u1", now=T0)).id)
    claimed = 0
    for second in range(1, 31):
        now = T0 + timedelta(seconds=second)
        one, two = scheduler(now), scheduler(now)
        results = await asyncio.gather(*(s.claim(i) for i in ids for s in (one, two)))
        claimed += sum(len(rec) + len(cl) for rec, cl in results)
    rows = await ScheduleFire.filter(schedule_id__in=ids).values_list("schedule_id", "scheduled_for")
    assert claimed == len(rows) == 20 * 30
    assert len(set(rows)) == len(rows)


async def test_two_replicas_settling_one_fire_count_it_once(db: ServiceDatabase) -> None:
    """A claim retried by a second replica (same idempotency key) settles once: the first update wins,
    the second finds the fire no longer STARTING and changes nothing."""
    import asyncio

    draft = ScheduleDraft(job_id="job-5", kind=Kind.INTERVAL, timezone="UTC", interval_seconds=10)
    row = await save_new_schedule(draft=draft, owner_id="u1", now=T0)
    now = T0 + timedelta(seconds=10)
    _, claimed = await scheduler(now).claim(row.id)
    assert len(claimed) == 1
    copies = [await ScheduleFire.get(id=claimed[0].id) for _ in range(2)]  # each replica's own read
    await asyncio.gather(
        *(
            scheduler(now).settle(copy, row, outcome=FireOutcome.FIRED, reason=None, execution_id=f"run-{n}")
            for n, copy in enumerate(copies)
        )
    )
    settled = await ScheduleFire.get(id=claimed[0].id)
    assert settled.outcome == FireOutcome.FIRED.value and settled.execution_id in ("run-0", "run-1")
    assert settled.late_ms == 0 and settled.fired_at == now
    assert (await Schedule.get(id=row.id)).fire_count == 1

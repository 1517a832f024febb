"""Scheduler replicas as real processes on one PostgreSQL database (see replicas.py).

* Two replicas, one killed with SIGKILL half-way: >= 1,000 fires of 1-second INTERVAL schedules,
  every nominal time started exactly once — counted as executions in the executions service.
* A replica stopped for 90 s, then restarted: the misfire policies SKIP, RUN_ONCE and RUN_ALL.
  The 90 s are not slept: while the replica is stopped, every time the schedules database holds
  (definitions, cursors, history) is moved 90 s into the past, which is the state a 90 s longer
  stop leaves; the restarted process then takes its real start-up path (migrations, first pass
  from the stored cursor) against the real clock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from subgraphs.schedules.tests.helpers import create_job, unique_loopback
from subgraphs.schedules.tests.replicas import replica_set
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = """mutation($i: ScheduleInput!) { createSchedule(input: $i) { __typename
  ... on ScheduleCreated { schedule { id } } ... on Error { message } } }"""
RUN_COUNT = """query($job: ID!) { executions(first: 1, filter: {jobId: $job}) { totalCount } }"""

SCHEDULES = 12
SECONDS = 90  # nominal times per schedule: SECONDS + 1 (start and end inclusive) -> 1,092 fires


async def _create(url: str, token: str, job: str, **fields: Any) -> str:
    body = await gql(
        url,
        CREATE,
        {"i": {"jobId": job, "kind": "INTERVAL", "timezone": "UTC", "intervalSeconds": 1, **fields}},
        token=token,
    )
    created = body["data"]["createSchedule"]
    assert created["__typename"] == "ScheduleCreated", body
    return str(created["schedule"]["id"])


async def _runs(platform: Any, token: str, job: str) -> int:
    body = await gql(platform.url("executions"), RUN_COUNT, {"job": job}, token=token)
    return int(body["data"]["executions"]["totalCount"])


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def _settled(replicas: Any, timeout: float) -> None:
    """Every schedule ended (no next due time) and no fire still being started or queued."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        due = await replicas.sql("SELECT count(*) AS n FROM schedules WHERE next_due_at IS NOT NULL")
        pending = await replicas.sql(
            "SELECT count(*) AS n FROM schedule_fires WHERE outcome IN ('STARTING', 'QUEUED')"
        )
        if due[0]["n"] == 0 and pending[0]["n"] == 0:
            return
        await asyncio.sleep(1)
    raise AssertionError("fires did not settle in time")


async def test_two_replicas_one_killed_half_way_fire_every_time_exactly_once(
    platform: Any, admin_token: str, tmp_path: Path
) -> None:
    # a claim the killed replica left STARTING is taken over after 5 s (not the default 60 s)
    async with replica_set(tmp_path, OPSC_SCHEDULES_CLAIM_TIMEOUT_SECONDS="5") as replicas:
        a = await replicas.start("a")
        b = await replicas.start("b")
        # each schedule its own job on a closed port: each run is a real execution (runJob, the
        # engine) that fails fast at connect, so the machine can take ~12 runs a second
        jobs = [
            await create_job(platform, admin_token, unique_loopback(), closed_port())
            for _ in range(SCHEDULES)
        ]
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        end = start + timedelta(seconds=SECONDS)
        schedules = {}
        for n, job in enumerate(jobs):
            url = (a, b)[n % 2].url  # definitions through either replica
            schedules[job] = await _create(
                url, admin_token, job, startAt=_iso(start), endAt=_iso(end), overlapPolicy="ALLOW"
            )
        expected = SCHEDULES * (SECONDS + 1)
        assert expected >= 1000
        await asyncio.sleep((start - datetime.now(UTC)).total_seconds() + SECONDS / 2)
        a.kill()  # half-way: whatever it had claimed but not started is B's after the claim timeout
        await a.process.wait()
        await _settled(replicas, timeout=SECONDS / 2 + 60)

        rows = await replicas.sql(
            "SELECT schedule_id, scheduled_for, outcome, execution_id FROM schedule_fires"
        )
        assert {r["outcome"] for r in rows} == {"FIRED"}, [r for r in rows if r["outcome"] != "FIRED"][:5]
        fired = {(r["schedule_id"], r["scheduled_for"]) for r in rows}
        assert len(fired) == len(rows) == len({r["execution_id"] for r in rows})  # one run per time
        runs = 0
        for job in jobs:  # counted by the executions service: no run that history does not know
            runs += await _runs(platform, admin_token, job)
        missed, duplicates = expected - len(fired), runs - len(fired)
        assert (missed, duplicates) == (0, 0), (expected, len(fired), runs)


async def test_a_restart_after_90_s_applies_each_misfire_policy(
    platform: Any, admin_token: str, tmp_path: Path
) -> None:
    interval, window = 5, 22
    # a fire is on time within 2 s (not the default 30 s): the outage's fires are all late
    async with replica_set(tmp_path, OPSC_SCHEDULES_MISFIRE_GRACE_SECONDS="2") as replicas:
        replica = await replicas.start("one")
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
        # ends 95 s after its start: once moved 90 s back it ends 5 s after start, before the restart
        end = start + timedelta(seconds=95)
        jobs: dict[str, str] = {}
        schedules: dict[str, str] = {}
        for policy in ("SKIP", "RUN_ONCE", "RUN_ALL"):
            jobs[policy] = await create_job(platform, admin_token, unique_loopback(), closed_port())
            schedules[policy] = await _create(
                replica.url,
                admin_token,
                jobs[policy],
                intervalSeconds=interval,
                startAt=_iso(start),
                endAt=_iso(end),
                misfirePolicy=policy,
                catchUpWindowSeconds=window,
                overlapPolicy="ALLOW",
            )
        # fires at start and start + 5 s, then stopped (gracefully) before start + 10 s
        await asyncio.sleep((start - datetime.now(UTC)).total_seconds() + 7)
        await replica.stop()
        before = await replicas.sql(
            "SELECT schedule_id, count(*) AS n, max(scheduled_for) AS last FROM schedule_fires "
            "WHERE outcome = 'FIRED' GROUP BY schedule_id"
        )
        assert {r["schedule_id"]: r["n"] for r in before} == dict.fromkeys(schedules.values(), 2), before
        runs_before = {p: await _runs(platform, admin_token, job) for p, job in jobs.items()}
        assert set(runs_before.values()) == {2}, runs_before
        shift = timedelta(seconds=90)
        await replicas.sql(
            "UPDATE schedules SET anchor = anchor - $1::interval, start_at = start_at - $1::interval, end_at = end_at - $1::interval, "
            "last_fire_at = last_fire_at - $1::interval, cursor_at = cursor_at - $1::interval, next_fire_at = next_fire_at - $1::interval, "
            "next_due_at = next_due_at - $1::interval, created_at = created_at - $1::interval, updated_at = updated_at - $1::interval",
            shift,
        )
        await replicas.sql(
            "UPDATE schedule_fires SET scheduled_for = scheduled_for - $1::interval, fired_at = fired_at - $1::interval, "
            "created_at = created_at - $1::interval, updated_at = updated_at - $1::interval",
            shift,
        )
        await replicas.start("one-again")
        await _settled(replicas, timeout=60)

        outage = (start + timedelta(seconds=2 * interval) - shift, end - shift)  # the stopped fires
        expected = int((outage[1] - outage[0]).total_seconds()) // interval + 1
        for policy, schedule in schedules.items():
            rows = await replicas.sql(
                "SELECT scheduled_for, fired_at, outcome, catch_up FROM schedule_fires "
                "WHERE schedule_id = $1 AND scheduled_for >= $2 ORDER BY scheduled_for",
                schedule,
                outage[0],
            )
            assert len(rows) == expected and rows[-1]["scheduled_for"] == outage[1], (policy, rows)
            fired = [r for r in rows if r["outcome"] == "FIRED"]
            missed = [r for r in rows if r["outcome"] == "MISSED"]
            assert len(fired) + len(missed) == expected, (policy, rows)
            assert all(r["catch_up"] for r in fired), (policy, fired)
            new_runs = await _runs(platform, admin_token, jobs[policy]) - runs_before[policy]
            assert new_runs == len(fired), (policy, new_runs, fired)  # executions, not rows
            if policy == "SKIP":
                assert fired == [], rows
            elif policy == "RUN_ONCE":
                assert [r["scheduled_for"] for r in fired] == [outage[1]], rows  # the latest one
            else:
                passed = fired[0]["fired_at"]  # the first pass after the restart decided all of them
                inside = [r for r in rows if passed - r["scheduled_for"] <= timedelta(seconds=window)]
                assert fired == inside and len(fired) >= 2, rows
                assert all(passed - r["scheduled_for"] > timedelta(seconds=window) for r in missed)

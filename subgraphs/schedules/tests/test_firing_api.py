"""Schedules against the real platform (PostgreSQL, Redis, Ray, the other subgraphs, the router):
fires start real executions, exactly once per nominal time, as the schedule's owner."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest

from subgraphs.schedules.tests.helpers import create_job as _job
from subgraphs.schedules.tests.helpers import unique_loopback as _unique_loopback
from tests.support.access import ROLE_PASSWORD, create_user
from tests.support.platform import gql, login
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = """mutation($i: ScheduleInput!) { createSchedule(input: $i) { __typename
  ... on ScheduleCreated { schedule { id nextFireAt owner { id } } } ... on Error { message } } }"""
PAUSE = """mutation($id: ID!) { pauseSchedule(id: $id) { __typename ... on ScheduleUpdated { schedule { enabled } } } }"""
HISTORY = """query($id: ID!) { schedule(id: $id) { fireCount history(first: 500) { totalCount edges { node {
  scheduledFor firedAt outcome reason lateMs execution { id } } } } } }"""
RUNS = """query($job: ID!) { executions(first: 500, filter: {jobId: $job}) { totalCount edges { node { id status
  createdAt finishedAt } } } }"""
SET_ACTIVE = """mutation($id: ID!, $a: Boolean!) { setUserActive(id: $id, active: $a) { __typename } }"""


@contextlib.contextmanager
def _blackhole() -> Iterator[tuple[str, int]]:
    """A loopback address of our own whose TCP handshake never completes (runs hang in connect)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((_unique_loopback(), 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect_ex(address)
            fillers.append(filler)
        time.sleep(0.05)
        yield address[0], address[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def _schedule(platform: Any, token: str, job: str, **extra: Any) -> dict[str, Any]:
    body = await gql(
        platform.url("schedules"),
        CREATE,
        {"i": {"jobId": job, "kind": "INTERVAL", "timezone": "Europe/Berlin", "intervalSeconds": 1, **extra}},
        token=token,
    )
    return body


async def _history(platform: Any, token: str, schedule: str) -> list[dict[str, Any]]:
    body = await gql(platform.url("schedules"), HISTORY, {"id": schedule}, token=token)
    return [e["node"] for e in body["data"]["schedule"]["history"]["edges"]]


async def _wait_for(predicate: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise AssertionError("condition not met in time")


async def test_interval_fires_on_time_exactly_once_per_nominal_time(platform: Any, admin_token: str) -> None:
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await _schedule(platform, admin_token, job, overlapPolicy="ALLOW")
    created = body["data"]["createSchedule"]
    assert created["__typename"] == "ScheduleCreated", body
    schedule = created["schedule"]["id"]
    await asyncio.sleep(6)
    await gql(platform.url("schedules"), PAUSE, {"id": schedule}, token=admin_token)
    await asyncio.sleep(1.5)  # starts in flight settle
    rows = await _history(platform, admin_token, schedule)
    fired = [r for r in rows if r["outcome"] == "FIRED"]
    assert len(fired) >= 4, rows
    assert all(r["outcome"] == "FIRED" for r in rows), rows
    nominal = sorted(datetime.fromisoformat(r["scheduledFor"]) for r in rows)
    assert len(set(nominal)) == len(nominal)
    assert all((b - a).total_seconds() == 1 for a, b in pairwise(nominal)), nominal
    executions = {r["execution"]["id"] for r in fired}
    assert len(executions) == len(fired)  # one run per fire, never two
    runs = await gql(platform.url("executions"), RUNS, {"job": job}, token=admin_token)
    assert runs["data"]["executions"]["totalCount"] == len(fired), runs  # count executions, not rows
    late = sorted(r["lateMs"] for r in fired)
    assert late[len(late) // 2] < 1000, late  # on time: the loop wakes for the fire, no poll


async def test_a_viewer_cannot_create_a_schedule(platform: Any, admin_token: str) -> None:
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    name = f"sview{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, name, ["viewer"])
    token = await login(platform.url("auth"), name, ROLE_PASSWORD)
    body = await _schedule(platform, token, job)
    assert body["data"] is None or body["data"].get("createSchedule") is None, body
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


async def test_an_unknown_job_or_bad_definition_is_refused(platform: Any, admin_token: str) -> None:
    body = await _schedule(platform, admin_token, str(uuid.uuid4()))
    assert body["data"]["createSchedule"]["__typename"] == "NotFound", body
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await gql(
        platform.url("schedules"),
        CREATE,
        {"i": {"jobId": job, "kind": "CRON", "timezone": "America/New_York", "cron": "0 9 * * 8"}},
        token=admin_token,
    )
    result = body["data"]["createSchedule"]
    assert result["__typename"] == "ValidationFailed" and "out of range" in result["message"], body


async def test_a_deactivated_owner_makes_the_fire_failed_with_the_reason(
    platform: Any, admin_token: str
) -> None:
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    name = f"sowner{uuid.uuid4().hex[:6]}"
    user_id = await create_user(platform, admin_token, name, ["job_manager"])
    token = await login(platform.url("auth"), name, ROLE_PASSWORD)
    body = await _schedule(platform, token, job, overlapPolicy="ALLOW")
    created = body["data"]["createSchedule"]
    assert created["__typename"] == "ScheduleCreated" and created["schedule"]["owner"]["id"] == user_id, body
    schedule = created["schedule"]["id"]
    await _wait_for(lambda: _fired(platform, admin_token, schedule))
    answer = await gql(platform.url("users"), SET_ACTIVE, {"id": user_id, "a": False}, token=admin_token)
    assert answer["data"]["setUserActive"]["__typename"] != "NotFound", answer

    async def failed() -> list[dict[str, Any]]:
        return [r for r in await _history(platform, admin_token, schedule) if r["outcome"] == "FAILED"]

    rows = await _wait_for(failed)
    assert "deactivated" in rows[0]["reason"] and rows[0]["execution"] is None, rows
    await gql(platform.url("schedules"), PAUSE, {"id": schedule}, token=admin_token)


async def _fired(platform: Any, token: str, schedule: str) -> bool:
    return any(r["outcome"] == "FIRED" for r in await _history(platform, token, schedule))


async def test_overlap_skip_never_runs_two_at_once(platform: Any, admin_token: str) -> None:
    with _blackhole() as (host, port):  # each run hangs in connect for the connect timeout (3 s)
        job = await _job(platform, admin_token, host, port)
        body = await _schedule(platform, admin_token, job, overlapPolicy="SKIP")
        schedule = body["data"]["createSchedule"]["schedule"]["id"]
        await asyncio.sleep(5)
        await gql(platform.url("schedules"), PAUSE, {"id": schedule}, token=admin_token)
    await asyncio.sleep(1)
    rows = await _history(platform, admin_token, schedule)
    outcomes = [r["outcome"] for r in rows]
    assert "SKIPPED_OVERLAP" in outcomes and "FIRED" in outcomes, rows
    skipped = [r for r in rows if r["outcome"] == "SKIPPED_OVERLAP"]
    assert all("still running" in (r["reason"] or "") for r in skipped), skipped
    runs = await gql(platform.url("executions"), RUNS, {"job": job}, token=admin_token)
    assert runs["data"]["executions"]["totalCount"] == outcomes.count("FIRED"), runs


async def test_job_schedules_next_run_and_preview_through_the_router(
    platform: Any, router: Any, admin_token: str
) -> None:
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await gql(
        platform.url("schedules"),
        CREATE,
        {"i": {"jobId": job, "kind": "RECURRING", "timezone": "America/New_York",
               "recurring": {"unit": "WEEKS", "every": 1, "at": "02:30", "weekdays": ["SUN"]}}},
        token=admin_token,
    )  # fmt: skip
    assert body["data"]["createSchedule"]["__typename"] == "ScheduleCreated", body
    answer = await gql(
        router.url,
        """query($id: ID!) { job(id: $id) { id nextRunAt schedules { id kind timezone description } } }""",
        {"id": job},
        token=admin_token,
    )
    found = answer["data"]["job"]
    assert len(found["schedules"]) == 1 and found["nextRunAt"] is not None, answer
    assert found["schedules"][0]["description"] == "Every week on Sunday at 02:30 (America/New_York)"
    assert datetime.fromisoformat(found["nextRunAt"]) > datetime.now(UTC)
    preview = await gql(
        router.url,
        """query($i: ScheduleInput!, $after: DateTime) { previewSchedule(input: $i, count: 3, after: $after) {
        description nextFireTimes notes } }""",
        {"i": {"jobId": job, "kind": "CRON", "timezone": "America/New_York", "cron": "30 2 * * *"},
         "after": "2027-03-13T00:00:00Z"},
        token=admin_token,
    )  # fmt: skip
    result = preview["data"]["previewSchedule"]
    assert result["nextFireTimes"][1].startswith("2027-03-14T07:00:00"), preview  # 03:00 EDT
    assert any("02:30 does not exist" in n for n in result["notes"]), preview


async def _finished_runs(platform: Any, token: str, job: str, count: int) -> list[dict[str, Any]]:
    """The job's executions, oldest first, once ``count`` of them exist and all have finished."""

    async def done() -> list[dict[str, Any]] | None:
        body = await gql(platform.url("executions"), RUNS, {"job": job}, token=token)
        runs = [e["node"] for e in body["data"]["executions"]["edges"]]
        if len(runs) >= count and all(r["finishedAt"] for r in runs):
            return sorted(runs, key=lambda r: r["createdAt"])
        return None

    return await _wait_for(done)


async def test_overlap_allow_starts_a_run_while_the_previous_one_runs(
    platform: Any, admin_token: str
) -> None:
    with _blackhole() as (host, port):  # each run is RUNNING, hung in connect, for 3 s
        job = await _job(platform, admin_token, host, port)
        body = await _schedule(platform, admin_token, job, overlapPolicy="ALLOW")
        schedule = body["data"]["createSchedule"]["schedule"]["id"]
        await asyncio.sleep(4)
        await gql(platform.url("schedules"), PAUSE, {"id": schedule}, token=admin_token)
        await asyncio.sleep(1)  # starts in flight settle
        rows = await _history(platform, admin_token, schedule)
        assert rows and all(r["outcome"] == "FIRED" for r in rows), rows
        runs = await _finished_runs(platform, admin_token, job, len(rows))
    assert len(runs) == len(rows) >= 3, (runs, rows)  # one execution per fire
    overlapping = [
        (a["id"], b["id"])
        for a, b in pairwise(runs)
        if datetime.fromisoformat(b["createdAt"]) < datetime.fromisoformat(a["finishedAt"])
    ]
    assert overlapping, runs  # a fire started while the run before it was still running


async def test_overlap_queue_starts_the_waiting_fire_when_the_run_ends(
    platform: Any, admin_token: str
) -> None:
    with _blackhole() as (host, port):  # each run is RUNNING, hung in connect, for 3 s
        job = await _job(platform, admin_token, host, port)
        body = await _schedule(platform, admin_token, job, overlapPolicy="QUEUE")
        schedule = body["data"]["createSchedule"]["schedule"]["id"]
        # first fire runs; the next one waits (QUEUED); the one after is skipped (one waits)
        await asyncio.sleep(3.2)
        await gql(platform.url("schedules"), PAUSE, {"id": schedule}, token=admin_token)

        async def queued_started() -> list[dict[str, Any]] | None:
            rows = await _history(platform, admin_token, schedule)
            outcomes = [r["outcome"] for r in rows]
            return rows if "QUEUED" not in outcomes and outcomes.count("FIRED") >= 2 else None

        rows = await _wait_for(queued_started)  # paused: a fire already waiting still runs
        fired = [r for r in rows if r["outcome"] == "FIRED"]
        runs = await _finished_runs(platform, admin_token, job, len(fired))
    assert len(runs) == len(fired) == 2, (runs, rows)
    first, waited = runs
    later = next(r for r in fired if r["execution"]["id"] == waited["id"])
    assert (later["reason"] or "").startswith(f"waiting for execution {first['id']}"), rows
    # started when the first run had ended (not when it was claimed): lateness counts from there
    assert datetime.fromisoformat(later["firedAt"]) >= datetime.fromisoformat(first["finishedAt"]), (
        rows,
        runs,
    )
    assert datetime.fromisoformat(waited["createdAt"]) >= datetime.fromisoformat(first["finishedAt"]), runs
    assert later["lateMs"] >= 1000, later
    skipped = [r for r in rows if r["outcome"] == "SKIPPED_OVERLAP"]
    assert all("already queued" in (r["reason"] or "") for r in skipped), skipped

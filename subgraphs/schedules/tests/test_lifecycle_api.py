"""The rest of the schedule operations against the real platform: update, pause/resume, delete,
runScheduleNow, upcomingFires, the scheduleFires subscription."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from subgraphs.schedules.tests.helpers import create_job as _job
from subgraphs.schedules.tests.helpers import unique_loopback as _unique_loopback
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = """mutation($i: ScheduleInput!) { createSchedule(input: $i) { __typename
  ... on ScheduleCreated { schedule { id nextFireAt enabled } } ... on Error { message } } }"""
UPDATE = """mutation($id: ID!, $i: ScheduleInput!) { updateSchedule(id: $id, input: $i) { __typename
  ... on ScheduleUpdated { schedule { id kind cron nextFireAt } } ... on Error { message } } }"""
PAUSE = """mutation($id: ID!) { pauseSchedule(id: $id) { __typename ... on ScheduleUpdated { schedule { enabled nextFireAt } } } }"""
RESUME = """mutation($id: ID!) { resumeSchedule(id: $id) { __typename ... on ScheduleUpdated { schedule { enabled nextFireAt } } } }"""
DELETE = """mutation($id: ID!) { deleteSchedule(id: $id) { __typename ... on ScheduleDeleted { id } } }"""
RUN_NOW = """mutation($id: ID!) { runScheduleNow(id: $id) { __typename
  ... on ScheduleFireStarted { fire { outcome reason execution { id } } } ... on Error { message } } }"""
UPCOMING = """query($from: DateTime!, $to: DateTime!, $job: ID) { upcomingFires(from: $from, to: $to, jobId: $job) {
  fireAt schedule { id } } }"""
HISTORY = """query($id: ID!) { schedule(id: $id) { history(first: 500) { edges { node {
  scheduledFor outcome reason execution { id } } } } } }"""
FIRES = """subscription($id: ID) { scheduleFires(scheduleId: $id) { scheduledFor outcome } }"""


async def _history(platform: Any, token: str, schedule: str) -> list[dict[str, Any]]:
    body = await gql(platform.url("schedules"), HISTORY, {"id": schedule}, token=token)
    return [e["node"] for e in body["data"]["schedule"]["history"]["edges"]]


async def test_update_pause_resume_delete(platform: Any, admin_token: str) -> None:
    url = platform.url("schedules")
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await gql(
        url,
        CREATE,
        {"i": {"jobId": job, "kind": "CRON", "timezone": "UTC", "cron": "0 3 * * *"}},
        token=admin_token,
    )
    schedule = body["data"]["createSchedule"]["schedule"]["id"]
    body = await gql(
        url,
        UPDATE,
        {"id": schedule, "i": {"jobId": job, "kind": "CRON", "timezone": "UTC", "cron": "0 4 * * mon"}},
        token=admin_token,
    )
    updated = body["data"]["updateSchedule"]
    assert updated["__typename"] == "ScheduleUpdated" and updated["schedule"]["cron"] == "0 4 * * mon", body
    next_fire = datetime.fromisoformat(updated["schedule"]["nextFireAt"])
    assert next_fire.weekday() == 0 and next_fire.hour == 4
    paused = (await gql(url, PAUSE, {"id": schedule}, token=admin_token))["data"]["pauseSchedule"]["schedule"]
    assert paused == {"enabled": False, "nextFireAt": None}
    resumed = (await gql(url, RESUME, {"id": schedule}, token=admin_token))["data"]["resumeSchedule"][
        "schedule"
    ]
    assert resumed["enabled"] and resumed["nextFireAt"] == updated["schedule"]["nextFireAt"]
    assert (await gql(url, DELETE, {"id": schedule}, token=admin_token))["data"]["deleteSchedule"][
        "id"
    ] == schedule
    gone = await gql(url, "query($id: ID!) { schedule(id: $id) { id } }", {"id": schedule}, token=admin_token)
    assert gone["data"]["schedule"] is None
    again = await gql(url, PAUSE, {"id": schedule}, token=admin_token)
    assert again["data"]["pauseSchedule"]["__typename"] == "NotFound"


async def test_run_now_upcoming_and_the_fires_subscription(platform: Any, admin_token: str) -> None:
    url = platform.url("schedules")
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await gql(
        url,
        CREATE,
        {
            "i": {
                "jobId": job,
                "kind": "INTERVAL",
                "timezone": "UTC",
                "intervalSeconds": 3600,
                "overlapPolicy": "ALLOW",
            }
        },
        token=admin_token,
    )
    schedule = body["data"]["createSchedule"]["schedule"]["id"]
    now = datetime.now(UTC)
    calendar = await gql(
        url,
        UPCOMING,
        {"from": now.isoformat(), "to": (now + timedelta(hours=5, minutes=1)).isoformat(), "job": job},
        token=admin_token,
    )
    fires = calendar["data"]["upcomingFires"]
    assert len(fires) == 5 and all(f["schedule"]["id"] == schedule for f in fires), calendar

    ws = platform.url("schedules").replace("http://", "ws://")
    received: list[dict[str, Any]] = []

    async def listen() -> None:
        """The first fire the subscription delivers (it never completes by itself)."""
        import websockets

        async with websockets.connect(
            ws, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        ) as conn:
            await conn.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {admin_token}"}})
            )
            assert json.loads(await conn.recv())["type"] == "connection_ack"
            payload = {"query": FIRES, "variables": {"id": schedule}}
            await conn.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            ready.set()
            async for raw in conn:
                message = json.loads(raw)
                if message["type"] == "next":
                    received.append(message["payload"])
                    return

    ready = asyncio.Event()
    listener = asyncio.create_task(listen())
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.3)
    body = await gql(url, RUN_NOW, {"id": schedule}, token=admin_token)
    started = body["data"]["runScheduleNow"]
    assert started["__typename"] == "ScheduleFireStarted", body
    assert started["fire"]["outcome"] == "FIRED" and started["fire"]["execution"]["id"], body
    await asyncio.wait_for(listener, 15)
    assert received[0]["data"]["scheduleFires"]["outcome"] == "FIRED", received
    rows = await _history(platform, admin_token, schedule)
    assert len(rows) == 1 and rows[0]["reason"].startswith("run now by"), rows
    missing = await gql(url, RUN_NOW, {"id": str(uuid.uuid4())}, token=admin_token)
    assert missing["data"]["runScheduleNow"]["__typename"] == "NotFound"


async def test_deleting_the_job_deletes_its_schedules(platform: Any, admin_token: str) -> None:
    url = platform.url("schedules")
    job = await _job(platform, admin_token, _unique_loopback(), closed_port())
    body = await gql(
        url,
        CREATE,
        {"i": {"jobId": job, "kind": "CRON", "timezone": "UTC", "cron": "0 3 * * *"}},
        token=admin_token,
    )
    schedule = body["data"]["createSchedule"]["schedule"]["id"]
    deleted = await gql(
        platform.url("jobs"),
        """mutation($id: ID!) { deleteJob(id: $id) { __typename } }""",
        {"id": job},
        token=admin_token,
    )
    assert deleted["data"]["deleteJob"]["__typename"] == "JobDeleted", deleted
    for _ in range(100):  # the jobs.job_deleted event reaches the schedules service
        found = await gql(
            url, "query($id: ID!) { schedule(id: $id) { id } }", {"id": schedule}, token=admin_token
        )
        if found["data"]["schedule"] is None:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the schedule of a deleted job is still there")

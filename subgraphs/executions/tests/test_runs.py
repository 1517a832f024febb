"""runJob / cancelExecution / execution queries against the executions subgraph itself (real services,
PostgreSQL, Redis, Ray and sshd)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from subgraphs.executions.tests.factories import create_job, create_target, wait_terminal
from tests.support.access import create_user, role_login
from tests.support.platform import SubscriptionError, gql, subscribe

pytestmark = pytest.mark.asyncio(loop_scope="session")

RUN = """mutation($job: ID!, $targets: [ID!]) { runJob(jobId: $job, targetIds: $targets) { __typename
  ... on ExecutionStarted { execution { id number status } } ... on Error { message } } }"""
CANCEL = """mutation($id: ID!) { cancelExecution(id: $id) { __typename
  ... on ExecutionCancelling { execution { id } } ... on Error { message } } }"""
EXECUTION = """query($id: ID!) { execution(id: $id) { id number status totalTargets succeededTargets failedTargets
  cancelledTargets lastSeq targetRuns { targetId status exitCode message steps { index name status exitCode stdout } } } }"""
EVENTS = """subscription($id: ID!, $after: Int) { executionEvents(executionId: $id, afterSeq: $after) {
  seq type targetId data status } }"""
BATCHES = """subscription($id: ID!, $after: Int, $max: Int!) {
  executionEventBatches(executionId: $id, afterSeq: $after, maxBatch: $max) {
    lastSeq finished events { seq type targetId data status } } }"""


@pytest.fixture(scope="module")
async def setup(platform: Any, admin_token: str, sshd: Any) -> dict[str, Any]:
    hosts = sshd.hosts[8:11]
    targets = [await create_target(platform, admin_token, sshd, h) for h in hosts]
    return {"targets": targets}


async def test_unknown_job_is_not_found(platform: Any, admin_token: str) -> None:
    body = await gql(platform.url("executions"), RUN, {"job": str(uuid.uuid4())}, token=admin_token)
    assert body["data"]["runJob"]["__typename"] == "NotFound", body


async def test_subset_must_belong_to_the_job(platform: Any, admin_token: str, setup: dict[str, Any]) -> None:
    job = await create_job(platform, admin_token, setup["targets"][:1], "true")
    body = await gql(
        platform.url("executions"), RUN, {"job": job, "targets": [setup["targets"][2]]}, token=admin_token
    )
    assert body["data"]["runJob"]["__typename"] == "ValidationFailed", body


async def test_run_on_a_subset_numbers_runs_per_job(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    job = await create_job(platform, admin_token, setup["targets"], "echo run-$((1+1))")
    first = await gql(
        platform.url("executions"), RUN, {"job": job, "targets": setup["targets"][:2]}, token=admin_token
    )
    execution = first["data"]["runJob"]["execution"]
    assert execution["number"] == 1
    done = await wait_terminal(platform.url("executions"), admin_token, execution["id"])
    assert done["status"] == "SUCCEEDED" and done["totalTargets"] == 2 and done["succeededTargets"] == 2
    assert all("run-2" in r["steps"][0]["stdout"] for r in done["targetRuns"])
    second = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    assert second["data"]["runJob"]["execution"]["number"] == 2
    done2 = await wait_terminal(
        platform.url("executions"), admin_token, second["data"]["runJob"]["execution"]["id"]
    )
    assert done2["totalTargets"] == 3
    listed = await gql(
        platform.url("executions"),
        """query($job: ID!) { executions(filter: {jobId: $job}) {
        totalCount edges { node { number } } } }""",
        {"job": job},
        token=admin_token,
    )
    assert [e["node"]["number"] for e in listed["data"]["executions"]["edges"]] == [2, 1]


async def test_cancel_stops_a_running_command(
    platform: Any, admin_token: str, setup: dict[str, Any], sshd: Any
) -> None:
    job = await create_job(platform, admin_token, setup["targets"][:1], "echo started; sleep 45; echo late")
    started = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    execution_id = started["data"]["runJob"]["execution"]["id"]
    # Wait until the command is running (its first line streamed), then cancel.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = await gql(platform.url("executions"), EXECUTION, {"id": execution_id}, token=admin_token)
        if state["data"]["execution"]["lastSeq"] >= 3:
            break
        await asyncio.sleep(0.2)
    t0 = time.monotonic()
    cancelled = await gql(platform.url("executions"), CANCEL, {"id": execution_id}, token=admin_token)
    assert cancelled["data"]["cancelExecution"]["__typename"] == "ExecutionCancelling", cancelled
    done = await wait_terminal(platform.url("executions"), admin_token, execution_id, timeout=30)
    assert time.monotonic() - t0 < 20
    assert done["status"] == "CANCELLED", done
    assert done["targetRuns"][0]["status"] == "CANCELLED"
    again = await gql(platform.url("executions"), CANCEL, {"id": execution_id}, token=admin_token)
    assert again["data"]["cancelExecution"]["__typename"] == "ValidationFailed"


async def test_subscription_directly_on_the_subgraph(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    job = await create_job(
        platform, admin_token, setup["targets"][:1], "for i in 1 2 3; do echo line$i; done"
    )
    started = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    execution_id = started["data"]["runJob"]["execution"]["id"]
    ws = platform.url("executions").replace("http://", "ws://")
    events = [
        d["executionEvents"]
        for d in await subscribe(ws, EVENTS, {"id": execution_id, "after": 0}, token=admin_token)
    ]
    assert events[-1]["type"] == "EXECUTION_FINISHED" and events[-1]["status"] == "SUCCEEDED"
    text = "".join(e["data"] or "" for e in events if e["type"] == "STDOUT")
    assert "line1" in text and "line3" in text


async def test_event_batches_carry_the_same_events_in_fewer_messages(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    # The sleep lets the subscription start first, so most of the run arrives live.
    job = await create_job(
        platform, admin_token, setup["targets"], "sleep 1; for i in $(seq 1 5); do echo b$i; done"
    )
    started = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    execution_id = started["data"]["runJob"]["execution"]["id"]
    ws = platform.url("executions").replace("http://", "ws://")
    variables = {"id": execution_id, "after": 0, "max": 1000}
    live = [d["executionEventBatches"] for d in await subscribe(ws, BATCHES, variables, token=admin_token)]
    flat = [e for b in live for e in b["events"]]
    assert [e["seq"] for e in flat] == list(range(1, len(flat) + 1))
    assert flat[-1]["type"] == "EXECUTION_FINISHED" and flat[-1]["status"] == "SUCCEEDED"
    assert [b["lastSeq"] for b in live] == [b["events"][-1]["seq"] for b in live]
    assert [b["finished"] for b in live] == [False] * (len(live) - 1) + [True]
    # a persisted batch is one message: 3 targets' output and ends do not come one by one
    assert len(live) < len(flat) - 3, [len(b["events"]) for b in live]
    # the same events as the one-per-message subscription, field for field
    one_by_one = [
        d["executionEvents"]
        for d in await subscribe(ws, EVENTS, {"id": execution_id, "after": 0}, token=admin_token)
    ]
    assert one_by_one == flat
    # replay resumes after a seq and respects maxBatch
    half = len(flat) // 2
    paged = [
        d["executionEventBatches"]
        for d in await subscribe(
            ws, BATCHES, {"id": execution_id, "after": half, "max": 2}, token=admin_token
        )
    ]
    assert all(1 <= len(b["events"]) <= 2 for b in paged)
    assert [e for b in paged for e in b["events"]] == flat[half:]


async def test_event_batches_refuse_bad_arguments(platform: Any, admin_token: str) -> None:
    ws = platform.url("executions").replace("http://", "ws://")
    with pytest.raises(SubscriptionError) as err:
        await subscribe(ws, BATCHES, {"id": str(uuid.uuid4()), "after": 0, "max": 0}, token=admin_token)
    assert err.value.errors[0]["extensions"]["code"] == "BAD_USER_INPUT", err.value.errors
    with pytest.raises(SubscriptionError) as err:
        await subscribe(ws, BATCHES, {"id": str(uuid.uuid4()), "after": 0, "max": 10}, token=admin_token)
    assert err.value.errors[0]["extensions"]["code"] == "NOT_FOUND", err.value.errors


async def test_a_live_message_out_of_sequence_is_never_streamed(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    """A gap in the live messages (a message lost, a stray publisher) is filled from the
    database; what does not continue the stored sequence never reaches the subscriber."""
    import json
    import os

    from redis.asyncio import Redis

    job = await create_job(platform, admin_token, setup["targets"][:1], "sleep 2; echo after-gap")
    started = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    execution_id = started["data"]["runJob"]["execution"]["id"]
    ws = platform.url("executions").replace("http://", "ws://")
    variables = {"id": execution_id, "after": 0, "max": 1000}
    listening = asyncio.create_task(subscribe(ws, BATCHES, variables, token=admin_token))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the target has started; its output is 2 s away
        state = await gql(platform.url("executions"), EXECUTION, {"id": execution_id}, token=admin_token)
        if state["data"]["execution"]["lastSeq"] >= 2:
            break
        await asyncio.sleep(0.1)
    stray = {
        "seq": 900,
        "type": "STDOUT",
        "targetId": None,
        "stepIndex": 0,
        "stepName": "s1",
        "data": "stray",
        "exitCode": None,
        "status": None,
        "at": "2026-01-01T00:00:00+00:00",
    }
    redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])
    try:
        await asyncio.sleep(0.3)  # the subscriber is listening by now
        await redis.publish(f"opsc.live.execution:{execution_id}", json.dumps([stray]))
    finally:
        await redis.aclose()
    events = [e for d in await listening for e in d["executionEventBatches"]["events"]]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "stray" not in [e["data"] for e in events]
    assert any("after-gap" in (e["data"] or "") for e in events)
    assert events[-1]["type"] == "EXECUTION_FINISHED"


async def test_viewer_cannot_run_or_cancel(platform: Any, admin_token: str, setup: dict[str, Any]) -> None:
    name = f"viewer{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, name, ["viewer"])
    token = await role_login(platform, name)
    job = await create_job(platform, admin_token, setup["targets"][:1], "true")
    body = await gql(platform.url("executions"), RUN, {"job": job}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = await gql(platform.url("executions"), CANCEL, {"id": str(uuid.uuid4())}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    listed = await gql(platform.url("executions"), "{ executions(first: 1) { totalCount } }", token=token)
    assert "errors" not in listed, listed

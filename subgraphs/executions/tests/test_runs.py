"""runJob / cancelExecution / execution queries against the executions subgraph itself (real services,
PostgreSQL, Redis, Ray and sshd)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from tests.support.platform import gql, login, subscribe

pytestmark = pytest.mark.asyncio(loop_scope="session")

RUN = """mutation($job: ID!, $targets: [ID!]) { runJob(jobId: $job, targetIds: $targets) { __typename
  ... on ExecutionStarted { execution { id number status } } ... on Error { message } } }"""
CANCEL = """mutation($id: ID!) { cancelExecution(id: $id) { __typename
  ... on ExecutionCancelling { execution { id } } ... on Error { message } } }"""
EXECUTION = """query($id: ID!) { execution(id: $id) { id number status totalTargets succeededTargets failedTargets
  cancelledTargets lastSeq targetRuns { targetId status exitCode message steps { index name status exitCode stdout } } } }"""
EVENTS = """subscription($id: ID!, $after: Int) { executionEvents(executionId: $id, afterSeq: $after) {
  seq type targetId data status } }"""


async def _target(platform: Any, token: str, sshd: Any, host: str) -> str:
    body = await gql(
        platform.url("targets"),
        """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
        __typename ... on TargetCreated { target { id } } ... on Error { message } } }""",
        {
            "input": {
                "name": f"exec-{host}",
                "osType": "linux",
                "methods": [
                    {
                        "type": "SSH",
                        "host": host,
                        "port": sshd.port,
                        "credential": {
                            "type": "SSH_KEY",
                            "username": sshd.username,
                            "privateKey": sshd.private_key_pem,
                        },
                    }
                ],
            }
        },
        token=token,
    )
    assert body["data"]["createTarget"]["__typename"] == "TargetCreated", body
    return str(body["data"]["createTarget"]["target"]["id"])


async def _job(platform: Any, token: str, targets: list[str], command: str) -> str:
    body = await gql(
        platform.url("jobs"),
        """mutation($input: CreateJobInput!) { createJob(input: $input) {
        __typename ... on JobCreated { job { id } } ... on Error { message } } }""",
        {
            "input": {
                "name": "exec-test",
                "targetIds": targets,
                "steps": [{"name": "s1", "command": command, "timeoutSeconds": 60}],
            }
        },
        token=token,
    )
    assert body["data"]["createJob"]["__typename"] == "JobCreated", body
    return str(body["data"]["createJob"]["job"]["id"])


async def _wait_terminal(platform: Any, token: str, execution_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await gql(platform.url("executions"), EXECUTION, {"id": execution_id}, token=token)
        execution = body["data"]["execution"]
        if execution["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        await asyncio.sleep(0.3)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")


@pytest.fixture(scope="module")
async def setup(platform: Any, admin_token: str, sshd: Any) -> dict[str, Any]:
    hosts = sshd.hosts[8:11]
    targets = [await _target(platform, admin_token, sshd, h) for h in hosts]
    return {"targets": targets}


async def test_unknown_job_is_not_found(platform: Any, admin_token: str) -> None:
    body = await gql(platform.url("executions"), RUN, {"job": str(uuid.uuid4())}, token=admin_token)
    assert body["data"]["runJob"]["__typename"] == "NotFound", body


async def test_subset_must_belong_to_the_job(platform: Any, admin_token: str, setup: dict[str, Any]) -> None:
    job = await _job(platform, admin_token, setup["targets"][:1], "true")
    body = await gql(
        platform.url("executions"), RUN, {"job": job, "targets": [setup["targets"][2]]}, token=admin_token
    )
    assert body["data"]["runJob"]["__typename"] == "ValidationFailed", body


async def test_run_on_a_subset_numbers_runs_per_job(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    job = await _job(platform, admin_token, setup["targets"], "echo run-$((1+1))")
    first = await gql(
        platform.url("executions"), RUN, {"job": job, "targets": setup["targets"][:2]}, token=admin_token
    )
    execution = first["data"]["runJob"]["execution"]
    assert execution["number"] == 1
    done = await _wait_terminal(platform, admin_token, execution["id"])
    assert done["status"] == "SUCCEEDED" and done["totalTargets"] == 2 and done["succeededTargets"] == 2
    assert all("run-2" in r["steps"][0]["stdout"] for r in done["targetRuns"])
    second = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
    assert second["data"]["runJob"]["execution"]["number"] == 2
    done2 = await _wait_terminal(platform, admin_token, second["data"]["runJob"]["execution"]["id"])
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
    job = await _job(platform, admin_token, setup["targets"][:1], "echo started; sleep 45; echo late")
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
    done = await _wait_terminal(platform, admin_token, execution_id, timeout=30)
    assert time.monotonic() - t0 < 20
    assert done["status"] == "CANCELLED", done
    assert done["targetRuns"][0]["status"] == "CANCELLED"
    again = await gql(platform.url("executions"), CANCEL, {"id": execution_id}, token=admin_token)
    assert again["data"]["cancelExecution"]["__typename"] == "ValidationFailed"


async def test_subscription_directly_on_the_subgraph(
    platform: Any, admin_token: str, setup: dict[str, Any]
) -> None:
    job = await _job(platform, admin_token, setup["targets"][:1], "for i in 1 2 3; do echo line$i; done")
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


async def test_viewer_cannot_run_or_cancel(platform: Any, admin_token: str, setup: dict[str, Any]) -> None:
    name = f"viewer{uuid.uuid4().hex[:6]}"
    created = await gql(
        platform.url("users"),
        """mutation($input: CreateUserInput!) { createUser(input: $input) {
        __typename ... on Error { message } } }""",
        {
            "input": {
                "username": name,
                "email": f"{name}@example.com",
                "password": "viewer-Pass-123",
                "roles": ["viewer"],
            }
        },
        token=admin_token,
    )
    assert created["data"]["createUser"]["__typename"] == "UserCreated", created
    token = await login(platform.url("auth"), name, "viewer-Pass-123")
    job = await _job(platform, admin_token, setup["targets"][:1], "true")
    body = await gql(platform.url("executions"), RUN, {"job": job}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = await gql(platform.url("executions"), CANCEL, {"id": str(uuid.uuid4())}, token=token)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    listed = await gql(platform.url("executions"), "{ executions(first: 1) { totalCount } }", token=token)
    assert "errors" not in listed, listed

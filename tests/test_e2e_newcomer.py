"""The newcomer flow through the real router: login, add an SSH target, run a job on Ray, watch it stream.

Everything is real: the subgraphs (PostgreSQL database each, Redis events), the router (Hive
Gateway), Ray, and an OpenSSH sshd on a loopback port.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.platform import gql, login, subscribe

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
  __typename ... on TargetCreated { target { id serial name communicationMethods { id type host port isPrimary
  credential { id type username } } } } ... on Error { message } } }"""
CREATE_JOB = """mutation($input: CreateJobInput!) { createJob(input: $input) {
  __typename ... on JobCreated { job { id serial name steps { order name command } } }
  ... on UnknownTargets { message targetIds } ... on Error { message } } }"""
RUN_JOB = """mutation($id: ID!) { runJob(jobId: $id) {
  __typename ... on ExecutionStarted { execution { id number status } } ... on Error { message } } }"""
EVENTS = """subscription($id: ID!, $after: Int) { executionEvents(executionId: $id, afterSeq: $after) {
  seq type targetId stepName data exitCode status at } }"""
EXECUTION = """query($id: ID!) { execution(id: $id) { id number status totalTargets succeededTargets failedTargets
  job { id name } targetRuns { target { id name } status exitCode message connectionReused
  steps { name status exitCode stdout stderr durationMs } } } }"""


async def create_ssh_target(
    url: str,
    token: str,
    *,
    name: str,
    host: str,
    port: int,
    username: str,
    private_key: str | None = None,
    password: str | None = None,
) -> str:
    credential: dict[str, Any] = {"type": "SSH_KEY" if private_key else "PASSWORD", "username": username}
    if private_key:
        credential["privateKey"] = private_key
    else:
        credential["password"] = password
    body = await gql(
        url,
        CREATE_TARGET,
        {
            "input": {
                "name": name,
                "osType": "linux",
                "environment": "testing",
                "methods": [{"type": "SSH", "host": host, "port": port, "credential": credential}],
            }
        },
        token=token,
    )
    result = body["data"]["createTarget"]
    assert result["__typename"] == "TargetCreated", body
    return str(result["target"]["id"])


async def create_job(
    url: str, token: str, target_ids: list[str], steps: list[dict[str, Any]], name: str = "job"
) -> str:
    body = await gql(
        url, CREATE_JOB, {"input": {"name": name, "targetIds": target_ids, "steps": steps}}, token=token
    )
    result = body["data"]["createJob"]
    assert result["__typename"] == "JobCreated", body
    return str(result["job"]["id"])


async def run_and_watch(
    router: Any, token: str, job_id: str
) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    body = await gql(router.url, RUN_JOB, {"id": job_id}, token=token)
    started = body["data"]["runJob"]
    assert started["__typename"] == "ExecutionStarted", body
    execution_id = started["execution"]["id"]
    events = [
        d["executionEvents"]
        for d in await subscribe(
            router.ws_url, EVENTS, {"id": execution_id, "after": 0}, token=token, timeout=90
        )
    ]
    final = (await gql(router.url, EXECUTION, {"id": execution_id}, token=token))["data"]["execution"]
    return execution_id, events, final


async def test_newcomer_flow(router: Any, sshd: Any, platform: Any) -> None:
    token = await login(router.url, "admin", platform.admin_password)
    target_id = await create_ssh_target(
        router.url,
        token,
        name="sshd-e2e",
        host=sshd.hosts[0],
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key_pem,
    )
    target = await gql(
        router.url,
        "query($id: ID!) { target(id: $id) { id name communicationMethods { type host "
        "credential { type username } } } }",
        {"id": target_id},
        token=token,
    )
    assert sshd.private_key_pem.splitlines()[1] not in str(target), "a secret leaked into a response"
    job_id = await create_job(
        router.url, token, [target_id], [{"name": "greet", "command": "echo hello; hostname"}], name="hello"
    )

    execution_id, events, final = await run_and_watch(router, token, job_id)

    types = [e["type"] for e in events]
    assert types[0] == "EXECUTION_STARTED" and types[-1] == "EXECUTION_FINISHED", types
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "sequence numbers have gaps"
    stdout = "".join(e["data"] or "" for e in events if e["type"] == "STDOUT")
    assert "hello" in stdout
    assert final["status"] == "SUCCEEDED", final
    run = final["targetRuns"][0]
    assert run["status"] == "SUCCEEDED" and run["exitCode"] == 0
    assert run["steps"][0]["exitCode"] == 0 and "hello" in run["steps"][0]["stdout"]
    assert run["target"]["name"] == "sshd-e2e"  # resolved through federation by the targets subgraph
    assert final["job"]["name"] == "hello"  # resolved by the jobs subgraph

    # A late subscriber replays from the database, and afterSeq resumes mid-stream.
    replay = await subscribe(router.ws_url, EVENTS, {"id": execution_id, "after": 2}, token=token)
    assert [d["executionEvents"]["seq"] for d in replay] == list(range(3, len(events) + 1))
    # The batched subscription carries the same events through the router, several per message.
    batches = await subscribe(
        router.ws_url,
        """subscription($id: ID!) { executionEventBatches(executionId: $id, maxBatch: 3) {
        lastSeq finished events { seq type targetId stepName data exitCode status at } } }""",
        {"id": execution_id},
        token=token,
    )
    assert [e for d in batches for e in d["executionEventBatches"]["events"]] == events
    assert [d["executionEventBatches"]["finished"] for d in batches][-1] is True
    assert max(len(d["executionEventBatches"]["events"]) for d in batches) == min(3, len(events))

    # The second run reuses the warm pooled connection.
    _, _, second = await run_and_watch(router, token, job_id)
    assert second["status"] == "SUCCEEDED"
    assert second["number"] == final["number"] + 1
    assert second["targetRuns"][0]["connectionReused"] is True

    history = await gql(
        router.url,
        "query($id: ID!) { job(id: $id) { executions(first: 10) { totalCount "
        "edges { node { number status } } } } }",
        {"id": job_id},
        token=token,
    )
    assert history["data"]["job"]["executions"]["totalCount"] == 2, history


async def test_subscription_without_token_is_refused(router: Any) -> None:
    from tests.support.platform import SubscriptionError

    with pytest.raises(SubscriptionError) as err:
        await subscribe(router.ws_url, EVENTS, {"id": "nope", "after": 0}, timeout=20)
    assert err.value.errors[0]["extensions"]["code"] in ("FORBIDDEN", "UNAUTHENTICATED"), err.value.errors

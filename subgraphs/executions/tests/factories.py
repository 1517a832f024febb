"""Real targets and jobs for the executions tests (through the targets and jobs services), and waits
on an execution's state."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from tests.support.platform import gql

EXECUTION = """query($id: ID!) { execution(id: $id) { id number status message jobVersion parameters retryOf
  startedAt finishedAt totalTargets succeededTargets failedTargets cancelledTargets lastSeq
  steps { name command }
  targetRuns { targetId status exitCode message
    steps { index name command status exitCode stdout stderr durationMs startedAt finishedAt truncated } } } }"""


async def create_target(platform: Any, token: str, sshd: Any, host: str) -> str:
    """A target with one SSH method on the test sshd at ``host`` (hosts are unique among active targets)."""
    body = await gql(
        platform.url("targets"),
        """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
        __typename ... on TargetCreated { target { id } } ... on Error { message } } }""",
        {
            "input": {
                "name": f"exec-{host}-{uuid.uuid4().hex[:4]}",
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


async def create_job(
    platform: Any,
    token: str,
    targets: list[str],
    command: str,
    *,
    policy: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> str:
    job_input: dict[str, Any] = {
        "name": f"exec-{uuid.uuid4().hex[:6]}",
        "targetIds": targets,
        "steps": [{"name": "s1", "command": command, "timeoutSeconds": 60}],
    }
    if policy:
        job_input["policy"] = policy
    if parameters:
        job_input["parameters"] = parameters
    body = await gql(
        platform.url("jobs"),
        """mutation($input: CreateJobInput!) { createJob(input: $input) {
        __typename ... on JobCreated { job { id } } ... on Error { message } } }""",
        {"input": job_input},
        token=token,
    )
    assert body["data"]["createJob"]["__typename"] == "JobCreated", body
    return str(body["data"]["createJob"]["job"]["id"])


async def wait_terminal(url: str, token: str, execution_id: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await gql(url, EXECUTION, {"id": execution_id}, token=token)
        execution = body["data"]["execution"]
        if execution["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
            return execution
        await asyncio.sleep(0.3)
    raise AssertionError(f"execution {execution_id} did not finish in {timeout}s")


async def wait_seq(url: str, token: str, execution_id: str, seq: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await gql(url, EXECUTION, {"id": execution_id}, token=token)
        if body["data"]["execution"]["lastSeq"] >= seq:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"execution {execution_id} did not reach seq {seq}")


def pg_dsn(platform: Any) -> str:
    return platform.databases["executions"].replace("postgres://", "postgresql://", 1)

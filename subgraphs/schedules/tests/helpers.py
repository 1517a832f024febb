"""Helpers the schedules platform tests share."""

from __future__ import annotations

import random
import uuid
from typing import Any

from tests.support.platform import gql


def unique_loopback() -> str:
    return f"127.{random.randint(20, 250)}.{random.randint(0, 250)}.{random.randint(2, 250)}"  # noqa: S311


async def create_job(platform: Any, token: str, host: str, port: int) -> str:
    """A job on one target of its own (no sshd needed: a fire only has to start a run)."""
    body = await gql(
        platform.url("targets"),
        """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
        __typename ... on TargetCreated { target { id } } ... on Error { message } } }""",
        {
            "input": {
                "name": f"sched-{uuid.uuid4().hex[:8]}",
                "osType": "linux",
                "methods": [
                    {
                        "type": "SSH",
                        "host": host,
                        "port": port,
                        "credential": {"type": "PASSWORD", "username": "x", "password": "y"},
                    }
                ],
            }
        },
        token=token,
    )
    assert body["data"]["createTarget"]["__typename"] == "TargetCreated", body
    target = body["data"]["createTarget"]["target"]["id"]
    body = await gql(
        platform.url("jobs"),
        """mutation($input: CreateJobInput!) { createJob(input: $input) {
        __typename ... on JobCreated { job { id } } ... on Error { message } } }""",
        {
            "input": {
                "name": f"sched-{uuid.uuid4().hex[:6]}",
                "targetIds": [target],
                "steps": [{"name": "s", "command": "true"}],
            }
        },
        token=token,
    )
    assert body["data"]["createJob"]["__typename"] == "JobCreated", body
    return str(body["data"]["createJob"]["job"]["id"])

"""Queries and helpers shared by the jobs subgraph's HTTP tests (real platform: auth, targets, jobs)."""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

from opsconductor_shared.client import ServiceTokenProvider
from tests.support.platform import RunningPlatform, gql

STEP_FIELDS = """order name type command timeoutSeconds continueOnError workingDirectory
  env { name value } expectedExitCodes script { interpreter body arguments }
  transfer { direction source destination content mode }"""
POLICY_FIELDS = """maxParallel batchSize batchPercent failFastThreshold retries retryBackoffSeconds
  timeoutSeconds concurrency allowHostOverlap"""
JOB_FIELDS = f"""id serial name version steps {{ {STEP_FIELDS} }} policy {{ {POLICY_FIELDS} }} targetIds
  targetSelector {{ tags osTypes environments }}
  parameters {{ name type required default choices description }}"""

CREATE_JOB = f"""mutation($input: CreateJobInput!) {{ createJob(input: $input) {{ __typename
  ... on JobCreated {{ job {{ {JOB_FIELDS} }} }}
  ... on ValidationFailed {{ message field }} ... on UnknownTargets {{ message targetIds }}
  ... on Error {{ message }} }} }}"""

UPDATE_JOB = f"""mutation($id: ID!, $input: UpdateJobInput!) {{ updateJob(id: $id, input: $input) {{ __typename
  ... on JobUpdated {{ changed job {{ {JOB_FIELDS} versions {{ version name createdBy }} }} }}
  ... on VersionConflict {{ message expectedVersion currentVersion }}
  ... on ValidationFailed {{ message field }} ... on UnknownTargets {{ message targetIds }}
  ... on NotFound {{ message }} ... on Error {{ message }} }} }}"""

JOB_PLAN = f"""query($jobId: ID!, $parameters: JSON, $targetIds: [ID!], $version: Int) {{
  jobPlan(jobId: $jobId, parameters: $parameters, targetIds: $targetIds, version: $version) {{ __typename
    ... on JobPlan {{ jobId serial name version steps {{ {STEP_FIELDS} }} targetIds
      policy {{ {POLICY_FIELDS} }} parameters dangerous {{ stepName rule reason match }} }}
    ... on ValidationFailed {{ message field }} ... on UnknownTargets {{ message targetIds }}
    ... on NotFound {{ message }} ... on DependencyUnavailable {{ message service }} }} }}"""

VALIDATE_JOB = """query($input: CreateJobInput!) { validateJob(input: $input) { __typename
  ... on JobValid { targetIds dangerous { stepName rule reason match } }
  ... on ValidationFailed { message field } ... on UnknownTargets { message targetIds } } }"""

JOB_VERSIONS = """query($jobId: ID!) { jobVersions(jobId: $jobId) { version name createdBy createdAt
  steps { order name command } policy { maxParallel } parameters { name } targetIds } }"""

LIST_JOBS = "query($search: String) { jobs(filter: {search: $search}) { totalCount } }"

CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) { __typename
  ... on TargetCreated { target { id } } ... on Error { message } } }"""


async def make_target(
    platform: RunningPlatform,
    token: str,
    *,
    tags: list[str] | None = None,
    environment: str | None = None,
    os_type: str = "linux",
) -> str:
    """A real target in the targets service (a password SSH method on a random loopback address)."""
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"  # noqa: S311
    target: dict[str, Any] = {
        "name": f"jobs-test-{uuid.uuid4().hex[:8]}",
        "osType": os_type,
        "methods": [
            {
                "type": "SSH",
                "host": host,
                "port": 22,
                "isPrimary": True,
                "credential": {"type": "PASSWORD", "username": "opsc", "password": "not-used-1"},
            }
        ],
    }
    if tags is not None:
        target["tags"] = tags
    if environment is not None:
        target["environment"] = environment
    body = await gql(platform.url("targets"), CREATE_TARGET, {"input": target}, token=token)
    result = body.get("data", {}) and body["data"]["createTarget"]
    assert result and result["__typename"] == "TargetCreated", body
    return str(result["target"]["id"])


async def call(
    platform: RunningPlatform, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    body = await gql(platform.url("jobs"), query, variables, token=token, timeout=60)
    assert "errors" not in body, body
    return body["data"]


async def service_token(platform: RunningPlatform, name: str) -> str:
    provider = ServiceTokenProvider(
        auth_url=platform.base("auth"), service=name, secret=os.environ[f"OPSC_SERVICE_SECRET_{name.upper()}"]
    )
    return await provider.token()


def full_input(fleet: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": f"deploy {uuid.uuid4().hex[:6]}",
        "description": "rolling deploy",
        "parameters": [
            {"name": "version", "type": "string", "required": True, "description": "release tag"},
            {"name": "env", "type": "choice", "choices": ["staging", "production"], "default": "staging"},
            {"name": "workers", "type": "int", "default": "4"},
            {"name": "dry", "type": "bool", "default": "false"},
        ],
        "steps": [
            {
                "name": "announce",
                "command": "echo deploying {{ version }} to {{env}} workers={{ workers }} dry={{ dry }}",
                "workingDirectory": "/srv/{{ env }}",
                "env": [{"name": "RELEASE", "value": "{{ version }}"}],
                "expectedExitCodes": [0, 2],
                "timeoutSeconds": 60,
            },
            {
                "name": "migrate",
                "type": "script",
                "script": {
                    "interpreter": "python",
                    "body": "print({{ version }})",
                    "arguments": ["--v={{ version }}"],
                },
                "continueOnError": True,
            },
            {
                "name": "ps",
                "type": "script",
                "script": {"interpreter": "powershell", "body": "Write-Output {{ version }}"},
            },
            {
                "name": "config",
                "type": "file_transfer",
                "transfer": {
                    "direction": "upload",
                    "destination": "/etc/app/{{ env }}.conf",
                    "content": "release={{ version }}\n",
                    "mode": "0644",
                },
            },
            {
                "name": "fetch log",
                "type": "file_transfer",
                "transfer": {"direction": "download", "source": "/var/log/app.log", "destination": "app log"},
            },
        ],
        "targetIds": [fleet["explicit"]],
        "targetSelector": {
            "tags": [fleet["tag"]],
            "osTypes": ["linux"],
            "environments": ["production", "staging"],
        },
        "policy": {
            "maxParallel": 10,
            "batchPercent": 50,
            "failFastThreshold": 2,
            "retries": 1,
            "retryBackoffSeconds": 0.5,
            "timeoutSeconds": 900,
            "concurrency": "queue",
        },
    }
    value.update(overrides)
    return value

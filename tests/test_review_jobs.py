"""Security review 2026-12, jobs area through the router: L17 (validateJob/jobPlan show target
details only to callers holding targets:read) and the C1 acceptance (a ~990 kB script body in
validateJob answers fast while other requests keep being answered).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from tests.support.access import api_key, create_user, role_login
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

VALIDATE = """query($input: CreateJobInput!) { validateJob(input: $input) { __typename
  ... on JobValid { targetIds } ... on UnknownTargets { targetIds }
  ... on PermissionDenied { message permission } ... on Error { message } } }"""
PLAN = """query($id: ID!) { jobPlan(jobId: $id) { __typename
  ... on JobPlan { targetIds } ... on PermissionDenied { message permission } ... on Error { message } } }"""
ME = "query { me { id username } }"


def _job_input(target_ids: list[str], body: str = "echo hi\n") -> dict[str, Any]:
    return {
        "name": f"rv-{uuid.uuid4().hex[:8]}",
        "targetIds": target_ids,
        "steps": [{"name": "s", "type": "script", "script": {"interpreter": "bash", "body": body}}],
    }


async def test_l17_validate_job_and_job_plan_need_the_callers_targets_read(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """L17: a jobs:read holder without targets:read learns nothing about targets: validateJob with
    target ids and jobPlan answer PermissionDenied(targets:read) instead of UnknownTargets/JobValid
    or a resolved plan; with targets:read the answers are the usual ones."""
    unknown = str(uuid.uuid4())
    blind = await api_key(router.url, admin_token, ["jobs:read"], name="jobs-l17")
    refused = (await gql(router.url, VALIDATE, {"input": _job_input([unknown])}, token=blind))["data"]
    assert refused["validateJob"]["__typename"] == "PermissionDenied", refused
    assert refused["validateJob"]["permission"] == "targets:read"
    assert unknown not in json.dumps(refused)
    plan = (await gql(router.url, PLAN, {"id": str(uuid.uuid4())}, token=blind))["data"]["jobPlan"]
    assert plan["__typename"] == "PermissionDenied" and plan["permission"] == "targets:read", plan
    # Without target ids nothing about targets is shown: validation still works for the blind key.
    plain = (await gql(router.url, VALIDATE, {"input": _job_input([])}, token=blind))["data"]["validateJob"]
    assert plain["__typename"] != "PermissionDenied", plain

    seeing = await api_key(router.url, admin_token, ["jobs:read", "targets:read"], name="jobs-l17")
    known = (await gql(router.url, VALIDATE, {"input": _job_input([unknown])}, token=seeing))["data"]
    assert known["validateJob"]["__typename"] == "UnknownTargets", known
    plan = (await gql(router.url, PLAN, {"id": str(uuid.uuid4())}, token=seeing))["data"]["jobPlan"]
    assert plan["__typename"] == "NotFound", plan


async def test_c1_viewer_validates_a_990_kb_script_while_others_are_answered(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """C1 acceptance through the router: a viewer's validateJob with a ~990 kB script body (the
    body limit is 1,000,000 bytes) answers within 5 s, and a `me` sent meanwhile answers too."""
    username = f"c1view{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, username, ["viewer"])
    viewer = await role_login(platform, username)
    script = ("rm " * 330_000)[:990_000] + "\n"

    async def validate() -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        body = await gql(router.url, VALIDATE, {"input": _job_input([], script)}, token=viewer, timeout=30)
        return time.monotonic() - started, body

    async def me() -> tuple[float, dict[str, Any]]:
        await asyncio.sleep(0.05)  # let the big request go first
        started = time.monotonic()
        body = await gql(router.url, ME, token=viewer, timeout=30)
        return time.monotonic() - started, body

    (big_took, big), (me_took, mine) = await asyncio.wait_for(asyncio.gather(validate(), me()), timeout=60)
    assert "errors" not in big, str(big)[:2000]
    assert big["data"]["validateJob"]["__typename"] in ("JobValid", "ValidationFailed"), str(big)[:2000]
    assert big_took < 5.0, big_took
    assert mine["data"]["me"]["username"] == username, mine
    assert me_took < 5.0, me_took


CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
  __typename ... on TargetCreated { target { id } } ... on Error { message } } }"""
CREATE_JOB = """mutation($input: CreateJobInput!) { createJob(input: $input) {
  __typename ... on JobCreated { job { id } } ... on Error { message } } }"""
PLAN_WITH = """query($id: ID!, $p: JSON, $t: [ID!]) { jobPlan(jobId: $id, parameters: $p, targetIds: $t) {
  __typename ... on JobPlan { targetIds } ... on ValidationFailed { message field } ... on Error { message } } }"""


async def _target(router: Any, token: str, os_type: str, method: dict[str, Any]) -> str:
    payload = {
        "name": f"h7-{uuid.uuid4().hex[:8]}",
        "osType": os_type,
        "environment": "testing",
        "methods": [method],
    }
    body = await gql(router.url, CREATE_TARGET, {"input": payload}, token=token)
    assert body["data"]["createTarget"]["__typename"] == "TargetCreated", body
    return str(body["data"]["createTarget"]["target"]["id"])


async def test_h7_cmd_metacharacters_in_command_parameters_are_refused_for_windows_targets(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """H7 (cmd.exe): a `command` step on a Windows target runs through cmd.exe, where POSIX quoting
    of `{{ name }}` means nothing, so `a & whoami` would run whoami. The plan refuses such a value
    for Windows targets (ValidationFailed on parameters.name) and keeps it for Linux targets and
    harmless values."""
    raw = uuid.uuid4().bytes  # a loopback address of its own (hosts are unique per active target)
    port = 20000 + raw[0] * 100
    credential = {"type": "PASSWORD", "username": "ops", "password": "pw-" + uuid.uuid4().hex}
    windows = await _target(
        router,
        admin_token,
        "windows",
        {"type": "WINRM", "host": f"127.71.{raw[1]}.{raw[2] or 1}", "port": port, "credential": credential},
    )
    linux = await _target(
        router,
        admin_token,
        "linux",
        {"type": "SSH", "host": f"127.72.{raw[1]}.{raw[2] or 1}", "port": port, "credential": credential},
    )
    job = {
        "name": f"h7-{uuid.uuid4().hex[:8]}",
        "targetIds": [windows, linux],
        "parameters": [{"name": "name", "type": "string"}],
        "steps": [{"name": "greet", "command": "echo {{ name }}"}],
    }
    created = await gql(router.url, CREATE_JOB, {"input": job}, token=admin_token)
    assert created["data"]["createJob"]["__typename"] == "JobCreated", created
    job_id = created["data"]["createJob"]["job"]["id"]

    async def plan(value: str, targets: list[str]) -> dict[str, Any]:
        body = await gql(
            router.url, PLAN_WITH, {"id": job_id, "p": {"name": value}, "t": targets}, token=admin_token
        )
        return body["data"]["jobPlan"]

    for value in ("a & whoami", "x | calc", 'say "hi"', "100%PATH%", "line\nbreak"):
        refused = await plan(value, [windows, linux])
        assert refused["__typename"] == "ValidationFailed", (value, refused)
        assert refused["field"] == "parameters.name", refused
    assert (await plan("a & whoami", [linux]))["__typename"] == "JobPlan"
    assert (await plan("plain-value_1.2", [windows]))["__typename"] == "JobPlan"

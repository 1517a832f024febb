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

from tests.support.access import create_user, role_login
from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

VALIDATE = """query($input: CreateJobInput!) { validateJob(input: $input) { __typename
  ... on JobValid { targetIds } ... on UnknownTargets { targetIds }
  ... on PermissionDenied { message permission } ... on Error { message } } }"""
PLAN = """query($id: ID!) { jobPlan(jobId: $id) { __typename
  ... on JobPlan { targetIds } ... on PermissionDenied { message permission } ... on Error { message } } }"""
ME = "query { me { id username } }"


async def _api_key(router: Any, token: str, permissions: list[str]) -> str:
    body = await gql(
        router.url,
        """mutation($p: [String!]!) { createApiKey(name: "jobs-l17", permissions: $p, expiresInDays: 1) {
        __typename ... on ApiKeyCreated { secret } ... on Error { message } } }""",
        {"p": permissions},
        token=token,
    )
    assert body["data"]["createApiKey"]["__typename"] == "ApiKeyCreated", body
    return str(body["data"]["createApiKey"]["secret"])


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
    blind = await _api_key(router, admin_token, ["jobs:read"])
    refused = (await gql(router.url, VALIDATE, {"input": _job_input([unknown])}, token=blind))["data"]
    assert refused["validateJob"]["__typename"] == "PermissionDenied", refused
    assert refused["validateJob"]["permission"] == "targets:read"
    assert unknown not in json.dumps(refused)
    plan = (await gql(router.url, PLAN, {"id": str(uuid.uuid4())}, token=blind))["data"]["jobPlan"]
    assert plan["__typename"] == "PermissionDenied" and plan["permission"] == "targets:read", plan
    # Without target ids nothing about targets is shown: validation still works for the blind key.
    plain = (await gql(router.url, VALIDATE, {"input": _job_input([])}, token=blind))["data"]["validateJob"]
    assert plain["__typename"] != "PermissionDenied", plain

    seeing = await _api_key(router, admin_token, ["jobs:read", "targets:read"])
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

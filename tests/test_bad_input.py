"""Bad input through the router: each gets a typed error or a per-target failure with a readable message,
and the run record keeps everything (issue: foundation, item 8)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.platform import LOGIN, gql
from tests.support.sshd import blackhole_address, closed_port
from tests.test_e2e_newcomer import create_job, create_ssh_target, run_and_watch

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def token(router: Any, platform: Any) -> str:
    from tests.support.platform import login

    return await login(router.url, "admin", platform.admin_password)


async def test_wrong_password(router: Any) -> None:
    body = await gql(router.url, LOGIN, {"u": "admin", "p": "not-the-password"})
    assert body["data"]["login"] == {
        "__typename": "InvalidCredentials",
        "message": "invalid username or password",
    }
    unknown = await gql(router.url, LOGIN, {"u": f"ghost-{uuid.uuid4().hex[:6]}", "p": "whatever1"})
    assert unknown["data"]["login"] == body["data"]["login"], "answers must not reveal whether a user exists"


async def test_unknown_target_in_create_job(router: Any, token: str) -> None:
    missing = str(uuid.uuid4())
    body = await gql(
        router.url,
        """mutation($input: CreateJobInput!) { createJob(input: $input) { __typename
        ... on UnknownTargets { message targetIds } ... on Error { message } } }""",
        {"input": {"name": "bad", "targetIds": [missing], "steps": [{"name": "s", "command": "true"}]}},
        token=token,
    )
    result = body["data"]["createJob"]
    assert result["__typename"] == "UnknownTargets", body
    assert result["targetIds"] == [missing]


async def _single_target_run(
    router: Any, token: str, **target: Any
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    target_id = await create_ssh_target(router.url, token, name=f"t-{uuid.uuid4().hex[:6]}", **target)
    job_id = await create_job(
        router.url,
        token,
        [target_id],
        [{"name": "first", "command": "echo before; exit 3"}, {"name": "second", "command": "echo never"}],
    )
    _, events, final = await run_and_watch(router, token, job_id)
    return events, final


async def test_connection_refused(router: Any, token: str, sshd: Any) -> None:
    events, final = await _single_target_run(
        router,
        token,
        host=sshd.hosts[1],
        port=closed_port(),
        username=sshd.username,
        private_key=sshd.private_key_pem,
    )
    run = final["targetRuns"][0]
    assert final["status"] == "FAILED" and run["status"] == "FAILED"
    assert "refused" in run["message"].lower(), run
    assert events[-1]["type"] == "EXECUTION_FINISHED"


async def test_host_that_does_not_answer_times_out(router: Any, token: str, sshd: Any) -> None:
    with blackhole_address() as (host, port):
        started = time.monotonic()
        _, final = await _single_target_run(
            router, token, host=host, port=port, username=sshd.username, private_key=sshd.private_key_pem
        )
        elapsed = time.monotonic() - started
    run = final["targetRuns"][0]
    assert run["status"] == "FAILED" and "timed out" in run["message"].lower(), run
    assert elapsed < 30, f"an unreachable host held the run for {elapsed:.0f}s"


async def test_wrong_ssh_key(router: Any, token: str, sshd: Any) -> None:
    _, final = await _single_target_run(
        router,
        token,
        host=sshd.hosts[2],
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.wrong_private_key_pem,
    )
    run = final["targetRuns"][0]
    assert run["status"] == "FAILED" and "authentication" in run["message"].lower(), run


async def test_step_exit_code_is_a_result(router: Any, token: str, sshd: Any) -> None:
    events, final = await _single_target_run(
        router,
        token,
        host=sshd.hosts[3],
        port=sshd.port,
        username=sshd.username,
        private_key=sshd.private_key_pem,
    )
    run = final["targetRuns"][0]
    assert final["status"] == "FAILED"
    assert run["exitCode"] == 3
    first, second = run["steps"]
    assert first["status"] == "FAILED" and first["exitCode"] == 3 and "before" in first["stdout"]
    assert second["status"] == "SKIPPED"
    assert any(e["type"] == "STEP_FINISHED" and e["exitCode"] == 3 for e in events)


async def test_password_credential(router: Any, token: str, sshd: Any) -> None:
    target_id = await create_ssh_target(
        router.url,
        token,
        name="pw",
        host=sshd.hosts[4],
        port=sshd.port,
        username=sshd.password_username,
        password=sshd.password,
    )
    job_id = await create_job(router.url, token, [target_id], [{"name": "who", "command": "whoami"}])
    _, _, final = await run_and_watch(router, token, job_id)
    assert final["status"] == "SUCCEEDED", final
    assert sshd.password_username in final["targetRuns"][0]["steps"][0]["stdout"]


async def test_query_over_depth_limit(router: Any, token: str) -> None:
    # Job.executions -> Execution.job cycles across two subgraphs, so depth is unbounded without the limit.
    cycle = "executions { edges { node { job { "
    too_deep = '{ job(id: "x") { ' + cycle * 5 + "id" + " } } } }" * 5 + " } }"
    body = await gql(router.url, too_deep, token=token)
    assert body.get("errors"), body
    assert any("depth" in e["message"].lower() for e in body["errors"]), body
    shallow = await gql(
        router.url, "{ targets(first: 1) { edges { node { communicationMethods { type } } } } }", token=token
    )
    assert not shallow.get("errors"), shallow


async def test_request_without_token(router: Any) -> None:
    body = await gql(router.url, "{ targets { totalCount } }")
    assert body["data"] is None or body["data"].get("targets") is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body


async def test_invalid_token_is_rejected(router: Any) -> None:
    body = await gql(router.url, "{ targets { totalCount } }", token="eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
    assert body.get("errors"), body


async def test_malformed_graphql(router: Any, token: str) -> None:
    body = await gql(router.url, "{ targets { ", token=token)
    assert body["errors"] and "syntax" in body["errors"][0]["message"].lower(), body


async def test_oversized_request(router: Any, token: str) -> None:
    huge = "x" * 3_000_000
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            router.url,
            json={"query": "{ targets { totalCount } }", "variables": {"pad": huge}},
            headers={"authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 413, resp.text[:300]
    assert resp.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"

"""The jobs subgraph over HTTP, on the real platform (PostgreSQL, Redis, auth, targets).

Tests that need real targets skip when ``OPSC_TEST_SERVICES`` leaves the targets service out;
the targets-down test runs only then (the targets URL points at a port where nothing listens).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from subgraphs.jobs.tests.helpers import make_target
from tests.support.platform import RunningPlatform, gql

JOB_FIELDS = """id serial name description version createdAt updatedAt
  steps { order name type command timeoutSeconds continueOnError }
  policy { maxParallel } targetIds targets { id }"""

CREATE_JOB = f"""mutation($input: CreateJobInput!) {{ createJob(input: $input) {{ __typename
  ... on JobCreated {{ job {{ {JOB_FIELDS} }} }}
  ... on ValidationFailed {{ message field }}
  ... on UnknownTargets {{ message targetIds }}
  ... on DependencyUnavailable {{ message service }}
  ... on Error {{ message }} }} }}"""

GET_JOB = f"query($id: ID!) {{ job(id: $id) {{ {JOB_FIELDS} }} }}"

LIST_JOBS = """query($first: Int, $after: String, $search: String) {
  jobs(first: $first, after: $after, filter: {search: $search}) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id serial name } } } }"""

DELETE_JOB = """mutation($id: ID!) { deleteJob(id: $id) { __typename
  ... on JobDeleted { id } ... on NotFound { message notFoundId: id } } }"""


def job_input(target_ids: list[str], **overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": "Patch web tier",
        "description": "monthly patching",
        "steps": [
            {"name": "update", "command": "apt-get update", "timeoutSeconds": 600},
            {"name": "uptime", "command": "uptime", "continueOnError": True},
        ],
        "targetIds": target_ids,
        "policy": {"maxParallel": 5},
    }
    value.update(overrides)
    return value


async def create_job(platform: RunningPlatform, token: str, data: dict[str, Any]) -> dict[str, Any]:
    body = await gql(platform.url("jobs"), CREATE_JOB, {"input": data}, token=token)
    assert "errors" not in body, body
    return body["data"]["createJob"]


@pytest_asyncio.fixture(scope="module")
async def target_id(platform: RunningPlatform, admin_token: str) -> str:
    return await make_target(platform, admin_token)


@pytest_asyncio.fixture(scope="module")
async def job(platform: RunningPlatform, admin_token: str, target_id: str) -> dict[str, Any]:
    result = await create_job(platform, admin_token, job_input([target_id]))
    assert result["__typename"] == "JobCreated", result
    return result["job"]


# ---- with real targets ------------------------------------------------------------------------


async def test_create_job_with_two_steps_and_a_real_target(
    platform: RunningPlatform, admin_token: str, target_id: str, job: dict[str, Any]
) -> None:
    assert job["serial"].startswith("JOB-") and len(job["serial"]) == 10
    assert job["version"] == 1
    assert job["policy"] == {"maxParallel": 5}
    body = await gql(platform.url("jobs"), GET_JOB, {"id": job["id"]}, token=admin_token)
    fetched = body["data"]["job"]
    assert fetched["name"] == "Patch web tier" and fetched["description"] == "monthly patching"
    assert fetched["steps"] == [
        {
            "order": 1,
            "name": "update",
            "type": "command",
            "command": "apt-get update",
            "timeoutSeconds": 600,
            "continueOnError": False,
        },
        {
            "order": 2,
            "name": "uptime",
            "type": "command",
            "command": "uptime",
            "timeoutSeconds": 300,
            "continueOnError": True,
        },
    ]
    assert fetched["targetIds"] == [target_id]
    assert fetched["targets"] == [{"id": target_id}]


async def test_job_created_event_reaches_the_stream(job: dict[str, Any]) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])  # the session's own Redis db (platform fixture)
    try:
        deadline = time.monotonic() + 5
        while True:
            entries = await redis.xrevrange("opsc.events.jobs", count=200)
            envelopes = [json.loads(values[b"envelope"]) for _id, values in entries]
            mine = [e for e in envelopes if e["subject"] == job["id"] and e["type"] == "jobs.job_created"]
            if mine or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    assert mine, "jobs.job_created was not published"
    assert mine[0]["data"]["serial"] == job["serial"] and mine[0]["data"]["stepCount"] == 2
    assert "command" not in json.dumps(mine[0]["data"])  # commands stay out of events


async def test_unknown_target_ids_are_listed(
    platform: RunningPlatform, admin_token: str, target_id: str
) -> None:
    missing = str(uuid.uuid4())
    result = await create_job(platform, admin_token, job_input([target_id, missing, missing, "not-a-uuid"]))
    assert result["__typename"] == "UnknownTargets", result
    assert result["targetIds"] == [missing, "not-a-uuid"]
    assert missing in result["message"]


async def test_duplicate_target_ids_are_stored_once(
    platform: RunningPlatform, admin_token: str, target_id: str
) -> None:
    result = await create_job(platform, admin_token, job_input([target_id, target_id]))
    assert result["__typename"] == "JobCreated", result
    assert result["job"]["targetIds"] == [target_id]


async def test_entities_resolves_jobs_and_nulls_unknown(
    platform: RunningPlatform, admin_token: str, job: dict[str, Any]
) -> None:
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
      ... on Job { id serial name steps { order name } targetIds } } }"""
    reps = [
        {"__typename": "Job", "id": job["id"]},
        {"__typename": "Job", "id": str(uuid.uuid4())},
        {"__typename": "Job", "id": "not-a-uuid"},
    ]
    body = await gql(platform.url("jobs"), query, {"r": reps}, token=admin_token)
    assert "errors" not in body, body
    first, unknown, malformed = body["data"]["_entities"]
    assert first["id"] == job["id"] and first["serial"] == job["serial"]
    assert [s["order"] for s in first["steps"]] == [1, 2]
    assert unknown is None and malformed is None


async def test_delete_job_is_soft_and_hides_it(
    platform: RunningPlatform, admin_token: str, target_id: str
) -> None:
    created = await create_job(platform, admin_token, job_input([target_id], name="to delete"))
    job_id = created["job"]["id"]
    body = await gql(platform.url("jobs"), DELETE_JOB, {"id": job_id}, token=admin_token)
    assert body["data"]["deleteJob"] == {"__typename": "JobDeleted", "id": job_id}
    body = await gql(platform.url("jobs"), GET_JOB, {"id": job_id}, token=admin_token)
    assert body["data"]["job"] is None
    body = await gql(platform.url("jobs"), DELETE_JOB, {"id": job_id}, token=admin_token)
    assert body["data"]["deleteJob"]["__typename"] == "NotFound"
    body = await gql(platform.url("jobs"), LIST_JOBS, {"search": created["job"]["serial"]}, token=admin_token)
    assert body["data"]["jobs"]["totalCount"] == 0


async def test_paging_newest_first_with_search(
    platform: RunningPlatform, admin_token: str, target_id: str
) -> None:
    tag = f"paging-{uuid.uuid4().hex[:8]}"
    ids = []
    for i in range(3):
        created = await create_job(platform, admin_token, job_input([target_id], name=f"{tag} {i}"))
        ids.append(created["job"]["id"])
    url = platform.url("jobs")
    page1 = (await gql(url, LIST_JOBS, {"first": 2, "search": tag.upper()}, token=admin_token))["data"][
        "jobs"
    ]
    assert page1["totalCount"] == 3
    assert [e["node"]["id"] for e in page1["edges"]] == [ids[2], ids[1]]
    assert page1["pageInfo"] == {"hasNextPage": True, "endCursor": page1["edges"][-1]["cursor"]}
    page2 = (
        await gql(
            url,
            LIST_JOBS,
            {"first": 2, "search": tag, "after": page1["pageInfo"]["endCursor"]},
            token=admin_token,
        )
    )["data"]["jobs"]
    assert [e["node"]["id"] for e in page2["edges"]] == [ids[0]]
    assert page2["pageInfo"]["hasNextPage"] is False
    empty = (await gql(url, LIST_JOBS, {"first": 0, "search": tag}, token=admin_token))["data"]["jobs"]
    assert empty["edges"] == [] and empty["pageInfo"]["hasNextPage"] is True


# ---- without targets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": []}, "steps"),
        ({"steps": [{"name": "empty", "command": ""}]}, "steps[0].command"),
        ({"steps": [{"name": "big", "command": "x" * (64 * 1024 + 1)}]}, "steps[0].command"),
        ({"policy": {"maxParallel": 0}}, "policy.maxParallel"),
        ({"targetIds": []}, "targetIds"),
    ],
)
async def test_invalid_input_is_validation_failed_with_field(
    platform: RunningPlatform, admin_token: str, change: dict[str, Any], field: str
) -> None:
    result = await create_job(platform, admin_token, job_input([str(uuid.uuid4())]) | change)
    assert result["__typename"] == "ValidationFailed", result
    assert result["field"] == field and result["message"]


async def test_targets_down_is_dependency_unavailable(platform: RunningPlatform, admin_token: str) -> None:
    """A second jobs service (its own PostgreSQL database) whose targets URL points where nothing listens."""
    from opsconductor_jobs.app import create_app
    from opsconductor_jobs.settings import Settings
    from opsconductor_shared.app import Platform
    from tests.support.platform import create_database, drop_database, free_port
    from tests.support.sshd import closed_port

    settings = Settings(
        port=free_port(),
        database_url=(database := await create_database("opsc_test_jobs_alone")),
        targets_url=f"http://127.0.0.1:{closed_port()}/graphql",
        redis_url=None,
    )
    app = create_app(settings, Platform.from_settings(settings))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        started_at = time.monotonic()
        body = await gql(
            f"{settings.base_url}/graphql",
            CREATE_JOB,
            {"input": job_input([str(uuid.uuid4())])},
            token=admin_token,
        )
        result = body["data"]["createJob"]
        assert time.monotonic() - started_at < 15, "an unreachable service must fail fast, not hang"
        assert result["__typename"] == "DependencyUnavailable", result
        assert result["service"] == "targets" and "unavailable" in result["message"]
    finally:
        server.should_exit = True
        await task
        await drop_database(database)


async def test_no_token_is_unauthenticated(platform: RunningPlatform) -> None:
    url = platform.url("jobs")
    for query, variables in (
        (LIST_JOBS, {}),
        (GET_JOB, {"id": str(uuid.uuid4())}),
        (CREATE_JOB, {"input": job_input(["t"])}),
        (DELETE_JOB, {"id": "x"}),
    ):
        body = await gql(url, query, variables)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body


async def test_unknown_and_malformed_ids(platform: RunningPlatform, admin_token: str) -> None:
    url = platform.url("jobs")
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        assert (await gql(url, GET_JOB, {"id": job_id}, token=admin_token))["data"]["job"] is None
        body = await gql(url, DELETE_JOB, {"id": job_id}, token=admin_token)
        assert body["data"]["deleteJob"]["__typename"] == "NotFound"


async def test_bad_cursor_is_bad_user_input(platform: RunningPlatform, admin_token: str) -> None:
    body = await gql(platform.url("jobs"), LIST_JOBS, {"after": "bm9wZQ"}, token=admin_token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert body["errors"][0]["message"] == "invalid cursor"
    body = await gql(platform.url("jobs"), LIST_JOBS, {"first": 501}, token=admin_token)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


async def test_concurrent_creates_get_distinct_serials(
    platform: RunningPlatform, admin_token: str, target_id: str
) -> None:
    results = await asyncio.gather(
        *(create_job(platform, admin_token, job_input([target_id], name=f"concurrent {i}")) for i in range(6))
    )
    serials = [r["job"]["serial"] for r in results]
    assert len(set(serials)) == 6, serials

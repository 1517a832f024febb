"""createJob, validateJob, updateJob and versions over HTTP on the real platform (auth, targets,
jobs). Fixtures `fleet` and `job`: conftest.py.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from subgraphs.jobs.tests.helpers import (
    CREATE_JOB,
    JOB_PLAN,
    JOB_VERSIONS,
    LIST_JOBS,
    UPDATE_JOB,
    VALIDATE_JOB,
    call,
    full_input,
)
from tests.support.platform import RunningPlatform, gql


async def test_create_stores_every_step_type_policy_parameters_and_selector(
    job: dict[str, Any], fleet: dict[str, Any]
) -> None:
    assert job["version"] == 1 and job["serial"].startswith("JOB-")
    announce, migrate, ps, config, fetch = job["steps"]
    assert announce["type"] == "command" and announce["expectedExitCodes"] == [0, 2]
    assert announce["env"] == [{"name": "RELEASE", "value": "{{ version }}"}]
    assert migrate["command"] == "" and migrate["script"]["interpreter"] == "python"
    assert migrate["continueOnError"] is True and migrate["timeoutSeconds"] == 300
    assert ps["script"]["arguments"] == []
    assert config["transfer"] == {
        "direction": "upload",
        "source": None,
        "destination": "/etc/app/{{ env }}.conf",
        "content": "release={{ version }}\n",
        "mode": "0644",
    }
    assert fetch["transfer"]["source"] == "/var/log/app.log" and fetch["expectedExitCodes"] == [0]
    assert job["policy"] == {
        "maxParallel": 10,
        "batchSize": None,
        "batchPercent": 50,
        "failFastThreshold": 2,
        "retries": 1,
        "retryBackoffSeconds": 0.5,
        "timeoutSeconds": 900,
        "concurrency": "queue",
        "allowHostOverlap": False,
    }
    assert job["targetIds"] == [fleet["explicit"]]
    assert job["targetSelector"] == {
        "tags": [fleet["tag"]],
        "osTypes": ["linux"],
        "environments": ["production", "staging"],
    }
    assert [p["name"] for p in job["parameters"]] == ["version", "env", "workers", "dry"]
    assert job["parameters"][1] == {
        "name": "env",
        "type": "choice",
        "required": False,
        "default": "staging",
        "choices": ["staging", "production"],
        "description": None,
    }


async def test_validate_job_reports_findings_and_saves_nothing(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    name = f"validate-only-{uuid.uuid4().hex[:6]}"
    data = {
        "name": name,
        "parameters": [{"name": "when", "default": "now"}],
        "steps": [
            {"name": "ok", "command": "uptime"},
            {"name": "off", "command": "shutdown -h {{ when }}"},
            {
                "name": "win",
                "type": "script",
                "script": {"interpreter": "powershell", "body": "Format-Volume -DriveLetter D"},
            },
        ],
        "targetIds": [fleet["explicit"]],
    }
    result = (await call(platform, admin_token, VALIDATE_JOB, {"input": data}))["validateJob"]
    assert result["__typename"] == "JobValid", result
    assert result["targetIds"] == [fleet["explicit"]]
    assert [(f["stepName"], f["rule"]) for f in result["dangerous"]] == [
        ("off", "power.shutdown"),
        ("win", "win.format-volume"),
    ]
    assert (await call(platform, admin_token, LIST_JOBS, {"search": name}))["jobs"]["totalCount"] == 0
    bad = (
        await call(
            platform,
            admin_token,
            VALIDATE_JOB,
            {"input": data | {"steps": [{"name": "x", "command": "echo {{ nope }}"}]}},
        )
    )["validateJob"]
    assert bad == {"__typename": "ValidationFailed", "message": bad["message"], "field": "steps[0].command"}
    unknown = str(uuid.uuid4())
    missing = (await call(platform, admin_token, VALIDATE_JOB, {"input": data | {"targetIds": [unknown]}}))[
        "validateJob"
    ]
    assert missing["__typename"] == "UnknownTargets" and missing["targetIds"] == [unknown]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"steps": [{"name": "s", "type": "script", "script": {"interpreter": "ruby", "body": "x"}}]},
            "steps[0].script.interpreter",
        ),
        (
            {
                "steps": [
                    {
                        "name": "s",
                        "type": "file_transfer",
                        "transfer": {"direction": "upload", "destination": "rel", "content": ""},
                    }
                ]
            },
            "steps[0].transfer.destination",
        ),
        (
            {"steps": [{"name": "s", "command": "true", "env": [{"name": "BAD-NAME", "value": "x"}]}]},
            "steps[0].env[0].name",
        ),
        ({"policy": {"batchSize": 2, "batchPercent": 10}}, "policy.batchPercent"),
        ({"policy": {"concurrency": "never"}}, "policy.concurrency"),
        ({"parameters": [{"name": "n", "type": "int", "default": "x"}]}, "parameters[0].default"),
        ({"targetIds": [], "targetSelector": {"tags": []}}, "targetIds"),
    ],
)
async def test_create_validation_over_http(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    result = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet) | change}))[
        "createJob"
    ]
    assert result["__typename"] == "ValidationFailed", result
    assert result["field"] == field


async def test_update_versions_and_plan_uses_the_current_version(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    created = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet)}))["createJob"]
    job_id = created["job"]["id"]

    same = (
        await call(
            platform, admin_token, UPDATE_JOB, {"id": job_id, "input": {"name": created["job"]["name"]}}
        )
    )["updateJob"]
    assert same["__typename"] == "JobUpdated" and same["changed"] is False and same["job"]["version"] == 1

    edit = {
        "name": "deploy v2",
        "steps": [{"name": "only", "command": "echo {{ version }}"}],
        "policy": {"maxParallel": 3},
        "targetSelector": {"tags": []},  # drop the selector: explicit ids only
    }
    updated = (
        await call(platform, admin_token, UPDATE_JOB, {"id": job_id, "input": edit | {"expectedVersion": 1}})
    )["updateJob"]
    assert updated["__typename"] == "JobUpdated" and updated["changed"] is True, updated
    job = updated["job"]
    assert job["version"] == 2 and job["name"] == "deploy v2"
    assert [s["name"] for s in job["steps"]] == ["only"] and job["targetSelector"] is None
    assert (
        job["policy"]["maxParallel"] == 3 and job["policy"]["batchPercent"] is None
    )  # policy replaced whole
    assert [p["name"] for p in job["parameters"]] == ["version", "env", "workers", "dry"]  # kept
    assert [v["version"] for v in job["versions"]] == [2, 1]
    assert job["versions"][1]["name"] == created["job"]["name"] and job["versions"][0]["createdBy"]

    versions = (await call(platform, admin_token, JOB_VERSIONS, {"jobId": job_id}))["jobVersions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert [s["name"] for s in versions[1]["steps"]] == ["announce", "migrate", "ps", "config", "fetch log"]
    assert versions[1]["policy"]["maxParallel"] == 10

    plan = (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id, "parameters": {"version": "x y"}}))[
        "jobPlan"
    ]
    assert plan["version"] == 2 and [s["command"] for s in plan["steps"]] == ["echo 'x y'"]
    assert plan["targetIds"] == [fleet["explicit"]]
    old = (
        await call(
            platform, admin_token, JOB_PLAN, {"jobId": job_id, "parameters": {"version": "1"}, "version": 1}
        )
    )["jobPlan"]
    assert old["__typename"] == "JobPlan" and old["version"] == 1 and len(old["steps"]) == 5
    assert old["name"] == created["job"]["name"] and len(old["targetIds"]) == 4  # v1 had the selector
    none = (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id, "version": 7}))["jobPlan"]
    assert none["__typename"] == "NotFound"

    stale = (
        await call(
            platform, admin_token, UPDATE_JOB, {"id": job_id, "input": {"name": "x", "expectedVersion": 1}}
        )
    )["updateJob"]
    assert stale["__typename"] == "VersionConflict", stale
    assert (stale["expectedVersion"], stale["currentVersion"]) == (1, 2)

    broken = (
        await call(
            platform,
            admin_token,
            UPDATE_JOB,
            {"id": job_id, "input": {"steps": [{"name": "x", "command": "{{ gone }}"}]}},
        )
    )["updateJob"]
    assert broken["__typename"] == "ValidationFailed" and broken["field"] == "steps[0].command"
    unknown = str(uuid.uuid4())
    missing = (
        await call(platform, admin_token, UPDATE_JOB, {"id": job_id, "input": {"targetIds": [unknown]}})
    )["updateJob"]
    assert missing["__typename"] == "UnknownTargets" and missing["targetIds"] == [unknown]
    after = (await call(platform, admin_token, JOB_VERSIONS, {"jobId": job_id}))["jobVersions"]
    assert len(after) == 2  # failed edits leave no version behind


async def test_update_unknown_and_deleted_jobs(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        result = (await call(platform, admin_token, UPDATE_JOB, {"id": job_id, "input": {"name": "x"}}))[
            "updateJob"
        ]
        assert result["__typename"] == "NotFound"
    created = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet)}))["createJob"]
    job_id = created["job"]["id"]
    await call(
        platform, admin_token, "mutation($id: ID!) { deleteJob(id: $id) { __typename } }", {"id": job_id}
    )
    result = (await call(platform, admin_token, UPDATE_JOB, {"id": job_id, "input": {"name": "x"}}))[
        "updateJob"
    ]
    assert result["__typename"] == "NotFound"
    assert (await call(platform, admin_token, JOB_VERSIONS, {"jobId": job_id}))["jobVersions"] == []
    assert (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id}))["jobPlan"][
        "__typename"
    ] == "NotFound"


async def test_dangerous_command_rules_are_listed(platform: RunningPlatform, admin_token: str) -> None:
    rules = (await call(platform, admin_token, "{ dangerousCommandRules { id reason enabled } }", {}))[
        "dangerousCommandRules"
    ]
    ids = {r["id"]: r for r in rules}
    assert {"fs.rm-recursive-root", "power.shutdown", "process.fork-bomb", "win.format-volume"} <= set(ids)
    assert all(r["enabled"] and r["reason"] for r in rules)


async def test_new_operations_need_a_token(platform: RunningPlatform) -> None:
    for query, variables in (
        (JOB_PLAN, {"jobId": str(uuid.uuid4())}),
        (
            VALIDATE_JOB,
            {"input": {"name": "x", "steps": [{"name": "s", "command": "true"}], "targetIds": ["t"]}},
        ),
        (JOB_VERSIONS, {"jobId": str(uuid.uuid4())}),
        (UPDATE_JOB, {"id": str(uuid.uuid4()), "input": {"name": "x"}}),
        ("{ dangerousCommandRules { id } }", {}),
    ):
        body = await gql(platform.url("jobs"), query, variables)
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", body


async def test_job_updated_event_carries_the_version_and_no_commands(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    import asyncio
    import json
    import time

    from redis.asyncio import Redis

    created = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet)}))["createJob"]
    job_id = created["job"]["id"]
    secret_command = f"echo marker-{uuid.uuid4().hex}"
    edit = {"steps": [{"name": "only", "command": secret_command}]}
    updated = (await call(platform, admin_token, UPDATE_JOB, {"id": job_id, "input": edit}))["updateJob"]
    assert updated["__typename"] == "JobUpdated", updated
    redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])
    try:
        deadline = time.monotonic() + 10
        while True:
            entries = await redis.xrevrange("opsc.events.jobs", count=500)
            envelopes = [json.loads(values[b"envelope"]) for _id, values in entries]
            mine = [e for e in envelopes if e["subject"] == job_id and e["type"] == "jobs.job_updated"]
            if mine or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    finally:
        await redis.aclose()
    assert mine, "jobs.job_updated was not published"
    assert mine[0]["data"]["version"] == 2 and mine[0]["data"]["stepCount"] == 1
    assert mine[0]["data"]["parameters"] == ["version", "env", "workers", "dry"]
    assert secret_command not in json.dumps(mine[0])

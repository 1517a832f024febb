"""jobPlan, validateJob, updateJob and versions over HTTP on the real platform (auth, targets, jobs).

Targets are real rows in the targets service (with tags and environments), so selectors are
resolved through its `targets` query; service tokens come from the real auth service.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import pytest
import pytest_asyncio

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
    platform: RunningPlatform, token: str, *, tags: list[str], environment: str, os_type: str = "linux"
) -> str:
    host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(1, 254)}"  # noqa: S311
    body = await gql(
        platform.url("targets"),
        CREATE_TARGET,
        {
            "input": {
                "name": f"plan-test-{uuid.uuid4().hex[:8]}",
                "osType": os_type,
                "environment": environment,
                "tags": tags,
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
        },
        token=token,
    )
    result = body["data"]["createTarget"]
    assert result["__typename"] == "TargetCreated", body
    return str(result["target"]["id"])


async def call(
    platform: RunningPlatform, token: str, query: str, variables: dict[str, Any]
) -> dict[str, Any]:
    body = await gql(platform.url("jobs"), query, variables, token=token)
    assert "errors" not in body, body
    return body["data"]


async def service_token(platform: RunningPlatform, name: str) -> str:
    provider = ServiceTokenProvider(
        auth_url=platform.base("auth"), service=name, secret=os.environ[f"OPSC_SERVICE_SECRET_{name.upper()}"]
    )
    return await provider.token()


@pytest_asyncio.fixture(scope="module")
async def fleet(platform: RunningPlatform, admin_token: str) -> dict[str, Any]:
    """One explicit target and a tagged group: two web/production, one web/staging, one windows web."""
    tag = f"web-{uuid.uuid4().hex[:6]}"
    explicit = await make_target(platform, admin_token, tags=["db"], environment="production")
    web_prod = [
        await make_target(platform, admin_token, tags=[tag, "blue"], environment="production")
        for _ in range(2)
    ]
    web_staging = await make_target(platform, admin_token, tags=[tag], environment="staging")
    web_windows = await make_target(
        platform, admin_token, tags=[tag], environment="production", os_type="windows"
    )
    return {
        "tag": tag,
        "explicit": explicit,
        "web_prod": web_prod,
        "web_staging": web_staging,
        "web_windows": web_windows,
    }


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


@pytest_asyncio.fixture(scope="module")
async def job(platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]) -> dict[str, Any]:
    result = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet)}))["createJob"]
    assert result["__typename"] == "JobCreated", result
    return result["job"]


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


async def test_plan_substitutes_quoted_values_and_resolves_targets(
    platform: RunningPlatform, admin_token: str, job: dict[str, Any], fleet: dict[str, Any]
) -> None:
    params = {"version": "v1.2; reboot", "env": "production", "workers": "8"}
    plan = (await call(platform, admin_token, JOB_PLAN, {"jobId": job["id"], "parameters": params}))[
        "jobPlan"
    ]
    assert plan["__typename"] == "JobPlan", plan
    assert (plan["jobId"], plan["serial"], plan["version"]) == (job["id"], job["serial"], 1)
    assert plan["parameters"] == {"version": "v1.2; reboot", "env": "production", "workers": 8, "dry": False}
    announce, migrate, ps, config, fetch = plan["steps"]
    assert announce["command"] == "echo deploying 'v1.2; reboot' to production workers=8 dry=false"
    assert announce["workingDirectory"] == "/srv/production"
    assert announce["env"] == [{"name": "RELEASE", "value": "v1.2; reboot"}]
    assert migrate["script"]["body"] == "print('v1.2; reboot')"
    assert migrate["script"]["arguments"] == ["--v=v1.2; reboot"]
    assert ps["script"]["body"] == "Write-Output 'v1.2; reboot'"
    assert config["transfer"]["destination"] == "/etc/app/production.conf"
    assert config["transfer"]["content"] == "release=v1.2; reboot\n"
    assert fetch["transfer"]["source"] == "/var/log/app.log"
    # explicit id first, then linux targets with the tag in production or staging (not windows).
    assert plan["targetIds"][0] == fleet["explicit"]
    assert set(plan["targetIds"][1:]) == {*fleet["web_prod"], fleet["web_staging"]}
    assert len(plan["targetIds"]) == 4
    assert plan["policy"]["batchPercent"] == 50 and plan["policy"]["concurrency"] == "queue"
    # In the command the value is quoted (`reboot` is an argument of echo): no finding. Script
    # arguments are raw argv words and the script may run them, so the rules look at them too.
    assert [(f["stepName"], f["rule"], f["match"]) for f in plan["dangerous"]] == [
        ("migrate", "power.shutdown", "reboot")
    ]


async def test_plan_with_a_target_subset(
    platform: RunningPlatform, admin_token: str, job: dict[str, Any], fleet: dict[str, Any]
) -> None:
    subset = [fleet["web_staging"], fleet["explicit"]]
    plan = (
        await call(
            platform,
            admin_token,
            JOB_PLAN,
            {"jobId": job["id"], "parameters": {"version": "1"}, "targetIds": subset},
        )
    )["jobPlan"]
    assert plan["targetIds"] == [fleet["explicit"], fleet["web_staging"]]  # the plan's order
    outside = (
        await call(
            platform,
            admin_token,
            JOB_PLAN,
            {"jobId": job["id"], "parameters": {"version": "1"}, "targetIds": [fleet["web_windows"], "nope"]},
        )
    )["jobPlan"]
    assert outside["__typename"] == "UnknownTargets", outside
    assert outside["targetIds"] == [fleet["web_windows"], "nope"]


@pytest.mark.parametrize(
    ("parameters", "field"),
    [
        (None, "parameters.version"),
        ({}, "parameters.version"),
        ({"version": "1", "env": "qa"}, "parameters.env"),
        ({"version": "1", "workers": "many"}, "parameters.workers"),
        ({"version": "1", "dry": "perhaps"}, "parameters.dry"),
        ({"version": 5}, "parameters.version"),
        ({"version": "1", "typo": "x"}, "parameters.typo"),
        (["not", "an", "object"], "parameters"),
    ],
)
async def test_plan_parameter_errors(
    platform: RunningPlatform, admin_token: str, job: dict[str, Any], parameters: Any, field: str
) -> None:
    plan = (await call(platform, admin_token, JOB_PLAN, {"jobId": job["id"], "parameters": parameters}))[
        "jobPlan"
    ]
    assert plan["__typename"] == "ValidationFailed", plan
    assert plan["field"] == field and plan["message"]


async def test_plan_of_unknown_or_deleted_job_is_not_found(
    platform: RunningPlatform, admin_token: str
) -> None:
    for job_id in (str(uuid.uuid4()), "not-a-uuid"):
        plan = (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id}))["jobPlan"]
        assert plan["__typename"] == "NotFound"


async def test_plan_reports_dangerous_commands_on_rendered_steps(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    created = (
        await call(
            platform,
            admin_token,
            CREATE_JOB,
            {
                "input": {
                    "name": "cleanup",
                    "parameters": [{"name": "dir", "default": "/srv/app/cache"}],
                    "steps": [
                        {"name": "clean", "command": "rm -rf {{ dir }}"},
                        {
                            "name": "keys",
                            "type": "file_transfer",
                            "transfer": {
                                "direction": "download",
                                "source": "/root/.ssh/id_rsa",
                                "destination": "key",
                            },
                        },
                    ],
                    "targetIds": [fleet["explicit"]],
                }
            },
        )
    )["createJob"]
    assert created["__typename"] == "JobCreated", created
    job_id = created["job"]["id"]
    safe = (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id}))["jobPlan"]
    assert [(f["stepName"], f["rule"]) for f in safe["dangerous"]] == [("keys", "cred.ssh-private-key")]
    risky = (await call(platform, admin_token, JOB_PLAN, {"jobId": job_id, "parameters": {"dir": "/"}}))[
        "jobPlan"
    ]
    assert [(f["stepName"], f["rule"], f["match"]) for f in risky["dangerous"]] == [
        ("clean", "fs.rm-recursive-root", "rm -rf /"),
        ("keys", "cred.ssh-private-key", ".ssh/id_rsa"),
    ]
    assert all(f["reason"] for f in risky["dangerous"])


async def test_executions_service_token_may_plan_others_may_not(
    platform: RunningPlatform, job: dict[str, Any]
) -> None:
    token = await service_token(platform, "executions")
    plan = (await call(platform, token, JOB_PLAN, {"jobId": job["id"], "parameters": {"version": "1"}}))[
        "jobPlan"
    ]
    assert plan["__typename"] == "JobPlan" and len(plan["targetIds"]) == 4
    other = await service_token(platform, "targets")  # holds targets:read only
    body = await gql(platform.url("jobs"), JOB_PLAN, {"jobId": job["id"]}, token=other)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body


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


JOB_PLAN_FOR_RUN = """query($jobId: ID!, $parameters: JSON, $check: Boolean!) {
  jobPlan(jobId: $jobId, parameters: $parameters, checkTargets: $check) { __typename
    ... on JobPlan { jobId serial name version targetIds parameters plan
      steps { order name command } policy { maxParallel batchPercent concurrency } }
    ... on UnknownTargets { message targetIds } ... on Error { message } } }"""

DELETE_TARGET = """mutation($id: ID!) { deleteTarget(id: $id) { __typename } }"""


async def test_plan_json_is_the_run_plan_and_a_run_skips_the_explicit_id_check(
    platform: RunningPlatform, admin_token: str, fleet: dict[str, Any]
) -> None:
    """Issue 15 items 2 and 6: `JobPlan.plan` is `RunPlan.to_json()` (the fields above, one object);
    `checkTargets: false` (what executions passes for a run) does not ask the targets service
    about the explicit ids (the run's grant does), while the default preview still does."""
    from opsconductor_shared.runplan import RunPlan

    gone = await make_target(platform, admin_token, tags=["db"], environment="production")
    created = (await call(platform, admin_token, CREATE_JOB, {"input": full_input(fleet, targetIds=[gone])}))[
        "createJob"
    ]
    assert created["__typename"] == "JobCreated", created
    job_id = created["job"]["id"]
    variables = {"jobId": job_id, "parameters": {"version": "7"}, "check": True}
    plan = (await call(platform, admin_token, JOB_PLAN_FOR_RUN, variables))["jobPlan"]
    assert plan["__typename"] == "JobPlan", plan
    run = RunPlan.from_json(plan["plan"])
    assert (run.job_id, run.serial, run.name, run.version) == (
        plan["jobId"],
        plan["serial"],
        plan["name"],
        plan["version"],
    )
    assert list(run.target_ids) == plan["targetIds"] and run.parameters == plan["parameters"]
    assert [(s.order, s.name, s.command) for s in run.steps] == [
        (s["order"], s["name"], s["command"]) for s in plan["steps"]
    ]
    assert (run.policy.max_parallel, run.policy.batch_percent, run.policy.concurrency) == (10, 50, "queue")

    body = await gql(platform.url("targets"), DELETE_TARGET, {"id": gone}, token=admin_token)
    assert body["data"]["deleteTarget"]["__typename"] == "TargetDeleted", body
    preview = (await call(platform, admin_token, JOB_PLAN_FOR_RUN, variables))["jobPlan"]
    assert preview["__typename"] == "UnknownTargets" and preview["targetIds"] == [gone], preview
    for_run = (await call(platform, admin_token, JOB_PLAN_FOR_RUN, variables | {"check": False}))["jobPlan"]
    assert for_run["__typename"] == "JobPlan", for_run
    assert for_run["targetIds"][0] == gone  # left to the grant, which refuses it authoritatively
    assert set(for_run["targetIds"][1:]) == {*fleet["web_prod"], fleet["web_staging"]}  # selector resolved

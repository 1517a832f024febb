"""jobPlan over HTTP on the real platform (auth, targets, jobs).

Targets are real rows in the targets service (with tags and environments), so selectors are
resolved through its `targets` query; service tokens come from the real auth service.
Fixtures `fleet` and `job`: conftest.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from subgraphs.jobs.tests.helpers import (
    CREATE_JOB,
    JOB_PLAN,
    call,
    full_input,
    make_target,
    service_token,
)
from tests.support.platform import RunningPlatform, gql


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

"""Unit tests of the run plan's shapes: an old row's dict plan is read as a RunPlan, and a RunPlan
becomes the engine's ExecutionPlan in one function (no database needed)."""

from __future__ import annotations

from types import SimpleNamespace

from opsconductor_executions.service.plans import Grant, engine_plan, stored_plan
from opsconductor_shared.runplan import EnvVar, RunPlan

OLD_PLAN = {
    "steps": [
        {
            "order": 1,
            "name": "hello",
            "type": "command",
            "command": "echo hi",
            "timeoutSeconds": 300,
            "continueOnError": False,
            "workingDirectory": None,
            "env": [{"name": "A", "value": "1"}],
            "expectedExitCodes": [0],
            "script": None,
            "transfer": None,
        }
    ],
    "policy": {
        "maxParallel": 7,
        "batchSize": 2,
        "batchPercent": None,
        "failFastThreshold": None,
        "retries": 0,
        "retryBackoffSeconds": 2.0,
        "timeoutSeconds": None,
        "concurrency": "queue",
        "allowHostOverlap": False,
    },
    "targets": [{"id": "t1", "name": "one", "host": "h1", "port": 22, "method": "ssh"}],
    "dangerous": [{"stepName": "hello", "rule": "r", "reason": "x", "match": "m"}],
}


def _row(plan: dict, dangerous: list | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        plan=plan,
        dangerous=dangerous,
        job_id="j1",
        job_serial="JOB-1",
        job_name="job",
        job_version=3,
        parameters={"p": "v"},
    )


def test_an_old_rows_dict_plan_reads_as_a_run_plan() -> None:
    stored = stored_plan(_row(OLD_PLAN))  # type: ignore[arg-type]
    plan = stored.plan
    assert plan.job_id == "j1" and plan.version == 3 and plan.serial == "JOB-1"
    assert plan.target_ids == ("t1",)
    assert plan.policy.max_parallel == 7 and plan.policy.concurrency == "queue"
    assert plan.steps[0].env[0].name == "A" and plan.parameters == {"p": "v"}
    assert stored.dangerous == OLD_PLAN["dangerous"]


def test_a_new_rows_plan_is_the_run_plans_json() -> None:
    plan = stored_plan(_row(OLD_PLAN)).plan  # type: ignore[arg-type]
    again = stored_plan(_row(plan.to_json(), dangerous=[]))  # type: ignore[arg-type]
    assert again.plan == plan and again.dangerous == []


def test_the_engine_plan_carries_the_policy_once() -> None:
    plan: RunPlan = stored_plan(_row(OLD_PLAN)).plan  # type: ignore[arg-type]
    grant = Grant(grant="g", resolver_url="http://r", expires_at=None, targets=OLD_PLAN["targets"])
    built = engine_plan("e1", plan, grant, connect_timeout_s=5, max_output_bytes=100)
    assert built.policy is plan.policy and built.policy.max_parallel == 7
    assert built.policy.batch_size == 2 and built.max_output_bytes == 100
    assert built.steps[0].env == (EnvVar(name="A", value="1"),) and built.targets[0].host == "h1"

"""The typed run plan (issue 15 item 3): one shape, camelCase JSON, defaults in one place."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from opsconductor_shared.runplan import DEFAULT_MAX_PARALLEL, Policy, RunPlan, Step


def test_json_round_trip_is_camel_case_and_lossless() -> None:
    plan = RunPlan.from_json(
        {
            "jobId": "j1",
            "version": 3,
            "steps": [
                {"name": "a", "command": "echo", "timeoutSeconds": 5, "env": [{"name": "A", "value": "b"}]},
                {"order": 2, "name": "s", "type": "script", "script": {"interpreter": "bash", "body": "ls"}},
            ],
            "targetIds": ["t1", "t2"],
            "policy": {"maxParallel": 3, "batchPercent": 50},
        }
    )
    data = plan.to_json()
    assert data["steps"][0]["timeoutSeconds"] == 5
    assert data["steps"][0]["expectedExitCodes"] == [0]
    assert data["policy"]["retryBackoffSeconds"] == 2.0
    assert RunPlan.from_json(data) == plan
    assert pickle.loads(pickle.dumps(plan)) == plan  # noqa: S301 - our own bytes; crosses Ray's object store


def test_defaults_live_in_one_place() -> None:
    assert Policy().max_parallel == DEFAULT_MAX_PARALLEL
    step = Step(name="x", command="true")
    assert step.timeout_seconds == 300 and step.expected_exit_codes == (0,) and step.type == "command"


def test_unknown_keys_and_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        Step.model_validate({"name": "x", "timeoutS": 5})
    with pytest.raises(ValidationError):
        Step.model_validate({"name": "x", "type": "telnet"})
    with pytest.raises(ValidationError):
        Policy.model_validate({"maxParallel": 0})


def test_batches() -> None:
    ids = [f"t{i}" for i in range(5)]
    assert Policy().batches(ids) == [ids]
    assert Policy(batch_size=2).batches(ids) == [ids[:2], ids[2:4], ids[4:]]
    assert Policy(batch_percent=50).batches(ids) == [ids[:3], ids[3:]]
    assert Policy(batch_size=2, batch_percent=50).batches(ids) == [ids[:2], ids[2:4], ids[4:]]
    assert Policy().batches([]) == []

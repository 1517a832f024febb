"""createJob validation and the targets-service edge, without the platform (fast, pure)."""

from __future__ import annotations

import time

import pytest

from opsconductor_jobs import service
from opsconductor_jobs.errors import UnknownTargetsError
from opsconductor_jobs.service import JobDraft, StepDraft, validate_job
from opsconductor_shared.client import ServiceClient
from opsconductor_shared.errors import DependencyUnavailableError, ValidationError
from opsconductor_shared.runplan import Policy
from tests.support.platform import free_port


def draft(**overrides: object) -> JobDraft:
    values: dict[str, object] = {
        "name": "Patch web tier",
        "steps": [
            StepDraft(name="update", command="apt-get update"),
            StepDraft(name="uptime", command="uptime"),
        ],
        "target_ids": ["t-1"],
    }
    values.update(overrides)
    return JobDraft(**values)  # type: ignore[arg-type]


def field_of(d: JobDraft) -> str | None:
    with pytest.raises(ValidationError) as info:
        validate_job(d)
    assert info.value.message  # always a readable message
    return info.value.field


def test_valid_job_gets_defaults_and_numbered_steps() -> None:
    job = validate_job(draft(name="  Patch web tier  "))
    assert job.name == "Patch web tier"
    assert [(s.order, s.name, s.timeout_seconds, s.continue_on_error) for s in job.steps] == [
        (1, "update", 300, False),
        (2, "uptime", 300, False),
    ]
    assert job.policy == Policy()
    assert job.policy.max_parallel == 50
    assert job.description is None


def test_duplicate_target_ids_collapse_in_order() -> None:
    assert validate_job(draft(target_ids=["b", "a", "b", " a "])).target_ids == ["b", "a"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"description": "d" * 10_001}, "description"),
        ({"steps": []}, "steps"),
        ({"steps": [StepDraft(name="", command="true")]}, "steps[0].name"),
        ({"steps": [StepDraft(name="n" * 256, command="true")]}, "steps[0].name"),
        (
            {"steps": [StepDraft(name="ok", command="true"), StepDraft(name="empty", command="  \n")]},
            "steps[1].command",
        ),
        ({"steps": [StepDraft(name="big", command="x" * (64 * 1024 + 1))]}, "steps[0].command"),
        ({"steps": [StepDraft(name="t", command="true", timeout_seconds=0)]}, "steps[0].timeoutSeconds"),
        ({"steps": [StepDraft(name="t", command="true", timeout_seconds=86_401)]}, "steps[0].timeoutSeconds"),
        ({"max_parallel": 0}, "policy.maxParallel"),
        ({"max_parallel": 1001}, "policy.maxParallel"),
        ({"target_ids": []}, "targetIds"),
        ({"target_ids": [], "target_selector": service.SelectorDraft()}, "targetIds"),
        ({"target_ids": ["ok", ""]}, "targetIds[1]"),
    ],
)
def test_invalid_input_names_the_field(overrides: dict[str, object], field: str) -> None:
    assert field_of(draft(**overrides)) == field


def test_limits_are_inclusive() -> None:
    job = validate_job(
        draft(
            name="x" * 255,
            max_parallel=1000,
            steps=[
                StepDraft(
                    name="n" * 255, command="x" * (64 * 1024), timeout_seconds=86_400, continue_on_error=True
                )
            ],
        )
    )
    assert job.policy.max_parallel == 1000
    assert job.steps[0].timeout_seconds == 86_400 and job.steps[0].continue_on_error
    one = validate_job(draft(max_parallel=1, steps=[StepDraft("s", "true", timeout_seconds=1)]))
    assert one.policy.max_parallel == 1


def test_command_limit_counts_bytes_not_characters() -> None:
    # 'é' is two bytes in UTF-8: 32 Ki of them is 64 KiB exactly; one more is over.
    assert validate_job(draft(steps=[StepDraft("s", "é" * (32 * 1024))]))
    assert field_of(draft(steps=[StepDraft("s", "é" * (32 * 1024) + "x")])) == "steps[0].command"


async def test_unreachable_targets_service_is_a_typed_error_and_quick() -> None:
    """A real client to a port where nothing listens: DependencyUnavailable, not an exception."""
    client = ServiceClient(f"http://127.0.0.1:{free_port()}/graphql", None, timeout=2, backoff=0.05)
    try:
        started = time.monotonic()
        with pytest.raises(DependencyUnavailableError) as info:
            await service.check_targets(directory=service.TargetsSubgraph(client), target_ids=["t-1"])
        assert time.monotonic() - started < 15, "an unreachable service must fail fast, not hang"
        assert info.value.service == "targets"
        assert "targets service is unavailable" in info.value.message
    finally:
        await client.aclose()


class FakeTargets:
    """In-repo fake of the targets subgraph: a fixed set of existing ids."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)
        self.asked: list[list[str]] = []

    async def existing(self, target_ids: list[str]) -> set[str]:
        self.asked.append(list(target_ids))
        return self.ids & set(target_ids)

    async def matching(self, selector: dict[str, list[str]], limit: int) -> list[str]:
        return sorted(self.ids)


async def test_check_targets_lists_only_the_missing_ids_in_input_order() -> None:
    fake = FakeTargets("a", "c")
    with pytest.raises(UnknownTargetsError) as info:
        await service.check_targets(directory=fake, target_ids=["z", "a", "y", "c"])
    assert info.value.target_ids == ["z", "y"]
    assert "z, y" in info.value.message
    await service.check_targets(directory=fake, target_ids=["a", "c"])  # all known: no error

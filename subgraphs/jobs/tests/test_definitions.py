"""Validation of step types, policy, selector and placeholders; snapshots; plan rendering (pure)."""

from __future__ import annotations

import pytest

from opsconductor_jobs.errors import UnknownTargetsError
from opsconductor_jobs.service import (
    JobDraft,
    PolicyDraft,
    ScriptDraft,
    SelectorDraft,
    StepDraft,
    TransferDraft,
    ValidJob,
    check_rendered,
    draft_from_valid,
    load_policy,
    load_step,
    render_step,
    resolve_targets,
    validate_job,
)
from opsconductor_jobs.service.render import ParameterDef
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.runplan import EnvVar, Policy, Step


def draft(*steps: StepDraft, **overrides: object) -> JobDraft:
    values: dict[str, object] = {
        "name": "j",
        "steps": list(steps) or [StepDraft("s", "true")],
        "target_ids": ["t-1"],
    }
    values.update(overrides)
    return JobDraft(**values)  # type: ignore[arg-type]


def field_of(d: JobDraft) -> str | None:
    with pytest.raises(ValidationError) as info:
        validate_job(d)
    assert info.value.message
    return info.value.field


def script(interpreter: str = "bash", body: str = "echo hi", arguments: list[str] | None = None) -> StepDraft:
    return StepDraft("s", type="script", script=ScriptDraft(interpreter, body, arguments or []))


def upload(destination: str = "/tmp/x", content: str | None = "data", mode: str | None = None) -> StepDraft:
    return StepDraft(
        "s", type="file_transfer", transfer=TransferDraft("upload", destination, content=content, mode=mode)
    )


def download(source: str | None = "/var/log/syslog", destination: str = "syslog") -> StepDraft:
    return StepDraft(
        "s", type="file_transfer", transfer=TransferDraft("download", destination, source=source)
    )


def test_all_step_types_validate_with_defaults() -> None:
    job = validate_job(
        draft(
            StepDraft(
                "cmd", "uptime", working_directory="/srv", env=[("A_1", "x")], expected_exit_codes=[0, 3, 3]
            ),
            script("python", "print(1)", ["--flag", "two words"]),
            upload("C:\\temp\\x.txt", "", "0644"),
            download(),
        )
    )
    cmd, scr, up, down = job.steps
    assert (cmd.type, cmd.working_directory, cmd.env, cmd.expected_exit_codes) == (
        "command",
        "/srv",
        (EnvVar(name="A_1", value="x"),),
        (0, 3),
    )
    assert scr.type == "script" and scr.command == "" and scr.script is not None
    assert scr.script.arguments == ("--flag", "two words") and scr.expected_exit_codes == (0,)
    assert up.transfer is not None and up.transfer.content == "" and up.transfer.mode == "0644"
    assert down.transfer is not None and down.transfer.source == "/var/log/syslog"


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (StepDraft("s", "true", type="http"), "steps[0].type"),
        (StepDraft("s", "true", type="script", script=ScriptDraft("bash", "x")), "steps[0].command"),
        (StepDraft("s", type="script"), "steps[0].script"),
        (StepDraft("s", "true", script=ScriptDraft("bash", "x")), "steps[0].type"),
        (script("ruby"), "steps[0].script.interpreter"),
        (script(body="  \n"), "steps[0].script.body"),
        (script(body="x" * (1024 * 1024 + 1)), "steps[0].script.body"),
        (script(arguments=["a"] * 101), "steps[0].script.arguments"),
        (script(arguments=["ok", "x" * 4097]), "steps[0].script.arguments[1]"),
        (script(arguments=["nul\x00"]), "steps[0].script.arguments[0]"),
        (StepDraft("s", type="file_transfer"), "steps[0].transfer"),
        (
            StepDraft("s", type="file_transfer", transfer=TransferDraft("sideways", "/x")),
            "steps[0].transfer.direction",
        ),
        (upload("relative/path"), "steps[0].transfer.destination"),
        (upload(""), "steps[0].transfer.destination"),
        (upload("/tmp/a\nb"), "steps[0].transfer.destination"),
        (upload("/" + "x" * 4096), "steps[0].transfer.destination"),
        (upload(content=None), "steps[0].transfer.content"),
        (upload(content="x" * (1024 * 1024 + 1)), "steps[0].transfer.content"),
        (upload(mode="rwxr-xr-x"), "steps[0].transfer.mode"),
        (upload(mode="0999"), "steps[0].transfer.mode"),
        (upload(mode="12345"), "steps[0].transfer.mode"),
        (download(source=None), "steps[0].transfer.source"),
        (download(source="etc/passwd"), "steps[0].transfer.source"),
        (download(destination=""), "steps[0].transfer.destination"),
        (
            StepDraft(
                "s", type="file_transfer", transfer=TransferDraft("upload", "/x", source="/y", content="c")
            ),
            "steps[0].transfer.source",
        ),
        (
            StepDraft(
                "s", type="file_transfer", transfer=TransferDraft("download", "l", source="/y", content="c")
            ),
            "steps[0].transfer.content",
        ),
        (StepDraft("s", "true", working_directory="srv"), "steps[0].workingDirectory"),
        (StepDraft("s", "true", env=[("1BAD", "x")]), "steps[0].env[0].name"),
        (StepDraft("s", "true", env=[("A-B", "x")]), "steps[0].env[0].name"),
        (StepDraft("s", "true", env=[("A", "x"), ("A", "y")]), "steps[0].env[1].name"),
        (StepDraft("s", "true", env=[("A", "nul\x00")]), "steps[0].env[0].value"),
        (StepDraft("s", "true", env=[(f"V{i}", "x") for i in range(101)]), "steps[0].env"),
        (StepDraft("s", "true", expected_exit_codes=[]), "steps[0].expectedExitCodes"),
        (StepDraft("s", "true", expected_exit_codes=[256]), "steps[0].expectedExitCodes"),
        (StepDraft("s", "true", expected_exit_codes=[-1]), "steps[0].expectedExitCodes"),
    ],
)
def test_step_problems_name_the_field(step: StepDraft, field: str) -> None:
    assert field_of(draft(step)) == field


def test_modes_accepted() -> None:
    for mode in ("644", "0644", "0755", "4755", "0600"):
        assert validate_job(draft(upload(mode=mode))).steps[0].transfer.mode == mode  # type: ignore[union-attr]


# ---- policy -----------------------------------------------------------------------------------


def test_policy_defaults_and_full_policy() -> None:
    assert validate_job(draft()).policy == Policy()
    policy = validate_job(
        draft(
            policy=PolicyDraft(
                max_parallel=10,
                batch_percent=25,
                fail_fast_threshold=3,
                retries=2,
                retry_backoff_seconds=0.5,
                timeout_seconds=3600,
                concurrency="queue",
                allow_host_overlap=True,
            )
        )
    ).policy
    assert policy.model_dump(by_alias=True) == {
        "maxParallel": 10,
        "batchSize": None,
        "batchPercent": 25,
        "failFastThreshold": 3,
        "retries": 2,
        "retryBackoffSeconds": 0.5,
        "timeoutSeconds": 3600,
        "concurrency": "queue",
        "allowHostOverlap": True,
    }


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        (PolicyDraft(batch_size=5, batch_percent=10), "policy.batchPercent"),
        (PolicyDraft(batch_size=0), "policy.batchSize"),
        (PolicyDraft(batch_percent=0), "policy.batchPercent"),
        (PolicyDraft(batch_percent=101), "policy.batchPercent"),
        (PolicyDraft(fail_fast_threshold=0), "policy.failFastThreshold"),
        (PolicyDraft(retries=-1), "policy.retries"),
        (PolicyDraft(retries=11), "policy.retries"),
        (PolicyDraft(retry_backoff_seconds=-0.1), "policy.retryBackoffSeconds"),
        (PolicyDraft(retry_backoff_seconds=301), "policy.retryBackoffSeconds"),
        (PolicyDraft(timeout_seconds=0), "policy.timeoutSeconds"),
        (PolicyDraft(concurrency="sometimes"), "policy.concurrency"),
        (PolicyDraft(max_parallel=0), "policy.maxParallel"),
    ],
)
def test_policy_problems(policy: PolicyDraft, field: str) -> None:
    assert field_of(draft(policy=policy)) == field


# ---- selector and placeholders ------------------------------------------------------------------


def test_selector_is_normalised_and_may_replace_ids() -> None:
    job = validate_job(
        draft(
            target_ids=[],
            target_selector=SelectorDraft(tags=["web", " web"], os_types=["Linux"], environments=[]),
        )
    )
    assert job.target_selector == {"tags": ["web"], "osTypes": ["linux"], "environments": []}
    assert job.target_ids == []
    assert field_of(draft(target_selector=SelectorDraft(tags=[""]))) == "targetSelector.tags"
    assert (
        field_of(draft(target_selector=SelectorDraft(tags=[f"t{i}" for i in range(51)])))
        == "targetSelector.tags"
    )


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (StepDraft("s", "echo {{ nope }}"), "steps[0].command"),
        (script(body="echo {{nope}}"), "steps[0].script.body"),
        (script(arguments=["{{ nope }}"]), "steps[0].script.arguments[0]"),
        (upload("/srv/{{ nope }}"), "steps[0].transfer.destination"),
        (upload(content="{{ nope }}"), "steps[0].transfer.content"),
        (download("/var/{{ nope }}"), "steps[0].transfer.source"),
        (StepDraft("s", "true", working_directory="/srv/{{ nope }}"), "steps[0].workingDirectory"),
        (StepDraft("s", "true", env=[("A", "{{ nope }}")]), "steps[0].env[0].value"),
    ],
)
def test_unknown_placeholders_are_errors(step: StepDraft, field: str) -> None:
    assert field_of(draft(step, parameters=[ParameterDef(name="known")])) == field


def test_placeholder_paths_are_checked_after_rendering() -> None:
    job = validate_job(draft(upload("{{ path }}"), parameters=[ParameterDef(name="path", required=True)]))
    check_rendered([render_step(job.steps[0], {"path": "/etc/app.conf"})])
    with pytest.raises(ValidationError) as info:
        check_rendered([render_step(job.steps[0], {"path": "relative.conf"})])
    assert info.value.field == "steps[0].transfer.destination"


def test_render_step_quotes_per_language_and_keeps_raw_places_raw() -> None:
    params = [ParameterDef(name="v")]
    job = validate_job(
        draft(
            StepDraft("cmd", "echo {{ v }}", working_directory="/srv/{{ v }}", env=[("X", "{{ v }}")]),
            StepDraft(
                "ps", type="script", script=ScriptDraft("powershell", "Write-Output {{ v }}", ["{{ v }}"])
            ),
            StepDraft("py", type="script", script=ScriptDraft("python", "print({{ v }})")),
            StepDraft("sh", type="script", script=ScriptDraft("sh", "echo {{ v }}")),
            upload("/srv/{{ v }}.txt", "value={{ v }}"),
            parameters=params,
        )
    )
    cmd, ps, py, sh, up = (render_step(s, {"v": "it's"}) for s in job.steps)
    assert cmd.command == "echo 'it'\"'\"'s'"
    assert cmd.working_directory == "/srv/it's" and cmd.env == (EnvVar(name="X", value="it's"),)
    assert (
        ps.script is not None
        and ps.script.body == "Write-Output 'it''s'"
        and ps.script.arguments == ("it's",)
    )
    assert py.script is not None and py.script.body == 'print("it\'s")'
    assert sh.script is not None and sh.script.body == "echo 'it'\"'\"'s'"
    assert (
        up.transfer is not None
        and up.transfer.destination == "/srv/it's.txt"
        and up.transfer.content == "value=it's"
    )


# ---- snapshots --------------------------------------------------------------------------------


def test_snapshot_round_trip_and_draft_round_trip() -> None:
    job = validate_job(
        draft(
            StepDraft("cmd", "echo {{ v }}", env=[("A", "1")], expected_exit_codes=[0, 1]),
            script("bash", "echo", ["a"]),
            upload(mode="0600"),
            download(),
            parameters=[ParameterDef(name="v", type="choice", choices=("a", "b"), default="a")],
            target_selector=SelectorDraft(tags=["web"]),
            policy=PolicyDraft(batch_size=2, concurrency="skip"),
        )
    )
    snapshot = job.to_snapshot()
    assert ValidJob.from_snapshot(snapshot).to_snapshot() == snapshot
    assert validate_job(draft_from_valid(job)).to_snapshot() == snapshot


def test_older_stored_shapes_load_with_the_plan_defaults() -> None:
    """Rows from before migration 0002 (policy ``{maxParallel}`` or ``{}``, steps with ``env = []``,
    ``expected_exit_codes = []`` meaning [0]) and snapshots with nulls load through the models."""
    assert load_policy({}) == Policy()
    assert load_policy(None) == Policy()
    assert load_policy({"maxParallel": 7}) == Policy(max_parallel=7)
    old_row = {
        "order": 1,
        "name": "s",
        "type": "command",
        "command": "uptime",
        "timeout_seconds": 300,
        "continue_on_error": False,
        "working_directory": None,
        "env": [],
        "expected_exit_codes": [],
        "script": None,
        "transfer": None,
    }
    step = load_step(old_row)
    assert step.expected_exit_codes == (0,) and step.env == () and step.script is None
    sparse_snapshot = {"order": 2, "name": "n", "command": "true", "type": None, "expectedExitCodes": None}
    assert load_step(sparse_snapshot) == Step(order=2, name="n", command="true")
    job = ValidJob.from_snapshot({"name": "j", "steps": [sparse_snapshot], "policy": {"maxParallel": 3}})
    assert job.policy.max_parallel == 3 and job.steps[0].timeout_seconds == 300
    # what is stored now is what the plan JSON carries: the same camelCase keys
    assert job.to_snapshot()["steps"][0] == Step(order=2, name="n", command="true").model_dump(
        mode="json", by_alias=True
    )


# ---- target resolution --------------------------------------------------------------------------


class Directory:
    def __init__(self, existing: set[str], matches: list[str]) -> None:
        self.ids, self.matches = existing, matches
        self.selectors: list[dict[str, list[str]]] = []

    async def existing(self, target_ids: list[str]) -> set[str]:
        return self.ids & set(target_ids)

    async def matching(self, selector: dict[str, list[str]], limit: int) -> list[str]:
        self.selectors.append(dict(selector))
        return list(self.matches)


async def test_resolve_targets_union_subset_and_errors() -> None:
    job = validate_job(draft(target_ids=["a", "b"], target_selector=SelectorDraft(tags=["web"])))
    directory = Directory({"a", "b"}, ["c", "a", "d"])
    assert await resolve_targets(directory=directory, job=job, requested=None) == ["a", "b", "c", "d"]
    assert directory.selectors == [{"tags": ["web"], "osTypes": [], "environments": []}]
    assert await resolve_targets(directory=directory, job=job, requested=["d", "a", "d"]) == ["a", "d"]
    with pytest.raises(UnknownTargetsError) as info:
        await resolve_targets(directory=directory, job=job, requested=["a", "zzz"])
    assert info.value.target_ids == ["zzz"] and "not targets of this job" in info.value.message
    with pytest.raises(UnknownTargetsError) as info:
        await resolve_targets(directory=Directory({"a"}, []), job=job, requested=None)
    assert info.value.target_ids == ["b"]
    only_selector = validate_job(draft(target_ids=[], target_selector=SelectorDraft(tags=["none"])))
    with pytest.raises(ValidationError) as err:
        await resolve_targets(directory=Directory(set(), []), job=only_selector, requested=None)
    assert err.value.field == "targetIds"

"""Security review 2026-12, jobs side: C1 (dangerous-command scan in linear time, off the loop),
M14 (no `..` through parameters in transfer paths), H7 (cmd.exe / PowerShell quotes), L17 (target
details need targets:read), numeric inputs.

Timed assertions are only the generous bounds the review asks for.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from opsconductor_jobs import service
from opsconductor_jobs.service import (
    JobDraft,
    ScriptDraft,
    StepDraft,
    danger,
    find_dangerous,
    paramguard,
    validate_job,
)
from opsconductor_jobs.service.danger import build_rules, scan_text
from opsconductor_shared.errors import ValidationError
from tests.support.loopwatch import LoopBlocked, loop_watch
from tests.support.platform import RunningPlatform, gql

RULES = build_rules()
MIB = 1024 * 1024


def timed(text: str, rules: tuple[danger.Rule, ...] = RULES) -> float:
    started = time.perf_counter()
    scan_text(text, rules)
    return time.perf_counter() - started


# ---- C1: linear time --------------------------------------------------------------------------


def test_c1_review_inputs_scan_fast() -> None:
    """C1: the review's measurements (8 KB 1.1 s, 32 KB 9.4 s, `rm `*8000 2.4 s) are now milliseconds."""
    assert timed("a" * 50_000) < 0.5
    assert timed("rm " * 8000) < 0.5


def test_c1_fork_bomb_rule_on_a_long_word() -> None:
    fork_bomb = tuple(r for r in RULES if r.id == "process.fork-bomb")
    assert timed("a" * 50_000, fork_bomb) < 0.5
    assert timed("a" * 50_000 + "(){ x|x& }", fork_bomb) < 0.5
    # a long name is still found
    name = "b" * 10_000
    assert [r.id for r, _ in scan_text(f"{name}(){{ {name}|{name}& }};{name}", fork_bomb)] == [
        "process.fork-bomb"
    ]


# Inputs built to make a backtracking rule rescan the rest of the text at every position.
ADVERSARIAL = [
    "a",
    "rm ",
    "rm -r ",
    "-" + "r" * 200 + ". ",
    "a(",
    ":",
    "sudo -x ",
    "find / ",
    "dd ",
    "curl $",
    "curl $SECRETSECRET",
    "curl -d = ",
    "curl|sudo -",
    "iwr ",
    "iex ",
    "procdump ",
    "Remove-Item -r ",
    "systemctl ",
    "chmod -R ",
    "mkfs.a",
    ".ssh/id_a-",
    "ssh_host_a_",
    "> ",
    "a;",
    "rm ;",
]


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_c1_every_rule_is_linear(unit: str) -> None:
    """C1: doubling the input at most ~doubles the time (quadratic rules quadrupled it), and
    256 KiB of any of these takes well under a second."""
    small = (unit * (128 * 1024 // len(unit) + 1))[: 128 * 1024]
    large = (unit * (256 * 1024 // len(unit) + 1))[: 256 * 1024]
    timed(small)  # warm up
    t_small = min(timed(small) for _ in range(2))
    t_large = min(timed(large) for _ in range(2))
    assert t_large < 1.0, (unit, t_large)
    assert t_large < 3.5 * t_small + 0.02, (unit, t_small, t_large)


def test_c1_a_mebibyte_script_scans_in_well_under_a_second() -> None:
    body = (
        "rm -rf /tmp/build && curl -fsS https://example.com/x -o /tmp/x; echo $HOME | tee -a log\n" * 20_000
    )[:MIB]
    assert timed(body) < 1.0


def test_c1_scan_is_bounded_per_request() -> None:
    """C1: more text than SCAN_MAX_CHARS, or past the deadline: ValidationError (ValidationFailed)."""
    steps = validate_job(
        JobDraft(
            name="big",
            target_ids=["t"],
            steps=[
                StepDraft(f"s{i}", type="script", script=ScriptDraft("bash", "a" * service.SCRIPT_MAX_BYTES))
                for i in range(danger.SCAN_MAX_CHARS // service.SCRIPT_MAX_BYTES + 1)
            ],
        )
    ).steps
    with pytest.raises(ValidationError) as too_large:
        find_dangerous(steps, RULES)
    assert too_large.value.field == "steps"
    with pytest.raises(ValidationError) as too_slow:
        find_dangerous(steps[:1], RULES, deadline=time.monotonic() - 1)
    assert too_slow.value.field == "steps" and "too long" in too_slow.value.message


async def test_c1_scan_runs_in_a_thread_with_a_timeout() -> None:
    """The service's scan helper leaves the loop free and turns its deadline into ValidationError."""

    release = threading.Event()

    def slow(*, deadline: float) -> str:
        # ignores its deadline and stays busy until the test releases it (bounded: 10 s), so
        # only the backstop can end the wait, however late the loop gets to the timeout
        release.wait(10)
        return "late"

    started = time.monotonic()
    try:
        with pytest.raises(ValidationError):
            await service.scan_in_thread(slow, timeout=0.2)
    finally:
        release.set()
    assert time.monotonic() - started < 9


async def test_loop_watch_catches_a_blocked_loop() -> None:
    """The helper itself: a 300 ms blocking call inside the block fails the watch."""
    with pytest.raises(LoopBlocked):
        async with loop_watch(0.1):
            time.sleep(0.3)  # noqa: ASYNC251 - blocking on purpose
    async with loop_watch(0.1) as watch:
        await __import__("asyncio").sleep(0.05)
    assert watch.ticks > 0


# ---- C1 through the jobs subgraph (the services run in this test's loop) ---------------------

VALIDATE_JOB = """query($input: CreateJobInput!) { validateJob(input: $input) { __typename
  ... on JobValid { targetIds dangerous { stepName rule } }
  ... on ValidationFailed { message field } ... on UnknownTargets { message targetIds } } }"""

CREATE_JOB = """mutation($input: CreateJobInput!) { createJob(input: $input) { __typename
  ... on JobCreated { job { id } } ... on ValidationFailed { message field } ... on Error { message } } }"""

JOB_PLAN = """query($jobId: ID!, $parameters: JSON) { jobPlan(jobId: $jobId, parameters: $parameters) {
  __typename ... on JobPlan { targetIds dangerous { stepName rule } }
  ... on ValidationFailed { message field } ... on Error { message } } }"""

CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) { __typename
  ... on TargetCreated { target { id } } ... on Error { message } } }"""


async def make_target(
    platform: RunningPlatform, token: str, *, method: str = "SSH", os_type: str = "linux"
) -> str:
    host = f"127.0.{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 1}"
    method_input: dict[str, Any] = {
        "type": method,
        "host": host,
        "port": 22 if method == "SSH" else 5985,
        "isPrimary": True,
        "credential": {"type": "PASSWORD", "username": "opsc", "password": "not-used-1"},
    }
    body = await gql(
        platform.url("targets"),
        CREATE_TARGET,
        {
            "input": {
                "name": f"review-{uuid.uuid4().hex[:8]}",
                "osType": os_type,
                "environment": "production",
                "tags": ["review"],
                "methods": [method_input],
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
    body = await gql(platform.url("jobs"), query, variables, token=token, timeout=60)
    assert "errors" not in body, body
    return body["data"]


def script_job(target: str, body: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": f"big-{uuid.uuid4().hex[:6]}",
        "targetIds": [target],
        "steps": [{"name": "s", "type": "script", "script": {"interpreter": "bash", "body": body}}],
        **extra,
    }


async def test_c1_mebibyte_requests_answer_fast_without_blocking_the_loop(
    platform: RunningPlatform, admin_token: str
) -> None:
    """C1 acceptance: a script body as large as a request may be (1 MB cap) in validateJob and
    createJob, and a 64 KiB parameter substituted 16 times into a script by jobPlan (a 1 MiB
    rendered script), each answer in under 1 s while the loop (every service) keeps running."""
    target = await make_target(platform, admin_token)
    body = ("a" * 990_000) + "\n"
    async with loop_watch():
        started = time.monotonic()
        valid = (await call(platform, admin_token, VALIDATE_JOB, {"input": script_job(target, body)}))[
            "validateJob"
        ]
        assert time.monotonic() - started < 1.0
    assert valid["__typename"] == "JobValid", valid

    async with loop_watch():
        started = time.monotonic()
        created = (await call(platform, admin_token, CREATE_JOB, {"input": script_job(target, body)}))[
            "createJob"
        ]
        assert time.monotonic() - started < 1.0
    assert created["__typename"] == "JobCreated", created

    template = script_job(
        target, "echo {{ p }}\n" * 16, parameters=[{"name": "p", "type": "string", "default": "x"}]
    )
    job = (await call(platform, admin_token, CREATE_JOB, {"input": template}))["createJob"]
    assert job["__typename"] == "JobCreated", job
    value = ("rm " * 22_000)[: 64 * 1024 - 16]
    async with loop_watch():
        started = time.monotonic()
        plan = (
            await call(
                platform, admin_token, JOB_PLAN, {"jobId": job["job"]["id"], "parameters": {"p": value}}
            )
        )["jobPlan"]
        assert time.monotonic() - started < 1.0
    assert plan["__typename"] == "JobPlan", plan


# ---- M14 / H7: parameter values in paths and PowerShell arguments ---------------------------


def transfer_job(destination: str, *, download: bool = False) -> service.ValidJob:
    transfer = (
        service.TransferDraft("download", "log", source=destination)
        if download
        else service.TransferDraft("upload", destination, content="x")
    )
    return validate_job(
        JobDraft(
            name="t",
            target_ids=["t"],
            parameters=[service.ParameterDef(name="f")],
            steps=[StepDraft("copy", type="file_transfer", transfer=transfer)],
        )
    )


@pytest.mark.parametrize("value", ["../../etc/x", "..", "a/../../b", "..\\..\\Windows\\x"])
@pytest.mark.parametrize("download", [False, True])
def test_m14_values_must_not_traverse_transfer_paths(value: str, download: bool) -> None:
    job = transfer_job("/opt/app/{{ f }}", download=download)
    with pytest.raises(ValidationError) as info:
        paramguard.check_values(job.steps, {"f": value})
    assert info.value.field == "parameters.f"


def test_m14_ordinary_values_and_the_authors_own_dots_pass() -> None:
    paramguard.check_values(transfer_job("/opt/app/{{ f }}").steps, {"f": "releases/v1..2/app.conf"})
    paramguard.check_values(transfer_job("/opt/app/../shared/{{ f }}").steps, {"f": "x.conf"})


def test_h7_typographic_quotes_refused_in_powershell_arguments_and_paths() -> None:
    job = validate_job(
        JobDraft(
            name="ps",
            target_ids=["t"],
            parameters=[service.ParameterDef(name="a")],
            steps=[
                StepDraft("s", type="script", script=ScriptDraft("powershell", "echo $args", ["{{ a }}"]))
            ],
        )
    )
    for quote in "\u2018\u2019\u201a\u201b":
        with pytest.raises(ValidationError) as info:
            paramguard.check_values(job.steps, {"a": f"x{quote}; Start-Process calc; {quote}"})
        assert info.value.field == "parameters.a"
        with pytest.raises(ValidationError):
            paramguard.check_values(transfer_job("C:\\app\\{{ f }}").steps, {"f": f"a{quote}+(evil)+{quote}"})
    paramguard.check_values(job.steps, {"a": "O'Brien"})  # ASCII quotes: the engine doubles them


async def test_m14_job_plan_refuses_traversal(platform: RunningPlatform, admin_token: str) -> None:
    """M14 over HTTP: upload to /opt/app/{{ f }} with f=../../etc/x is ValidationFailed."""
    target = await make_target(platform, admin_token)
    job = (
        await call(
            platform,
            admin_token,
            CREATE_JOB,
            {
                "input": {
                    "name": f"m14-{uuid.uuid4().hex[:6]}",
                    "targetIds": [target],
                    "parameters": [{"name": "f", "type": "string", "default": "app.conf"}],
                    "steps": [
                        {
                            "name": "put",
                            "type": "file_transfer",
                            "transfer": {
                                "direction": "upload",
                                "destination": "/opt/app/{{ f }}",
                                "content": "x",
                            },
                        }
                    ],
                }
            },
        )
    )["createJob"]
    assert job["__typename"] == "JobCreated", job
    ok = (await call(platform, admin_token, JOB_PLAN, {"jobId": job["job"]["id"]}))["jobPlan"]
    assert ok["__typename"] == "JobPlan", ok
    bad = (
        await call(
            platform, admin_token, JOB_PLAN, {"jobId": job["job"]["id"], "parameters": {"f": "../../etc/x"}}
        )
    )["jobPlan"]
    assert bad["__typename"] == "ValidationFailed" and bad["field"] == "parameters.f", bad

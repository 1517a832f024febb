"""A WinRM target through the real engine: Ray coordinator and ConnectionPool actors, the
HTTP credential resolver, and the WS-Man test double standing in for a Windows host."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest

from opsconductor_ray.client import EngineClient
from opsconductor_ray.protocol import (
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
    truncation_marker,
)
from opsconductor_ray.testing import FakeCredentialVault, collect_events
from opsconductor_ray.testing.wsman import WSManTestDouble
from opsconductor_shared.runplan import Script, Step

PASSWORD = "Win-Passw0rd!"


@pytest.fixture(scope="module")
def windows() -> Iterator[WSManTestDouble]:
    # NTLM: the engine's default WinRM transport when the credential names none.
    server = WSManTestDouble({"opsc": PASSWORD}, ntlm=True, hostname="WIN-ENGINE").start()
    try:
        yield server
    finally:
        server.stop()


def winrm_target(server: WSManTestDouble) -> TargetSpec:
    target_id = f"w-{uuid.uuid4().hex[:10]}"
    return TargetSpec(target_id=target_id, name=target_id, host="127.0.0.1", port=server.port, method="winrm")


async def test_winrm_run_through_the_pool(
    engine: EngineClient, vault: FakeCredentialVault, windows: WSManTestDouble
) -> None:
    good, bad = winrm_target(windows), winrm_target(windows)
    steps = (
        Step(name="cmd", command="echo hello & hostname", timeout_seconds=30),
        Step(
            name="ps",
            type="script",
            script=Script(
                interpreter="powershell", body='Write-Output "arg=$($args[0])"; exit 4', arguments=("x",)
            ),
            timeout_seconds=30,
            expected_exit_codes=(4,),
        ),
    )
    ok_plan = ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=steps,
        targets=(good,),
        credentials=vault.issue(username="opsc", password=PASSWORD),
    )
    await engine.start(ok_plan)
    events = await collect_events(engine, ok_plan.execution_id, timeout_s=60)
    assert PASSWORD not in repr(events)
    stdout = "".join(e.data or "" for e in events if e.type == EventType.STDOUT)
    assert stdout == "hello\r\nWIN-ENGINE\r\narg=x\r\n"
    finished = [e for e in events if e.type == EventType.STEP_FINISHED]
    assert [(e.status, e.exit_code) for e in finished] == [(Status.SUCCEEDED, 0), (Status.SUCCEEDED, 4)]
    assert [e.truncated for e in finished] == [False, False]
    assert events[-1].type == EventType.EXECUTION_FINISHED
    assert events[-1].status == Status.SUCCEEDED
    # TARGET_STARTED once the shell is open, before the first output
    types = [e.type for e in events]
    assert types.count(EventType.TARGET_STARTED) == 1
    assert types.index(EventType.TARGET_STARTED) < types.index(EventType.STDOUT)

    bad_plan = ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=steps,
        targets=(bad,),
        credentials=vault.issue(username="opsc", password="wrong"),
    )
    await engine.start(bad_plan)
    events = await collect_events(engine, bad_plan.execution_id, timeout_s=60)
    target_finished = [e for e in events if e.type == EventType.TARGET_FINISHED]
    assert len(target_finished) == 1
    assert target_finished[0].status == Status.FAILED
    assert "authentication rejected for user 'opsc'" in (target_finished[0].data or "")
    assert "wrong" not in repr(events)
    # the login failed, so the target never started (as with SSH)
    assert not [e for e in events if e.type == EventType.TARGET_STARTED]

    result = await engine.test_connection(good, vault.issue(username="opsc", password=PASSWORD))
    assert result.ok, result.message
    assert result.message.endswith("hostname WIN-ENGINE")


async def test_winrm_output_over_the_limit_is_cut_once_and_flagged(
    engine: EngineClient, vault: FakeCredentialVault, windows: WSManTestDouble
) -> None:
    """The pool's output cap is the one truncation: the marker once, and STEP_FINISHED says
    `truncated` for that step on that target only."""
    plan = ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=(
            Step(name="chatty", command="ping -n 3 127.0.0.1", timeout_seconds=30),
            Step(name="small", command="echo ok", timeout_seconds=30),
        ),
        targets=(winrm_target(windows),),
        credentials=vault.issue(username="opsc", password=PASSWORD),
        max_output_bytes=40,
    )
    await engine.start(plan)
    events = await collect_events(engine, plan.execution_id, timeout_s=60)
    chatty = "".join(
        e.data or "" for e in events if e.step_index == 0 and e.type in (EventType.STDOUT, EventType.STDERR)
    )
    assert chatty.endswith(truncation_marker(40))
    assert len(chatty.encode()) == 40 + len(truncation_marker(40))
    assert chatty.count("output truncated") == 1
    finished = [e for e in events if e.type == EventType.STEP_FINISHED]
    assert [(e.status, e.truncated) for e in finished] == [
        (Status.SUCCEEDED, True),
        (Status.SUCCEEDED, False),
    ]


async def test_winrm_timeout_and_cancel_through_the_pool(
    engine: EngineClient, vault: FakeCredentialVault, windows: WSManTestDouble
) -> None:
    ref = vault.issue(username="opsc", password=PASSWORD)
    timeout_plan = ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=(
            Step(name="slow", command="ping -n 60 127.0.0.1", timeout_seconds=2),
            Step(name="after", command="echo never", timeout_seconds=30),
        ),
        targets=(winrm_target(windows),),
        credentials=ref,
    )
    await engine.start(timeout_plan)
    events = await collect_events(engine, timeout_plan.execution_id, timeout_s=60)
    finished = [e for e in events if e.type == EventType.STEP_FINISHED]
    assert [e.status for e in finished] == [Status.TIMED_OUT, Status.SKIPPED]
    assert finished[0].data == "timed out after 2s; the command was sent the terminate signal"
    assert "Reply from" in "".join(e.data or "" for e in events if e.type == EventType.STDOUT)

    cancel_plan = ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=(Step(name="long", command="ping -n 120 127.0.0.1", timeout_seconds=300),),
        targets=(winrm_target(windows),),
        credentials=ref,
    )
    await engine.start(cancel_plan)
    seen: list[EngineEvent] = []
    deadline = time.monotonic() + 60
    while not any(e.type == EventType.STDOUT for e in seen):
        assert time.monotonic() < deadline, seen
        seen.extend(await engine.events(cancel_plan.execution_id, after_seq=len(seen), wait_s=1.0))
    await engine.cancel(cancel_plan.execution_id)
    events = await collect_events(engine, cancel_plan.execution_id, timeout_s=60)
    step = next(e for e in events if e.type == EventType.STEP_FINISHED)
    assert step.status == Status.CANCELLED
    assert events[-1].status == Status.CANCELLED
    deadline = time.monotonic() + 20
    while windows.running_commands:
        assert time.monotonic() < deadline, "the cancelled command still runs on the double"
        await asyncio.sleep(0.1)

"""A WinRM target through the real engine: Ray coordinator and ConnectionPool actors, the
HTTP credential resolver, and the WS-Man test double standing in for a Windows host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from opsconductor_ray.client import EngineClient
from opsconductor_ray.protocol import EventType, ExecutionPlan, ScriptSpec, Status, StepSpec, TargetSpec
from opsconductor_ray.testing import FakeCredentialVault, collect_events
from opsconductor_ray.wsman_test_double import WSManTestDouble

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
        StepSpec(name="cmd", command="echo hello & hostname", timeout_s=30),
        StepSpec(
            name="ps",
            command="",
            type="script",
            script=ScriptSpec(
                interpreter="powershell", body='Write-Output "arg=$($args[0])"; exit 4', arguments=("x",)
            ),
            timeout_s=30,
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
    assert events[-1].type == EventType.EXECUTION_FINISHED
    assert events[-1].status == Status.SUCCEEDED

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

    result = await engine.test_connection(good, vault.issue(username="opsc", password=PASSWORD))
    assert result.ok, result.message
    assert result.message.endswith("hostname WIN-ENGINE")

"""Live output (issue 15): a line printed on a target reaches an `events()` long poll at once,
not after a flush interval or a gathering window; a flood is still merged into few events."""

from __future__ import annotations

import statistics
import time
import uuid

from opsconductor_ray.client import EngineClient
from opsconductor_ray.protocol import (
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    TargetSpec,
)
from opsconductor_shared.runplan import Step
from tests.support.sshd import SshServer


def plan_for(credentials: CredentialRef, sshd: SshServer, command: str) -> ExecutionPlan:
    target_id = f"t-{uuid.uuid4().hex[:10]}"
    return ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=(Step(name="step-1", command=command, timeout_seconds=30),),
        targets=(TargetSpec(target_id=target_id, name=target_id, host=sshd.host, port=sshd.port),),
        credentials=credentials,
        connect_timeout_s=10,
    )


def text_of(events: list[EngineEvent]) -> str:
    return "".join(e.data or "" for e in events if e.type == EventType.STDOUT)


async def follow(engine: EngineClient, execution_id: str, gather_s: float) -> list[tuple[float, EngineEvent]]:
    """Long-poll like the executions follower; each event with the time it was received."""
    received: list[tuple[float, EngineEvent]] = []
    deadline = time.monotonic() + 60
    while not received or received[-1][1].type != EventType.EXECUTION_FINISHED:
        assert time.monotonic() < deadline, "the run did not finish"
        after = received[-1][1].seq if received else 0
        batch = await engine.events(execution_id, after, wait_s=5, gather_s=gather_s)
        now = time.time()
        received += [(now, e) for e in batch]
    await engine.release(execution_id)
    return received


async def test_a_quiet_stream_delivers_each_line_at_once(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    # one line every 150 ms: the stream is idle between lines, so each goes out on its own;
    # gather_s as the executions follower asks for it (capped by the coordinator)
    command = "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.15; done"
    plan = plan_for(key_ref, sshd, command)
    await engine.start(plan)
    received = await follow(engine, plan.execution_id, gather_s=0.05)
    events = [e for _, e in received]
    assert text_of(events) == "".join(f"line {i}\n" for i in range(1, 11))
    output = [(at, e) for at, e in received if e.type == EventType.STDOUT]
    assert len(output) >= 8, "lines 150 ms apart are not held back to be merged"
    # e.at is when the pool read the chunk; generous for a loaded 2-core machine (the old
    # 50 ms flush interval plus 50 ms gathering made this ~75 ms)
    delays = [at - e.at for at, e in output]
    assert statistics.median(delays) < 0.03, delays


async def test_a_flood_is_merged_into_few_events_and_arrives_whole(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    plan = plan_for(key_ref, sshd, "seq 1 20000")
    await engine.start(plan)
    received = await follow(engine, plan.execution_id, gather_s=0.05)
    events = [e for _, e in received]
    assert text_of(events) == "".join(f"{i}\n" for i in range(1, 20001))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len([e for e in events if e.type == EventType.STDOUT]) < 200, "coalesced under load"

"""Runs through the real engine: Ray actors, a real sshd, a real HTTP credential resolver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest
import ray

from opsconductor_ray.client import EngineClient
from opsconductor_ray.config import pool_name, shard_of
from opsconductor_ray.errors import ExecutionNotFound
from opsconductor_ray.pool import credential_chunks
from opsconductor_ray.protocol import (
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
)
from opsconductor_ray.testing import FakeCredentialVault, collect_events
from opsconductor_shared.runplan import Policy, Step
from tests.support.sshd import SshServer, blackhole_address, closed_port


def target_on(sshd: SshServer, *, host: str | None = None, port: int | None = None) -> TargetSpec:
    target_id = f"t-{uuid.uuid4().hex[:10]}"
    return TargetSpec(target_id=target_id, name=target_id, host=host or sshd.host, port=port or sshd.port)


def plan_for(
    credentials: CredentialRef,
    targets: list[TargetSpec],
    *steps: str | Step,
    max_parallel: int = 50,
    connect_timeout_s: float = 10,
    **fields: Any,
) -> ExecutionPlan:
    return ExecutionPlan(
        execution_id=f"test-{uuid.uuid4().hex[:12]}",
        steps=tuple(
            s if isinstance(s, Step) else Step(name=f"step-{i + 1}", command=s, timeout_seconds=30)
            for i, s in enumerate(steps)
        ),
        targets=tuple(targets),
        credentials=credentials,
        policy=Policy(max_parallel=max_parallel),
        connect_timeout_s=connect_timeout_s,
        **fields,
    )


async def run(
    engine: EngineClient, sshd: SshServer, plan: ExecutionPlan, timeout_s: float = 60
) -> list[EngineEvent]:
    await engine.start(plan)
    events = await collect_events(engine, plan.execution_id, timeout_s=timeout_s)
    text = repr(events)
    assert sshd.password not in text
    assert "PRIVATE KEY" not in text
    return events


def of_type(events: list[EngineEvent], type: EventType, target_id: str | None = None) -> list[EngineEvent]:
    return [e for e in events if e.type == type and (target_id is None or e.target_id == target_id)]


def text_of(events: list[EngineEvent], type: EventType = EventType.STDOUT) -> str:
    return "".join(e.data or "" for e in of_type(events, type))


def counts(events: list[EngineEvent]) -> dict[str, int]:
    assert events[-1].type == EventType.EXECUTION_FINISHED
    return json.loads(events[-1].data or "")


def remote_processes(marker: str) -> str:
    """Processes whose command line contains `marker` (sshd runs on this machine)."""
    return subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True, check=False).stdout


async def test_echo_hello_streams_stdout_and_succeeds(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    target = target_on(sshd)
    events = await run(engine, sshd, plan_for(key_ref, [target], "echo hello", "hostname"))

    assert [e.type for e in events][:2] == [EventType.EXECUTION_STARTED, EventType.TARGET_STARTED]
    out = of_type(events, EventType.STDOUT)
    assert out[0].data == "hello\n"
    assert (out[0].step_index, out[0].step_name) == (0, "step-1")
    assert text_of(events).splitlines()[1]  # the hostname, from the second step
    steps = of_type(events, EventType.STEP_FINISHED)
    assert [(s.status, s.exit_code) for s in steps] == [(Status.SUCCEEDED, 0), (Status.SUCCEEDED, 0)]
    assert all(s.duration_ms is not None and s.duration_ms >= 0 for s in steps)
    (finished,) = of_type(events, EventType.TARGET_FINISHED)
    assert finished.status == Status.SUCCEEDED
    assert events[-1].status == Status.SUCCEEDED
    assert counts(events) == {"total": 1, "succeeded": 1, "failed": 0, "cancelled": 0}


async def test_second_run_reuses_the_warm_connection(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    target = target_on(sshd)
    await run(engine, sshd, plan_for(key_ref, [target], "true"))
    before = await engine.pool_stats()

    events = await run(engine, sshd, plan_for(key_ref, [target], "echo again"))

    after = await engine.pool_stats()
    (started,) = of_type(events, EventType.TARGET_STARTED)
    assert started.reused_connection is True
    assert after["connects"] == before["connects"]
    assert after["reuses"] > before["reuses"]
    assert after["open_connections"] >= 1


async def test_a_connection_dropped_by_the_server_is_replaced(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    target = target_on(sshd)
    await run(engine, sshd, plan_for(key_ref, [target], "true"))
    children = await asyncio.to_thread(
        subprocess.run, ["pgrep", "-P", str(sshd.pid)], capture_output=True, text=True, check=False
    )
    for pid in children.stdout.split():
        os.kill(int(pid), signal.SIGTERM)  # the per-connection sshd processes: drops every connection
    await asyncio.sleep(0.5)

    events = await run(engine, sshd, plan_for(key_ref, [target], "echo fresh"))

    assert text_of(events) == "fresh\n"
    (started,) = of_type(events, EventType.TARGET_STARTED)
    assert started.reused_connection is False


async def test_failed_step_skips_the_rest_unless_continue_on_error(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    stop, go_on = target_on(sshd), target_on(sshd)
    failing = plan_for(key_ref, [stop], "echo before", "exit 3", "echo never")
    tolerant = plan_for(
        key_ref,
        [go_on],
        Step(name="may-fail", command="exit 3", continue_on_error=True),
        Step(name="after", command="echo after"),
    )
    failed_events, tolerated_events = await asyncio.gather(
        run(engine, sshd, failing), run(engine, sshd, tolerant)
    )

    steps = of_type(failed_events, EventType.STEP_FINISHED)
    assert [(s.status, s.exit_code) for s in steps] == [
        (Status.SUCCEEDED, 0),
        (Status.FAILED, 3),
        (Status.SKIPPED, None),
    ]
    assert "never" not in text_of(failed_events)
    (target_done,) = of_type(failed_events, EventType.TARGET_FINISHED)
    assert target_done.status == Status.FAILED
    assert target_done.data == "step 2 'step-2' failed with exit code 3"
    assert failed_events[-1].status == Status.FAILED
    assert counts(failed_events)["failed"] == 1

    steps = of_type(tolerated_events, EventType.STEP_FINISHED)
    assert [(s.status, s.exit_code) for s in steps] == [(Status.FAILED, 3), (Status.SUCCEEDED, 0)]
    assert text_of(tolerated_events) == "after\n"
    assert tolerated_events[-1].status == Status.SUCCEEDED


async def test_stderr_is_captured_separately(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    events = await run(engine, sshd, plan_for(key_ref, [target_on(sshd)], "echo out; echo oops >&2"))

    assert text_of(events, EventType.STDOUT) == "out\n"
    assert text_of(events, EventType.STDERR) == "oops\n"


async def test_large_output_arrives_whole_in_few_events(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    size = 3_000_000
    events = await run(
        engine,
        sshd,
        plan_for(
            key_ref,
            [target_on(sshd)],
            f"head -c {size} /dev/zero | tr '\\0' x",
            max_output_bytes=4_000_000,
        ),
    )

    chunks = of_type(events, EventType.STDOUT)
    assert sum(len(c.data or "") for c in chunks) == size
    assert set(text_of(events)) == {"x"}
    assert len(chunks) < 200, "output is batched, not one event per read"


async def test_step_timeout_ends_timed_out_quickly(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    marker = f"sleep 30.{uuid.uuid4().int % 10**6:06d}"
    plan = plan_for(
        key_ref,
        [target_on(sshd)],
        Step(name="slow", command=marker, timeout_seconds=1),
        Step(name="next", command="echo next"),
    )
    started = time.monotonic()
    events = await run(engine, sshd, plan)

    assert time.monotonic() - started < 20
    slow, after = of_type(events, EventType.STEP_FINISHED)
    assert slow.status == Status.TIMED_OUT
    assert slow.exit_code is None
    assert slow.data is not None and "timed out after 1s" in slow.data
    assert after.status == Status.SKIPPED
    assert events[-1].status == Status.FAILED
    await asyncio.sleep(0.3)
    assert marker not in remote_processes(marker)


async def test_refused_port_fails_the_target_with_a_readable_message(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    port = closed_port()
    target = target_on(sshd, port=port)
    events = await run(engine, sshd, plan_for(key_ref, [target], "echo never"))

    assert [e.type for e in events] == [
        EventType.EXECUTION_STARTED,
        EventType.TARGET_FINISHED,
        EventType.EXECUTION_FINISHED,
    ]
    assert events[1].status == Status.FAILED
    assert events[1].data is not None and f"connection refused by 127.0.0.1:{port}" in events[1].data
    assert events[-1].status == Status.FAILED


async def test_unanswered_connect_times_out_without_hanging(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    with blackhole_address() as (host, port):
        target = target_on(sshd, host=host, port=port)
        started = time.monotonic()
        events = await run(engine, sshd, plan_for(key_ref, [target], "echo never", connect_timeout_s=2))
        elapsed = time.monotonic() - started

    assert elapsed < 2 + 15, "an unanswered connect must end at its timeout, not hang"
    (finished,) = of_type(events, EventType.TARGET_FINISHED)
    assert finished.status == Status.FAILED
    assert finished.data is not None and "connect timed out after 2s" in finished.data


async def test_wrong_key_is_rejected_readably(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    wrong = vault.issue(username=sshd.username, private_key=sshd.wrong_private_key_pem)
    events = await run(engine, sshd, plan_for(wrong, [target_on(sshd)], "echo never"))

    (finished,) = of_type(events, EventType.TARGET_FINISHED)
    assert finished.status == Status.FAILED
    assert (
        finished.data is not None and f"authentication rejected for user '{sshd.username}'" in finished.data
    )


async def test_password_login_works(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    ref = vault.issue(username=sshd.password_username, password=sshd.password)
    events = await run(engine, sshd, plan_for(ref, [target_on(sshd)], "id -un"))

    assert text_of(events) == f"{sshd.password_username}\n"
    assert events[-1].status == Status.SUCCEEDED


async def test_credential_refused_by_the_resolver_fails_the_target(
    engine: EngineClient, sshd: SshServer, vault: FakeCredentialVault
) -> None:
    ref = vault.refuse(403, "target t-1 is not covered by this grant")
    events = await run(engine, sshd, plan_for(ref, [target_on(sshd)], "echo never"))

    (finished,) = of_type(events, EventType.TARGET_FINISHED)
    assert finished.status == Status.FAILED
    assert finished.data == "target t-1 is not covered by this grant"


async def test_cancel_kills_the_remote_command_and_cancels_waiting_targets(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    marker = f"sleep 60.{uuid.uuid4().int % 10**6:06d}"
    running, waiting = target_on(sshd), target_on(sshd)
    # Both in one shard, so max_parallel=1 makes the second one wait for the first.
    while shard_of(waiting.target_id, engine.num_shards) != shard_of(running.target_id, engine.num_shards):
        waiting = target_on(sshd)
    plan = plan_for(key_ref, [running, waiting], marker, "echo after", max_parallel=1)
    await engine.start(plan)

    events: list[EngineEvent] = []
    deadline = time.monotonic() + 20
    while not of_type(events, EventType.TARGET_STARTED):
        assert time.monotonic() < deadline
        events += await engine.events(plan.execution_id, after_seq=len(events), wait_s=1)
    for _ in range(50):  # the exec request is answered before the shell has forked sleep
        if marker in remote_processes(marker):
            break
        await asyncio.sleep(0.1)
    assert marker in remote_processes(marker)
    assert await engine.is_running(plan.execution_id)

    cancelled_at = time.monotonic()
    await engine.cancel(plan.execution_id)
    events = await collect_events(engine, plan.execution_id, timeout_s=10, release=False)
    finished_in = time.monotonic() - cancelled_at

    assert finished_in < 15
    assert not await engine.is_running(plan.execution_id)
    step = of_type(events, EventType.STEP_FINISHED, running.target_id)
    assert [s.status for s in step] == [Status.CANCELLED, Status.SKIPPED]
    statuses = {e.target_id: e.status for e in of_type(events, EventType.TARGET_FINISHED)}
    assert statuses == {running.target_id: Status.CANCELLED, waiting.target_id: Status.CANCELLED}
    assert events[-1].status == Status.CANCELLED
    assert counts(events) == {"total": 2, "succeeded": 0, "failed": 0, "cancelled": 2}
    await asyncio.sleep(0.3)
    assert marker not in remote_processes(marker)

    await engine.release(plan.execution_id)
    assert not await engine.is_running(plan.execution_id)
    with pytest.raises(ExecutionNotFound):
        await engine.events(plan.execution_id, after_seq=0, wait_s=0)


async def test_twenty_targets_in_parallel_respect_max_parallel(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef, vault: FakeCredentialVault
) -> None:
    targets = [target_on(sshd) for _ in range(20)]
    plan = plan_for(key_ref, targets, "sleep 0.5; echo done-$((20 + 22))", max_parallel=6)
    asked_before = len(vault.requests)
    events = await run(engine, sshd, plan)

    # credentials: per pool shard a few batch requests (credential_chunks), not one per target
    asked = vault.requests[asked_before:]
    assert all("targetIds" in r for r in asked), asked
    assert sorted(i for r in asked for i in r["targetIds"]) == sorted(t.target_id for t in targets)
    by_shard: dict[int, list[str]] = {}
    for t in targets:
        by_shard.setdefault(shard_of(t.target_id, engine.num_shards), []).append(t.target_id)
    assert len(asked) == sum(len(credential_chunks(ids)) for ids in by_shard.values())
    assert len(asked) < len(targets)

    assert counts(events) == {"total": 20, "succeeded": 20, "failed": 0, "cancelled": 0}
    assert text_of(events) == "done-42\n" * 20
    running, peak = 0, 0
    for event in events:
        if event.type == EventType.TARGET_STARTED:
            running += 1
            peak = max(peak, running)
        elif event.type == EventType.TARGET_FINISHED:
            running -= 1
    assert 1 < peak <= 6
    # peak > 1 above shows the targets ran side by side; wall time is for the benchmark, not this test


async def test_long_poll_waits_then_returns_nothing_after_the_end(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    plan = plan_for(key_ref, [target_on(sshd)], "sleep 1.5; echo late")
    await engine.start(plan)
    await engine.start(plan)  # idempotent

    first = await engine.events(plan.execution_id, after_seq=0, wait_s=5)
    assert first[0].type == EventType.EXECUTION_STARTED
    last_seq = max(e.seq for e in first)
    waited_from = time.monotonic()
    more = await engine.events(plan.execution_id, after_seq=last_seq, wait_s=10)
    assert more, "a long poll returns as soon as new events exist"
    assert time.monotonic() - waited_from < 9

    rest = await collect_events(engine, plan.execution_id, timeout_s=20, release=False)
    assert rest[-1].type == EventType.EXECUTION_FINISHED
    quick_from = time.monotonic()
    assert await engine.events(plan.execution_id, after_seq=rest[-1].seq, wait_s=5) == []
    assert time.monotonic() - quick_from < 4, "a finished run does not make pollers wait"
    status = await engine.status(plan.execution_id)
    assert (status["state"], status["status"], status["last_seq"]) == ("FINISHED", "SUCCEEDED", rest[-1].seq)
    await engine.release(plan.execution_id)
    await engine.release(plan.execution_id)  # idempotent


async def test_a_gathering_long_poll_returns_new_output_at_once_not_at_the_end(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    # Live output (issue 15): gather_s is capped at MAX_GATHER_S, so even a caller asking to
    # gather for 20 s gets the first events right away, long before the run ends.
    plan = plan_for(key_ref, [target_on(sshd)], "echo one; sleep 1; echo two; sleep 1; echo three")
    await engine.start(plan)
    asked_at = time.monotonic()
    events = await engine.events(plan.execution_id, after_seq=0, wait_s=10, gather_s=20)
    took = time.monotonic() - asked_at
    assert events and events[-1].type != EventType.EXECUTION_FINISHED, [e.type for e in events]
    assert took < 1.5, "gathering does not hold events back"
    while events[-1].type != EventType.EXECUTION_FINISHED:
        more = await engine.events(plan.execution_id, after_seq=events[-1].seq, wait_s=10, gather_s=20)
        assert more, "a long poll with events to give never comes back empty-handed"
        events += more
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert text_of(events) == "one\ntwo\nthree\n"
    # a finished run: no gathering, no waiting
    quick_from = time.monotonic()
    assert await engine.events(plan.execution_id, after_seq=events[-1].seq, wait_s=5, gather_s=5) == []
    assert time.monotonic() - quick_from < 4
    await engine.release(plan.execution_id)


async def test_clients_with_other_shard_counts_share_the_coordinators(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    # The coordinators were made by a 4-shard client; a 3-shard client's run is split into its
    # own 3 shards (a target of shard 3 of 4 is not lost to a pool it never handed over).
    other = EngineClient(num_shards=3, num_coordinators=engine.num_coordinators)
    await other.connect()
    targets = [target_on(sshd) for _ in range(6)]
    while not any(shard_of(t.target_id, 4) == 3 for t in targets):
        targets.append(target_on(sshd))
    events = await run(other, sshd, plan_for(key_ref, targets, "echo three-shards"))
    assert counts(events)["succeeded"] == len(targets), [e.data for e in events if e.status == Status.FAILED]
    assert text_of(events) == "three-shards\n" * len(targets)


async def test_a_dying_pool_fails_its_targets_and_the_run_still_finishes(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    target = target_on(sshd)
    plan = plan_for(key_ref, [target], "sleep 3")
    await engine.start(plan)
    events: list[EngineEvent] = []
    while not of_type(events, EventType.TARGET_STARTED):
        events += await engine.events(plan.execution_id, after_seq=len(events), wait_s=1)

    pool = await asyncio.to_thread(
        ray.get_actor, pool_name(shard_of(target.target_id, engine.num_shards)), namespace="opsconductor"
    )
    ray.kill(pool, no_restart=False)
    events = await collect_events(engine, plan.execution_id, timeout_s=30)

    (finished,) = of_type(events, EventType.TARGET_FINISHED)
    assert finished.status == Status.FAILED
    assert finished.data is not None and finished.data.startswith("execution pool died: ")
    assert events[-1].status == Status.FAILED

    # The pool comes back for the next run.
    again = await run(engine, sshd, plan_for(key_ref, [target], "echo back"))
    assert text_of(again) == "back\n"


async def test_a_pool_replaced_under_its_name_is_found_again(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef
) -> None:
    """The client hands the coordinator its cached pool handles (no ping of every pool per start);
    a pool killed for good and created again under its name is looked up again by the coordinator."""
    from opsconductor_ray.pool.actor import get_pool

    target = target_on(sshd)
    shard = shard_of(target.target_id, engine.num_shards)
    assert text_of(await run(engine, sshd, plan_for(key_ref, [target], "echo before"))) == "before\n"

    old = await asyncio.to_thread(ray.get_actor, pool_name(shard), namespace=engine.namespace)
    ray.kill(old, no_restart=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            await asyncio.to_thread(ray.get_actor, pool_name(shard), namespace=engine.namespace)
        except ValueError:
            break
        await asyncio.sleep(0.05)
    await asyncio.to_thread(get_pool, shard, engine.pool_config, engine.namespace, engine.pool_resource)

    events = await run(engine, sshd, plan_for(key_ref, [target], "echo after"))
    assert counts(events)["succeeded"] == 1, [e.data for e in events if e.status == Status.FAILED]
    assert text_of(events) == "after\n"
    # A connection test on the client's stale handle finds the new pool too (read-only: retried once).
    tested = await engine.test_connection(target, key_ref)
    assert tested.ok, tested.message


async def test_connection_test_reports_success_and_failure(
    engine: EngineClient, sshd: SshServer, key_ref: CredentialRef, vault: FakeCredentialVault
) -> None:
    ok = await engine.test_connection(target_on(sshd), key_ref)
    assert ok.ok is True
    assert ok.latency_ms is not None and ok.latency_ms > 0
    assert sshd.username in ok.message

    port = closed_port()
    refused = await engine.test_connection(target_on(sshd, port=port), key_ref)
    assert (refused.ok, refused.latency_ms) == (False, None)
    assert f"connection refused by 127.0.0.1:{port}" in refused.message

    wrong = vault.issue(username=sshd.username, password="not-the-password")
    rejected = await engine.test_connection(target_on(sshd), wrong)
    assert rejected.ok is False
    assert "authentication rejected" in rejected.message

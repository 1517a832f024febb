"""Several executions replicas on one database and Redis: a restarted replica re-attaches to a
running coordinator (no event lost, no run stuck), a subscriber on replica B sees a run started on
replica A, stale runs end FAILED, and output over the per-step limit is cut (stored and streamed).

The extra replicas are real executions apps (uvicorn, their own port) sharing the session's
executions database, Redis and Ray with the session's own executions service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from subgraphs.executions.tests.factories import (
    EXECUTION,
    create_job,
    create_target,
    pg_dsn,
    wait_seq,
    wait_terminal,
)
from tests.support.platform import gql, subscribe
from tests.support.serve import serve_graphql

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVENTS = """subscription($id: ID!, $after: Int) { executionEvents(executionId: $id, afterSeq: $after) {
  seq type targetId data status } }"""


@contextlib.asynccontextmanager
async def replica(platform: Any, **overrides: Any) -> AsyncIterator[str]:
    """Another executions replica; yields its GraphQL URL; stopped (gracefully) on exit."""
    from opsconductor_executions.app import create_app
    from opsconductor_executions.settings import Settings
    from opsconductor_shared.app import Platform
    from tests.support.platform import free_port

    settings = Settings(port=free_port(), **overrides)
    assert settings.redis_url, "replicas meet through Redis"
    shared = Platform.from_settings(settings, consumer=f"replica-{uuid.uuid4().hex[:6]}")
    app = create_app(settings, shared, engine=platform.engine)
    try:
        async with serve_graphql(app, settings.port) as url:
            yield url
    finally:
        await shared.close()


@pytest.fixture(scope="module")
async def targets(platform: Any, admin_token: str, sshd: Any) -> list[str]:
    return [await create_target(platform, admin_token, sshd, h) for h in sshd.hosts[14:15]]


async def _seqs(platform: Any, execution_id: str) -> list[int]:
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        rows = await conn.fetch(
            "SELECT seq FROM execution_events WHERE execution_id = $1 ORDER BY seq", execution_id
        )
    finally:
        await conn.close()
    return [r["seq"] for r in rows]


async def _run_on(url: str, token: str, job: str) -> str:
    body = await gql(
        url,
        """mutation($job: ID!) { runJob(jobId: $job) { __typename
        ... on ExecutionStarted { execution { id } } ... on Error { message } } }""",
        {"job": job},
        token=token,
    )
    assert body["data"]["runJob"]["__typename"] == "ExecutionStarted", body
    return str(body["data"]["runJob"]["execution"]["id"])


async def test_a_restarted_replica_reattaches_without_losing_an_event(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform, admin_token, targets, "for i in $(seq 1 8); do echo tick-$i; sleep 0.7; done"
    )
    async with replica(platform) as first:
        execution_id = await _run_on(first, admin_token, job)
        await wait_seq(first, admin_token, execution_id, 4)  # started, target started, two ticks
    # The replica is gone mid-run (its lease released); the coordinator keeps running on Ray.
    state = (await gql(platform.url("executions"), EXECUTION, {"id": execution_id}, token=admin_token))[
        "data"
    ]["execution"]
    assert state["status"] == "RUNNING", state
    async with replica(platform) as second:
        done = await wait_terminal(second, admin_token, execution_id, timeout=90)
    assert done["status"] == "SUCCEEDED", done
    stdout = done["targetRuns"][0]["steps"][0]["stdout"]
    assert [f"tick-{i}" in stdout for i in range(1, 9)] == [True] * 8, stdout
    assert stdout.count("tick-1\n") == 1, "no chunk stored twice"
    seqs = await _seqs(platform, execution_id)
    assert seqs == list(range(1, done["lastSeq"] + 1)), seqs


async def test_a_subscriber_on_replica_b_follows_a_run_started_on_replica_a(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform, admin_token, targets, "for i in 1 2 3 4 5; do echo live-$i; sleep 0.4; done"
    )
    async with replica(platform) as replica_a:
        execution_id = await _run_on(replica_a, admin_token, job)
        ws_b = platform.url("executions").replace("http://", "ws://")  # the session's replica
        events = [
            d["executionEvents"]
            for d in await subscribe(ws_b, EVENTS, {"id": execution_id, "after": 0}, token=admin_token)
        ]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "EXECUTION_FINISHED" and events[-1]["status"] == "SUCCEEDED"
    text = "".join(e["data"] or "" for e in events if e["type"] == "STDOUT")
    assert all(f"live-{i}" in text for i in range(1, 6)), text


async def _insert_ghost_run(platform: Any, lease_until: datetime) -> str:
    """A RUNNING run (last seq 2) whose follower's lease ends at `lease_until` and whose
    coordinator does not exist."""
    execution_id = str(uuid.uuid4())
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        await conn.execute(
            """INSERT INTO executions (id, job_id, job_name, job_version, number, status, plan, parameters,
            waiting, total_targets, succeeded_targets, failed_targets, cancelled_targets, last_seq,
            created_at, started_at, lease_owner, lease_until)
            VALUES ($1, $2, 'ghost', 1, 1, 'RUNNING', '{}', '{}', false, 1, 0, 0, 0, 2, $3, $3, 'gone', $4)""",
            execution_id,
            str(uuid.uuid4()),
            min(lease_until, datetime.now(UTC)),
            lease_until,
        )
        await conn.execute(
            """INSERT INTO target_runs (execution_id, target_id, target_name, host, port, status)
            VALUES ($1, $2, 'ghost-target', '127.0.0.1', 22, 'RUNNING')""",
            execution_id,
            str(uuid.uuid4()),
        )
    finally:
        await conn.close()
    return execution_id


async def _status(platform: Any, execution_id: str) -> str:
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        return str(await conn.fetchval("SELECT status FROM executions WHERE id = $1", execution_id))
    finally:
        await conn.close()


async def test_stale_runs_end_failed(platform: Any, admin_token: str) -> None:
    """A RUNNING run whose follower's lease expired long ago and whose coordinator does not exist."""
    execution_id = await _insert_ghost_run(platform, datetime.now(UTC) - timedelta(hours=1))
    async with replica(platform, stale_after_seconds=1) as fresh:  # its start-up sweep
        done = await wait_terminal(fresh, admin_token, execution_id, timeout=30)
    assert done["status"] == "FAILED" and done["message"].startswith("stale:"), done
    assert done["failedTargets"] == 1 and done["targetRuns"][0]["status"] == "FAILED"
    assert await _seqs(platform, execution_id) == [3]  # EXECUTION_FINISHED after the last seq


async def test_the_periodic_sweep_ends_a_run_that_goes_stale_later(platform: Any, admin_token: str) -> None:
    """Not only at start-up: a run whose follower stops renewing while the replica is up is ended
    by the periodic sweep once its lease has expired for `stale_after_seconds`, and not before."""
    async with replica(platform, stale_after_seconds=2, sweep_interval_seconds=0.3) as running:
        # the lease is still valid for 1.5 s: several sweeps must leave the run alone until then
        execution_id = await _insert_ghost_run(platform, datetime.now(UTC) + timedelta(seconds=1.5))
        await asyncio.sleep(1.0)
        assert await _status(platform, execution_id) == "RUNNING"
        done = await wait_terminal(running, admin_token, execution_id, timeout=30)
    assert done["status"] == "FAILED" and done["message"].startswith("stale:"), done
    assert done["failedTargets"] == 1 and done["targetRuns"][0]["status"] == "FAILED"
    assert await _seqs(platform, execution_id) == [3]


async def test_output_over_the_step_limit_is_cut_stored_and_streamed(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(
        platform, admin_token, targets, "for i in $(seq 1 400); do echo 0123456789abcdef; done; echo tail-end"
    )
    async with replica(platform, max_output_bytes_per_step=1000) as small:
        execution_id = await _run_on(small, admin_token, job)
        ws = small.replace("http://", "ws://")
        events = [
            d["executionEvents"]
            for d in await subscribe(ws, EVENTS, {"id": execution_id, "after": 0}, token=admin_token)
        ]
        done = await wait_terminal(small, admin_token, execution_id)
    from opsconductor_ray.protocol import truncation_marker

    step = done["targetRuns"][0]["steps"][0]
    marker = truncation_marker(1000)
    assert step["truncated"] is True, step  # the engine's STEP_FINISHED field
    stdout = step["stdout"]
    # cut once, by the engine, with its one marker: nothing of ours on top
    assert stdout.endswith(marker) and stdout.count("truncated") == 1 and "tail-end" not in stdout
    assert len(stdout.encode()) <= 1000 + len(marker.encode())
    streamed = "".join(e["data"] or "" for e in events if e["type"] == "STDOUT")
    assert streamed == stdout  # stored and streamed agree
    assert json.loads(json.dumps(events))[-1]["type"] == "EXECUTION_FINISHED"

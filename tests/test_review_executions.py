"""Security review 2026-12, executions area: M2 (cancel never reports CANCELLED for a run the engine
executes), M3 (grants renewed for long rolling runs), L9 (a slow engine start racing the stale sweep),
L10 (runJob idempotencyKey), M8 (bounded targetRuns, DataLoaders), L17 (dryRun needs the caller's
targets:read). Real platform, router, Ray and sshd; where the engine must be slow, only the ENGINE's
method is wrapped (the real call still happens, later, the way a Ray call outlives its awaiting).

Target hosts: IPv4-mapped IPv6 forms of the sshd's loopback addresses (``::ffff:127.0.10.x``), which
no other suite uses (hosts are unique among active targets).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from subgraphs.executions.tests.factories import create_job, create_target, pg_dsn
from tests.support.access import api_key
from tests.support.platform import gql
from tests.support.serve import serve_graphql

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOSTS = tuple(f"::ffff:127.0.10.{i}" for i in (1, 2, 3))

RUN = """mutation($job: ID!, $dry: Boolean, $key: String) {
  runJob(jobId: $job, dryRun: $dry, idempotencyKey: $key) { __typename
  ... on ExecutionStarted { execution { id status } }
  ... on ExecutionPlanned { plan { targets { id host } } }
  ... on PermissionDenied { message permission }
  ... on Error { message } } }"""
CANCEL = """mutation($id: ID!) { cancelExecution(id: $id) { __typename
  ... on ExecutionCancelling { execution { id status cancelRequested } } ... on Error { message } } }"""
STATE = """query($id: ID!) { execution(id: $id) { id status message lastSeq cancelRequested
  targetRuns { targetId status message steps { stdout } } } }"""


@pytest.fixture(scope="module")
async def targets(platform: Any, admin_token: str, sshd: Any) -> list[str]:
    return [await create_target(platform, admin_token, sshd, host) for host in HOSTS]


async def _state(url: str, token: str, execution_id: str) -> dict[str, Any]:
    body = await gql(url, STATE, {"id": execution_id}, token=token)
    assert "errors" not in body, body
    return dict(body["data"]["execution"])


async def _until(
    url: str, token: str, execution_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state = await _state(url, token, execution_id)
    while not done(state):
        assert time.monotonic() < deadline, f"timed out; last state {state}"
        await asyncio.sleep(0.3)
        state = await _state(url, token, execution_id)
    return state


def _terminal(state: dict[str, Any]) -> bool:
    return state["status"] in ("SUCCEEDED", "FAILED", "CANCELLED")


async def _run(url: str, token: str, job: str, key: str | None = None) -> dict[str, Any]:
    body = await gql(url, RUN, {"job": job, "key": key}, token=token)
    assert "errors" not in body, body
    return dict(body["data"]["runJob"])


@contextlib.contextmanager
def _patched(engine: Any, name: str, replacement: Any) -> Any:
    """Replace one method of the ENGINE client object (never a service of ours)."""
    setattr(engine, name, replacement)
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError):
            delattr(engine, name)


def _delayed_start(engine: Any, delay: float, started: list[asyncio.Task[bool]]) -> Any:
    """An engine start that reaches the coordinator only after `delay` s. Like a real Ray call,
    cancelling (or timing out) its caller does not stop it: the inner task carries on."""
    real = type(engine).start

    async def start(plan: Any) -> bool:
        async def later() -> bool:
            await asyncio.sleep(delay)
            return bool(await real(engine, plan))

        task = asyncio.ensure_future(later())
        started.append(task)
        return await asyncio.shield(task)

    return start


async def _engine_has_no_run(engine: Any, execution_id: str) -> bool:
    from opsconductor_ray.errors import ExecutionNotFound

    try:
        await engine.status(execution_id)
    except ExecutionNotFound:
        return True
    return False


def _marker() -> Path:
    return Path(f"/tmp/opsc-review-{uuid.uuid4().hex}")  # the sshd user writes it


# ---- M2 ------------------------------------------------------------------------------------------


async def test_m2_cancel_during_a_slow_engine_start_never_reports_cancelled_for_a_run_that_runs(
    router: Any, platform: Any, admin_token: str, targets: list[str]
) -> None:
    """M2 (review's test): the engine's start takes 11 s; cancel right after runJob. The answer must
    not be CANCELLED while the coordinator then runs the commands: either the engine settles that the
    run never starts (then CANCELLED, and the late start runs nothing), or it runs and ends CANCELLED."""
    marker = _marker()
    job = await create_job(platform, admin_token, targets[:1], f"touch {marker}; echo ran")
    started: list[asyncio.Task[bool]] = []
    engine = platform.engine
    with _patched(engine, "start", _delayed_start(engine, 11.0, started)):
        run = await _run(router.url, admin_token, job)
        assert run["__typename"] == "ExecutionStarted", run
        execution_id = run["execution"]["id"]
        cancelled = await gql(router.url, CANCEL, {"id": execution_id}, token=admin_token)
        assert cancelled["data"]["cancelExecution"]["__typename"] == "ExecutionCancelling", cancelled
        done = await _until(router.url, admin_token, execution_id, _terminal, timeout=60)
        assert done["status"] == "CANCELLED", done
        assert started, "the run was handed to the engine"
        late = await asyncio.wait_for(started[0], 30)  # the start reaches the coordinator after all
    assert late is False, "the engine refused the late start of a cancelled run"
    await asyncio.sleep(2)
    assert not marker.exists(), "the commands of a run reported CANCELLED ran"
    assert await _engine_has_no_run(engine, execution_id)
    assert (await _state(router.url, admin_token, execution_id))["status"] == "CANCELLED"


async def test_m2_when_the_engine_cannot_be_asked_the_run_stays_cancelling_until_the_engine_ends_it(
    router: Any, platform: Any, admin_token: str, targets: list[str]
) -> None:
    """M2: a Ray error/timeout while cancelling is never taken for "not running": the run stays
    RUNNING with cancelRequested, and ends CANCELLED once the engine could be told (the follower
    sends the recorded request again), its command killed before it finished."""
    from opsconductor_ray.client import EngineTimeout

    job = await create_job(platform, admin_token, targets[:1], "echo begun; sleep 25; echo finished")
    run = await _run(router.url, admin_token, job)
    execution_id = run["execution"]["id"]
    await _until(
        router.url,
        admin_token,
        execution_id,
        lambda s: (
            any("begun" in (st["stdout"] or "") for r in s["targetRuns"] for st in r["steps"])
            or s["lastSeq"] >= 3
        ),
    )
    engine = platform.engine

    async def unreachable(*_args: Any, **_kwargs: Any) -> Any:
        raise EngineTimeout("the execution engine did not answer (test)")

    with (
        _patched(engine, "cancel_run", unreachable),
        _patched(engine, "cancel", unreachable),
        _patched(engine, "is_running", unreachable),
        _patched(engine, "forbid", unreachable),
    ):
        answer = await gql(router.url, CANCEL, {"id": execution_id}, token=admin_token)
        result = answer["data"]["cancelExecution"]
        assert result["__typename"] == "ExecutionCancelling", answer
        state = await _state(router.url, admin_token, execution_id)
        assert state["status"] == "RUNNING", f"reported {state['status']} while the command runs: {state}"
        assert result["execution"]["status"] == "RUNNING" and result["execution"]["cancelRequested"], answer
        await asyncio.sleep(2)
        state = await _state(router.url, admin_token, execution_id)
        assert state["status"] == "RUNNING" and state["cancelRequested"] is True, state
    done = await _until(router.url, admin_token, execution_id, _terminal, timeout=60)
    assert done["status"] == "CANCELLED", done
    stdout = done["targetRuns"][0]["steps"][0]["stdout"] if done["targetRuns"][0]["steps"] else ""
    assert "finished" not in stdout, done
    assert done["cancelRequested"] is False


# ---- L10 -----------------------------------------------------------------------------------------


async def test_l10_two_concurrent_runjob_calls_with_one_idempotency_key_make_one_execution(
    router: Any, platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(platform, admin_token, targets[1:2], "echo once")
    key = f"retry-{uuid.uuid4().hex}"
    first, second = await asyncio.gather(
        _run(router.url, admin_token, job, key), _run(router.url, admin_token, job, key)
    )
    assert first["__typename"] == second["__typename"] == "ExecutionStarted", (first, second)
    assert first["execution"]["id"] == second["execution"]["id"]
    again = await _run(router.url, admin_token, job, key)  # a later retry too
    assert again["execution"]["id"] == first["execution"]["id"]
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        assert await conn.fetchval("SELECT count(*) FROM executions WHERE job_id = $1", job) == 1
        other = await _run(router.url, admin_token, job, f"other-{uuid.uuid4().hex}")
        assert other["execution"]["id"] != first["execution"]["id"]
        # an expired key (older than 24 h) no longer binds: a new run
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1", key
        )
        expired = await _run(router.url, admin_token, job, key)
        assert expired["execution"]["id"] not in (first["execution"]["id"], other["execution"]["id"])
        assert await conn.fetchval("SELECT count(*) FROM executions WHERE job_id = $1", job) == 3
    finally:
        await conn.close()
    bad = await _run(router.url, admin_token, job, "x" * 201)
    assert bad["__typename"] == "ValidationFailed", bad


async def test_l17_dry_run_needs_the_callers_own_targets_read(
    router: Any, platform: Any, admin_token: str, targets: list[str]
) -> None:
    job = await create_job(platform, admin_token, targets[1:2], "echo dry")
    blind = await api_key(router.url, admin_token, ["jobs:execute", "jobs:read"], name="l17")
    refused = await gql(router.url, RUN, {"job": job, "dry": True}, token=blind)
    result = refused["data"]["runJob"]
    assert result["__typename"] == "PermissionDenied" and result["permission"] == "targets:read", refused
    assert HOSTS[1] not in json.dumps(refused) and "7f00" not in json.dumps(refused)
    seeing = await api_key(router.url, admin_token, ["jobs:execute", "jobs:read", "targets:read"], name="l17")
    planned = (await gql(router.url, RUN, {"job": job, "dry": True}, token=seeing))["data"]["runJob"]
    assert planned["__typename"] == "ExecutionPlanned", planned
    assert [t["id"] for t in planned["plan"]["targets"]] == targets[1:2]


# ---- M8 ------------------------------------------------------------------------------------------


class _QueryLog(logging.Handler):
    """Counts the SQL statements tortoise sends (its db_client logger, DEBUG), by table."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.statements.append(record.getMessage())

    def count(self, table: str) -> int:
        return sum(
            1 for s in self.statements if s.lstrip().upper().startswith("SELECT") and f'"{table}"' in s
        )


@contextlib.contextmanager
def _counting_queries() -> Any:
    logger = logging.getLogger("tortoise.db_client")
    handler = _QueryLog()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def _big_run(platform: Any, targets: int) -> str:
    """A finished run of `targets` target runs with one step result each, written directly."""
    execution_id = str(uuid.uuid4())
    plan = {"steps": [{"name": "s", "command": "echo"}], "policy": {}, "targets": []}
    conn = await asyncpg.connect(pg_dsn(platform))
    try:
        await conn.execute(
            """INSERT INTO executions (id, job_id, job_name, job_version, number, status, plan, parameters,
            waiting, total_targets, succeeded_targets, failed_targets, cancelled_targets, last_seq,
            created_at, started_at, finished_at)
            VALUES ($1, $2, 'big', 1, 1, 'SUCCEEDED', $3, '{}', false, $4, $4, 0, 0, 0, now(), now(), now())""",
            execution_id,
            str(uuid.uuid4()),
            json.dumps(plan),
            targets,
        )
        await conn.executemany(
            """INSERT INTO target_runs (execution_id, target_id, target_name, host, port, status)
            VALUES ($1, $2, $3, '127.0.0.1', 22, 'SUCCEEDED')""",
            [(execution_id, str(uuid.uuid4()), f"t{i}") for i in range(targets)],
        )
        await conn.execute(
            """INSERT INTO step_results (target_run_id, step_index, name, command, status, exit_code,
            stdout, stderr, truncated) SELECT id, 0, 's', 'echo', 'SUCCEEDED', 0, 'out', '', false
            FROM target_runs WHERE execution_id = $1""",
            execution_id,
        )
    finally:
        await conn.close()
    return execution_id


async def test_m8_target_runs_are_bounded_pageable_and_batch_loaded(
    router: Any, platform: Any, admin_token: str
) -> None:
    execution_id = await _big_run(platform, 1200)
    query = """query($id: ID!) { execution(id: $id) { targetRuns { targetId status exitCode
      steps { index status stdout } execution { id } } } }"""
    with _counting_queries() as log:
        body = await gql(router.url, query, {"id": execution_id}, token=admin_token, timeout=120)
    assert "errors" not in body, body
    runs = body["data"]["execution"]["targetRuns"]
    assert len(runs) == 1000, len(runs)  # the plain list is bounded
    assert all(r["steps"][0]["stdout"] == "out" and r["execution"]["id"] == execution_id for r in runs)
    assert log.count("step_results") <= 2, log.count("step_results")  # one batch, not one per row
    # the run once, not per row (1000 rows would be ~1000 queries); the bound leaves room for the
    # sweeper and followers, which query the same table from background tasks in this process
    assert log.count("executions") <= 10, log.count("executions")
    too_many = await gql(
        router.url,
        """query($id: ID!) { execution(id: $id) { targetRuns(first: 5000) { targetId } } }""",
        {"id": execution_id},
        token=admin_token,
    )
    assert too_many.get("errors") and too_many["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", (
        too_many
    )
    page = """query($id: ID!, $after: String) { execution(id: $id) {
      targetRunsConnection(first: 500, after: $after) { totalCount pageInfo { hasNextPage endCursor }
        edges { node { targetId } } } } }"""
    seen: list[str] = []
    after = None
    for _ in range(5):
        conn = (await gql(router.url, page, {"id": execution_id, "after": after}, token=admin_token))["data"][
            "execution"
        ]["targetRunsConnection"]
        assert conn["totalCount"] == 1200
        seen += [e["node"]["targetId"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 1200
    rest = await gql(
        router.url,
        """query($id: ID!) { execution(id: $id) { a: targetRuns(first: 2) { targetId cursor } } }""",
        {"id": execution_id},
        token=admin_token,
    )
    cursor = rest["data"]["execution"]["a"][-1]["cursor"]
    tail = await gql(
        router.url,
        """query($id: ID!, $after: String) { execution(id: $id) { targetRuns(after: $after) { targetId } } }""",
        {"id": execution_id, "after": cursor},
        token=admin_token,
    )
    assert [r["targetId"] for r in tail["data"]["execution"]["targetRuns"]] == seen[2:1002]


@contextlib.asynccontextmanager
async def _executions_replica(engine: Any, **overrides: Any) -> AsyncIterator[str]:
    from opsconductor_executions.app import create_app
    from opsconductor_executions.settings import Settings
    from opsconductor_shared.app import Platform
    from tests.support.net import free_port

    settings = Settings(port=free_port(), **overrides)
    shared = Platform.from_settings(settings, consumer=f"review-{uuid.uuid4().hex[:6]}")
    try:
        async with serve_graphql(create_app(settings, shared, engine=engine), settings.port) as url:
            yield url
    finally:
        await shared.close()


@contextlib.asynccontextmanager
async def _targets_replica(**overrides: Any) -> AsyncIterator[str]:
    """Another targets service on the session's database and key ring (grants of its own TTL)."""
    from opsconductor_shared.app import Platform
    from opsconductor_targets.app import create_app
    from opsconductor_targets.settings import Settings
    from tests.support.net import free_port

    port = free_port()
    settings = Settings(
        port=port, internal_url=f"http://127.0.0.1:{port}", health_check_enabled=False, **overrides
    )
    shared = Platform.from_settings(settings, consumer=f"review-targets-{uuid.uuid4().hex[:6]}")
    try:
        async with serve_graphql(create_app(settings, shared), port) as url:
            yield url
    finally:
        await shared.close()


class _SlowStartEngine:
    """The session's engine client, with a start that reaches the coordinator late (test double of
    the ENGINE only; every other call is the real one)."""

    def __init__(self, engine: Any, delay: float) -> None:
        self._engine = engine
        self.started: list[asyncio.Task[bool]] = []
        self.start = _delayed_start(engine, delay, self.started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


async def test_l9_a_start_racing_the_stale_sweep_never_runs_a_run_recorded_failed(
    platform: Any, admin_token: str, targets: list[str]
) -> None:
    """L9: replica A's engine start outlives A's lease and `stale_after`; replica B's sweep ends the
    run FAILED "stale", but only after the engine settled it never starts: the late start runs
    nothing (before the fix the commands ran while the run was recorded FAILED)."""
    marker = _marker()
    job = await create_job(platform, admin_token, targets[2:3], f"touch {marker}; echo ran")
    engine = _SlowStartEngine(platform.engine, 6.0)
    async with contextlib.AsyncExitStack() as stack:
        url_a = await stack.enter_async_context(
            _executions_replica(
                engine, lease_seconds=1, sweep_interval_seconds=3600, engine_start_timeout_seconds=30
            )
        )
        url_b = await stack.enter_async_context(
            _executions_replica(
                platform.engine, lease_seconds=1, stale_after_seconds=1, sweep_interval_seconds=0.3
            )
        )
        run = await _run(url_a, admin_token, job)
        execution_id = run["execution"]["id"]
        done = await _until(url_b, admin_token, execution_id, _terminal, timeout=60)
        late = await asyncio.wait_for(engine.started[0], 30)
        await asyncio.sleep(2)
        final = await _state(url_a, admin_token, execution_id)
    ran = marker.exists()
    assert not (ran and final["status"] == "FAILED"), f"the run executed while recorded FAILED: {final}"
    assert done["status"] == final["status"] == "FAILED" and done["message"].startswith("stale:"), (
        done,
        final,
    )
    assert late is False and not ran, (late, ran)
    assert await _engine_has_no_run(platform.engine, execution_id)


async def test_m3_a_rolling_batch_after_the_grant_ttl_still_connects(
    platform: Any, admin_token: str, sshd: Any
) -> None:
    """M3 (review's test, scaled down): grants of a 3 s TTL, two targets, batchSize 1, a step that
    sleeps 5 s: the second batch starts after the first grant expired and must still connect."""
    hosts = ("::ffff:127.0.10.4", "::ffff:127.0.10.5")
    ids = [await create_target(platform, admin_token, sshd, h) for h in hosts]
    job = await create_job(platform, admin_token, ids, "sleep 5; echo done", policy={"batchSize": 1})
    try:
        async with contextlib.AsyncExitStack() as stack:
            targets_url = await stack.enter_async_context(_targets_replica(grant_ttl_seconds=3))
            url = await stack.enter_async_context(
                _executions_replica(platform.engine, targets_url=targets_url)
            )
            run = await _run(url, admin_token, job)
            assert run["__typename"] == "ExecutionStarted", run
            done = await _until(url, admin_token, run["execution"]["id"], _terminal, timeout=90)
    finally:
        for target in ids:
            await gql(
                platform.url("targets"),
                """mutation($id: ID!) { deleteTarget(id: $id) { __typename } }""",
                {"id": target},
                token=admin_token,
            )
    outcome = [(r["status"], r["message"]) for r in done["targetRuns"]]
    assert done["status"] == "SUCCEEDED" and outcome == [("SUCCEEDED", None)] * 2, outcome

"""`ConnectionPool`: the async Ray actor that owns SSH connections and runs steps on them.

Targets are spread over `num_shards` pool actors by a stable hash of their id, so a
target's warm connections always live in the same actor. asyncssh connections are bound
to the event loop of the actor that opened them: they never leave it, only events do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import asyncssh
import ray

from opsconductor_ray._aio import Cancelled, HostLocks, race
from opsconductor_ray.config import ActorHandle, PoolConfig, pool_name
from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import CommandTimeout, ConnectError, EngineError, map_exception
from opsconductor_ray.pool.batch import Batch, CredentialFetcher
from opsconductor_ray.pool.events import EventStream
from opsconductor_ray.pool.request import BatchRequest
from opsconductor_ray.pool.ssh_connections import Lease, SSHConnections
from opsconductor_ray.pool.ssh_steps import run_ssh_step
from opsconductor_ray.pool.steps import StepOutcome, run_steps
from opsconductor_ray.pool.winrm_steps import run_winrm_target
from opsconductor_ray.protocol import (
    ConnectionTestResult,
    CredentialRef,
    EventType,
    Status,
    TargetSpec,
)
from opsconductor_ray.winrm import WinRMRunner
from opsconductor_shared.runplan import Step

logger = logging.getLogger(__name__)

CANCELLED_MEMORY_S = 3600.0
"""How long a pool remembers a cancelled execution id, for batches that arrive late."""

Finish = Callable[[Status, str | None], Status]


def get_pool(shard: int, config: PoolConfig, namespace: str, resource: str | None = None) -> ActorHandle:
    """The handle of pool `shard`, creating the detached actor on first use.

    `resource`: a custom Ray resource (e.g. "opsc_pool", see deploy/) the pool needs one
    unit of, which pins pools to the workers that offer it. Blocking (a GCS round trip):
    call it through `asyncio.to_thread` from async code.
    """
    actor_class: Any = ConnectionPool
    return actor_class.options(
        name=pool_name(shard),
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": {resource: 1}} if resource else {}),
    ).remote(shard, config)


def _actor_key(handle: ActorHandle) -> str:
    key: str = handle._actor_id.hex()
    return key


# max_concurrency: one slot per concurrent call (batches, cancels, stats), not per target.
# (The pyright ignore: ray's typed overload of remote() lacks max_concurrency.)
@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=0)  # pyright: ignore[reportCallIssue, reportArgumentType, reportUntypedClassDecorator]
class ConnectionPool:
    """Warm SSH connections for one shard of targets, and the steps run over them.

    Restarts if its process dies (connections are rebuilt on demand), but a call in flight
    is never retried: a half-run command must not run twice.
    """

    def __init__(self, shard: int, config: PoolConfig | None = None) -> None:
        self._shard = shard
        self._config = config or PoolConfig()
        self._ssh = SSHConnections(self._config)
        self._credentials = CredentialFetcher(self._config)
        self._batches: dict[str, set[Batch]] = {}
        self._cancelled: dict[str, tuple[float, str | None, bool]] = {}
        """execution id -> (when, reason, kill running commands) for cancel and fail-fast."""
        self._host_locks = HostLocks()
        self._sinks: dict[str, ActorHandle] = {}
        """Coordinator handles kept for good (see ExecutionCoordinator._handles)."""
        self._winrm: WinRMRunner | None = None
        self._active_targets = 0

    # ----------------------------------------------------------------- public methods

    async def run_targets(self, request: BatchRequest) -> dict[str, str]:
        """Run the request's steps on each of its targets, at most `max_parallel` at a time.

        Events go to `request.sink.push(execution_id, list[EngineEvent])` (the coordinator).
        Returns each target's final status; every target gets exactly one TARGET_FINISHED event.
        """
        self._ssh.start()
        sink = self._sinks.setdefault(_actor_key(request.sink), request.sink)
        execution_id = request.execution_id
        batch = Batch.of(request)
        remembered = self._cancelled.get(execution_id)
        if remembered is not None:
            _, reason, kill = remembered
            if kill:
                batch.cancel(reason)
            else:
                batch.stop_new(reason)
        self._batches.setdefault(execution_id, set()).add(batch)
        batch.prefetch(self._credentials, [t.target_id for t in request.targets])
        stream = EventStream(
            sink, execution_id, self._config, on_failure=lambda: batch.cancel("the coordinator lost this run")
        )
        stream.start()
        try:
            statuses = await asyncio.gather(
                *(self._run_target(batch, target, stream) for target in request.targets)
            )
        finally:
            batch.forget_requests()
            await stream.close()
            batches = self._batches.get(execution_id)
            if batches is not None:
                batches.discard(batch)
                if not batches:
                    del self._batches[execution_id]
        return {
            target.target_id: str(status) for target, status in zip(request.targets, statuses, strict=True)
        }

    async def cancel(self, execution_id: str, reason: str | None = None) -> int:
        """Cancel an execution's batches here: running commands get SIGTERM and their
        channel closed; targets not started yet finish CANCELLED (with `reason` if given).
        Returns the number of batches affected (a batch arriving later is cancelled on arrival)."""
        self._remember(execution_id, reason, kill=True)
        batches = self._batches.get(execution_id, set())
        for batch in batches:
            batch.cancel(reason)
        return len(batches)

    async def stop_new(self, execution_id: str, reason: str | None = None) -> int:
        """Fail-fast: targets of the execution that have not started end CANCELLED with
        `reason`; running ones finish normally."""
        self._remember(execution_id, reason, kill=False)
        batches = self._batches.get(execution_id, set())
        for batch in batches:
            batch.stop_new(reason)
        return len(batches)

    def _remember(self, execution_id: str, reason: str | None, *, kill: bool) -> None:
        now = time.monotonic()
        self._cancelled = {
            eid: entry for eid, entry in self._cancelled.items() if now - entry[0] < CANCELLED_MEMORY_S
        }
        previous = self._cancelled.get(execution_id)
        if previous is None or (kill and not previous[2]):
            self._cancelled[execution_id] = (now, reason, kill)

    async def test_connection(
        self, target: TargetSpec, credentials: CredentialRef, timeout_s: float = 10.0
    ) -> ConnectionTestResult:
        """Connect (or reuse a warm connection) and run `true`; report the latency."""
        self._ssh.start()
        if target.method == "winrm":
            try:
                credential = await self._credentials.fetch(credentials, target.target_id)
            except EngineError as exc:
                return ConnectionTestResult(ok=False, latency_ms=None, message=exc.message)
            return await self._winrm_runner().test_connection(target, credential, timeout_s)
        if target.method != "ssh":
            return ConnectionTestResult(
                ok=False, latency_ms=None, message=f"communication method '{target.method}' is not supported"
            )
        started = time.monotonic()
        try:
            credential = await self._credentials.fetch(credentials, target.target_id)
            lease = await asyncio.wait_for(self._ssh.acquire(target, credential, timeout_s), timeout_s * 2)
            try:
                result = await lease.conn.run("true", check=False, timeout=timeout_s)
            except TimeoutError as exc:
                self._ssh.discard(lease)
                raise CommandTimeout(f"connected, but `true` did not finish within {timeout_s:g}s") from exc
            except (asyncssh.Error, OSError) as exc:
                self._ssh.discard(lease)
                raise map_exception(
                    exc, host=target.host, port=target.port, username=credential.username
                ) from exc
            finally:
                self._ssh.release(lease)
        except EngineError as exc:
            return ConnectionTestResult(ok=False, latency_ms=None, message=exc.message)
        except TimeoutError:
            return ConnectionTestResult(
                ok=False, latency_ms=None, message=f"connect timed out after {timeout_s:g}s"
            )
        latency_ms = (time.monotonic() - started) * 1000
        if result.exit_status != 0:
            return ConnectionTestResult(
                ok=False,
                latency_ms=latency_ms,
                message=f"connected, but `true` exited with {result.exit_status}",
            )
        how = "reusing a warm connection" if lease.reused else "new connection"
        return ConnectionTestResult(
            ok=True,
            latency_ms=latency_ms,
            message=f"connected to {target.host}:{target.port} as '{credential.username}' ({how})",
        )

    async def know(self, sink: ActorHandle) -> None:
        """Keep a coordinator's handle and call it once (see ExecutionCoordinator.prepare)."""
        sink = self._sinks.setdefault(_actor_key(sink), sink)
        await sink.ping.remote()

    async def stats(self) -> dict[str, int]:
        """Counters for dashboards and tests."""
        return {
            "shard": self._shard,
            **self._ssh.stats(),
            "active_targets": self._active_targets,
            "cached_keys": len(self._credentials.keys),
        }

    # ----------------------------------------------------------------- one target

    async def _run_target(self, batch: Batch, target: TargetSpec, stream: EventStream) -> Status:
        started = time.monotonic()
        attempts = [1]

        def finish(status: Status, message: str | None = None) -> Status:
            duration_ms = (time.monotonic() - started) * 1000
            stream.emit(
                EventType.TARGET_FINISHED,
                target.target_id,
                status=status,
                data=message,
                duration_ms=duration_ms,
                attempt=attempts[0] if batch.policy.retries > 0 else None,
            )
            return status

        async with contextlib.AsyncExitStack() as held:
            try:
                if not batch.policy.allow_host_overlap:
                    # Two runs never interleave on one host: the second waits for the first.
                    host = (target.host, target.port)
                    eid = batch.execution_id
                    if batch.halted.is_set():
                        raise Cancelled
                    if not self._host_locks.try_acquire(host, eid):
                        await race(
                            self._host_locks.acquire(host, eid),
                            batch.halted,
                            on_orphan=lambda _: self._host_locks.release(host, eid),
                        )
                    held.callback(self._host_locks.release, host, eid)
                if batch.halted.is_set():
                    raise Cancelled
                if batch.slots.locked():
                    await race(batch.slots.acquire(), batch.halted, on_orphan=lambda _: batch.slots.release())
                else:
                    await batch.slots.acquire()  # free: returns at once
                held.callback(batch.slots.release)
            except Cancelled:
                return finish(Status.CANCELLED, batch.not_started_reason())
            self._active_targets += 1
            held.callback(self._count_done)
            try:
                return await self._run_target_in_slot(batch, target, stream, finish, attempts)
            except Exception as exc:
                logger.exception("target %s failed unexpectedly", target.target_id)
                return finish(Status.FAILED, f"internal engine error: {type(exc).__name__}: {exc}")

    def _count_done(self) -> None:
        self._active_targets -= 1

    async def _connect_with_retries(
        self,
        batch: Batch,
        target: TargetSpec,
        attempts: list[int],
    ) -> tuple[Credential, Lease]:
        """Credential and a channel slot; connection failures (refused, timed out, lost
        during the handshake) are retried per the policy with exponential backoff and
        jitter. Nothing has run on the target yet, so a retry cannot run anything twice."""
        attempt = 1
        while True:
            attempts[0] = attempt
            if batch.halted.is_set():
                raise Cancelled
            credential = batch.credential_now(target.target_id) or await race(
                batch.credential(target.target_id), batch.halted
            )
            try:
                lease = self._ssh.acquire_warm(target, credential) or await race(
                    self._ssh.acquire(target, credential, batch.connect_timeout_s),
                    batch.halted,
                    on_orphan=self._ssh.release,
                )
            except ConnectError:
                if attempt > batch.policy.retries:
                    raise
                backoff = batch.policy.retry_backoff_seconds * (2 ** (attempt - 1))
                delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                with contextlib.suppress(TimeoutError):
                    await race(asyncio.Event().wait(), batch.halted, timeout_s=delay)
                attempt += 1
                continue
            return credential, lease

    async def _run_target_in_slot(
        self,
        batch: Batch,
        target: TargetSpec,
        stream: EventStream,
        finish: Finish,
        attempts: list[int],
    ) -> Status:
        if target.method == "winrm":
            return await run_winrm_target(self._winrm_runner(), batch, target, stream, finish)
        if target.method != "ssh":
            return finish(
                Status.FAILED, f"communication method '{target.method}' is not supported by the engine"
            )
        try:
            credential, lease = await self._connect_with_retries(batch, target, attempts)
        except Cancelled:
            return finish(Status.CANCELLED, batch.not_started_reason())
        except EngineError as exc:
            return finish(Status.FAILED, exc.message)

        announced = False
        attempt_field = attempts[0] if batch.policy.retries > 0 else None

        def announce(reused: bool) -> None:
            """TARGET_STARTED goes out once the first channel is open, so `reused` is true."""
            nonlocal announced
            if not announced:
                announced = True
                stream.emit(
                    EventType.TARGET_STARTED,
                    target.target_id,
                    reused_connection=reused,
                    attempt=attempt_field,
                )

        async def run_one(index: int, step: Step) -> StepOutcome:
            nonlocal lease
            outcome, lease = await run_ssh_step(
                self._ssh, batch, target, credential, lease, index, step, stream, announce
            )
            if outcome.connection_broken:
                self._ssh.discard(lease)
            return outcome

        try:
            target_status, failure = await run_steps(batch, target, stream, run_one)
        finally:
            self._ssh.release(lease)
        if not announced:  # no steps at all
            stream.emit(
                EventType.TARGET_STARTED,
                target.target_id,
                reused_connection=lease.reused,
                attempt=attempt_field,
            )
        return finish(target_status, failure)

    def _winrm_runner(self) -> WinRMRunner:
        if self._winrm is None:
            self._winrm = WinRMRunner()
        return self._winrm

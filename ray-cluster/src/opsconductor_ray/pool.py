"""`ConnectionPool`: the async Ray actor that owns SSH connections and runs steps on them.

Targets are spread over `num_shards` pool actors by a stable hash of their id, so a
target's warm connections always live in the same actor. asyncssh connections are bound
to the event loop of the actor that opened them: they never leave it, only events do.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import posixpath
import random
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncssh
import httpx
import ray

from opsconductor_ray.config import ActorHandle, PoolConfig, pool_name
from opsconductor_ray.credentials import Credential, KeyCache, fetch_credential, fetch_credentials
from opsconductor_ray.errors import (
    CommandTimeout,
    ConnectError,
    CredentialUnavailable,
    EngineError,
    HostKeyUnknown,
    map_exception,
)
from opsconductor_ray.protocol import (
    MAX_UPLOAD_BYTES,
    ConnectionTestResult,
    CredentialRef,
    EngineEvent,
    EventType,
    RunPolicy,
    Status,
    StepSpec,
    TargetSpec,
    truncation_marker,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _skip_disabled_asyncssh_logs() -> None:
    """asyncssh's SSHLogger.log turns every debug message's arguments into text before the logger
    checks its level, a few per channel: 5 % of a pool's CPU in a warm run (py-spy). Check the
    level first; what is enabled is logged exactly as before."""
    original = asyncssh.logging.SSHLogger.log
    if getattr(original, "_level_checked", False):
        return

    def log(self: asyncssh.logging.SSHLogger, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            original(self, level, msg, *args, **kwargs)

    log._level_checked = True  # type: ignore[attr-defined]
    asyncssh.logging.SSHLogger.log = log  # type: ignore[method-assign]


_skip_disabled_asyncssh_logs()

CANCELLED_MEMORY_S = 3600.0
"""How long a pool remembers a cancelled execution id, for batches that arrive late."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERPRETERS = {"bash": "bash -s --", "sh": "sh -s --", "python": "python3 -"}
CREDENTIALS_PER_REQUEST = 50
"""A batch's credentials are asked for this many targets at a time (one resolver request each)."""
FIRST_CREDENTIAL_CHUNKS = (10, 25)
"""...after smaller first requests, so the first targets start while the rest are resolved."""
CREDENTIAL_REQUESTS_IN_FLIGHT = 2
"""Per batch: requests go out in order, a couple at a time, so the first answers come back
first instead of all of them together at the end."""


def credential_chunks(ids: Sequence[str]) -> list[list[str]]:
    """The batch's targets in resolver requests: 10, 25, then 50 at a time."""
    chunks, start = [], 0
    sizes = iter(FIRST_CREDENTIAL_CHUNKS)
    while start < len(ids):
        size = next(sizes, CREDENTIALS_PER_REQUEST)
        chunks.append(list(ids[start : start + size]))
        start += size
    return chunks


def get_pool(shard: int, config: PoolConfig, namespace: str, resource: str | None = None) -> ActorHandle:
    """The handle of pool `shard`, creating the detached actor on first use.

    `resource`: a custom Ray resource (e.g. "opsc_pool", see deploy/) the pool needs one
    unit of, which pins pools to the workers that offer it. Blocking (a GCS round trip):
    call it through `asyncio.to_thread` from async code.
    """
    return ConnectionPool.options(  # type: ignore[attr-defined]
        name=pool_name(shard),
        namespace=namespace,
        lifetime="detached",
        get_if_exists=True,
        **({"resources": {resource: 1}} if resource else {}),
    ).remote(shard, config)


class _Cancelled(Exception):
    """The execution was cancelled while we waited."""


class _Signal(asyncio.Event):
    """An asyncio.Event that also calls back: `_race` watches it without a task of its own."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: set[Callable[[], None]] = set()

    def set(self) -> None:
        if not self.is_set():
            super().set()
            for callback in list(self._callbacks):
                callback()

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.add(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.discard(callback)


async def _race(
    awaitable: Awaitable[T],
    cancelled: _Signal,
    *,
    timeout_s: float | None = None,
    on_orphan: Callable[[T], object] | None = None,
) -> T:
    """Await `awaitable` unless `cancelled` is set first (`_Cancelled`) or `timeout_s` passes
    (`TimeoutError`). A result that arrives too late is handed to `on_orphan` to undo.

    One task (the awaitable's) and callbacks, not asyncio.wait over a second task watching the
    signal: a pool races several times per target, hundreds of targets at once."""
    task = asyncio.ensure_future(awaitable)
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(*_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    cancelled.subscribe(wake)
    timer = loop.call_later(timeout_s, wake) if timeout_s is not None else None
    if cancelled.is_set():
        wake()
    try:
        await waiter
    except BaseException:
        task.cancel()
        raise
    finally:
        cancelled.unsubscribe(wake)
        task.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        result = await task
        if on_orphan is not None:
            on_orphan(result)
    if cancelled.is_set():
        raise _Cancelled
    raise TimeoutError


class _Client(asyncssh.SSHClient):
    def __init__(self, on_lost: Callable[[], None]) -> None:
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()


ConnectionKey = tuple[str, int, str, str, str]
"""(host, port, username, credential fingerprint, host-key policy): a warm connection is only
reused by a target whose host-key policy is the one it was verified with (L15)."""


@dataclass(eq=False)
class _HostLimit:
    """Concurrent handshakes to one host; dropped once no handshake uses it (M12)."""

    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass(eq=False)
class _Connection:
    key: ConnectionKey
    ready: asyncio.Future[None]
    conn: asyncssh.SSHClientConnection | None = None
    leases: int = 0
    lost: bool = False
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _Lease:
    connection: _Connection
    reused: bool
    released: bool = False

    @property
    def conn(self) -> asyncssh.SSHClientConnection:
        assert self.connection.conn is not None
        return self.connection.conn


@dataclass
class _Pending:
    type: EventType
    target_id: str | None
    at: float
    fields: dict[str, Any]


class _EventStream:
    """A batch's events on their way to the coordinator, in order, in few calls.

    Consecutive output chunks of one target's step are merged; everything is pushed every
    `flush_interval_s`, or at once when `flush_bytes` of output wait. If the coordinator
    cannot be reached, `on_failure` is called (the batch is then cancelled).
    """

    def __init__(
        self, sink: ActorHandle, execution_id: str, config: PoolConfig, on_failure: Callable[[], None]
    ) -> None:
        self._sink = sink
        self._execution_id = execution_id
        self._interval = config.flush_interval_s
        self._max_bytes = config.flush_bytes
        self._on_failure = on_failure
        self._pending: list[_Pending] = []
        self._open_output: dict[str, _Pending] = {}
        self._target_seq: dict[str, int] = {}
        self._bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.failed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def emit(self, type: EventType, target_id: str | None, **fields: Any) -> None:
        if target_id is not None:
            self._open_output.pop(target_id, None)
        self._pending.append(_Pending(type, target_id, time.time(), fields))
        if type in (EventType.TARGET_FINISHED, EventType.EXECUTION_FINISHED):
            self._wake.set()

    def output(self, type: EventType, target_id: str, step_index: int, step_name: str, text: str) -> None:
        if not text:
            return
        last = self._open_output.get(target_id)
        if last is not None and last.type == type and last.fields["step_index"] == step_index:
            last.fields["data"] += text
        else:
            last = _Pending(
                type, target_id, time.time(), {"step_index": step_index, "step_name": step_name, "data": text}
            )
            self._pending.append(last)
            self._open_output[target_id] = last
        self._bytes += len(text)
        if self._bytes >= self._max_bytes:
            self._wake.set()
        if self._bytes >= self._max_bytes * 8:
            self._room.clear()

    async def room(self) -> None:
        """Wait while too much output is queued: a flooding command is slowed down to what
        the coordinator takes (SSH flow control then throttles the remote side)."""
        await self._room.wait()

    async def _loop(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self._pending or self.failed:
                return
            batch, self._pending = self._pending, []
            self._open_output.clear()
            self._bytes = 0
            self._room.set()
            events: list[EngineEvent] = []
            for pending in batch:
                target_seq = None
                if pending.target_id is not None:
                    target_seq = self._target_seq.get(pending.target_id, 0) + 1
                    self._target_seq[pending.target_id] = target_seq
                events.append(
                    EngineEvent(
                        seq=0,  # the coordinator numbers the execution's events
                        type=pending.type,
                        at=pending.at,
                        target_id=pending.target_id,
                        target_seq=target_seq,
                        **pending.fields,
                    )
                )
            try:
                known = await self._sink.push.remote(self._execution_id, events)
            except Exception:
                logger.exception("coordinator unreachable; cancelling the batch")
                known = False
            if known is False:
                logger.warning("execution %s: the coordinator no longer has this run", self._execution_id)
                self.failed = True
                self._pending.clear()
                self._on_failure()

    async def close(self) -> None:
        """Push what is left and stop. Never cancels a push midway (it would lose events)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()


@dataclass(eq=False)
class _Batch:
    execution_id: str
    steps: tuple[StepSpec, ...]
    credentials: CredentialRef
    connect_timeout_s: float
    slots: asyncio.Semaphore
    policy: RunPolicy = field(default_factory=RunPolicy)
    max_output_bytes: int = 1_048_576
    cancelled: _Signal = field(default_factory=_Signal)
    """Set by cancel (and the run timeout): running commands are killed."""
    halted: _Signal = field(default_factory=_Signal)
    """Set by cancel and by fail-fast: targets not started yet do not start."""
    reason: str | None = None
    prefetched: dict[str, asyncio.Future[dict[str, Credential | CredentialUnavailable]]] = field(
        default_factory=dict
    )
    """Target id -> the resolver request (shared by a chunk of targets, credential_chunks) that
    fetches its credential; queued when the batch arrives."""

    def cancel(self, reason: str | None) -> None:
        self.reason = self.reason or reason
        self.cancelled.set()
        self.halted.set()

    def stop_new(self, reason: str | None) -> None:
        self.reason = self.reason or reason
        self.halted.set()

    def not_started_reason(self) -> str:
        return self.reason or "cancelled before the target started"


@dataclass
class _StepOutcome:
    status: Status
    duration_ms: float
    exit_code: int | None = None
    message: str | None = None
    connection_broken: bool = False


class _Decoder:
    """UTF-8 across chunk boundaries; undecodable bytes become U+FFFD instead of failing."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, chunk: bytes, final: bool = False) -> str:
        return self._decoder.decode(chunk, final)


# max_concurrency: one slot per concurrent call (batches, cancels, stats), not per target.
# (The pyright ignore: ray's typed overload of remote() lacks max_concurrency.)
@ray.remote(num_cpus=0, max_concurrency=1000, max_restarts=-1, max_task_retries=0)  # pyright: ignore[reportCallIssue]
class ConnectionPool:
    """Warm SSH connections for one shard of targets, and the steps run over them.

    Restarts if its process dies (connections are rebuilt on demand), but a call in flight
    is never retried: a half-run command must not run twice.
    """

    def __init__(self, shard: int, config: PoolConfig | None = None) -> None:
        self._shard = shard
        self._config = config or PoolConfig()
        self._connections: dict[ConnectionKey, list[_Connection]] = {}
        self._handshakes: asyncio.Semaphore | None = None
        self._host_handshakes: dict[tuple[str, int], _HostLimit] = {}
        self._batches: dict[str, set[_Batch]] = {}
        self._cancelled: dict[str, tuple[float, str | None, bool]] = {}
        """execution id -> (when, reason, kill running commands) for cancel and fail-fast."""
        self._host_locks = _HostLocks()
        self._sinks: dict[str, ActorHandle] = {}
        """Coordinator handles kept for good (see ExecutionCoordinator._handles)."""
        self._fetches: asyncio.Semaphore | None = None
        self._winrm: Any = None
        self._keys = KeyCache(
            max_keys=self._config.key_cache_size,
            ttl_s=self._config.key_cache_ttl_s,
            max_kdf_rounds=self._config.max_kdf_rounds,
            max_pbkdf_iterations=self._config.max_pbkdf_iterations,
            parse_timeout_s=self._config.key_parse_timeout_s,
        )
        self._http: httpx.AsyncClient | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._connects = 0
        self._connect_failures = 0
        self._reuses = 0
        self._active_targets = 0
        # asyncssh logs every channel at INFO: too chatty for a pool running thousands.
        asyncssh.set_log_level(logging.WARNING)

    # ----------------------------------------------------------------- public methods

    async def run_targets(
        self,
        execution_id: str,
        steps: Sequence[StepSpec],
        targets: Sequence[TargetSpec],
        credentials: CredentialRef,
        connect_timeout_s: float,
        max_parallel: int,
        sink: ActorHandle,
        policy: RunPolicy | None = None,
        max_output_bytes: int = 1_048_576,
    ) -> dict[str, str]:
        """Run `steps` on each target, at most `max_parallel` targets at a time.

        Events go to `sink.push(execution_id, list[EngineEvent])` (the coordinator). Returns
        each target's final status; every target gets exactly one TARGET_FINISHED event.
        """
        self._ensure_started()
        sink = self._sinks.setdefault(sink._actor_id.hex(), sink)
        batch = _Batch(
            execution_id=execution_id,
            steps=tuple(steps),
            credentials=credentials,
            connect_timeout_s=connect_timeout_s,
            slots=asyncio.Semaphore(max(1, max_parallel)),
            policy=policy or RunPolicy(),
            max_output_bytes=max(1, max_output_bytes),
        )
        remembered = self._cancelled.get(execution_id)
        if remembered is not None:
            _, reason, kill = remembered
            if kill:
                batch.cancel(reason)
            else:
                batch.stop_new(reason)
        self._batches.setdefault(execution_id, set()).add(batch)
        self._prefetch(batch, [t.target_id for t in targets])
        stream = _EventStream(
            sink, execution_id, self._config, on_failure=lambda: batch.cancel("the coordinator lost this run")
        )
        stream.start()
        try:
            statuses = await asyncio.gather(*(self._run_target(batch, target, stream) for target in targets))
        finally:
            for request in batch.prefetched.values():
                request.cancel()
            await stream.close()
            batches = self._batches.get(execution_id)
            if batches is not None:
                batches.discard(batch)
                if not batches:
                    del self._batches[execution_id]
        return {target.target_id: str(status) for target, status in zip(targets, statuses, strict=True)}

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
        self._ensure_started()
        if target.method == "winrm":
            runner = self._winrm_runner()
            if runner is None:
                return ConnectionTestResult(
                    ok=False, latency_ms=None, message="communication method 'winrm' is not available"
                )
            try:
                credential = await self._fetch(credentials, target.target_id)
            except EngineError as exc:
                return ConnectionTestResult(ok=False, latency_ms=None, message=exc.message)
            return await runner.test_connection(target, credential, timeout_s)
        if target.method != "ssh":
            return ConnectionTestResult(
                ok=False, latency_ms=None, message=f"communication method '{target.method}' is not supported"
            )
        started = time.monotonic()
        try:
            credential = await self._fetch(credentials, target.target_id)
            lease = await asyncio.wait_for(self._acquire(target, credential, timeout_s), timeout_s * 2)
            try:
                result = await lease.conn.run("true", check=False, timeout=timeout_s)
            except TimeoutError as exc:
                self._discard(lease)
                raise CommandTimeout(f"connected, but `true` did not finish within {timeout_s:g}s") from exc
            except (asyncssh.Error, OSError) as exc:
                self._discard(lease)
                raise map_exception(
                    exc, host=target.host, port=target.port, username=credential.username
                ) from exc
            finally:
                self._release(lease)
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
        sink = self._sinks.setdefault(sink._actor_id.hex(), sink)
        await sink.ping.remote()

    async def stats(self) -> dict[str, int]:
        """Counters for dashboards and tests."""
        connections = [c for conns in self._connections.values() for c in conns]
        return {
            "shard": self._shard,
            "open_connections": sum(1 for c in connections if c.conn is not None and not c.lost),
            "busy_channels": sum(c.leases for c in connections),
            "connects": self._connects,
            "connect_failures": self._connect_failures,
            "reuses": self._reuses,
            "active_targets": self._active_targets,
            "cached_keys": len(self._keys),
            "host_handshake_limits": len(self._host_handshakes),
        }

    # ----------------------------------------------------------------- one target

    async def _run_target(self, batch: _Batch, target: TargetSpec, stream: _EventStream) -> Status:
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
                        raise _Cancelled
                    if not self._host_locks.try_acquire(host, eid):
                        await _race(
                            self._host_locks.acquire(host, eid),
                            batch.halted,
                            on_orphan=lambda _: self._host_locks.release(host, eid),
                        )
                    held.callback(self._host_locks.release, host, eid)
                if batch.halted.is_set():
                    raise _Cancelled
                if batch.slots.locked():
                    await _race(
                        batch.slots.acquire(), batch.halted, on_orphan=lambda _: batch.slots.release()
                    )
                else:
                    await batch.slots.acquire()  # free: returns at once
                held.callback(batch.slots.release)
            except _Cancelled:
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
        batch: _Batch,
        target: TargetSpec,
        attempts: list[int],
    ) -> tuple[Credential, _Lease]:
        """Credential and a channel slot; connection failures (refused, timed out, lost
        during the handshake) are retried per the policy with exponential backoff and
        jitter. Nothing has run on the target yet, so a retry cannot run anything twice."""
        attempt = 1
        while True:
            attempts[0] = attempt
            if batch.halted.is_set():
                raise _Cancelled
            credential = self._credential_now(batch, target.target_id) or await _race(
                self._credential(batch, target.target_id), batch.halted
            )
            try:
                lease = self._acquire_warm(target, credential) or await _race(
                    self._acquire(target, credential, batch.connect_timeout_s),
                    batch.halted,
                    on_orphan=self._release,
                )
            except ConnectError:
                if attempt > batch.policy.retries:
                    raise
                backoff = batch.policy.retry_backoff_s * (2 ** (attempt - 1))
                delay = backoff * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not crypto
                with contextlib.suppress(TimeoutError):
                    await _race(asyncio.Event().wait(), batch.halted, timeout_s=delay)
                attempt += 1
                continue
            return credential, lease

    async def _run_target_in_slot(
        self,
        batch: _Batch,
        target: TargetSpec,
        stream: _EventStream,
        finish: Callable[[Status, str | None], Status],
        attempts: list[int],
    ) -> Status:
        if target.method == "winrm":
            return await self._run_winrm_target(batch, target, stream, finish)
        if target.method != "ssh":
            return finish(
                Status.FAILED, f"communication method '{target.method}' is not supported by the engine"
            )
        try:
            credential, lease = await self._connect_with_retries(batch, target, attempts)
        except _Cancelled:
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

        async def run_one(index: int, step: StepSpec) -> _StepOutcome:
            nonlocal lease
            outcome, lease = await self._run_step(
                batch, target, credential, lease, index, step, stream, announce
            )
            if outcome.connection_broken:
                self._discard(lease)
            return outcome

        try:
            target_status, failure = await _run_steps(batch, target, stream, run_one)
        finally:
            self._release(lease)
        if not announced:  # no steps at all
            stream.emit(
                EventType.TARGET_STARTED,
                target.target_id,
                reused_connection=lease.reused,
                attempt=attempt_field,
            )
        return finish(target_status, failure)

    async def _run_winrm_target(
        self,
        batch: _Batch,
        target: TargetSpec,
        stream: _EventStream,
        finish: Callable[[Status, str | None], Status],
    ) -> Status:
        """WinRM targets: steps go through `WinRMRunner` (winrm.py, pywinrm in threads)."""
        runner = self._winrm_runner()
        if runner is None:
            return finish(Status.FAILED, "communication method 'winrm' is not available in this engine build")
        try:
            credential = await _race(self._credential(batch, target.target_id), batch.halted)
        except _Cancelled:
            return finish(Status.CANCELLED, batch.not_started_reason())
        except EngineError as exc:
            return finish(Status.FAILED, exc.message)
        announced = False

        def announce(reused: bool) -> None:
            """TARGET_STARTED once the server accepted us and opened a shell (as SSH does once
            its channel is open): a target whose login fails never shows as started."""
            nonlocal announced
            if not announced:
                announced = True
                stream.emit(EventType.TARGET_STARTED, target.target_id, reused_connection=reused)

        if not batch.steps:
            announce(False)

        async def run_one(index: int, step: StepSpec) -> _StepOutcome:
            started = time.monotonic()
            cap = _OutputCap(batch.max_output_bytes)

            def on_output(stream_name: str, text: str) -> None:
                kind = EventType.STDERR if stream_name == "STDERR" else EventType.STDOUT
                for piece in cap.take_text(text):
                    stream.output(kind, target.target_id, index, step.name, piece)

            def took() -> float:
                return (time.monotonic() - started) * 1000

            try:
                exit_code, reason = await runner.run_step(
                    target, credential, step, on_output=on_output, cancel=batch.cancelled, on_started=announce
                )
            except EngineError as exc:
                return _StepOutcome(Status.FAILED, took(), message=exc.message, connection_broken=True)
            if batch.cancelled.is_set():
                return _StepOutcome(
                    Status.CANCELLED, took(), exit_code=exit_code, message=reason or "cancelled"
                )
            if reason is not None:
                status = Status.TIMED_OUT if "timed out" in reason else Status.FAILED
                return _StepOutcome(status, took(), exit_code=exit_code, message=reason)
            if exit_code in step.expected_exit_codes:
                return _StepOutcome(Status.SUCCEEDED, took(), exit_code=exit_code)
            return _StepOutcome(Status.FAILED, took(), exit_code=exit_code)

        target_status, failure = await _run_steps(batch, target, stream, run_one)
        return finish(target_status, failure)

    def _winrm_runner(self) -> Any:
        if self._winrm is None:
            try:
                from opsconductor_ray.winrm import WinRMRunner  # pyright: ignore[reportMissingImports]
            except ImportError:
                return None
            self._winrm = WinRMRunner()
        return self._winrm

    # ----------------------------------------------------------------- one step

    async def _run_step(
        self,
        batch: _Batch,
        target: TargetSpec,
        credential: Credential,
        lease: _Lease,
        index: int,
        step: StepSpec,
        stream: _EventStream,
        announce: Callable[[bool], None],
    ) -> tuple[_StepOutcome, _Lease]:
        started = time.monotonic()

        def outcome(status: Status, **kwargs: Any) -> tuple[_StepOutcome, _Lease]:
            return _StepOutcome(status, duration_ms=(time.monotonic() - started) * 1000, **kwargs), lease

        def close_orphan(process: asyncssh.SSHClientProcess[bytes]) -> None:
            process.close()

        if step.type == "file_transfer":
            announce(lease.reused)
            return await self._transfer(batch, target, lease, index, step, stream), lease
        try:
            command, stdin_body, upload = _build_command(step)
        except ValueError as exc:
            announce(lease.reused)
            return outcome(Status.FAILED, message=str(exc))

        try:
            try:
                if upload is not None:
                    await _race(
                        _sftp_write(lease.conn, upload[0], upload[1], None),
                        batch.cancelled,
                        timeout_s=step.timeout_s,
                    )
                process = await _race(
                    lease.conn.create_process(command, encoding=None),
                    batch.cancelled,
                    timeout_s=step.timeout_s,
                    on_orphan=close_orphan,
                )
            except asyncssh.ChannelOpenError:
                if not lease.reused or lease.released:
                    raise
                # A warm connection the server had dropped: the command cannot have started,
                # so trying once more on a fresh connection is safe.
                self._discard(lease)
                self._release(lease)
                lease = await _race(
                    self._acquire(target, credential, batch.connect_timeout_s),
                    batch.cancelled,
                    on_orphan=self._release,
                )
                if upload is not None:
                    await _race(
                        _sftp_write(lease.conn, upload[0], upload[1], None),
                        batch.cancelled,
                        timeout_s=step.timeout_s,
                    )
                process = await _race(
                    lease.conn.create_process(command, encoding=None),
                    batch.cancelled,
                    timeout_s=step.timeout_s,
                    on_orphan=close_orphan,
                )
        except _Cancelled:
            announce(lease.reused)
            return outcome(Status.CANCELLED, message="cancelled")
        except TimeoutError:
            announce(lease.reused)
            return outcome(Status.TIMED_OUT, message=f"timed out after {step.timeout_s:g}s")
        except asyncssh.SFTPError as exc:
            announce(lease.reused)
            return outcome(Status.FAILED, message=f"could not upload the script: {exc.reason}")
        except (asyncssh.Error, OSError) as exc:
            announce(lease.reused)
            error = map_exception(exc, host=target.host, port=target.port, username=credential.username)
            return outcome(Status.FAILED, message=error.message, connection_broken=True)
        except EngineError as exc:
            announce(lease.reused)
            return outcome(Status.FAILED, message=exc.message, connection_broken=True)

        announce(lease.reused)
        if stdin_body is not None:
            process.stdin.write(stdin_body)
        process.stdin.write_eof()
        cap = _OutputCap(batch.max_output_bytes)

        async def pump(reader: asyncssh.SSHReader[bytes], type: EventType) -> None:
            decode = _Decoder()
            while chunk := await reader.read(65536):
                kept, overflowed = cap.take(chunk)
                if kept:
                    stream.output(type, target.target_id, index, step.name, decode(kept))
                if overflowed:
                    stream.output(type, target.target_id, index, step.name, decode(b"", final=True))
                    stream.output(type, target.target_id, index, step.name, truncation_marker(cap.limit))
                if kept:
                    await stream.room()
            if not cap.truncated:
                stream.output(type, target.target_id, index, step.name, decode(b"", final=True))

        async def complete() -> None:
            errors = asyncio.ensure_future(pump(process.stderr, EventType.STDERR))
            try:
                await pump(process.stdout, EventType.STDOUT)
            except BaseException:
                errors.cancel()
                with contextlib.suppress(BaseException):
                    await errors
                raise
            await errors
            await process.wait_closed()

        remaining = max(0.0, step.timeout_s - (time.monotonic() - started))
        try:
            await _race(complete(), batch.cancelled, timeout_s=remaining)
        except _Cancelled:
            await _kill(process)
            return outcome(Status.CANCELLED, message="cancelled; the command was sent SIGTERM")
        except TimeoutError:
            await _kill(process)
            return outcome(
                Status.TIMED_OUT, message=f"timed out after {step.timeout_s:g}s; the command was sent SIGTERM"
            )
        except (asyncssh.Error, OSError) as exc:
            error = map_exception(exc, host=target.host, port=target.port, username=credential.username)
            return outcome(Status.FAILED, message=error.message, connection_broken=True)

        exit_status = process.exit_status
        exit_signal = process.exit_signal
        if exit_signal is not None:
            return outcome(Status.FAILED, message=f"the command was killed by signal {exit_signal[0]}")
        if exit_status is None:
            return outcome(
                Status.FAILED,
                message=f"connection to {target.host}:{target.port} closed before the command exited",
                connection_broken=True,
            )
        if exit_status not in step.expected_exit_codes:
            return outcome(Status.FAILED, exit_code=exit_status)
        return outcome(Status.SUCCEEDED, exit_code=exit_status)

    async def _transfer(
        self,
        batch: _Batch,
        target: TargetSpec,
        lease: _Lease,
        index: int,
        step: StepSpec,
        stream: _EventStream,
    ) -> _StepOutcome:
        """Upload `content` to, or download `source` from, the target over SFTP."""
        started = time.monotonic()
        spec = step.transfer

        def outcome(status: Status, **kwargs: Any) -> _StepOutcome:
            return _StepOutcome(status, duration_ms=(time.monotonic() - started) * 1000, **kwargs)

        if spec is None:
            return outcome(Status.FAILED, message="file_transfer step without a transfer")
        conn = lease.conn
        if spec.direction == "upload":
            path = _remote_path(step, spec.destination)
            data = (spec.content or "").encode()
            if len(data) > MAX_UPLOAD_BYTES:
                return outcome(Status.FAILED, message=f"upload content exceeds {MAX_UPLOAD_BYTES} bytes")
            try:
                mode = int(spec.mode, 8) if spec.mode else None
            except ValueError:
                return outcome(Status.FAILED, message=f"invalid file mode {spec.mode!r}")
            work: Awaitable[bytes | None] = _sftp_write(conn, path, data, mode)
        elif spec.direction == "download":
            path = _remote_path(step, spec.source or "")
            if not spec.source:
                return outcome(Status.FAILED, message="download without a source path")
            work = _sftp_read(conn, path, batch.max_output_bytes + 1)
        else:
            return outcome(Status.FAILED, message=f"unknown transfer direction {spec.direction!r}")
        try:
            data_read = await _race(work, batch.cancelled, timeout_s=step.timeout_s)
        except _Cancelled:
            return outcome(Status.CANCELLED, message="cancelled")
        except TimeoutError:
            return outcome(Status.TIMED_OUT, message=f"timed out after {step.timeout_s:g}s")
        except asyncssh.SFTPError as exc:
            return outcome(Status.FAILED, message=f"sftp {spec.direction} of {path} failed: {exc.reason}")
        except (asyncssh.Error, OSError) as exc:
            error = map_exception(exc, host=target.host, port=target.port, username=None)
            return outcome(Status.FAILED, message=error.message, connection_broken=True)
        if data_read is not None:
            cap = _OutputCap(batch.max_output_bytes)
            for piece in cap.take_text(data_read.decode("utf-8", "replace")):
                stream.output(EventType.STDOUT, target.target_id, index, step.name, piece)
        return outcome(Status.SUCCEEDED, exit_code=0)

    # ----------------------------------------------------------------- connections

    def _ensure_started(self) -> None:
        if self._handshakes is None:
            self._handshakes = asyncio.Semaphore(self._config.max_handshakes)
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        if self._fetches is None:
            # bounded: hundreds of targets at once must not swamp the resolver into timeouts
            self._fetches = asyncio.Semaphore(self._config.max_credential_fetches)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle())

    def _prefetch(self, batch: _Batch, target_ids: Sequence[str]) -> None:
        """Ask the resolver for the batch's credentials now, a chunk of targets per request
        (credential_chunks), instead of one request per target when each connects."""
        in_flight = asyncio.Semaphore(CREDENTIAL_REQUESTS_IN_FLIGHT)  # FIFO: chunks in order
        for part in credential_chunks(list(dict.fromkeys(target_ids))):
            request = asyncio.ensure_future(self._fetch_many(batch.credentials, part, in_flight))
            request.add_done_callback(lambda task: task.cancelled() or task.exception())
            for target_id in part:
                batch.prefetched[target_id] = request

    def _credential_now(self, batch: _Batch, target_id: str) -> Credential | None:
        """The credential if its request has already answered (no wait), else None."""
        request = batch.prefetched[target_id]
        if not request.done() or request.cancelled() or request.exception() is not None:
            return None
        answer = request.result()[target_id]
        if isinstance(answer, CredentialUnavailable):
            raise CredentialUnavailable(answer.message)
        return answer

    async def _credential(self, batch: _Batch, target_id: str) -> Credential:
        """A batch target's credential, from the request `_prefetch` started for it."""
        answer = (await asyncio.shield(batch.prefetched[target_id]))[target_id]
        if isinstance(answer, CredentialUnavailable):
            raise CredentialUnavailable(answer.message)
        return answer

    async def _fetch_many(
        self, ref: CredentialRef, target_ids: list[str], in_flight: asyncio.Semaphore
    ) -> dict[str, Credential | CredentialUnavailable]:
        assert self._fetches is not None  # _ensure_started
        async with in_flight, self._fetches:
            return await fetch_credentials(ref, target_ids, client=self._http, key_cache=self._keys)

    async def _fetch(self, ref: CredentialRef, target_id: str) -> Credential:
        assert self._fetches is not None  # _ensure_started
        async with self._fetches:
            return await fetch_credential(ref, target_id, client=self._http, key_cache=self._keys)

    def _key(self, target: TargetSpec, credential: Credential) -> ConnectionKey:
        return (
            target.host,
            target.port,
            credential.username,
            credential.fingerprint,
            self._policy(credential),
        )

    def _policy(self, credential: Credential) -> str:
        """The host-key policy a connection for this credential is verified with: the
        credential's own known_hosts text, else the pool's known_hosts file ("" = none: refused)."""
        known = credential.options.get("knownHosts")
        if known:
            return "text:" + known
        if self._config.known_hosts:
            return "file:" + self._config.known_hosts
        return ""

    def _acquire_warm(self, target: TargetSpec, credential: Credential) -> _Lease | None:
        """A channel slot on an open connection with room, without waiting; else None."""
        key = self._key(target, credential)
        for connection in self._connections.get(key, ()):
            if (
                not connection.lost
                and connection.leases < self._config.max_channels_per_connection
                and connection.ready.done()
                and not connection.ready.cancelled()
                and connection.ready.exception() is None
            ):
                connection.leases += 1
                self._reuses += 1
                return _Lease(connection, reused=True)
        return None

    async def _acquire(self, target: TargetSpec, credential: Credential, connect_timeout_s: float) -> _Lease:
        """A channel slot on a connection for this target and credential: a warm one if
        any has room, else one being opened, else a new connection."""
        key = self._key(target, credential)
        connections = self._connections.setdefault(key, [])
        for connection in connections:
            if not connection.lost and connection.leases < self._config.max_channels_per_connection:
                connection.leases += 1
                warm = connection.ready.done()
                try:
                    await asyncio.shield(connection.ready)
                except BaseException:
                    connection.leases -= 1
                    raise
                if warm:
                    self._reuses += 1
                return _Lease(connection, reused=warm)

        loop = asyncio.get_running_loop()
        connection = _Connection(key=key, ready=loop.create_future(), leases=1)
        connections.append(connection)
        opening = asyncio.create_task(self._open(connection, target, credential, connect_timeout_s))
        opening.add_done_callback(lambda task: task.cancelled() or task.exception())
        try:
            await asyncio.shield(connection.ready)
        except BaseException:
            connection.leases -= 1
            raise
        return _Lease(connection, reused=False)

    async def _open(
        self, connection: _Connection, target: TargetSpec, credential: Credential, connect_timeout_s: float
    ) -> None:
        assert self._handshakes is not None
        host = (target.host, target.port)
        host_limit = self._host_handshakes.get(host)
        if host_limit is None:
            host_limit = self._host_handshakes[host] = _HostLimit(
                asyncio.Semaphore(self._config.max_handshakes_per_host)
            )
        host_limit.users += 1
        policy = connection.key[4]

        def lost() -> None:
            connection.lost = True
            if connection.leases == 0:
                self._forget(connection)

        try:
            # H3: with no trusted key at all, trust none (an empty list; None would make asyncssh
            # accept any key and send the secret to whoever answers). Unreachable hosts still
            # fail as refused/timed out; one that answers fails its host-key check before any
            # authentication.
            known_hosts: Any = ([], [], [])
            if policy.startswith("text:"):
                known_hosts = asyncssh.import_known_hosts(policy.removeprefix("text:"))
            elif policy.startswith("file:"):
                known_hosts = policy.removeprefix("file:")
            async with contextlib.AsyncExitStack() as limits:
                await self._enter_limit(limits, self._handshakes)
                await self._enter_limit(limits, host_limit.semaphore)
                conn = await asyncssh.connect(
                    target.host,
                    target.port,
                    username=credential.username,
                    password=credential.password,
                    client_keys=[credential.private_key] if credential.private_key is not None else None,
                    # the targets service's recorded key for this target wins, else the pool's file
                    known_hosts=known_hosts,
                    connect_timeout=connect_timeout_s,
                    keepalive_interval=self._config.keepalive_interval_s,
                    keepalive_count_max=self._config.keepalive_count_max,
                    client_factory=lambda: _Client(lost),
                    # Only what the resolver handed us: no ~/.ssh/config, agent, default
                    # keys or GSS of the worker's user.
                    config=None,
                    agent_path=None,
                    gss_auth=False,
                    gss_kex=False,
                    host_based_auth=False,
                    x509_trusted_certs=None,
                    pkcs11_provider=None,
                )
        except asyncio.CancelledError:
            self._fail_open(connection, ConnectError(f"connect to {target.host}:{target.port} was cancelled"))
            raise
        except Exception as exc:
            error = map_exception(
                exc,
                host=target.host,
                port=target.port,
                username=credential.username,
                timeout_s=connect_timeout_s,
            )
            if not policy and isinstance(exc, asyncssh.HostKeyNotVerifiable):
                error = HostKeyUnknown(
                    f"no trusted host key is known for {target.host}:{target.port}: the credential came "
                    "without knownHosts and the pool has no known_hosts file; refused before logging in"
                )
            self._fail_open(connection, error)
            return
        finally:
            host_limit.users -= 1
            if host_limit.users == 0 and self._host_handshakes.get(host) is host_limit:
                del self._host_handshakes[host]
        self._connects += 1
        connection.conn = conn
        connection.ready.set_result(None)

    async def _enter_limit(self, stack: contextlib.AsyncExitStack, limit: asyncio.Semaphore) -> None:
        """Take a handshake slot; one that had to be waited for is followed by a short
        random pause, so the handshakes queued behind a limit do not hit sshd in lockstep."""
        contended = limit.locked()
        await stack.enter_async_context(limit)
        if contended and self._config.handshake_jitter_s > 0:
            await asyncio.sleep(random.uniform(0, self._config.handshake_jitter_s))  # noqa: S311

    def _fail_open(self, connection: _Connection, error: EngineError) -> None:
        self._connect_failures += 1
        self._forget(connection)
        connection.ready.set_exception(error)
        connection.ready.exception()  # mark retrieved: every waiter may have been cancelled

    def _release(self, lease: _Lease) -> None:
        if lease.released:
            return
        lease.released = True
        connection = lease.connection
        connection.leases -= 1
        connection.last_used = time.monotonic()
        if connection.lost and connection.leases == 0:
            self._close(connection)

    def _discard(self, lease: _Lease) -> None:
        """Stop handing out this lease's connection (closed once its last lease returns)."""
        lease.connection.lost = True
        if lease.connection.leases == 0:
            self._close(lease.connection)

    def _close(self, connection: _Connection) -> None:
        self._forget(connection)
        if connection.conn is not None:
            connection.conn.close()

    def _forget(self, connection: _Connection) -> None:
        connections = self._connections.get(connection.key)
        if connections is not None and connection in connections:
            connections.remove(connection)
            if not connections:
                del self._connections[connection.key]

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(self._config.reap_interval_s)
            now = time.monotonic()
            for connections in list(self._connections.values()):
                for connection in list(connections):
                    idle = now - connection.last_used
                    if (
                        connection.conn is not None
                        and connection.leases == 0
                        and (connection.lost or idle > self._config.idle_timeout_s)
                    ):
                        self._close(connection)


async def _kill(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """SIGTERM the remote command (sshd signals its whole process group), then close the
    channel. OpenSSH ignores the signal request for root logins; see README."""
    with contextlib.suppress(asyncssh.Error, OSError):
        process.send_signal("TERM")
    process.close()
    with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
        await asyncio.wait_for(process.wait_closed(), 2.0)


async def _run_steps(
    batch: _Batch,
    target: TargetSpec,
    stream: _EventStream,
    run_one: Callable[[int, StepSpec], Awaitable[_StepOutcome]],
) -> tuple[Status, str | None]:
    """Run the steps in order; a failed step (unless continue_on_error) skips the rest."""
    target_status = Status.SUCCEEDED
    failure: str | None = None
    blocked = False
    for index, step in enumerate(batch.steps):
        if blocked:
            stream.emit(
                EventType.STEP_FINISHED,
                target.target_id,
                step_index=index,
                step_name=step.name,
                status=Status.SKIPPED,
            )
            continue
        outcome = await run_one(index, step)
        stream.emit(
            EventType.STEP_FINISHED,
            target.target_id,
            step_index=index,
            step_name=step.name,
            status=outcome.status,
            exit_code=outcome.exit_code,
            data=outcome.message,
            duration_ms=outcome.duration_ms,
        )
        if outcome.status is Status.CANCELLED:
            target_status, failure, blocked = Status.CANCELLED, "cancelled", True
        elif outcome.status is not Status.SUCCEEDED and not (
            step.continue_on_error and not outcome.connection_broken
        ):
            target_status = Status.FAILED
            failure = f"step {index + 1} '{step.name}' {outcome.status.lower().replace('_', ' ')}"
            if outcome.message:
                failure += f": {outcome.message}"
            elif outcome.exit_code is not None:
                failure += f" with exit code {outcome.exit_code}"
            blocked = True
    return target_status, failure


class _HostLocks:
    """Per-host locks held by an execution: its targets on one host may share it, another
    execution waits until the host is free."""

    def __init__(self) -> None:
        self._holders: dict[tuple[str, int], tuple[str, int]] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0

    def try_acquire(self, host: tuple[str, int], execution_id: str) -> bool:
        """Take the host at once if it is free or this execution's; False if another holds it."""
        owner, count = self._holders.get(host, (execution_id, 0))
        if owner != execution_id:
            return False
        self._holders[host] = (owner, count + 1)
        return True

    async def acquire(self, host: tuple[str, int], execution_id: str) -> None:
        self._waiting += 1
        try:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._holders.get(host, (execution_id, 0))[0] == execution_id
                )
                owner, count = self._holders.get(host, (execution_id, 0))
                self._holders[host] = (owner, count + 1)
        finally:
            self._waiting -= 1

    def release(self, host: tuple[str, int], execution_id: str) -> None:
        owner, count = self._holders.get(host, (execution_id, 0))
        if owner != execution_id or count <= 0:
            return
        if count == 1:
            del self._holders[host]
            if not self._waiting:
                return
            task = asyncio.get_running_loop().create_task(self._notify())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._holders[host] = (owner, count - 1)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


class _OutputCap:
    """At most `limit` bytes of a step's output (stdout and stderr together)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.truncated = False

    def take(self, chunk: bytes) -> tuple[bytes, bool]:
        """The part of `chunk` that fits, and whether the limit was crossed just now."""
        if self.truncated:
            return b"", False
        room = self.limit - self.used
        if len(chunk) <= room:
            self.used += len(chunk)
            return chunk, False
        self.used = self.limit
        self.truncated = True
        return chunk[:room], True

    def take_text(self, text: str) -> list[str]:
        kept, overflowed = self.take(text.encode())
        pieces = [kept.decode("utf-8", "ignore")] if kept else []
        if overflowed:
            pieces.append(truncation_marker(self.limit))
        return pieces


def _build_command(step: StepSpec) -> tuple[str, bytes | None, tuple[str, bytes] | None]:
    """The shell command line for a command or script step, what to feed on stdin, and a
    file to upload first (PowerShell scripts, which cannot take arguments from stdin)."""
    lines: list[str] = []
    if step.working_directory:
        lines.append(f"cd {shlex.quote(step.working_directory)} || exit 1")
    for name, value in step.env:
        if not _ENV_NAME.match(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}")
    stdin: bytes | None = None
    upload: tuple[str, bytes] | None = None
    if step.type == "command":
        lines.append(step.command)
    elif step.type == "script":
        script = step.script
        if script is None:
            raise ValueError("script step without a script")
        args = " ".join(shlex.quote(a) for a in script.arguments)
        if script.interpreter in _INTERPRETERS:
            lines.append(f"{_INTERPRETERS[script.interpreter]} {args}".rstrip())
            stdin = script.body.encode()
        elif script.interpreter == "powershell":
            name = f".opsc-{uuid.uuid4().hex}.ps1"
            lines.append(
                f"pwsh -NoLogo -NoProfile -NonInteractive -File ./{name} {args}; rc=$?; rm -f ./{name}; exit $rc"
            )
            upload = (_remote_path(step, name), script.body.encode())
        else:
            raise ValueError(f"unknown script interpreter {script.interpreter!r}")
    else:
        raise ValueError(f"unknown step type {step.type!r}")
    return "\n".join(lines), stdin, upload


def _remote_path(step: StepSpec, path: str) -> str:
    """SFTP paths are relative to the login directory, like the shell's before its `cd`."""
    if step.working_directory and not posixpath.isabs(path):
        return posixpath.join(step.working_directory, path)
    return path


async def _sftp_write(conn: asyncssh.SSHClientConnection, path: str, data: bytes, mode: int | None) -> None:
    async with conn.start_sftp_client() as sftp, sftp.open(path, "wb") as remote:
        await remote.write(data)
        if mode is not None:
            await sftp.chmod(path, mode)


async def _sftp_read(conn: asyncssh.SSHClientConnection, path: str, limit: int) -> bytes:
    async with conn.start_sftp_client() as sftp, sftp.open(path, "rb") as remote:
        data = await remote.read(limit)
    return data if isinstance(data, bytes) else data.encode()

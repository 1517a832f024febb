"""`SSHConnections`: one pool's warm SSH connections, shared by channel slots (leases).

asyncssh connections are bound to the event loop of the actor that opened them: they never
leave it. A connection is reused only by a target with the same host, port, username,
credential and host-key policy."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from opsconductor_ray.config import PoolConfig
from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import ConnectError, EngineError, HostKeyUnknown, map_exception
from opsconductor_ray.protocol import TargetSpec

_LEVEL_CHECKED = "_opsc_level_checked"

ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
"""asyncssh's default ciphers with AES-GCM first (issue 15, live output). Every output line is
one SSH packet; asyncssh's chacha20-poly1305 builds a ChaCha20 cipher object in Python for each
packet's header and body (~23 us of a pool's CPU per packet), AES-GCM is one OpenSSL call (~5 us).
The same AEAD strength; a server without AES-GCM still negotiates the others, in this order."""


def skip_disabled_asyncssh_logs() -> None:
    """asyncssh's SSHLogger.log turns every debug message's arguments into text before the logger
    checks its level, a few per channel: 5 % of a pool's CPU in a warm run (py-spy). Check the
    level first; what is enabled is logged exactly as before. Idempotent; applied when a pool
    is constructed, never at import."""
    logger_class: Any = asyncssh.logging.SSHLogger
    original: Callable[..., None] = logger_class.log
    if getattr(original, _LEVEL_CHECKED, False):
        return

    def log(self: asyncssh.logging.SSHLogger, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            original(self, level, msg, *args, **kwargs)

    setattr(log, _LEVEL_CHECKED, True)
    logger_class.log = log


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
class Connection:
    key: ConnectionKey
    ready: asyncio.Future[None]
    conn: asyncssh.SSHClientConnection | None = None
    leases: int = 0
    lost: bool = False
    last_used: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Lease:
    """One channel slot on a connection, held while a step runs."""

    connection: Connection
    reused: bool
    released: bool = False

    @property
    def conn(self) -> asyncssh.SSHClientConnection:
        assert self.connection.conn is not None
        return self.connection.conn


class SSHConnections:
    """The warm connections of one pool actor, and the limits on opening new ones."""

    def __init__(self, config: PoolConfig) -> None:
        self._config = config
        self._connections: dict[ConnectionKey, list[Connection]] = {}
        self._handshakes: asyncio.Semaphore | None = None
        self._host_handshakes: dict[tuple[str, int], _HostLimit] = {}
        self._reaper: asyncio.Task[None] | None = None
        self.connects = 0
        self.connect_failures = 0
        self.reuses = 0
        skip_disabled_asyncssh_logs()
        # asyncssh logs every channel at INFO: too chatty for a pool running thousands.
        asyncssh.set_log_level(logging.WARNING)

    def start(self) -> None:
        """Inside the actor's event loop: the handshake limit and the idle reaper."""
        if self._handshakes is None:
            self._handshakes = asyncio.Semaphore(self._config.max_handshakes)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_idle())

    def stats(self) -> dict[str, int]:
        connections = [c for conns in self._connections.values() for c in conns]
        return {
            "open_connections": sum(1 for c in connections if c.conn is not None and not c.lost),
            "busy_channels": sum(c.leases for c in connections),
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "reuses": self.reuses,
            "host_handshake_limits": len(self._host_handshakes),
        }

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

    def acquire_warm(self, target: TargetSpec, credential: Credential) -> Lease | None:
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
                self.reuses += 1
                return Lease(connection, reused=True)
        return None

    async def acquire(self, target: TargetSpec, credential: Credential, connect_timeout_s: float) -> Lease:
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
                    self.reuses += 1
                return Lease(connection, reused=warm)

        loop = asyncio.get_running_loop()
        connection = Connection(key=key, ready=loop.create_future(), leases=1)
        connections.append(connection)
        opening = asyncio.create_task(self._open(connection, target, credential, connect_timeout_s))
        opening.add_done_callback(_ignore_result)
        try:
            await asyncio.shield(connection.ready)
        except BaseException:
            connection.leases -= 1
            raise
        return Lease(connection, reused=False)

    async def _open(
        self, connection: Connection, target: TargetSpec, credential: Credential, connect_timeout_s: float
    ) -> None:
        assert self._handshakes is not None  # start()
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
                    encryption_algs=ENCRYPTION_ALGS,
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
        self.connects += 1
        connection.conn = conn
        connection.ready.set_result(None)

    async def _enter_limit(self, stack: contextlib.AsyncExitStack, limit: asyncio.Semaphore) -> None:
        """Take a handshake slot; one that had to be waited for is followed by a short
        random pause, so the handshakes queued behind a limit do not hit sshd in lockstep."""
        contended = limit.locked()
        await stack.enter_async_context(limit)
        if contended and self._config.handshake_jitter_s > 0:
            await asyncio.sleep(random.uniform(0, self._config.handshake_jitter_s))  # noqa: S311

    def _fail_open(self, connection: Connection, error: EngineError) -> None:
        self.connect_failures += 1
        self._forget(connection)
        connection.ready.set_exception(error)
        connection.ready.exception()  # mark retrieved: every waiter may have been cancelled

    def release(self, lease: Lease) -> None:
        if lease.released:
            return
        lease.released = True
        connection = lease.connection
        connection.leases -= 1
        connection.last_used = time.monotonic()
        if connection.lost and connection.leases == 0:
            self._close(connection)

    def discard(self, lease: Lease) -> None:
        """Stop handing out this lease's connection (closed once its last lease returns)."""
        lease.connection.lost = True
        if lease.connection.leases == 0:
            self._close(lease.connection)

    def _close(self, connection: Connection) -> None:
        self._forget(connection)
        if connection.conn is not None:
            connection.conn.close()

    def _forget(self, connection: Connection) -> None:
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


def _ignore_result(task: asyncio.Task[None]) -> None:
    """The opening's outcome is read through `Connection.ready`; mark the task's retrieved."""
    if not task.cancelled():
        task.exception()

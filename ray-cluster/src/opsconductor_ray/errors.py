"""The engine's exceptions, and the one place transport exceptions are translated into them.

Exceptions mean "could not run at all" (connect, authenticate, host key, timeout,
credentials). A command that runs and exits non-zero is a result, never an exception.

    EngineError
    ├── ConnectError
    │   ├── ConnectTimeout
    │   └── ConnectionRefused
    ├── AuthenticationFailed
    ├── HostKeyRejected
    │   └── HostKeyUnknown
    ├── InsecureTransportRefused
    ├── CommandTimeout
    ├── CredentialUnavailable
    └── ExecutionNotFound
"""

from __future__ import annotations

import asyncio
import errno
import socket


class EngineError(Exception):
    """Base class; `str(error)` is a message fit for an operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConnectError(EngineError):
    """The SSH connection could not be established or was lost."""


class ConnectTimeout(ConnectError):
    """The TCP connect or the SSH handshake did not finish in time."""


class ConnectionRefused(ConnectError):
    """Nothing listens on the target's port."""


class AuthenticationFailed(EngineError):
    """The server rejected every credential offered."""


class HostKeyRejected(EngineError):
    """The server's host key did not match the configured known hosts."""


class HostKeyUnknown(HostKeyRejected):
    """No trusted host key is known for the target (the credential came without `knownHosts`
    and the pool has no known_hosts file): the pool refuses to connect rather than accept any
    key (fail closed, review H3)."""


class InsecureTransportRefused(EngineError):
    """A WinRM endpoint asks for an insecure transport (Basic over plain HTTP, or HTTPS without
    certificate validation) that its communication method did not explicitly allow (review L5)."""


class CommandTimeout(EngineError):
    """A command ran longer than its step's timeout."""


class CredentialUnavailable(EngineError):
    """The credential resolver did not hand out a usable credential."""


class ExecutionNotFound(EngineError):
    """No coordinator exists for this execution id (never started, or released)."""


def _format_timeout(seconds: float) -> str:
    return f"{seconds:g}s"


def map_exception(
    exc: BaseException,
    *,
    host: str,
    port: int,
    username: str | None = None,
    timeout_s: float | None = None,
) -> EngineError:
    """Translate an asyncssh / OS / asyncio exception raised while talking to `host:port`.

    Returns the engine exception (to raise `from exc`); the message names the endpoint and
    never contains credentials.
    """
    import asyncssh  # here, not at the top: services import this module and never need SSH

    where = f"{host}:{port}"
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        after = f" after {_format_timeout(timeout_s)}" if timeout_s is not None else ""
        return ConnectTimeout(f"connect timed out{after} ({where})")
    if isinstance(exc, asyncssh.PermissionDenied):
        return AuthenticationFailed(f"authentication rejected for user '{username}' on {where}")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return HostKeyRejected(f"host key of {where} was rejected: {exc.reason}")
    if isinstance(exc, asyncssh.ConnectionLost):
        return ConnectError(f"connection to {where} was lost: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return ConnectError(f"{where} closed the SSH connection: {exc.reason}")
    if isinstance(exc, asyncssh.ChannelOpenError):
        return ConnectError(f"{where} refused to open a session channel: {exc.reason}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"connection refused by {where}")
    if isinstance(exc, ConnectionResetError):
        return ConnectError(f"connection reset by {where} (sshd MaxStartups reached?)")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"cannot resolve host '{host}': {exc.strerror}")
    if isinstance(exc, OSError):
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return ConnectError(f"{where} is unreachable: {exc.strerror}")
        if exc.errno == errno.ETIMEDOUT:
            return ConnectTimeout(f"connect timed out ({where})")
        reason = exc.strerror or str(exc) or type(exc).__name__
        return ConnectError(f"cannot connect to {where}: {reason}")
    if isinstance(exc, asyncssh.Error):
        return ConnectError(f"SSH error with {where}: {exc.reason}")
    return EngineError(f"unexpected error with {where}: {type(exc).__name__}: {exc}")

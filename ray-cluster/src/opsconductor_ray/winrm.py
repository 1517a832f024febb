"""`WinRMRunner`: steps on Windows targets over WS-Management, with pywinrm.

pywinrm is blocking (requests underneath), so every WS-Man exchange runs in a thread pool
sized and owned by the runner, never on the pool actor's event loop. One `Protocol`
(an HTTP session, for NTLM an authenticated connection with its sealing keys) is used by one
thread at a time: idle ones are kept per (endpoint, user, credential, transport) and reused
across steps and runs, like the SSH pool's warm connections, and closed after
`idle_timeout_s`.

Each step opens its own WinRS shell (the step's working directory and environment are
shell options in WinRS), runs one command, reads output with one Receive at a time
(`Protocol.get_command_output_raw`) so chunks stream out as they arrive, and deletes the
shell. A step that runs too long or is cancelled gets a WinRS `terminate` Signal, sent at
once on a separate connection so it does not wait for the blocked Receive.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import html
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, cast

import requests.exceptions
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)
from winrm.protocol import Protocol

from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import (
    AuthenticationFailed,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialUnavailable,
    EngineError,
    HostKeyRejected,
    InsecureTransportRefused,
)
from opsconductor_ray.protocol import (
    MAX_UPLOAD_BYTES,
    ConnectionTestResult,
    StepSpec,
    TargetSpec,
    truncation_marker,
)

TRANSPORTS = ("basic", "ntlm", "credssp", "kerberos")
DEFAULT_TRANSPORT = "ntlm"
"""What a Windows listener accepts out of the box (Basic needs AllowUnencrypted or HTTPS)."""
UTF8_CODEPAGE = 65001
MAX_COMMAND_LINE = 8000
"""cmd.exe refuses command lines over 8191 characters; an encoded PowerShell script must fit."""
STDIN_CHUNK = 64 * 1024
"""Bytes of stdin per WS-Man Send: base64 again in the envelope, well under 150 KiB."""
MAX_POWERSHELL_STDERR = 2 * 1024 * 1024
"""Characters of a PowerShell step's (CLIXML) stderr kept for unwrapping; the rest is dropped
with a marker (the pool cuts the step's output at `max_output_bytes` anyway)."""
SIGNAL_TERMINATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate"
SHELL_RESOURCE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"

OnOutput = Callable[[str, str], None]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Endpoint:
    """Everything a `Protocol` is built from, secrets excepted (they come with the credential)."""

    scheme: str
    host: str
    port: int
    username: str
    fingerprint: str
    transport: str
    cert_validation: str
    allow_insecure: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/wsman"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(eq=False)
class _Idle:
    protocol: Protocol
    since: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _HostSlots:
    slots: asyncio.Semaphore
    users: int = 0


@dataclass(frozen=True)
class _Prepared:
    """A step as WinRS sees it: a command line, what to feed its stdin, and whether it is
    PowerShell (whose stderr is CLIXML)."""

    line: str
    stdin: bytes | None = None
    powershell: bool = False


@dataclass(eq=False)
class _Run:
    """What the worker thread and the event loop share about one running command."""

    stop: threading.Event = field(default_factory=threading.Event)
    shell_id: str | None = None
    command_id: str | None = None
    signalled: bool = False


class _Decoder:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, chunk: bytes, final: bool = False) -> str:
        return self._decoder.decode(chunk, final)


def endpoint_of(target: TargetSpec, credential: Credential) -> _Endpoint:
    """The WinRM endpoint for a target: transport and TLS options come with the credential
    (`transport`, `scheme`, `serverCertValidation`, `allowInsecure`); port 5986 means HTTPS by
    convention.

    Basic over plain HTTP (the password in clear text) and HTTPS without certificate validation
    are refused unless the method explicitly allows them (`allowInsecure`, review L5)."""
    if not credential.password:
        raise CredentialUnavailable(
            f"WinRM needs a password; the credential of user '{credential.username}' has none"
        )
    options = credential.options
    transport = options.get("transport", DEFAULT_TRANSPORT).lower()
    if transport == "plaintext":
        transport = "basic"
    if transport not in TRANSPORTS:
        raise CredentialUnavailable(
            f"WinRM transport '{transport}' is not supported (use one of {', '.join(TRANSPORTS)})"
        )
    scheme = options.get("scheme", "https" if target.port == 5986 else "http").lower()
    if scheme not in ("http", "https"):
        raise CredentialUnavailable(f"WinRM scheme '{scheme}' is not http or https")
    validation = options.get("serverCertValidation", "validate").lower()
    if validation not in ("validate", "ignore"):
        raise CredentialUnavailable(f"serverCertValidation '{validation}' is not validate or ignore")
    allow_insecure = options.get("allowInsecure", "").lower() == "true"
    if not allow_insecure:
        if transport == "basic" and scheme == "http":
            raise InsecureTransportRefused(
                f"WinRM basic authentication over plain http would send the password of "
                f"'{credential.username}' in clear text to {target.host}:{target.port}; use https or "
                "ntlm/kerberos, or allow insecure transport explicitly on the communication method"
            )
        if validation == "ignore":
            raise InsecureTransportRefused(
                f"WinRM over https without certificate validation (serverCertValidation: ignore) "
                f"to {target.host}:{target.port} is refused unless the communication method "
                "explicitly allows insecure transport"
            )
    return _Endpoint(
        scheme,
        target.host,
        target.port,
        credential.username,
        credential.fingerprint,
        transport,
        validation,
        allow_insecure,
    )


_PS_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
"""Every character PowerShell's tokenizer accepts as a single quote (ASCII U+0027 and the
typographic U+2018 U+2019 U+201A U+201B): each one ends a '...' literal unless doubled."""


def ps_quote(value: str) -> str:
    """`value` as a single-quoted PowerShell literal: no expansion, no way out (H7).

    PowerShell's own rule (CodeGeneration.EscapeSingleQuotedStringContent): every single-quote
    character, ASCII or typographic, is doubled; a doubled one is that character, literally."""
    return "'" + "".join(c + c if c in _PS_SINGLE_QUOTES else c for c in value) + "'"


def powershell_command_line(body: str, arguments: tuple[str, ...] = ()) -> str:
    """`powershell -EncodedCommand` for a script body, arguments bound to `$args` through a
    script block (each one a single-quoted PowerShell literal: no expansion, no injection)."""
    script = body
    if arguments:
        quoted = " ".join(ps_quote(argument) for argument in arguments)
        script = f"& {{\n{body}\n}} {quoted}"
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return f"powershell -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {encoded}"


def upload_script(destination: str) -> str:
    """PowerShell that writes the base64 text it reads on stdin to `destination`.

    The content goes through WinRS stdin (Send), not the command line, so it is not bound
    by the 8191-character limit. Windows has no POSIX mode: `TransferSpec.mode` is ignored."""
    return (
        "$ErrorActionPreference = 'Stop'\n"
        "$data = [Console]::In.ReadToEnd()\n"
        f"[IO.File]::WriteAllBytes({ps_quote(destination)}, [Convert]::FromBase64String($data))\n"
    )


_CLIXML_ERROR_OPEN = '<S S="Error">'
_CLIXML_CLOSE = "</S>"


def clean_clixml(text: str) -> str:
    """PowerShell writes errors to stderr as CLIXML when driven remotely; keep the messages.

    Scanned with `str.find`, not an XML parser (the text comes from the remote host) nor a lazy
    regex (quadratic on many unclosed records, M12): one pass, linear in the text."""
    if not text.startswith("#< CLIXML"):
        return text
    messages: list[str] = []
    position = 0
    while True:
        start = text.find(_CLIXML_ERROR_OPEN, position)
        if start < 0:
            break
        start += len(_CLIXML_ERROR_OPEN)
        end = text.find(_CLIXML_CLOSE, start)
        if end < 0:
            break  # no record closes after this one: none of the later ones can either
        messages.append(html.unescape(text[start:end]).replace("_x000D__x000A_", "\n"))
        position = end + len(_CLIXML_CLOSE)
    return "".join(messages) if messages else text


def map_winrm_exception(exc: BaseException, endpoint: _Endpoint, read_timeout_s: float) -> EngineError:
    """A pywinrm / requests exception → the engine's, with a message fit for an operator."""
    where = endpoint.where
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, InvalidCredentialsError):
        return AuthenticationFailed(
            f"authentication rejected for user '{endpoint.username}' on {where} (WinRM {endpoint.transport})"
        )
    if isinstance(exc, requests.exceptions.SSLError):
        return HostKeyRejected(f"TLS certificate of {where} was rejected: {_root_reason(exc)}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectTimeout(f"connect timed out after {read_timeout_s:g}s ({where})")
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return ConnectError(f"{where} did not answer within {read_timeout_s:g}s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        if _caused_by(exc, ConnectionRefusedError):
            return ConnectionRefused(f"connection refused by {where}")
        return ConnectError(f"cannot connect to {where}: {_root_reason(exc)}")
    if isinstance(exc, WSManFaultError):
        return ConnectError(f"{where} answered with a WS-Management fault: {exc.reason}")
    if isinstance(exc, WinRMTransportError):
        return ConnectError(f"{where} answered HTTP {exc.code}")
    if isinstance(exc, WinRMError):
        return EngineError(f"WinRM error with {where}: {exc}")
    if isinstance(exc, requests.exceptions.RequestException):
        return ConnectError(f"HTTP error with {where}: {type(exc).__name__}")
    return EngineError(f"unexpected error with {where}: {type(exc).__name__}: {exc}")


async def _acquire(semaphore: asyncio.Semaphore, cancel: asyncio.Event, timeout_s: float) -> bool:
    """Take a slot unless `cancel` is set or `timeout_s` passes first."""
    taking = asyncio.ensure_future(semaphore.acquire())
    stopper = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({taking, stopper}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if taking.done() and not taking.cancelled():
        if cancel.is_set():
            semaphore.release()
            return False
        return True
    taking.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        if await taking:  # acquired while we cancelled it
            semaphore.release()
    return False


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return True
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(arg for arg in current.args if isinstance(arg, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return False


def _root_reason(exc: BaseException) -> str:
    text = str(exc)
    match = re.search(r"\[SSL: [A-Z_]+\] ([^(]+?)(?: \(_ssl|$|\))", text)
    if match:
        return match.group(1).strip()
    match = re.search(r"Caused by \w+\((.*)\)\)?$", text)
    return (match.group(1) if match else text)[:300]


class WinRMRunner:
    """Runs steps on WinRM targets for one pool actor (see the module docstring).

    `max_workers` bounds the threads (so the concurrent WS-Man exchanges) of the runner;
    `max_commands_per_host` the shells open at once on one host and user (Windows'
    default MaxShellsPerUser is 30, shared with everyone else using the host).
    `operation_timeout_s` is how long the server may hold a Receive without output.
    """

    def __init__(
        self,
        *,
        max_workers: int = 32,
        max_commands_per_host: int = 8,
        operation_timeout_s: int = 5,
        read_timeout_s: int | None = None,
        idle_timeout_s: float = 300.0,
        reap_interval_s: float = 15.0,
        max_powershell_stderr: int = MAX_POWERSHELL_STDERR,
    ) -> None:
        self._max_workers = max_workers
        self._max_per_host = max_commands_per_host
        self._operation_timeout_s = operation_timeout_s
        self._read_timeout_s = read_timeout_s or operation_timeout_s + 10
        self._idle_timeout_s = idle_timeout_s
        self._reap_interval_s = reap_interval_s
        self._max_powershell_stderr = max_powershell_stderr
        self._executor: ThreadPoolExecutor | None = None
        self._idle: dict[_Endpoint, list[_Idle]] = {}
        self._host_slots: dict[tuple[str, int, str], _HostSlots] = {}
        """Per host and user while any step uses it; dropped when the last one is done (M12)."""
        self._reaper: asyncio.Task[None] | None = None
        self.created = 0
        self.reused = 0

    # ------------------------------------------------------------------ public

    async def run_step(
        self,
        target: TargetSpec,
        credential: Credential,
        step: StepSpec,
        *,
        on_output: OnOutput,
        cancel: asyncio.Event,
        on_started: Callable[[bool], None] | None = None,
    ) -> tuple[int | None, str | None]:
        """Run one step; returns (exit code, None) when the command ended by itself, or
        (None, reason) when it did not run or was stopped ("timed out after …", "cancelled …").
        Connect, TLS and authentication failures raise `EngineError` subclasses.

        `on_started(reused)` (optional) is called once the server accepted us and created the
        shell, before any output: the WinRM counterpart of "the SSH channel is open", for
        callers that announce TARGET_STARTED only for targets that really connected."""
        endpoint = endpoint_of(target, credential)
        command, unsupported = self._command_for(step)
        if command is None:
            return None, unsupported
        if cancel.is_set():
            return None, "cancelled before the step started"
        self._ensure_reaper()
        host_key = (target.host, target.port, credential.username)
        host = self._host_slots.get(host_key)
        if host is None:
            host = self._host_slots[host_key] = _HostSlots(asyncio.Semaphore(self._max_per_host))
        host.users += 1
        try:
            return await self._run_in_slot(
                host.slots, endpoint, credential, step, command, on_output, cancel, on_started
            )
        finally:
            host.users -= 1
            if host.users == 0 and self._host_slots.get(host_key) is host:
                del self._host_slots[host_key]

    async def _run_in_slot(
        self,
        slots: asyncio.Semaphore,
        endpoint: _Endpoint,
        credential: Credential,
        step: StepSpec,
        command: _Prepared,
        on_output: OnOutput,
        cancel: asyncio.Event,
        on_started: Callable[[bool], None] | None,
    ) -> tuple[int | None, str | None]:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        if not await _acquire(slots, cancel, step.timeout_s):
            return None, (
                "cancelled before the step started"
                if cancel.is_set()
                else f"timed out after {step.timeout_s:g}s waiting for a WinRM shell slot on {endpoint.where}"
            )
        try:
            idle_before = self.reused
            protocol = self._checkout(endpoint, credential)
            reused = self.reused > idle_before
            run = _Run()

            def emit(stream: str, text: str) -> None:
                if text:
                    loop.call_soon_threadsafe(on_output, stream, text)

            def shell_open() -> None:
                if on_started is not None:
                    loop.call_soon_threadsafe(on_started, reused)

            job = self._pool().submit(self._execute, protocol, run, step, command, emit, shell_open)
            future = asyncio.wrap_future(job)
            stopper = asyncio.ensure_future(cancel.wait())
            remaining = max(0.0, step.timeout_s - (time.monotonic() - started))
            try:
                done, _ = await asyncio.wait(
                    {future, stopper}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                # Our caller is going away (actor shutdown, run torn down): still stop the
                # remote command rather than leave it running unobserved.
                run.stop.set()
                if not job.cancel():
                    self._pool().submit(self._signal_out_of_band, endpoint, credential, run)
                raise
            finally:
                stopper.cancel()
            if future in done:
                return self._finish(endpoint, protocol, future)

            reason = (
                "cancelled; the command was sent the terminate signal"
                if cancel.is_set()
                else f"timed out after {step.timeout_s:g}s; the command was sent the terminate signal"
            )
            run.stop.set()
            if job.cancel():  # still waiting for a worker thread: nothing ran
                self._checkin(endpoint, protocol)
                return None, reason.split(";")[0]
            signaller = asyncio.wrap_future(
                self._pool().submit(self._signal_out_of_band, endpoint, credential, run)
            )
            bound = self._operation_timeout_s + self._read_timeout_s + 5
            try:
                await asyncio.wait_for(asyncio.shield(future), bound)
            except TimeoutError:
                # The worker is stuck in a request (bounded by the read timeout): abandon
                # its session, never hang the step.
                signaller.cancel()
                return None, reason + f" (no answer from {endpoint.where} afterwards)"
            except Exception:  # the worker's error no longer matters (the step was stopped): drop the session
                with contextlib.suppress(Exception):
                    protocol.transport.close_session()
            else:
                self._checkin(endpoint, protocol)
            return None, reason
        finally:
            slots.release()

    async def test_connection(
        self, target: TargetSpec, credential: Credential, timeout_s: float = 10.0
    ) -> ConnectionTestResult:
        """Open a shell, run `hostname`, close it; report the latency."""
        started = time.monotonic()
        output: list[str] = []
        step = StepSpec(name="test connection", command="hostname", timeout_s=timeout_s)
        try:
            endpoint = endpoint_of(target, credential)
            reused = bool(self._idle.get(endpoint))
            exit_code, reason = await self.run_step(
                target,
                credential,
                step,
                on_output=lambda stream, text: output.append(text) if stream == "STDOUT" else None,
                cancel=asyncio.Event(),
            )
        except EngineError as exc:
            return ConnectionTestResult(ok=False, latency_ms=None, message=exc.message)
        latency_ms = (time.monotonic() - started) * 1000
        if reason is not None:
            return ConnectionTestResult(
                ok=False, latency_ms=None, message=f"connected, but `hostname` {reason}"
            )
        if exit_code != 0:
            return ConnectionTestResult(
                ok=False, latency_ms=latency_ms, message=f"connected, but `hostname` exited with {exit_code}"
            )
        hostname = "".join(output).strip()
        how = "reusing a warm session" if reused else "new session"
        return ConnectionTestResult(
            ok=True,
            latency_ms=latency_ms,
            message=(
                f"connected to {target.host}:{target.port} as '{credential.username}' over WinRM "
                f"({endpoint.transport}, {endpoint.scheme}; {how}); hostname {hostname}"
            ),
        )

    def stats(self) -> dict[str, int]:
        return {
            "winrm_sessions_created": self.created,
            "winrm_sessions_reused": self.reused,
            "winrm_idle_sessions": sum(len(idle) for idle in self._idle.values()),
            "winrm_hosts_in_use": len(self._host_slots),
        }

    def reap_idle(self) -> int:
        """Close the sessions idle for longer than `idle_timeout_s` (they hold the password and,
        for NTLM, a live authenticated connection); returns how many. The background reaper
        calls this every `reap_interval_s` (M12)."""
        now = time.monotonic()
        closed = 0
        for endpoint, idle in list(self._idle.items()):
            expired = [entry for entry in idle if now - entry.since >= self._idle_timeout_s]
            if not expired:
                continue
            kept = [entry for entry in idle if now - entry.since < self._idle_timeout_s]
            if kept:
                self._idle[endpoint] = kept
            else:
                del self._idle[endpoint]
            for entry in expired:
                closed += 1
                with contextlib.suppress(Exception):
                    entry.protocol.transport.close_session()
        return closed

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_loop())

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval_s)
            try:
                self.reap_idle()
            except Exception:  # never let the reaper die: log and keep reaping
                logger.exception("reaping idle WinRM sessions failed")

    def close(self) -> None:
        """Close idle sessions and stop the threads (running steps finish first)."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for idle in self._idle.values():
            for entry in idle:
                with contextlib.suppress(Exception):
                    entry.protocol.transport.close_session()
        self._idle.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------------ commands

    @staticmethod
    def _command_for(step: StepSpec) -> tuple[_Prepared | None, str | None]:
        """(what to run, None), or (None, why the step cannot run on Windows)."""
        if step.type == "command":
            return _Prepared(step.command), None
        if step.type == "script":
            script = step.script
            if script is None:
                return None, "script step without a script"
            if script.interpreter != "powershell":
                return None, (
                    f"interpreter '{script.interpreter}' is not available on WinRM targets (use powershell)"
                )
            line = powershell_command_line(script.body, script.arguments)
            if len(line) > MAX_COMMAND_LINE:
                return None, (
                    f"the PowerShell script is too long for one WinRS command line "
                    f"({len(line)} > {MAX_COMMAND_LINE} characters once encoded)"
                )
            return _Prepared(line, powershell=True), None
        if step.type == "file_transfer":
            transfer = step.transfer
            if transfer is None:
                return None, "file_transfer step without a transfer"
            if transfer.direction == "download":
                source = transfer.source
                # cmd.exe: a double quote would end the quoted path, % expands variables, and a
                # control character could end the command line
                if not source or any(c in source for c in '"%') or any(ord(c) < 32 for c in source):
                    return (
                        None,
                        "download needs a source path (without double quotes, % or control characters)",
                    )
                return _Prepared(f'type "{transfer.source}"'), None
            if transfer.direction == "upload":
                data = (transfer.content or "").encode("utf-8")
                if len(data) > MAX_UPLOAD_BYTES:
                    return None, f"upload content exceeds {MAX_UPLOAD_BYTES} bytes"
                return _Prepared(
                    powershell_command_line(upload_script(transfer.destination)),
                    stdin=base64.b64encode(data),
                    powershell=True,
                ), None
            return None, f"transfer direction '{transfer.direction}' is not upload or download"
        return None, f"step type '{step.type}' is not supported"

    # ------------------------------------------------------------------ threads

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="winrm")
        return self._executor

    def _new_protocol(self, endpoint: _Endpoint, credential: Credential) -> Protocol:
        transport = cast(Literal["basic", "ntlm", "kerberos", "credssp"], endpoint.transport)
        validation = cast(Literal["validate", "ignore"], endpoint.cert_validation)
        return Protocol(
            endpoint.url,
            transport=transport,
            username=credential.username,
            password=credential.password if credential.password is not None else "",
            server_cert_validation=validation,
            operation_timeout_sec=self._operation_timeout_s,
            read_timeout_sec=self._read_timeout_s,
            proxy=None,  # loopback and managed hosts: never an environment proxy
            ca_trust_path=None,  # type: ignore[arg-type]  # no CA bundle from the environment either
        )

    def _checkout(self, endpoint: _Endpoint, credential: Credential) -> Protocol:
        idle = self._idle.get(endpoint, [])
        now = time.monotonic()
        try:
            while idle:
                entry = idle.pop()
                if now - entry.since < self._idle_timeout_s:
                    self.reused += 1
                    return entry.protocol
                with contextlib.suppress(Exception):
                    entry.protocol.transport.close_session()
        finally:
            if not idle:
                self._idle.pop(endpoint, None)
        self.created += 1
        return self._new_protocol(endpoint, credential)

    def _checkin(self, endpoint: _Endpoint, protocol: Protocol) -> None:
        self._idle.setdefault(endpoint, []).append(_Idle(protocol))

    def _finish(
        self, endpoint: _Endpoint, protocol: Protocol, future: asyncio.Future[int]
    ) -> tuple[int | None, str | None]:
        try:
            exit_code = future.result()
        except Exception as exc:
            with contextlib.suppress(Exception):
                protocol.transport.close_session()
            raise map_winrm_exception(exc, endpoint, self._read_timeout_s) from exc
        self._checkin(endpoint, protocol)
        return exit_code, None

    def _execute(
        self,
        protocol: Protocol,
        run: _Run,
        step: StepSpec,
        command: _Prepared,
        emit: OnOutput,
        shell_open: Callable[[], None],
    ) -> int:
        """In a worker thread: shell, command, Receive until Done, shell deleted."""
        shell_id = protocol.open_shell(
            working_directory=step.working_directory,
            env_vars=dict(step.env) or None,
            codepage=UTF8_CODEPAGE,
            noprofile=True,
        )
        run.shell_id = shell_id
        shell_open()
        try:
            command_id = protocol.run_command(shell_id, command.line)
            run.command_id = command_id
            if command.stdin is not None:
                data = command.stdin
                for offset in range(0, max(len(data), 1), STDIN_CHUNK):
                    if run.stop.is_set():
                        break
                    last = offset + STDIN_CHUNK >= len(data)
                    protocol.send_command_input(
                        shell_id, command_id, data[offset : offset + STDIN_CHUNK], end=last
                    )
            decode_out, decode_err = _Decoder(), _Decoder()
            stderr_parts: list[str] = []
            stderr_kept = 0
            stderr_cut = False
            while True:
                if run.stop.is_set():
                    if not run.signalled:
                        run.signalled = True
                        with contextlib.suppress(Exception):
                            protocol.cleanup_command(shell_id, command_id)
                    return -1
                try:
                    stdout, stderr, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)
                except WinRMOperationTimeoutError:
                    continue  # no output within the operation timeout: ask again
                emit("STDOUT", decode_out(stdout, done))
                if command.powershell:  # CLIXML error records only make sense whole
                    text = decode_err(stderr, done)
                    room = self._max_powershell_stderr - stderr_kept
                    if len(text) > room:  # a flooding host pins neither memory nor this thread
                        text, stderr_cut = text[: max(0, room)], stderr_cut or bool(text)
                    if text:
                        stderr_parts.append(text)
                        stderr_kept += len(text)
                else:
                    emit("STDERR", decode_err(stderr, done))
                if done:
                    if stderr_parts:
                        emit("STDERR", clean_clixml("".join(stderr_parts)))
                    if stderr_cut:
                        emit("STDERR", truncation_marker(self._max_powershell_stderr))
                    with contextlib.suppress(Exception):
                        protocol.cleanup_command(shell_id, command_id)
                    return exit_code
        finally:
            with contextlib.suppress(Exception):
                protocol.close_shell(shell_id, close_session=False)

    def _signal_out_of_band(self, endpoint: _Endpoint, credential: Credential, run: _Run) -> None:
        """Terminate the command through a fresh session: the worker's own session is
        blocked in a Receive until the server answers it."""
        if run.shell_id is None or run.command_id is None or run.signalled:
            return
        protocol = self._new_protocol(endpoint, credential)
        try:
            run.signalled = True
            protocol.cleanup_command(run.shell_id, run.command_id)
        except Exception:
            run.signalled = False  # the worker sends it itself after its Receive returns
        finally:
            with contextlib.suppress(Exception):
                protocol.transport.close_session()


__all__ = [
    "WinRMRunner",
    "clean_clixml",
    "endpoint_of",
    "map_winrm_exception",
    "powershell_command_line",
    "upload_script",
]

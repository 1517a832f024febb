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
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, cast

from winrm.exceptions import WinRMOperationTimeoutError
from winrm.protocol import Protocol

from opsconductor_ray._output import Decoder
from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import EngineError
from opsconductor_ray.protocol import ConnectionTestResult, TargetSpec, truncation_marker
from opsconductor_ray.winrm.commands import (
    MAX_POWERSHELL_STDERR,
    STDIN_CHUNK,
    UTF8_CODEPAGE,
    Prepared,
    clean_clixml,
    command_for,
)
from opsconductor_ray.winrm.endpoint import Endpoint, endpoint_of, map_winrm_exception
from opsconductor_shared.runplan import Step

OnOutput = Callable[[str, str], None]
logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Idle:
    protocol: Protocol
    since: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class _HostSlots:
    slots: asyncio.Semaphore
    users: int = 0


@dataclass(eq=False)
class _Run:
    """What the worker thread and the event loop share about one running command."""

    stop: threading.Event = field(default_factory=threading.Event)
    shell_id: str | None = None
    command_id: str | None = None
    signalled: bool = False


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
        self._idle: dict[Endpoint, list[_Idle]] = {}
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
        step: Step,
        *,
        on_output: OnOutput,
        cancel: asyncio.Event,
        on_started: Callable[[bool], None] | None = None,
        on_truncated: Callable[[], None] | None = None,
    ) -> tuple[int | None, str | None]:
        """Run one step; returns (exit code, None) when the command ended by itself, or
        (None, reason) when it did not run or was stopped ("timed out after …", "cancelled …").
        Connect, TLS and authentication failures raise `EngineError` subclasses.

        `on_started(reused)` (optional) is called once the server accepted us and created the
        shell, before any output: the WinRM counterpart of "the SSH channel is open", for
        callers that announce TARGET_STARTED only for targets that really connected.
        `on_truncated()` (optional) is called, before the step returns, when the runner itself
        cut output (a PowerShell step's error records beyond `max_powershell_stderr`)."""
        endpoint = endpoint_of(target, credential)
        command, unsupported = command_for(step)
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
                host.slots, endpoint, credential, step, command, on_output, cancel, on_started, on_truncated
            )
        finally:
            host.users -= 1
            if host.users == 0 and self._host_slots.get(host_key) is host:
                del self._host_slots[host_key]

    async def _run_in_slot(
        self,
        slots: asyncio.Semaphore,
        endpoint: Endpoint,
        credential: Credential,
        step: Step,
        command: Prepared,
        on_output: OnOutput,
        cancel: asyncio.Event,
        on_started: Callable[[bool], None] | None,
        on_truncated: Callable[[], None] | None,
    ) -> tuple[int | None, str | None]:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        if not await _acquire(slots, cancel, step.timeout_seconds):
            return None, (
                "cancelled before the step started"
                if cancel.is_set()
                else f"timed out after {step.timeout_seconds:g}s waiting for a WinRM shell slot on {endpoint.where}"
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

            def cut() -> None:
                if on_truncated is not None:
                    loop.call_soon_threadsafe(on_truncated)

            job = self._pool().submit(self._execute, protocol, run, step, command, emit, shell_open, cut)
            future = asyncio.wrap_future(job)
            stopper = asyncio.ensure_future(cancel.wait())
            remaining = max(0.0, step.timeout_seconds - (time.monotonic() - started))
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
                else f"timed out after {step.timeout_seconds:g}s; the command was sent the terminate signal"
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
        step = Step(name="test connection", command="hostname", timeout_seconds=max(1, math.ceil(timeout_s)))
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

    # ------------------------------------------------------------------ threads

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="winrm")
        return self._executor

    def _new_protocol(self, endpoint: Endpoint, credential: Credential) -> Protocol:
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

    def _checkout(self, endpoint: Endpoint, credential: Credential) -> Protocol:
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

    def _checkin(self, endpoint: Endpoint, protocol: Protocol) -> None:
        self._idle.setdefault(endpoint, []).append(_Idle(protocol))

    def _finish(
        self, endpoint: Endpoint, protocol: Protocol, future: asyncio.Future[int]
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
        step: Step,
        command: Prepared,
        emit: OnOutput,
        shell_open: Callable[[], None],
        cut: Callable[[], None],
    ) -> int:
        """In a worker thread: shell, command, Receive until Done, shell deleted."""
        shell_id = protocol.open_shell(
            working_directory=step.working_directory,
            env_vars={var.name: var.value for var in step.env} or None,
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
            decode_out, decode_err = Decoder(), Decoder()
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
                        cut()
                    with contextlib.suppress(Exception):
                        protocol.cleanup_command(shell_id, command_id)
                    return exit_code
        finally:
            with contextlib.suppress(Exception):
                protocol.close_shell(shell_id, close_session=False)

    def _signal_out_of_band(self, endpoint: Endpoint, credential: Credential, run: _Run) -> None:
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

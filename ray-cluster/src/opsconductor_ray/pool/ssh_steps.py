"""One step on an SSH target: a command or script over a channel, or a file over SFTP."""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import cast

import asyncssh

from opsconductor_ray._aio import Cancelled, race
from opsconductor_ray._output import Decoder, OutputCap
from opsconductor_ray.credentials import Credential
from opsconductor_ray.errors import EngineError, map_exception
from opsconductor_ray.pool.batch import Batch
from opsconductor_ray.pool.events import EventStream
from opsconductor_ray.pool.ssh_connections import Lease, SSHConnections
from opsconductor_ray.pool.steps import StepOutcome
from opsconductor_ray.protocol import EventType, Status, TargetSpec, truncation_marker
from opsconductor_shared.runplan import MAX_UPLOAD_BYTES, Step

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERPRETERS = {"bash": "bash -s --", "sh": "sh -s --", "python": "python3 -"}


async def run_ssh_step(
    connections: SSHConnections,
    batch: Batch,
    target: TargetSpec,
    credential: Credential,
    lease: Lease,
    index: int,
    step: Step,
    stream: EventStream,
    announce: Callable[[bool], None],
) -> tuple[StepOutcome, Lease]:
    """Run one step on `lease`'s connection. Returns the outcome and the lease in use after
    it (a new one when a dropped warm connection had to be replaced)."""
    started = time.monotonic()
    cap = OutputCap(batch.max_output_bytes)

    def outcome(
        status: Status,
        *,
        exit_code: int | None = None,
        message: str | None = None,
        connection_broken: bool = False,
    ) -> tuple[StepOutcome, Lease]:
        duration_ms = (time.monotonic() - started) * 1000
        return StepOutcome(status, duration_ms, exit_code, message, connection_broken, cap.truncated), lease

    def close_orphan(process: asyncssh.SSHClientProcess[bytes]) -> None:
        process.close()

    if step.type == "file_transfer":
        announce(lease.reused)
        return await _transfer(batch, target, lease, index, step, stream, cap), lease
    try:
        command, stdin_body, upload = build_command(step)
    except ValueError as exc:
        announce(lease.reused)
        return outcome(Status.FAILED, message=str(exc))

    async def start_process(on: Lease) -> asyncssh.SSHClientProcess[bytes]:
        if upload is not None:
            await race(
                _sftp_write(on.conn, upload[0], upload[1], None),
                batch.cancelled,
                timeout_s=step.timeout_seconds,
            )
        return await race(
            on.conn.create_process(command, encoding=None),
            batch.cancelled,
            timeout_s=step.timeout_seconds,
            on_orphan=close_orphan,
        )

    try:
        try:
            process = await start_process(lease)
        except asyncssh.ChannelOpenError:
            if not lease.reused or lease.released:
                raise
            # A warm connection the server had dropped: the command cannot have started,
            # so trying once more on a fresh connection is safe.
            connections.discard(lease)
            connections.release(lease)
            lease = await race(
                connections.acquire(target, credential, batch.connect_timeout_s),
                batch.cancelled,
                on_orphan=connections.release,
            )
            process = await start_process(lease)
    except Cancelled:
        announce(lease.reused)
        return outcome(Status.CANCELLED, message="cancelled")
    except TimeoutError:
        announce(lease.reused)
        return outcome(Status.TIMED_OUT, message=f"timed out after {step.timeout_seconds:g}s")
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

    async def pump(reader: asyncssh.SSHReader[bytes], type: EventType) -> None:
        decode = Decoder()
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

    remaining = max(0.0, step.timeout_seconds - (time.monotonic() - started))
    try:
        await race(complete(), batch.cancelled, timeout_s=remaining)
    except Cancelled:
        await _kill(process)
        return outcome(Status.CANCELLED, message="cancelled; the command was sent SIGTERM")
    except TimeoutError:
        await _kill(process)
        return outcome(
            Status.TIMED_OUT,
            message=f"timed out after {step.timeout_seconds:g}s; the command was sent SIGTERM",
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
    batch: Batch,
    target: TargetSpec,
    lease: Lease,
    index: int,
    step: Step,
    stream: EventStream,
    cap: OutputCap,
) -> StepOutcome:
    """Upload `content` to, or download `source` from, the target over SFTP (a download's
    content goes through `cap`)."""
    started = time.monotonic()
    spec = step.transfer

    def outcome(
        status: Status,
        *,
        exit_code: int | None = None,
        message: str | None = None,
        connection_broken: bool = False,
    ) -> StepOutcome:
        duration_ms = (time.monotonic() - started) * 1000
        return StepOutcome(status, duration_ms, exit_code, message, connection_broken, cap.truncated)

    if spec is None:
        return outcome(Status.FAILED, message="file_transfer step without a transfer")
    conn = lease.conn
    if spec.direction == "upload":
        path = remote_path(step, spec.destination)
        data = (spec.content or "").encode()
        if len(data) > MAX_UPLOAD_BYTES:
            return outcome(Status.FAILED, message=f"upload content exceeds {MAX_UPLOAD_BYTES} bytes")
        try:
            mode = int(spec.mode, 8) if spec.mode else None
        except ValueError:
            return outcome(Status.FAILED, message=f"invalid file mode {spec.mode!r}")
        work: Awaitable[bytes | None] = _sftp_write(conn, path, data, mode)
    elif spec.direction == "download":
        path = remote_path(step, spec.source or "")
        if not spec.source:
            return outcome(Status.FAILED, message="download without a source path")
        work = _sftp_read(conn, path, batch.max_output_bytes + 1)
    else:
        return outcome(Status.FAILED, message=f"unknown transfer direction {spec.direction!r}")
    try:
        data_read = await race(work, batch.cancelled, timeout_s=step.timeout_seconds)
    except Cancelled:
        return outcome(Status.CANCELLED, message="cancelled")
    except TimeoutError:
        return outcome(Status.TIMED_OUT, message=f"timed out after {step.timeout_seconds:g}s")
    except asyncssh.SFTPError as exc:
        return outcome(Status.FAILED, message=f"sftp {spec.direction} of {path} failed: {exc.reason}")
    except (asyncssh.Error, OSError) as exc:
        error = map_exception(exc, host=target.host, port=target.port, username=None)
        return outcome(Status.FAILED, message=error.message, connection_broken=True)
    if data_read is not None:
        for piece in cap.take_text(data_read.decode("utf-8", "replace")):
            stream.output(EventType.STDOUT, target.target_id, index, step.name, piece)
    return outcome(Status.SUCCEEDED, exit_code=0)


async def _kill(process: asyncssh.SSHClientProcess[bytes]) -> None:
    """SIGTERM the remote command (sshd signals its whole process group), then close the
    channel. OpenSSH ignores the signal request for root logins; see README."""
    with contextlib.suppress(asyncssh.Error, OSError):
        process.send_signal("TERM")
    process.close()
    with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
        await asyncio.wait_for(process.wait_closed(), 2.0)


def build_command(step: Step) -> tuple[str, bytes | None, tuple[str, bytes] | None]:
    """The shell command line for a command or script step, what to feed on stdin, and a
    file to upload first (PowerShell scripts, which cannot take arguments from stdin)."""
    lines: list[str] = []
    if step.working_directory:
        lines.append(f"cd {shlex.quote(step.working_directory)} || exit 1")
    for var in step.env:
        if not _ENV_NAME.match(var.name):
            raise ValueError(f"invalid environment variable name {var.name!r}")
        lines.append(f"export {var.name}={shlex.quote(var.value)}")
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
            upload = (remote_path(step, name), script.body.encode())
        else:
            raise ValueError(f"unknown script interpreter {script.interpreter!r}")
    else:
        raise ValueError(f"unknown step type {step.type!r}")
    return "\n".join(lines), stdin, upload


def remote_path(step: Step, path: str) -> str:
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
        data = cast(bytes | str, await remote.read(limit))  # pyright: ignore[reportUnknownMemberType]
    return data if isinstance(data, bytes) else data.encode()

"""A WinRM target's steps: each goes through `WinRMRunner` (winrm/, pywinrm in threads)."""

from __future__ import annotations

import time
from collections.abc import Callable

from opsconductor_ray._aio import Cancelled, race
from opsconductor_ray._output import OutputCap
from opsconductor_ray.errors import EngineError
from opsconductor_ray.pool.batch import Batch
from opsconductor_ray.pool.events import EventStream
from opsconductor_ray.pool.steps import StepOutcome, run_steps
from opsconductor_ray.protocol import EventType, Status, TargetSpec
from opsconductor_ray.winrm import WinRMRunner
from opsconductor_shared.runplan import Step


async def run_winrm_target(
    runner: WinRMRunner,
    batch: Batch,
    target: TargetSpec,
    stream: EventStream,
    finish: Callable[[Status, str | None], Status],
) -> Status:
    """Run the batch's steps on one WinRM target; returns what `finish` returned."""
    try:
        credential = await race(batch.credential(target.target_id), batch.halted)
    except Cancelled:
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

    async def run_one(index: int, step: Step) -> StepOutcome:
        started = time.monotonic()
        cap = OutputCap(batch.max_output_bytes)
        runner_cut = False

        def on_output(stream_name: str, text: str) -> None:
            kind = EventType.STDERR if stream_name == "STDERR" else EventType.STDOUT
            for piece in cap.take_text(text):
                stream.output(kind, target.target_id, index, step.name, piece)

        def on_truncated() -> None:
            nonlocal runner_cut
            runner_cut = True

        def outcome(
            status: Status,
            *,
            exit_code: int | None = None,
            message: str | None = None,
            connection_broken: bool = False,
        ) -> StepOutcome:
            duration_ms = (time.monotonic() - started) * 1000
            truncated = cap.truncated or runner_cut
            return StepOutcome(status, duration_ms, exit_code, message, connection_broken, truncated)

        try:
            exit_code, reason = await runner.run_step(
                target,
                credential,
                step,
                on_output=on_output,
                cancel=batch.cancelled,
                on_started=announce,
                on_truncated=on_truncated,
            )
        except EngineError as exc:
            return outcome(Status.FAILED, message=exc.message, connection_broken=True)
        if batch.cancelled.is_set():
            return outcome(Status.CANCELLED, exit_code=exit_code, message=reason or "cancelled")
        if reason is not None:
            status = Status.TIMED_OUT if "timed out" in reason else Status.FAILED
            return outcome(status, exit_code=exit_code, message=reason)
        if exit_code in step.expected_exit_codes:
            return outcome(Status.SUCCEEDED, exit_code=exit_code)
        return outcome(Status.FAILED, exit_code=exit_code)

    target_status, failure = await run_steps(batch, target, stream, run_one)
    return finish(target_status, failure)

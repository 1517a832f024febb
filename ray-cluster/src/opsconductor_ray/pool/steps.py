"""A target's steps in order, whatever the transport (ssh_steps.py, winrm_steps.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opsconductor_ray.pool.batch import Batch
from opsconductor_ray.pool.events import EventStream
from opsconductor_ray.protocol import EventType, Status, TargetSpec
from opsconductor_shared.runplan import Step


@dataclass
class StepOutcome:
    status: Status
    duration_ms: float
    exit_code: int | None = None
    message: str | None = None
    connection_broken: bool = False
    truncated: bool = False
    """The step's output on this target was cut at the batch's `max_output_bytes`."""


async def run_steps(
    batch: Batch,
    target: TargetSpec,
    stream: EventStream,
    run_one: Callable[[int, Step], Awaitable[StepOutcome]],
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
                truncated=False,
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
            truncated=outcome.truncated,
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

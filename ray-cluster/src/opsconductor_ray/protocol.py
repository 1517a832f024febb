"""What services hand the engine and what it streams back.

Frozen dataclasses (and the run plan's frozen pydantic `Step` / `Policy`, imported from
`opsconductor_shared.runplan`, the one definition of a run plan): they cross process
boundaries through Ray's object store, so none of them may ever hold a secret. Credentials
travel as a `CredentialRef` and are resolved inside the connection pool at connect time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opsconductor_shared.runplan import DEFAULT_MAX_OUTPUT_BYTES, Policy, Step


class EventType(StrEnum):
    """The kinds of `EngineEvent`, in the order a run produces them."""

    EXECUTION_STARTED = "EXECUTION_STARTED"
    TARGET_STARTED = "TARGET_STARTED"
    STDOUT = "STDOUT"
    STDERR = "STDERR"
    STEP_FINISHED = "STEP_FINISHED"
    TARGET_FINISHED = "TARGET_FINISHED"
    EXECUTION_FINISHED = "EXECUTION_FINISHED"


class Status(StrEnum):
    """Outcome of a step, a target or an execution.

    Steps use all five; targets and executions only SUCCEEDED, FAILED and CANCELLED.
    """

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"
    TIMED_OUT = "TIMED_OUT"


@dataclass(frozen=True)
class TargetSpec:
    """Where to run: `target_id` is the targets service's id and keys the pool shard."""

    target_id: str
    name: str
    host: str
    port: int = 22
    method: str = "ssh"


@dataclass(frozen=True)
class CredentialRef:
    """How a pool obtains a target's secret at connect time (never the secret itself).

    The pool POSTs `{"grant": grant, "targetId": ...}` to `resolver_url`.
    """

    resolver_url: str
    grant: str


@dataclass(frozen=True)
class ExecutionPlan:
    """A snapshot of one run: every target runs every step, in order.

    `steps` and `policy` are the run plan's own types (`opsconductor_shared.runplan`, with
    their defaults there); the rest is what only the engine needs: where the targets are
    (from the connection grant), how to get their credentials, and the engine's limits.
    """

    execution_id: str
    steps: tuple[Step, ...]
    targets: tuple[TargetSpec, ...]
    credentials: CredentialRef
    policy: Policy = field(default_factory=Policy)
    connect_timeout_s: float = 10
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    """Per target and step: output beyond it is dropped, `truncation_marker` is emitted once
    and that step's STEP_FINISHED carries `truncated=True`."""


def truncation_marker(limit: int) -> str:
    """The line that replaces a step's output beyond `max_output_bytes` (the only truncation
    of output anywhere: nobody downstream cuts it again)."""
    return f"\n[opsconductor: output truncated at {limit} bytes]\n"


@dataclass(frozen=True)
class EngineEvent:
    """One entry of an execution's event stream.

    `seq` numbers every event of an execution from 1 with no gaps; `target_seq` numbers
    the events of one target from 1. Which optional fields are set depends on `type`:

    - TARGET_STARTED: `reused_connection`.
    - STDOUT / STDERR: `step_index`, `step_name`, `data` (a decoded chunk, not a line).
    - STEP_FINISHED: `status`, `exit_code` (None when the command did not exit by itself),
      `duration_ms`, `truncated` (True when the step's output on this target was cut at
      `max_output_bytes`), and `data` with a reason when the step did not run to completion.
    - TARGET_FINISHED: `status`, `duration_ms`, `data` with the reason when it failed.
    - EXECUTION_FINISHED: `status` and `data`, a JSON object
      `{"total": n, "succeeded": n, "failed": n, "cancelled": n}` counting targets.
    """

    seq: int
    type: str
    at: float
    target_id: str | None = None
    target_seq: int | None = None
    step_index: int | None = None
    step_name: str | None = None
    data: str | None = None
    exit_code: int | None = None
    status: str | None = None
    duration_ms: float | None = None
    reused_connection: bool | None = None
    attempt: int | None = None
    """TARGET_STARTED / TARGET_FINISHED of a target that needed connection retries: 1-based."""
    truncated: bool | None = None
    """STEP_FINISHED: whether the step's output on this target was cut (never None there)."""

    def numbered(self, seq: int, target_seq: int | None) -> EngineEvent:
        """A copy with these sequence numbers (what `dataclasses.replace` does, at a tenth of its
        cost: the coordinator numbers every event of a run, thousands a second)."""
        event = object.__new__(EngineEvent)
        state = event.__dict__
        state.update(self.__dict__)
        state["seq"] = seq
        state["target_seq"] = target_seq
        return event

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with enum values as plain strings."""
        return {
            key: (str(value) if isinstance(value, StrEnum) else value)
            for key, value in dataclasses.asdict(self).items()
        }


@dataclass(frozen=True)
class ConnectionTestResult:
    """Outcome of `EngineClient.test_connection`; `message` is readable by an operator."""

    ok: bool
    latency_ms: float | None
    message: str

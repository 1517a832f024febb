"""What services hand the engine and what it streams back.

Plain frozen dataclasses: they cross process boundaries through Ray's object store, so
none of them may ever hold a secret. Credentials travel as a `CredentialRef` and are
resolved inside the connection pool at connect time.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


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
class ScriptSpec:
    """A script body run by `interpreter` (bash, sh, python, powershell) with `arguments`.

    Over SSH the body is fed to the interpreter on stdin (nothing left on the host); the
    arguments are shell-quoted by the engine.
    """

    interpreter: str
    body: str
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferSpec:
    """A file transfer over SFTP.

    upload: `content` (text, at most 1 MiB) is written to the remote `destination`, with
    `mode` (octal string such as "0644") if given. download: the remote `source` is read and
    its content (truncated at the output limit) becomes the step's STDOUT; `destination` is
    only a label.
    """

    direction: str
    destination: str
    source: str | None = None
    content: str | None = None
    mode: str | None = None


STEP_TYPES = ("command", "script", "file_transfer")
MAX_UPLOAD_BYTES = 1024 * 1024
"""Largest `file_transfer` upload, over SFTP and WinRM alike."""
SCRIPT_INTERPRETERS = ("bash", "sh", "python", "powershell")


@dataclass(frozen=True)
class StepSpec:
    """One step: a command run through the login shell of the target's user, a script,
    or a file transfer (`type`). `expected_exit_codes` are the exits that count as success."""

    name: str
    command: str
    timeout_s: float = 300
    continue_on_error: bool = False
    type: str = "command"
    script: ScriptSpec | None = None
    transfer: TransferSpec | None = None
    working_directory: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    expected_exit_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class RunPolicy:
    """How a run spreads over its targets.

    - `max_parallel`: targets running at once.
    - `batch_size` / `batch_percent`: rolling batches; a target of batch k+1 starts only
      once every target of batch k has finished (`batch_size` wins when both are set).
    - `fail_fast_threshold`: after this many FAILED targets no new target starts; the rest
      end CANCELLED with data "fail-fast: N targets failed".
    - `retries` / `retry_backoff_s`: connection failures only (refused, timeout, lost
      before the first command started); the backoff doubles per attempt, with jitter.
      A target whose command started is never retried.
    - `timeout_s`: overall run timeout; on expiry running targets are cancelled and the
      run ends FAILED with data "run timed out".
    - `allow_host_overlap`: False (default) holds a per-host lock so two runs never
      interleave on one host.
    """

    max_parallel: int = 50
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_fast_threshold: int | None = None
    retries: int = 0
    retry_backoff_s: float = 2.0
    timeout_s: float | None = None
    allow_host_overlap: bool = False


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
    """A snapshot of one run: every target runs every step, in order."""

    execution_id: str
    steps: tuple[StepSpec, ...]
    targets: tuple[TargetSpec, ...]
    credentials: CredentialRef
    max_parallel: int = 50
    connect_timeout_s: float = 10
    policy: RunPolicy = RunPolicy()
    max_output_bytes: int = 1_048_576
    """Per target and step: output beyond it is dropped and a marker line is emitted."""

    @property
    def effective_parallel(self) -> int:
        """`policy.max_parallel` when it was set (is not the default 50), else the plan's
        older `max_parallel` field: callers may set either."""
        value = self.policy.max_parallel if self.policy.max_parallel != 50 else self.max_parallel
        return max(1, value)


def plan_batches(target_ids: list[str] | tuple[str, ...], policy: RunPolicy) -> list[list[str]]:
    """The rolling batches a run goes through, in order (one batch when the policy sets none).

    `batch_size` wins over `batch_percent`; a percentage rounds up to at least one target.
    Also what a dry run shows.
    """
    ids = list(target_ids)
    if not ids:
        return []
    size = len(ids)
    if policy.batch_size is not None and policy.batch_size > 0:
        size = policy.batch_size
    elif policy.batch_percent is not None and policy.batch_percent > 0:
        size = max(1, math.ceil(len(ids) * min(policy.batch_percent, 100) / 100))
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def truncation_marker(limit: int) -> str:
    """The line that replaces a step's output beyond `max_output_bytes`."""
    return f"\n[opsconductor: output truncated at {limit} bytes]\n"


@dataclass(frozen=True)
class EngineEvent:
    """One entry of an execution's event stream.

    `seq` numbers every event of an execution from 1 with no gaps; `target_seq` numbers
    the events of one target from 1. Which optional fields are set depends on `type`:

    - TARGET_STARTED: `reused_connection`.
    - STDOUT / STDERR: `step_index`, `step_name`, `data` (a decoded chunk, not a line).
    - STEP_FINISHED: `status`, `exit_code` (None when the command did not exit by itself),
      `duration_ms`, and `data` with a reason when the step did not run to completion.
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

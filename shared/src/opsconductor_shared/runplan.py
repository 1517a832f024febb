"""The run plan: what one run of a job does, typed once and shared by jobs, executions and the engine.

jobs builds it (``jobPlan``: steps rendered with the run's parameters, targets resolved, policy
with its defaults), executions stores it with the run (``Execution.plan``) and hands it to the
engine, and the engine runs it. The JSON form is camelCase (``model_dump(by_alias=True)``), the
same keys as the GraphQL ``JobPlan`` and jobs' stored version snapshots; Python code uses the
snake_case attributes. Defaults live here and nowhere else.

No secret is ever part of a plan: credentials reach the engine through connection grants.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

StepType = Literal["command", "script", "file_transfer"]
Interpreter = Literal["bash", "sh", "python", "powershell"]
Direction = Literal["upload", "download"]
Concurrency = Literal["allow", "skip", "queue"]

STEP_TYPES: tuple[StepType, ...] = ("command", "script", "file_transfer")
INTERPRETERS: tuple[Interpreter, ...] = ("bash", "sh", "python", "powershell")
DIRECTIONS: tuple[Direction, ...] = ("upload", "download")
CONCURRENCY: tuple[Concurrency, ...] = ("allow", "skip", "queue")

DEFAULT_STEP_TIMEOUT_SECONDS = 300
DEFAULT_MAX_PARALLEL = 50
DEFAULT_RETRY_BACKOFF_SECONDS = 2.0
DEFAULT_MAX_OUTPUT_BYTES = 1_048_576
"""Per target and step: output beyond it is dropped (the engine cuts it, once)."""
MAX_UPLOAD_BYTES = 1024 * 1024
"""Largest ``file_transfer`` upload, over SFTP and WinRM alike."""


class PlanModel(BaseModel):
    """Frozen, camelCase on the wire, snake_case in Python; unknown keys are an error."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Script(PlanModel):
    """A script body run by ``interpreter`` with ``arguments`` (over SSH fed on stdin; the engine
    shell-quotes the arguments)."""

    interpreter: Interpreter
    body: str
    arguments: tuple[str, ...] = ()


class Transfer(PlanModel):
    """A file transfer. upload: ``content`` (text, at most 1 MiB) is written to ``destination``,
    with ``mode`` (octal such as "0644") if given. download: the remote ``source`` becomes the
    step's STDOUT (cut at the output limit); ``destination`` is only a label."""

    direction: Direction
    destination: str
    source: str | None = None
    content: str | None = None
    mode: str | None = None


class EnvVar(PlanModel):
    name: str
    value: str


class Step(PlanModel):
    """One step, run on every target in ``order``: a command through the login shell of the
    target's user, a script, or a file transfer. ``expected_exit_codes`` count as success."""

    order: int = 1
    name: str
    type: StepType = "command"
    command: str = ""
    timeout_seconds: int = DEFAULT_STEP_TIMEOUT_SECONDS
    continue_on_error: bool = False
    working_directory: str | None = None
    env: tuple[EnvVar, ...] = ()
    expected_exit_codes: tuple[int, ...] = (0,)
    script: Script | None = None
    transfer: Transfer | None = None


class Policy(PlanModel):
    """How a run spreads over its targets.

    - ``max_parallel``: targets running at once.
    - ``batch_size`` / ``batch_percent``: rolling batches; a target of batch k+1 starts only once
      every target of batch k has finished (``batch_size`` wins when both are set).
    - ``fail_fast_threshold``: after this many FAILED targets no new target starts; the rest end
      CANCELLED with data "fail-fast: N targets failed".
    - ``retries`` / ``retry_backoff_seconds``: connection failures only (refused, timeout, lost
      before the first command started); the backoff doubles per attempt, with jitter. A target
      whose command started is never retried.
    - ``timeout_seconds``: overall run timeout; on expiry running targets are cancelled and the run
      ends FAILED with data "run timed out".
    - ``concurrency``: what a new run does while the job has one running (allow, skip, queue).
    - ``allow_host_overlap``: False holds a per-host lock so two runs never interleave on a host.
    """

    max_parallel: int = Field(default=DEFAULT_MAX_PARALLEL, ge=1)
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_fast_threshold: int | None = None
    retries: int = 0
    retry_backoff_seconds: float = DEFAULT_RETRY_BACKOFF_SECONDS
    timeout_seconds: int | None = None
    concurrency: Concurrency = "allow"
    allow_host_overlap: bool = False

    def batches(self, target_ids: list[str] | tuple[str, ...]) -> list[list[str]]:
        """The rolling batches a run goes through, in order (one batch when none is set).
        A percentage rounds up to at least one target. Also what a dry run shows."""
        ids = list(target_ids)
        if not ids:
            return []
        size = len(ids)
        if self.batch_size is not None and self.batch_size > 0:
            size = self.batch_size
        elif self.batch_percent is not None and self.batch_percent > 0:
            size = max(1, math.ceil(len(ids) * min(self.batch_percent, 100) / 100))
        return [ids[i : i + size] for i in range(0, len(ids), size)]


class RunPlan(PlanModel):
    """One run of one job version: every target runs every step, in order."""

    job_id: str
    serial: str = ""
    name: str = ""
    version: int
    steps: tuple[Step, ...]
    target_ids: tuple[str, ...]
    policy: Policy = Policy()
    parameters: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The camelCase JSON form (what executions stores with the run)."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: Any) -> RunPlan:
        return cls.model_validate(data)

"""Jobs domain logic: validate a definition, resolve its targets, store, version, plan, delete.

No strawberry here. Functions write; the resolver owns the transaction. Targets are checked
and resolved through a :class:`TargetDirectory` (the targets subgraph in production) *before*
the resolver opens its transaction, so no database transaction waits on another service.

A definition moves through three shapes: a ``JobDraft`` (what the caller sent), a ``ValidJob``
(checked, defaults applied; also what a version snapshot stores) and, for a run, a ``Plan``
(parameters substituted, targets resolved, dangerous commands detected).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from tortoise.expressions import F, Q

from opsconductor_jobs import danger, events, paramguard
from opsconductor_jobs.models import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_STEP_TIMEOUT_SECONDS,
    Counter,
    Job,
    JobStep,
    JobTarget,
    JobVersion,
    Outbox,
    live_jobs_by_id,
    parse_id,
)
from opsconductor_jobs.render import (
    ParameterDef,
    as_text,
    placeholders,
    preview_values,
    quoter_for,
    render,
    resolve_parameters,
    validate_parameters,
)
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DomainError, NotFoundError, ValidationError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.jobs")
T = TypeVar("T")

NAME_MAX = 255
DESCRIPTION_MAX = 10_000
COMMAND_MAX_BYTES = 64 * 1024
SCRIPT_MAX_BYTES = 1024 * 1024
CONTENT_MAX_BYTES = 1024 * 1024
PATH_MAX = 4096
ARGUMENTS_MAX = 100
ARGUMENT_MAX_BYTES = 4096
ENV_MAX = 100
ENV_VALUE_MAX_BYTES = 32 * 1024
EXIT_CODES_MAX = 50
TIMEOUT_RANGE = (1, 86_400)
MAX_PARALLEL_RANGE = (1, 1000)
BATCH_SIZE_RANGE = (1, 10_000)
BATCH_PERCENT_RANGE = (1, 100)
FAIL_FAST_RANGE = (1, 10_000)
RETRIES_RANGE = (0, 10)
BACKOFF_RANGE = (0.0, 300.0)
RUN_TIMEOUT_RANGE = (1, 7 * 86_400)
MAX_STEPS = 100
MAX_TARGETS = 10_000
TARGET_ID_MAX = 64
SELECTOR_VALUES_MAX = 50
SCAN_TIMEOUT_SECONDS = 2.0  # default bound of one request's dangerous-command scan (settings)
JOB_COUNTER = "job"

STEP_TYPES = ("command", "script", "file_transfer")
INTERPRETERS = ("bash", "sh", "powershell", "python")
DIRECTIONS = ("upload", "download")
CONCURRENCY = ("allow", "skip", "queue")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MODE = re.compile(r"^0?[0-7]{3}$|^[0-7]{4}$")
ABSOLUTE_PATH = re.compile(r"^(?:/|[A-Za-z]:[\\/])")

DEFAULT_POLICY: dict[str, Any] = {
    "maxParallel": DEFAULT_MAX_PARALLEL,
    "batchSize": None,
    "batchPercent": None,
    "failFastThreshold": None,
    "retries": 0,
    "retryBackoffSeconds": 2.0,
    "timeoutSeconds": None,
    "concurrency": "allow",
    "allowHostOverlap": False,
}


# ---- domain errors ----------------------------------------------------------------------------


class UnknownTargetsError(DomainError):
    def __init__(self, target_ids: list[str], message: str | None = None) -> None:
        super().__init__(message or f"unknown target id(s): {', '.join(target_ids)}")
        self.target_ids = target_ids


class DependencyUnavailableError(DomainError):
    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service


class VersionConflictError(DomainError):
    code = "CONFLICT"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"the job is at version {current}, not {expected}; reload it and edit again")
        self.expected = expected
        self.current = current


# ---- input (plain data; the resolver converts GraphQL inputs into these) ----------------------


@dataclass
class ScriptDraft:
    interpreter: str
    body: str
    arguments: list[str] = field(default_factory=list)


@dataclass
class TransferDraft:
    direction: str
    destination: str
    source: str | None = None
    content: str | None = None
    mode: str | None = None


@dataclass
class StepDraft:
    name: str
    command: str = ""
    timeout_seconds: int | None = None
    continue_on_error: bool | None = None
    type: str | None = None  # None: "command"
    working_directory: str | None = None
    env: list[tuple[str, str]] | None = None
    expected_exit_codes: list[int] | None = None
    script: ScriptDraft | None = None
    transfer: TransferDraft | None = None


@dataclass
class PolicyDraft:
    max_parallel: int | None = None
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_fast_threshold: int | None = None
    retries: int | None = None
    retry_backoff_seconds: float | None = None
    timeout_seconds: int | None = None
    concurrency: str | None = None
    allow_host_overlap: bool | None = None


@dataclass
class SelectorDraft:
    tags: list[str] = field(default_factory=list)
    os_types: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)


@dataclass
class JobDraft:
    name: str
    steps: list[StepDraft]
    target_ids: list[str] = field(default_factory=list)
    description: str | None = None
    max_parallel: int | None = None  # shorthand for policy.max_parallel
    policy: PolicyDraft | None = None
    parameters: list[ParameterDef] = field(default_factory=list)
    target_selector: SelectorDraft | None = None


# ---- validated definition (also the snapshot of a version) ------------------------------------


@dataclass(frozen=True)
class ValidScript:
    interpreter: str
    body: str
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidTransfer:
    direction: str
    destination: str
    source: str | None = None
    content: str | None = None
    mode: str | None = None


@dataclass(frozen=True)
class ValidStep:
    order: int
    name: str
    command: str
    timeout_seconds: int
    continue_on_error: bool
    type: str = "command"
    working_directory: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    expected_exit_codes: tuple[int, ...] = (0,)
    script: ValidScript | None = None
    transfer: ValidTransfer | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "order": self.order,
            "name": self.name,
            "type": self.type,
            "command": self.command,
            "timeoutSeconds": self.timeout_seconds,
            "continueOnError": self.continue_on_error,
            "workingDirectory": self.working_directory,
            "env": [{"name": n, "value": v} for n, v in self.env],
            "expectedExitCodes": list(self.expected_exit_codes),
            "script": None
            if self.script is None
            else {
                "interpreter": self.script.interpreter,
                "body": self.script.body,
                "arguments": list(self.script.arguments),
            },
            "transfer": None
            if self.transfer is None
            else {
                "direction": self.transfer.direction,
                "destination": self.transfer.destination,
                "source": self.transfer.source,
                "content": self.transfer.content,
                "mode": self.transfer.mode,
            },
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ValidStep:
        script = d.get("script")
        transfer = d.get("transfer")
        return cls(
            order=int(d["order"]),
            name=str(d["name"]),
            command=str(d.get("command") or ""),
            timeout_seconds=int(d.get("timeoutSeconds", DEFAULT_STEP_TIMEOUT_SECONDS)),
            continue_on_error=bool(d.get("continueOnError", False)),
            type=str(d.get("type") or "command"),
            working_directory=d.get("workingDirectory"),
            env=tuple((str(e["name"]), str(e["value"])) for e in d.get("env") or ()),
            expected_exit_codes=tuple(int(c) for c in d.get("expectedExitCodes") or (0,)),
            script=None
            if not script
            else ValidScript(
                interpreter=script["interpreter"],
                body=script["body"],
                arguments=tuple(script.get("arguments") or ()),
            ),
            transfer=None
            if not transfer
            else ValidTransfer(
                direction=transfer["direction"],
                destination=transfer["destination"],
                source=transfer.get("source"),
                content=transfer.get("content"),
                mode=transfer.get("mode"),
            ),
        )


@dataclass
class ValidJob:
    name: str
    description: str | None
    steps: list[ValidStep]
    target_ids: list[str]
    policy: dict[str, Any] = field(default_factory=dict)
    parameters: list[ParameterDef] = field(default_factory=list)
    target_selector: dict[str, list[str]] | None = None

    def to_snapshot(self) -> dict[str, Any]:
        """The whole definition as JSON: stored per version, compared to detect a real edit."""
        return {
            "name": self.name,
            "description": self.description,
            "steps": [s.to_json() for s in self.steps],
            "targetIds": list(self.target_ids),
            "targetSelector": self.target_selector,
            "parameters": [p.to_json() for p in self.parameters],
            "policy": policy_with_defaults(self.policy),
        }

    @classmethod
    def from_snapshot(cls, d: Mapping[str, Any]) -> ValidJob:
        return cls(
            name=str(d["name"]),
            description=d.get("description"),
            steps=[ValidStep.from_json(s) for s in d.get("steps") or ()],
            target_ids=[str(t) for t in d.get("targetIds") or ()],
            policy=policy_with_defaults(d.get("policy")),
            parameters=[ParameterDef.from_json(p) for p in d.get("parameters") or ()],
            target_selector=d.get("targetSelector"),
        )


def policy_with_defaults(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stored policies may predate some keys (rows from before 0002): fill the defaults in."""
    merged = dict(DEFAULT_POLICY)
    merged.update({k: v for k, v in (policy or {}).items() if k in DEFAULT_POLICY})
    return merged


def valid_from_model(row: Job) -> ValidJob:
    """The current definition from the rows (needs 'steps' and 'targets' prefetched)."""
    return ValidJob(
        name=row.name,
        description=row.description,
        steps=[
            ValidStep.from_json(
                {
                    "order": s.order,
                    "name": s.name,
                    "type": s.type,
                    "command": s.command,
                    "timeoutSeconds": s.timeout_seconds,
                    "continueOnError": s.continue_on_error,
                    "workingDirectory": s.working_directory,
                    "env": s.env or [],
                    "expectedExitCodes": s.expected_exit_codes or [0],
                    "script": s.script,
                    "transfer": s.transfer,
                }
            )
            for s in row.ordered_steps()
        ],
        target_ids=row.target_ids(),
        policy=policy_with_defaults(row.policy),
        parameters=[ParameterDef.from_json(p) for p in row.parameters or ()],
        target_selector=row.target_selector or None,
    )


def draft_from_valid(job: ValidJob) -> JobDraft:
    """Back to a draft, so an update can patch some fields and validate the whole again."""
    policy = policy_with_defaults(job.policy)
    selector = job.target_selector or {}
    return JobDraft(
        name=job.name,
        description=job.description,
        steps=[
            StepDraft(
                name=s.name,
                command=s.command,
                timeout_seconds=s.timeout_seconds,
                continue_on_error=s.continue_on_error,
                type=s.type,
                working_directory=s.working_directory,
                env=list(s.env),
                expected_exit_codes=list(s.expected_exit_codes),
                script=None
                if s.script is None
                else ScriptDraft(s.script.interpreter, s.script.body, list(s.script.arguments)),
                transfer=None
                if s.transfer is None
                else TransferDraft(
                    s.transfer.direction,
                    s.transfer.destination,
                    s.transfer.source,
                    s.transfer.content,
                    s.transfer.mode,
                ),
            )
            for s in job.steps
        ],
        target_ids=list(job.target_ids),
        policy=PolicyDraft(
            max_parallel=policy["maxParallel"],
            batch_size=policy["batchSize"],
            batch_percent=policy["batchPercent"],
            fail_fast_threshold=policy["failFastThreshold"],
            retries=policy["retries"],
            retry_backoff_seconds=policy["retryBackoffSeconds"],
            timeout_seconds=policy["timeoutSeconds"],
            concurrency=policy["concurrency"],
            allow_host_overlap=policy["allowHostOverlap"],
        ),
        parameters=list(job.parameters),
        target_selector=SelectorDraft(
            tags=list(selector.get("tags", [])),
            os_types=list(selector.get("osTypes", [])),
            environments=list(selector.get("environments", [])),
        )
        if job.target_selector
        else None,
    )


# ---- validation -------------------------------------------------------------------------------


def _in_range(value: float, bounds: tuple[float, float], what: str, field_name: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high} (got {value})", field=field_name)


def _check_size(text: str, limit: int, what: str, field_name: str) -> None:
    size = len(text.encode())
    if size > limit:
        raise ValidationError(f"{what} is {size} bytes; the limit is {limit} bytes", field=field_name)


def _check_path(path: str | None, what: str, field_name: str, *, required: bool = True) -> None:
    """A remote path: absolute (POSIX ``/...`` or Windows ``C:\\...``), no NUL or line break.

    A path that still contains a ``{{ placeholder }}`` is only checked after rendering.
    """
    if path is None or path == "":
        if required:
            raise ValidationError(f"{what} is required", field=field_name)
        return
    if "\x00" in path or "\n" in path or "\r" in path:
        raise ValidationError(f"{what} must not contain NUL or line breaks", field=field_name)
    if len(path.encode()) > PATH_MAX:
        raise ValidationError(f"{what} is longer than {PATH_MAX} bytes", field=field_name)
    if placeholders(path):
        return
    if not ABSOLUTE_PATH.match(path):
        raise ValidationError(f"{what} must be an absolute path (got {path!r})", field=field_name)


def _validate_step(index: int, step: StepDraft) -> ValidStep:
    path = f"steps[{index}]"
    label = f"step {index + 1}"
    step_name = step.name.strip()
    if not step_name:
        raise ValidationError(f"{label}: name must not be empty", field=f"{path}.name")
    if len(step_name) > NAME_MAX:
        raise ValidationError(f"{label}: name must be at most {NAME_MAX} characters", field=f"{path}.name")
    step_type = step.type or "command"
    if step_type not in STEP_TYPES:
        raise ValidationError(f"{label}: type must be one of {', '.join(STEP_TYPES)}", field=f"{path}.type")
    command = step.command or ""
    script: ValidScript | None = None
    transfer: ValidTransfer | None = None
    if step_type == "command":
        if not command.strip():
            raise ValidationError(f"{label}: command must not be empty", field=f"{path}.command")
        _check_size(command, COMMAND_MAX_BYTES, f"{label}: command", f"{path}.command")
        if step.script is not None or step.transfer is not None:
            raise ValidationError(f"{label}: a command step has no script or transfer", field=f"{path}.type")
    else:
        if command.strip():
            raise ValidationError(f"{label}: only command steps have a command", field=f"{path}.command")
        command = ""
    if step_type == "script":
        if step.script is None or step.transfer is not None:
            raise ValidationError(
                f"{label}: a script step needs `script` (and no transfer)", field=f"{path}.script"
            )
        if step.script.interpreter not in INTERPRETERS:
            raise ValidationError(
                f"{label}: interpreter must be one of {', '.join(INTERPRETERS)}",
                field=f"{path}.script.interpreter",
            )
        if not step.script.body.strip():
            raise ValidationError(f"{label}: script body must not be empty", field=f"{path}.script.body")
        _check_size(step.script.body, SCRIPT_MAX_BYTES, f"{label}: script body", f"{path}.script.body")
        arguments = list(step.script.arguments or [])
        if len(arguments) > ARGUMENTS_MAX:
            raise ValidationError(
                f"{label}: at most {ARGUMENTS_MAX} arguments", field=f"{path}.script.arguments"
            )
        for a_index, argument in enumerate(arguments):
            where = f"{path}.script.arguments[{a_index}]"
            if "\x00" in argument:
                raise ValidationError(f"{label}: arguments must not contain NUL", field=where)
            _check_size(argument, ARGUMENT_MAX_BYTES, f"{label}: argument {a_index + 1}", where)
        script = ValidScript(step.script.interpreter, step.script.body, tuple(arguments))
    if step_type == "file_transfer":
        t = step.transfer
        if t is None or step.script is not None:
            raise ValidationError(
                f"{label}: a file_transfer step needs `transfer` (and no script)", field=f"{path}.transfer"
            )
        tpath = f"{path}.transfer"
        if t.direction not in DIRECTIONS:
            raise ValidationError(
                f"{label}: direction must be upload or download", field=f"{tpath}.direction"
            )
        if t.direction == "upload":
            _check_path(t.destination, f"{label}: destination", f"{tpath}.destination")
            if t.content is None:
                raise ValidationError(f"{label}: an upload needs content", field=f"{tpath}.content")
            _check_size(t.content, CONTENT_MAX_BYTES, f"{label}: content", f"{tpath}.content")
            if t.source is not None:
                raise ValidationError(
                    f"{label}: an upload takes content, not a source", field=f"{tpath}.source"
                )
            if t.mode is not None and not MODE.match(t.mode):
                raise ValidationError(
                    f"{label}: mode must be octal like 0644 or 0755 (got {t.mode!r})", field=f"{tpath}.mode"
                )
        else:
            _check_path(t.source, f"{label}: source", f"{tpath}.source")
            if not (t.destination or "").strip() or len(t.destination) > NAME_MAX:
                raise ValidationError(
                    f"{label}: destination (a label for the downloaded output) must be 1..{NAME_MAX} characters",
                    field=f"{tpath}.destination",
                )
            if t.content is not None or t.mode is not None:
                raise ValidationError(f"{label}: a download has no content or mode", field=f"{tpath}.content")
        transfer = ValidTransfer(t.direction, t.destination, t.source, t.content, t.mode)
    _check_path(
        step.working_directory, f"{label}: workingDirectory", f"{path}.workingDirectory", required=False
    )
    env: list[tuple[str, str]] = []
    names: set[str] = set()
    for e_index, (env_name, value) in enumerate(step.env or []):
        where = f"{path}.env[{e_index}]"
        if not ENV_NAME.match(env_name):
            raise ValidationError(
                f"{label}: environment variable name {env_name!r} must match [A-Za-z_][A-Za-z0-9_]*",
                field=f"{where}.name",
            )
        if env_name in names:
            raise ValidationError(
                f"{label}: environment variable {env_name} is set twice", field=f"{where}.name"
            )
        names.add(env_name)
        if "\x00" in value:
            raise ValidationError(f"{label}: environment values must not contain NUL", field=f"{where}.value")
        _check_size(value, ENV_VALUE_MAX_BYTES, f"{label}: value of {env_name}", f"{where}.value")
        env.append((env_name, value))
    if len(env) > ENV_MAX:
        raise ValidationError(f"{label}: at most {ENV_MAX} environment variables", field=f"{path}.env")
    codes = list(dict.fromkeys(step.expected_exit_codes if step.expected_exit_codes is not None else [0]))
    if not codes or len(codes) > EXIT_CODES_MAX:
        raise ValidationError(
            f"{label}: expectedExitCodes needs 1..{EXIT_CODES_MAX} codes", field=f"{path}.expectedExitCodes"
        )
    for code in codes:
        _in_range(code, (0, 255), f"{label}: expected exit code", f"{path}.expectedExitCodes")
    timeout = DEFAULT_STEP_TIMEOUT_SECONDS if step.timeout_seconds is None else step.timeout_seconds
    _in_range(timeout, TIMEOUT_RANGE, f"{label}: timeoutSeconds", f"{path}.timeoutSeconds")
    return ValidStep(
        order=index + 1,
        name=step_name,
        command=command,
        timeout_seconds=timeout,
        continue_on_error=bool(step.continue_on_error),
        type=step_type,
        working_directory=step.working_directory or None,
        env=tuple(env),
        expected_exit_codes=tuple(codes),
        script=script,
        transfer=transfer,
    )


def _step_templates(step: ValidStep, path: str) -> list[tuple[str, str]]:
    """Every text of a step that may hold ``{{ placeholders }}``, with its input path."""
    out: list[tuple[str, str]] = [(f"{path}.command", step.command)]
    if step.working_directory:
        out.append((f"{path}.workingDirectory", step.working_directory))
    out += [(f"{path}.env[{i}].value", v) for i, (_, v) in enumerate(step.env)]
    if step.script:
        out.append((f"{path}.script.body", step.script.body))
        out += [(f"{path}.script.arguments[{i}]", a) for i, a in enumerate(step.script.arguments)]
    if step.transfer:
        t = step.transfer
        out += [
            (f"{path}.transfer.{k}", v)
            for k, v in (("source", t.source), ("destination", t.destination), ("content", t.content))
            if v
        ]
    return out


def _validate_policy(draft: JobDraft) -> dict[str, Any]:
    p = draft.policy or PolicyDraft()
    max_parallel = p.max_parallel if p.max_parallel is not None else draft.max_parallel
    policy = dict(DEFAULT_POLICY)
    if max_parallel is not None:
        policy["maxParallel"] = max_parallel
    _in_range(policy["maxParallel"], MAX_PARALLEL_RANGE, "maxParallel", "policy.maxParallel")
    if p.batch_size is not None and p.batch_percent is not None:
        raise ValidationError("give batchSize or batchPercent, not both", field="policy.batchPercent")
    if p.batch_size is not None:
        _in_range(p.batch_size, BATCH_SIZE_RANGE, "batchSize", "policy.batchSize")
        policy["batchSize"] = p.batch_size
    if p.batch_percent is not None:
        _in_range(p.batch_percent, BATCH_PERCENT_RANGE, "batchPercent", "policy.batchPercent")
        policy["batchPercent"] = p.batch_percent
    if p.fail_fast_threshold is not None:
        _in_range(p.fail_fast_threshold, FAIL_FAST_RANGE, "failFastThreshold", "policy.failFastThreshold")
        policy["failFastThreshold"] = p.fail_fast_threshold
    if p.retries is not None:
        _in_range(p.retries, RETRIES_RANGE, "retries", "policy.retries")
        policy["retries"] = p.retries
    if p.retry_backoff_seconds is not None:
        _in_range(p.retry_backoff_seconds, BACKOFF_RANGE, "retryBackoffSeconds", "policy.retryBackoffSeconds")
        policy["retryBackoffSeconds"] = float(p.retry_backoff_seconds)
    if p.timeout_seconds is not None:
        _in_range(p.timeout_seconds, RUN_TIMEOUT_RANGE, "timeoutSeconds", "policy.timeoutSeconds")
        policy["timeoutSeconds"] = p.timeout_seconds
    if p.concurrency is not None:
        if p.concurrency not in CONCURRENCY:
            raise ValidationError(
                f"concurrency must be one of {', '.join(CONCURRENCY)}", field="policy.concurrency"
            )
        policy["concurrency"] = p.concurrency
    if p.allow_host_overlap is not None:
        policy["allowHostOverlap"] = bool(p.allow_host_overlap)
    return policy


def _validate_selector(selector: SelectorDraft | None) -> dict[str, list[str]] | None:
    if selector is None:
        return None
    out: dict[str, list[str]] = {}
    for key, values, lower in (
        ("tags", selector.tags, False),
        ("osTypes", selector.os_types, True),
        ("environments", selector.environments, True),
    ):
        cleaned = [v.strip().lower() if lower else v.strip() for v in values or []]
        if any(not v or len(v) > 100 for v in cleaned):
            raise ValidationError(
                f"targetSelector.{key}: values are 1..100 characters", field=f"targetSelector.{key}"
            )
        cleaned = list(dict.fromkeys(cleaned))
        if len(cleaned) > SELECTOR_VALUES_MAX:
            raise ValidationError(
                f"targetSelector.{key}: at most {SELECTOR_VALUES_MAX} values", field=f"targetSelector.{key}"
            )
        out[key] = cleaned
    if not any(out.values()):
        return None  # an empty selector selects nothing (never "every target")
    return out


def validate_job(draft: JobDraft) -> ValidJob:
    """Check a definition; the first problem raises ``ValidationError`` naming the input field.

    Field names are the GraphQL input paths (``steps[1].command``) so a form can point at them.
    """
    name = draft.name.strip()
    if not name:
        raise ValidationError("name must not be empty", field="name")
    if len(name) > NAME_MAX:
        raise ValidationError(f"name must be at most {NAME_MAX} characters", field="name")
    description = draft.description.strip() if draft.description else None
    if description and len(description) > DESCRIPTION_MAX:
        raise ValidationError(
            f"description must be at most {DESCRIPTION_MAX} characters", field="description"
        )

    parameters = validate_parameters(draft.parameters)
    declared = {p.name for p in parameters}

    if not draft.steps:
        raise ValidationError("a job needs at least one step", field="steps")
    if len(draft.steps) > MAX_STEPS:
        raise ValidationError(f"a job has at most {MAX_STEPS} steps", field="steps")
    steps = [_validate_step(i, s) for i, s in enumerate(draft.steps)]
    for index, step in enumerate(steps):
        for where, text in _step_templates(step, f"steps[{index}]"):
            unknown = [p for p in placeholders(text) if p not in declared]
            if unknown:
                raise ValidationError(
                    f"step {index + 1}: unknown parameter {{{{ {unknown[0]} }}}} (declare it in parameters)",
                    field=where,
                )

    policy = _validate_policy(draft)
    selector = _validate_selector(draft.target_selector)

    target_ids: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(draft.target_ids):
        target_id = str(raw).strip()
        if not target_id or len(target_id) > TARGET_ID_MAX:
            raise ValidationError(f"targetIds[{index}] is not a valid id", field=f"targetIds[{index}]")
        if target_id not in seen:  # the same target twice means once
            seen.add(target_id)
            target_ids.append(target_id)
    if not target_ids and selector is None:
        raise ValidationError("a job needs at least one target id or a targetSelector", field="targetIds")
    if len(target_ids) > MAX_TARGETS:
        raise ValidationError(f"a job has at most {MAX_TARGETS} targets", field="targetIds")

    return ValidJob(
        name=name,
        description=description or None,
        steps=steps,
        target_ids=target_ids,
        policy=policy,
        parameters=parameters,
        target_selector=selector,
    )


# ---- rendering and danger ---------------------------------------------------------------------


def render_step(step: ValidStep, values: Mapping[str, str]) -> ValidStep:
    """Substitute parameters: quoted as literals in code, raw in arguments, paths, env and content."""
    code = quoter_for(step.type, step.script.interpreter if step.script else None)

    def raw(text: str | None) -> str | None:
        return None if text is None else render(text, values)

    script = step.script
    if script is not None:
        script = ValidScript(
            script.interpreter,
            render(script.body, values, code),
            tuple(render(a, values) for a in script.arguments),
        )
    transfer = step.transfer
    if transfer is not None:
        transfer = ValidTransfer(
            transfer.direction,
            render(transfer.destination, values),
            raw(transfer.source),
            raw(transfer.content),
            transfer.mode,
        )
    return replace(
        step,
        command=render(step.command, values, code),
        working_directory=raw(step.working_directory),
        env=tuple((n, render(v, values)) for n, v in step.env),
        script=script,
        transfer=transfer,
    )


def check_rendered(steps: Sequence[ValidStep]) -> None:
    """Rendered steps still obey the limits; paths built from parameters must now be absolute."""
    for index, step in enumerate(steps):
        path, label = f"steps[{index}]", f"step {index + 1}"
        if step.type == "command":
            _check_size(step.command, COMMAND_MAX_BYTES, f"{label}: command", f"{path}.command")
        if step.script:
            _check_size(step.script.body, SCRIPT_MAX_BYTES, f"{label}: script body", f"{path}.script.body")
        _check_path(
            step.working_directory, f"{label}: workingDirectory", f"{path}.workingDirectory", required=False
        )
        if step.transfer and step.transfer.direction == "upload":
            _check_path(step.transfer.destination, f"{label}: destination", f"{path}.transfer.destination")
            _check_size(
                step.transfer.content or "",
                CONTENT_MAX_BYTES,
                f"{label}: content",
                f"{path}.transfer.content",
            )
        elif step.transfer:
            _check_path(step.transfer.source, f"{label}: source", f"{path}.transfer.source")


def danger_texts(step: ValidStep) -> list[tuple[str, str]]:
    """The pieces of a step the danger rules look at, with their kind."""
    texts: list[tuple[str, str]] = []
    if step.command:
        texts.append((danger.CODE, step.command))
    if step.script:
        texts.append((danger.CODE, step.script.body))
        if step.script.arguments:
            texts.append((danger.CODE, " ".join(step.script.arguments)))
    if step.transfer:
        t = step.transfer
        if t.direction == "upload":
            texts.append((danger.WRITE_PATH, t.destination))
            if t.mode and int(t.mode, 8) & 0o111 and t.content:  # an executable upload is code
                texts.append((danger.CODE, t.content))
        elif t.source:
            texts.append((danger.READ_PATH, t.source))
    return texts


def find_dangerous(
    steps: Sequence[ValidStep], rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> list[danger.Finding]:
    """Findings on ``steps``; CPU-bound (run it in a thread, see :func:`scan_in_thread`).

    More than ``danger.SCAN_MAX_CHARS`` of text, or past ``deadline`` (``time.monotonic()``), is a
    ``ValidationError`` (review C1: the scan is bounded per request).
    """
    texts = [(step.name, danger_texts(step)) for step in steps]
    total = sum(len(text) for _, pieces in texts for _, text in pieces)
    if total > danger.SCAN_MAX_CHARS:
        raise ValidationError(
            f"the steps hold {total} characters of commands, scripts and paths; at most "
            f"{danger.SCAN_MAX_CHARS} can be checked for dangerous commands",
            field="steps",
        )
    findings: list[danger.Finding] = []
    try:
        for name, pieces in texts:
            findings += danger.scan_step(name, pieces, rules, deadline=deadline)
    except danger.ScanLimitError as exc:
        raise ValidationError(f"{exc}; shorten the steps", field="steps") from exc
    return findings


def preview_dangerous(
    job: ValidJob, rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> list[danger.Finding]:
    """Findings on the definition rendered with defaults (``validateJob``; runs re-check real values)."""
    values = preview_values(job.parameters)
    return find_dangerous([render_step(s, values) for s in job.steps], rules, deadline=deadline)


# ---- the targets service ----------------------------------------------------------------------


class TargetDirectory(Protocol):
    """Target lookups. Raise ``DependencyUnavailableError`` when they cannot tell."""

    async def existing(self, target_ids: Sequence[str]) -> set[str]: ...

    async def matching(self, selector: Mapping[str, list[str]], limit: int) -> list[str]: ...

    async def windows(self, target_ids: Sequence[str]) -> set[str]: ...


TARGETS_BY_IDS = "query($ids: [ID!]!) { activeTargetIds(ids: $ids) }"
TARGETS_MATCHING = """query($first: Int!, $after: String, $filter: TargetFilter) {
  targets(first: $first, after: $after, filter: $filter) { pageInfo { hasNextPage endCursor } edges { node { id } } } }"""


TARGETS_OS = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { id osType communicationMethods { type } } }"""


class TargetsSubgraph:
    """The targets subgraph, called directly with the jobs service token (``targets:read``)."""

    chunk = 500

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            # One retry only: a person is waiting, and a down service stays down.
            return await self.client.execute(query, variables, retries=1)
        except ServiceCallError as exc:
            log.warning("targets service call failed", url=self.client.url, error=str(exc))
            raise DependencyUnavailableError(
                "targets",
                "the targets service is unavailable, so the targets could not be checked; try again shortly",
            ) from exc

    async def windows(self, target_ids: Sequence[str]) -> set[str]:
        """The ids of Windows targets (OS type windows*, or a WinRM method): commands there run
        through cmd.exe."""
        found: set[str] = set()
        for start in range(0, len(target_ids), self.chunk):
            data = await self._call(TARGETS_OS, {"ids": list(target_ids[start : start + self.chunk])})
            try:
                for t in data["targetsByIds"]:
                    methods = {str(m["type"]).upper() for m in t.get("communicationMethods") or []}
                    if str(t["osType"]).lower().startswith("windows") or "WINRM" in methods:
                        found.add(str(t["id"]))
            except (KeyError, TypeError) as exc:
                raise DependencyUnavailableError(
                    "targets", "the targets service answered unexpectedly"
                ) from exc
        return found

    async def existing(self, target_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(target_ids), self.chunk):
            data = await self._call(TARGETS_BY_IDS, {"ids": list(target_ids[start : start + self.chunk])})
            try:
                found.update(str(t) for t in data["activeTargetIds"])
            except (KeyError, TypeError) as exc:
                raise DependencyUnavailableError(
                    "targets", "the targets service answered unexpectedly"
                ) from exc
        return found

    async def matching(self, selector: Mapping[str, list[str]], limit: int) -> list[str]:
        """Active targets with all the tags, any of the OS types and any of the environments.

        The targets filter takes one OS type and one environment, so each combination is one
        paged query; results keep the targets service's order (oldest first), duplicates once.
        """
        ids: list[str] = []
        seen: set[str] = set()
        for os_type in selector.get("osTypes") or [None]:
            for environment in selector.get("environments") or [None]:
                flt: dict[str, Any] = {"status": "ACTIVE", "tags": selector.get("tags") or None}
                if os_type:
                    flt["osType"] = os_type
                if environment:
                    flt["environment"] = environment
                after: str | None = None
                while True:
                    data = await self._call(
                        TARGETS_MATCHING, {"first": self.chunk, "after": after, "filter": flt}
                    )
                    try:
                        page = data["targets"]
                        for edge in page["edges"]:
                            target_id = str(edge["node"]["id"])
                            if target_id not in seen:
                                seen.add(target_id)
                                ids.append(target_id)
                        more, after = bool(page["pageInfo"]["hasNextPage"]), page["pageInfo"]["endCursor"]
                    except (KeyError, TypeError) as exc:
                        raise DependencyUnavailableError(
                            "targets", "the targets service answered unexpectedly"
                        ) from exc
                    if len(ids) > limit:
                        raise ValidationError(
                            f"the target selector matches more than {limit} targets", field="targetSelector"
                        )
                    if not more:
                        break
        return ids


async def check_targets(directory: TargetDirectory, target_ids: list[str]) -> None:
    if not target_ids:
        return
    found = await directory.existing(target_ids)
    missing = [t for t in target_ids if t not in found]
    if missing:
        raise UnknownTargetsError(missing)


async def resolve_targets(
    directory: TargetDirectory, job: ValidJob, requested: Sequence[str] | None
) -> list[str]:
    """Explicit ids (which must still exist) plus selector matches, then narrowed to ``requested``.

    Order: explicit ids as stored, then selector matches. A requested id outside the job's
    targets is an ``UnknownTargetsError`` (a run must not reach a host the job does not name).
    """
    await check_targets(directory, job.target_ids)
    resolved = list(job.target_ids)
    if job.target_selector:
        known = set(resolved)
        resolved += [t for t in await directory.matching(job.target_selector, MAX_TARGETS) if t not in known]
    if requested is not None:
        wanted = list(dict.fromkeys(str(t).strip() for t in requested))
        outside = [t for t in wanted if t not in set(resolved)]
        if outside:
            raise UnknownTargetsError(outside, f"not targets of this job: {', '.join(outside)}")
        chosen = set(wanted)
        resolved = [t for t in resolved if t in chosen]
    if not resolved:
        raise ValidationError("the job resolves to no targets", field="targetIds")
    return resolved


# ---- plan -------------------------------------------------------------------------------------


@dataclass
class Plan:
    job_id: str
    serial: str
    name: str
    version: int
    steps: list[ValidStep]
    target_ids: list[str]
    policy: dict[str, Any]
    parameters: dict[str, Any]
    dangerous: list[danger.Finding]


async def plan_job(
    job_id: str,
    *,
    parameters: Any,
    target_ids: Sequence[str] | None,
    directory: TargetDirectory,
    rules: tuple[danger.Rule, ...],
    version: int | None = None,
    scan_timeout: float = SCAN_TIMEOUT_SECONDS,
) -> Plan:
    """What a run of the job's current version would do: the rendered steps, resolved targets,
    effective parameters and dangerous-command findings. Reads only; no transaction needed.

    ``version`` plans an older stored version instead (a retry re-runs what the first run ran).
    """
    row = await get_job(job_id)
    if row is None:
        raise NotFoundError(f"job {job_id} not found", id=job_id)
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ValidationError("parameters must be a JSON object", field="parameters")
    if version is None or version == row.version:
        job, planned_version = valid_from_model(row), row.version
    else:
        stored = await JobVersion.filter(job_id=row.id, version=version).first()
        if stored is None:
            raise NotFoundError(f"job {row.serial} has no version {version}", id=job_id)
        job, planned_version = ValidJob.from_snapshot(stored.snapshot), version
    values = resolve_parameters(job.parameters, parameters)
    texts = {name: as_text(value) for name, value in values.items()}
    paramguard.check_values(job.steps, texts)  # M14, H7: values where quoting cannot help
    # Rendering and the dangerous-command scan are CPU work on up to megabytes: off the loop.
    steps, findings = await scan_in_thread(_render_and_scan, job, texts, rules, timeout=scan_timeout)
    targets = await resolve_targets(directory, job, target_ids)
    unsafe = paramguard.cmd_unsafe(job.steps, texts)
    if unsafe and targets and await directory.windows(targets):
        raise ValidationError(
            f"parameter {unsafe[0]!r}: its value contains a character cmd.exe reads as syntax "
            '(& | < > ^ % " ( ) ! or a line break) and a command step runs it on a Windows target; '
            "pass it to a script step as an argument instead",
            field=f"parameters.{unsafe[0]}",
        )
    return Plan(
        job_id=str(row.id),
        serial=row.serial,
        name=job.name,
        version=planned_version,
        steps=steps,
        target_ids=targets,
        policy=policy_with_defaults(job.policy),
        parameters=values,
        dangerous=findings,
    )


def _render_and_scan(
    job: ValidJob, values: Mapping[str, str], rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> tuple[list[ValidStep], list[danger.Finding]]:
    steps = [render_step(s, values) for s in job.steps]
    check_rendered(steps)
    return steps, find_dangerous(steps, rules, deadline=deadline)


async def scan_in_thread(fn: Callable[..., T], /, *args: Any, timeout: float) -> T:  # noqa: ASYNC109 - a budget for the thread
    """``fn(*args, deadline=...)`` in a worker thread, so the event loop keeps serving (review C1).

    ``fn`` stops itself at the deadline (``ValidationError``); the ``wait_for`` is a backstop.
    """
    deadline = time.monotonic() + timeout
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args, deadline=deadline), timeout + 1.0)
    except TimeoutError as exc:
        raise ValidationError(
            "the dangerous-command check took too long; shorten the steps", field="steps"
        ) from exc


# ---- writes -----------------------------------------------------------------------------------


async def next_number(counter: str = JOB_COUNTER) -> int:
    """Take the next value of a counter; the UPDATE holds the row lock until the caller commits."""
    if not await Counter.filter(name=counter).update(value=F("value") + 1):
        await Counter.create(name=counter, value=1)
    row = await Counter.get(name=counter)
    return int(row.value)


async def ensure_counters() -> None:
    """Create the counter rows at start-up so the first concurrent creates do not race on the insert."""
    await Counter.get_or_create(name=JOB_COUNTER, defaults={"value": 0})


def serial_of(number: int) -> str:
    return f"JOB-{number:06d}"


async def _free_number() -> int:
    """The next counter value whose number and serial no imported (legacy) job already holds."""
    while True:
        number = await next_number()
        if not await Job.filter(Q(number=number) | Q(serial=serial_of(number))).exists():
            return number


async def _write_definition(row: Job, job: ValidJob) -> None:
    await JobStep.bulk_create(
        [
            JobStep(
                job=row,
                order=s.order,
                name=s.name,
                type=s.type,
                command=s.command,
                timeout_seconds=s.timeout_seconds,
                continue_on_error=s.continue_on_error,
                working_directory=s.working_directory,
                env=[{"name": n, "value": v} for n, v in s.env],
                expected_exit_codes=list(s.expected_exit_codes),
                script=s.to_json()["script"],
                transfer=s.to_json()["transfer"],
            )
            for s in job.steps
        ]
    )
    if job.target_ids:
        await JobTarget.bulk_create([JobTarget(job=row, target_id=t) for t in job.target_ids])


async def create_job(job: ValidJob, *, actor: str | None) -> Job:
    """Store a validated definition (its targets already checked) as version 1."""
    number = await _free_number()
    row = await Job.create(
        id=new_uuid7(),
        number=number,
        serial=serial_of(number),
        name=job.name,
        description=job.description,
        policy=policy_with_defaults(job.policy),
        parameters=[p.to_json() for p in job.parameters],
        target_selector=job.target_selector,
        created_by=actor,
    )
    await _write_definition(row, job)
    await JobVersion.create(job=row, version=row.version, snapshot=job.to_snapshot(), created_by=actor)
    await record_event(
        Outbox, events.job_created(row, step_count=len(job.steps), target_ids=job.target_ids, actor=actor)
    )
    return row


async def update_job(
    job_id: str, job: ValidJob, *, based_on: int, expected_version: int | None, actor: str | None
) -> tuple[Job, bool] | None:
    """Replace the definition; ``(row, changed)``. ``None`` when there is no such live job.

    ``based_on`` is the version the patch was merged onto; when another edit landed in between,
    or ``expected_version`` is not current, it is a ``VersionConflictError`` (no lost update).
    An edit that changes nothing keeps the version.
    """
    key = parse_id(job_id)
    if key is None:
        return None
    row = await Job.filter(id=key, is_deleted=False).select_for_update().first()
    if row is None:
        return None
    if expected_version is not None and expected_version != row.version:
        raise VersionConflictError(expected_version, row.version)
    if based_on != row.version:
        raise VersionConflictError(based_on, row.version)
    await row.fetch_related("steps", "targets")
    before = valid_from_model(row).to_snapshot()
    if before == job.to_snapshot():
        return row, False
    if not await JobVersion.filter(job_id=row.id, version=row.version).exists():
        # A job stored before versions existed (or imported): keep what it was before the edit.
        await JobVersion.create(job=row, version=row.version, snapshot=before, created_by=row.created_by)
    await JobStep.filter(job_id=row.id).delete()
    await JobTarget.filter(job_id=row.id).delete()
    row.name = job.name
    row.description = job.description  # type: ignore[assignment]  # nullable column, stub types it str
    row.policy = policy_with_defaults(job.policy)
    row.parameters = [p.to_json() for p in job.parameters]
    row.target_selector = job.target_selector
    row.version += 1
    await row.save()
    await _write_definition(row, job)
    await JobVersion.create(job=row, version=row.version, snapshot=job.to_snapshot(), created_by=actor)
    await record_event(
        Outbox, events.job_updated(row, step_count=len(job.steps), target_ids=job.target_ids, actor=actor)
    )
    return row, True


async def delete_job(job_id: str, *, actor: str | None) -> Job | None:
    """Soft-delete; ``None`` when there is no such live job."""
    key = parse_id(job_id)
    if key is None:
        return None
    row = await Job.filter(id=key, is_deleted=False).select_for_update().first()
    if row is None:
        return None
    row.is_deleted = True
    row.deleted_at = datetime.now(UTC)
    await row.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    await record_event(Outbox, events.job_deleted(row, actor=actor))
    return row


# ---- reads ------------------------------------------------------------------------------------


async def get_job(job_id: str) -> Job | None:
    return (await live_jobs_by_id([job_id])).get(str(parse_id(job_id)))


async def job_versions(job_id: str) -> list[JobVersion]:
    """Every version of a live job, newest first (empty for unknown or deleted jobs)."""
    key = parse_id(job_id)
    if key is None:
        return []
    return list(await JobVersion.filter(job_id=key, job__is_deleted=False).order_by("-version"))


@dataclass
class JobPage:
    rows: list[Job]
    has_next: bool
    total: int


async def list_jobs(*, first: int, after: int | None, search: str | None) -> JobPage:
    """Newest first, keyset-paged on the job number (``after`` is the last number seen)."""
    base = Job.filter(is_deleted=False)
    term = (search or "").strip()
    if term:
        base = base.filter(
            Q(name__icontains=term) | Q(serial__icontains=term) | Q(description__icontains=term)
        )
    total = await base.count()
    page = base.order_by("-number")
    if after is not None:
        page = page.filter(number__lt=after)
    rows = await page.limit(first + 1).prefetch_related("steps", "targets")
    return JobPage(rows=list(rows[:first]), has_next=len(rows) > first, total=total)

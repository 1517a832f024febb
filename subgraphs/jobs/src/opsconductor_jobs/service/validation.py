"""Validation of a job definition: a ``JobDraft`` becomes a ``ValidJob`` or a ``ValidationError``
naming the input field (``steps[1].transfer.destination``), first problem wins. Pure.

The limits are here; the defaults are :mod:`opsconductor_shared.runplan`'s.
"""

from __future__ import annotations

import re
from typing import Any, cast

from opsconductor_jobs.service.definition import JobDraft, PolicyDraft, SelectorDraft, StepDraft, ValidJob
from opsconductor_jobs.service.render import placeholders, validate_parameters
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.runplan import (
    CONCURRENCY,
    DEFAULT_STEP_TIMEOUT_SECONDS,
    DIRECTIONS,
    INTERPRETERS,
    STEP_TYPES,
    Concurrency,
    EnvVar,
    Interpreter,
    Policy,
    Script,
    Step,
    StepType,
    Transfer,
)

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

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MODE = re.compile(r"^0?[0-7]{3}$|^[0-7]{4}$")
ABSOLUTE_PATH = re.compile(r"^(?:/|[A-Za-z]:[\\/])")


# ---- validation -------------------------------------------------------------------------------


def _in_range(value: float, bounds: tuple[float, float], what: str, field_name: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high} (got {value})", field=field_name)


def check_size(text: str, limit: int, what: str, field_name: str) -> None:
    size = len(text.encode())
    if size > limit:
        raise ValidationError(f"{what} is {size} bytes; the limit is {limit} bytes", field=field_name)


def check_path(path: str | None, what: str, field_name: str, *, required: bool = True) -> None:
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


def _validate_step(index: int, step: StepDraft) -> Step:
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
    script: Script | None = None
    transfer: Transfer | None = None
    if step_type == "command":
        if not command.strip():
            raise ValidationError(f"{label}: command must not be empty", field=f"{path}.command")
        check_size(command, COMMAND_MAX_BYTES, f"{label}: command", f"{path}.command")
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
        check_size(step.script.body, SCRIPT_MAX_BYTES, f"{label}: script body", f"{path}.script.body")
        arguments = list(step.script.arguments or [])
        if len(arguments) > ARGUMENTS_MAX:
            raise ValidationError(
                f"{label}: at most {ARGUMENTS_MAX} arguments", field=f"{path}.script.arguments"
            )
        for a_index, argument in enumerate(arguments):
            where = f"{path}.script.arguments[{a_index}]"
            if "\x00" in argument:
                raise ValidationError(f"{label}: arguments must not contain NUL", field=where)
            check_size(argument, ARGUMENT_MAX_BYTES, f"{label}: argument {a_index + 1}", where)
        script = Script(
            interpreter=cast(Interpreter, step.script.interpreter),
            body=step.script.body,
            arguments=tuple(arguments),
        )
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
            check_path(t.destination, f"{label}: destination", f"{tpath}.destination")
            if t.content is None:
                raise ValidationError(f"{label}: an upload needs content", field=f"{tpath}.content")
            check_size(t.content, CONTENT_MAX_BYTES, f"{label}: content", f"{tpath}.content")
            if t.source is not None:
                raise ValidationError(
                    f"{label}: an upload takes content, not a source", field=f"{tpath}.source"
                )
            if t.mode is not None and not MODE.match(t.mode):
                raise ValidationError(
                    f"{label}: mode must be octal like 0644 or 0755 (got {t.mode!r})", field=f"{tpath}.mode"
                )
        else:
            check_path(t.source, f"{label}: source", f"{tpath}.source")
            if not (t.destination or "").strip() or len(t.destination) > NAME_MAX:
                raise ValidationError(
                    f"{label}: destination (a label for the downloaded output) must be 1..{NAME_MAX} characters",
                    field=f"{tpath}.destination",
                )
            if t.content is not None or t.mode is not None:
                raise ValidationError(f"{label}: a download has no content or mode", field=f"{tpath}.content")
        transfer = Transfer.model_validate(
            {
                "direction": t.direction,
                "destination": t.destination,
                "source": t.source,
                "content": t.content,
                "mode": t.mode,
            }
        )
    check_path(
        step.working_directory, f"{label}: workingDirectory", f"{path}.workingDirectory", required=False
    )
    env: list[EnvVar] = []
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
        check_size(value, ENV_VALUE_MAX_BYTES, f"{label}: value of {env_name}", f"{where}.value")
        env.append(EnvVar(name=env_name, value=value))
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
    return Step(
        order=index + 1,
        name=step_name,
        command=command,
        timeout_seconds=timeout,
        continue_on_error=bool(step.continue_on_error),
        type=cast(StepType, step_type),
        working_directory=step.working_directory or None,
        env=tuple(env),
        expected_exit_codes=tuple(codes),
        script=script,
        transfer=transfer,
    )


def _step_templates(step: Step, path: str) -> list[tuple[str, str]]:
    """Every text of a step that may hold ``{{ placeholders }}``, with its input path."""
    out: list[tuple[str, str]] = [(f"{path}.command", step.command)]
    if step.working_directory:
        out.append((f"{path}.workingDirectory", step.working_directory))
    out += [(f"{path}.env[{i}].value", e.value) for i, e in enumerate(step.env)]
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


def _validate_policy(draft: JobDraft) -> Policy:
    """The policy with the given fields checked; what is not given keeps ``runplan.Policy``'s default."""
    p = draft.policy or PolicyDraft()
    given: dict[str, Any] = {}
    max_parallel = p.max_parallel if p.max_parallel is not None else draft.max_parallel
    if max_parallel is not None:
        _in_range(max_parallel, MAX_PARALLEL_RANGE, "maxParallel", "policy.maxParallel")
        given["max_parallel"] = max_parallel
    if p.batch_size is not None and p.batch_percent is not None:
        raise ValidationError("give batchSize or batchPercent, not both", field="policy.batchPercent")
    for key, value, bounds, name in (
        ("batch_size", p.batch_size, BATCH_SIZE_RANGE, "batchSize"),
        ("batch_percent", p.batch_percent, BATCH_PERCENT_RANGE, "batchPercent"),
        ("fail_fast_threshold", p.fail_fast_threshold, FAIL_FAST_RANGE, "failFastThreshold"),
        ("retries", p.retries, RETRIES_RANGE, "retries"),
        ("retry_backoff_seconds", p.retry_backoff_seconds, BACKOFF_RANGE, "retryBackoffSeconds"),
        ("timeout_seconds", p.timeout_seconds, RUN_TIMEOUT_RANGE, "timeoutSeconds"),
    ):
        if value is not None:
            _in_range(value, bounds, name, f"policy.{name}")
            given[key] = value
    if p.concurrency is not None:
        if p.concurrency not in CONCURRENCY:
            raise ValidationError(
                f"concurrency must be one of {', '.join(CONCURRENCY)}", field="policy.concurrency"
            )
        given["concurrency"] = cast(Concurrency, p.concurrency)
    if p.allow_host_overlap is not None:
        given["allow_host_overlap"] = bool(p.allow_host_overlap)
    return Policy.model_validate(given)


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

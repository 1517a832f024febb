"""Planning a run: render the steps with the run's parameters (quoted per language), check what
rendering produced, scan for dangerous commands, resolve the targets: a ``RunPlan``
(:mod:`opsconductor_shared.runplan`, the one plan shape) plus the findings beside it.

Rendering and the scan are CPU work on up to megabytes: they run in a worker thread with a
deadline (review C1, :func:`scan_in_thread`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opsconductor_jobs.service import danger, paramguard
from opsconductor_jobs.service.definition import JobDraft, ValidJob, valid_from_model
from opsconductor_jobs.service.deps import Deps
from opsconductor_jobs.service.directory import resolve_targets
from opsconductor_jobs.service.render import as_text, preview_values, quoter_for, render, resolve_parameters
from opsconductor_jobs.service.store import get_job, stored_version
from opsconductor_jobs.service.validation import (
    COMMAND_MAX_BYTES,
    CONTENT_MAX_BYTES,
    SCRIPT_MAX_BYTES,
    check_path,
    check_size,
    validate_job,
)
from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_shared.runplan import EnvVar, RunPlan, Step

T = TypeVar("T")


def render_step(step: Step, values: Mapping[str, str]) -> Step:
    """Substitute parameters: quoted as literals in code, raw in arguments, paths, env and content."""
    code = quoter_for(step.type, step.script.interpreter if step.script else None)

    def raw(text: str | None) -> str | None:
        return None if text is None else render(text, values)

    script = step.script
    if script is not None:
        script = script.model_copy(
            update={
                "body": render(script.body, values, code),
                "arguments": tuple(render(a, values) for a in script.arguments),
            }
        )
    transfer = step.transfer
    if transfer is not None:
        transfer = transfer.model_copy(
            update={
                "destination": render(transfer.destination, values),
                "source": raw(transfer.source),
                "content": raw(transfer.content),
            }
        )
    return step.model_copy(
        update={
            "command": render(step.command, values, code),
            "working_directory": raw(step.working_directory),
            "env": tuple(EnvVar(name=e.name, value=render(e.value, values)) for e in step.env),
            "script": script,
            "transfer": transfer,
        }
    )


def check_rendered(steps: Sequence[Step]) -> None:
    """Rendered steps still obey the limits; paths built from parameters must now be absolute."""
    for index, step in enumerate(steps):
        path, label = f"steps[{index}]", f"step {index + 1}"
        if step.type == "command":
            check_size(step.command, COMMAND_MAX_BYTES, f"{label}: command", f"{path}.command")
        if step.script:
            check_size(step.script.body, SCRIPT_MAX_BYTES, f"{label}: script body", f"{path}.script.body")
        check_path(
            step.working_directory, f"{label}: workingDirectory", f"{path}.workingDirectory", required=False
        )
        if step.transfer and step.transfer.direction == "upload":
            check_path(step.transfer.destination, f"{label}: destination", f"{path}.transfer.destination")
            check_size(
                step.transfer.content or "",
                CONTENT_MAX_BYTES,
                f"{label}: content",
                f"{path}.transfer.content",
            )
        elif step.transfer:
            check_path(step.transfer.source, f"{label}: source", f"{path}.transfer.source")


def danger_texts(step: Step) -> list[tuple[str, str]]:
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
    steps: Sequence[Step], rules: tuple[danger.Rule, ...], *, deadline: float | None = None
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


@dataclass(frozen=True)
class Plan:
    """A run plan and, beside it, the dangerous-command findings on its rendered steps (the
    findings decide the gate in executions; they are not part of what the engine runs)."""

    run: RunPlan
    dangerous: list[danger.Finding]


async def plan_job(
    *,
    job_id: str,
    parameters: Any,
    target_ids: Sequence[str] | None,
    deps: Deps,
    version: int | None = None,
    check_ids: bool = True,
) -> Plan:
    """What a run of the job's current version would do: the rendered steps, resolved targets,
    effective parameters and dangerous-command findings. Reads only; no transaction needed.

    ``version`` plans an older stored version instead (a retry re-runs what the first run ran).
    ``check_ids=False``: the explicit target ids are not checked with the targets service (a run's
    connection grant does that; selectors are still resolved there).
    """
    row = await get_job(job_id=job_id)
    if row is None:
        raise NotFoundError(f"job {job_id} not found", id=job_id)
    if parameters is not None and not isinstance(parameters, Mapping):
        raise ValidationError("parameters must be a JSON object", field="parameters")
    if version is None or version == row.version:
        job, planned_version = valid_from_model(row), row.version
    else:
        stored = await stored_version(job_id=str(row.id), version=version)
        if stored is None:
            raise NotFoundError(f"job {row.serial} has no version {version}", id=job_id)
        job, planned_version = stored, version
    values = resolve_parameters(job.parameters, parameters)
    texts = {name: as_text(value) for name, value in values.items()}
    paramguard.check_values(job.steps, texts)  # M14, H7: values where quoting cannot help
    # Rendering and the dangerous-command scan are CPU work on up to megabytes: off the loop.
    steps, findings = await scan_in_thread(
        _render_and_scan, job, texts, deps.rules, timeout=deps.scan_timeout_seconds
    )
    targets = await resolve_targets(
        directory=deps.targets, job=job, requested=target_ids, check_ids=check_ids
    )
    unsafe = paramguard.cmd_unsafe(job.steps, texts)
    if unsafe and targets and await deps.targets.windows(targets):
        raise ValidationError(
            f"parameter {unsafe[0]!r}: its value contains a character cmd.exe reads as syntax "
            '(& | < > ^ % " ( ) ! or a line break) and a command step runs it on a Windows target; '
            "pass it to a script step as an argument instead",
            field=f"parameters.{unsafe[0]}",
        )
    run = RunPlan(
        job_id=str(row.id),
        serial=row.serial,
        name=job.name,
        version=planned_version,
        steps=tuple(steps),
        target_ids=tuple(targets),
        policy=job.policy,
        parameters=values,
    )
    return Plan(run=run, dangerous=findings)


def _render_and_scan(
    job: ValidJob, values: Mapping[str, str], rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> tuple[list[Step], list[danger.Finding]]:
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


def _validate_and_scan(
    draft: JobDraft, rules: tuple[danger.Rule, ...], *, deadline: float | None = None
) -> tuple[ValidJob, list[danger.Finding]]:
    valid = validate_job(draft)
    return valid, preview_dangerous(valid, rules, deadline=deadline)


async def check_definition(*, draft: JobDraft, deps: Deps) -> tuple[ValidJob, list[danger.Finding]]:
    """Validate a definition and scan it (rendered with defaults) for dangerous commands, in a
    thread and bounded in time (C1). createJob and updateJob scan too (and drop the findings): the
    same input costs the same everywhere, and a definition too large to check is refused when saved.
    """
    return await scan_in_thread(_validate_and_scan, draft, deps.rules, timeout=deps.scan_timeout_seconds)

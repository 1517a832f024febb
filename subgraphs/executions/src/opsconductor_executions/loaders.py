"""DataLoaders (one per request, in ``RequestContext.loaders``): rows the types resolve in bulk;
and the target-run page query the types share."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_executions.models import Execution, ExecutionEvent, StepResult, TargetRun
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.paging import decode_cursor

CHUNK = 1000


def _loader(loaders: dict[str, Any], name: str, load: Any) -> DataLoader[Any, Any]:
    loader = loaders.get(name)
    if loader is None:
        loader = loaders[name] = DataLoader(load_fn=load)
    return loader


async def _load_steps(run_ids: list[int]) -> list[list[StepResult]]:
    by_run: dict[int, list[StepResult]] = {i: [] for i in run_ids}
    for chunk in range(0, len(run_ids), CHUNK):
        part = run_ids[chunk : chunk + CHUNK]
        for row in await StepResult.filter(target_run_id__in=part).order_by("target_run_id", "step_index"):
            by_run[row.target_run_id].append(row)  # type: ignore[attr-defined]
    return [by_run[i] for i in run_ids]


async def _load_executions(ids: list[str]) -> list[Execution]:
    rows = {r.id: r for r in await Execution.filter(id__in=list(set(ids)))}
    return [rows[i] for i in ids]


StepOutput = dict[tuple[int, str], str]
"""A target's output in one run: (step index, STDOUT | STDERR) -> text."""


async def _load_output(keys: list[tuple[str, str]]) -> list[StepOutput]:
    by_key: dict[tuple[str, str], StepOutput] = {k: {} for k in keys}
    executions = sorted({e for e, _ in keys})
    targets = sorted({t for _, t in keys})
    for chunk in range(0, len(targets), CHUNK):
        rows = (
            await ExecutionEvent.filter(
                execution_id__in=executions,
                target_id__in=targets[chunk : chunk + CHUNK],
                type__in=["STDOUT", "STDERR"],
            )
            .order_by("seq")
            .values_list("execution_id", "target_id", "step_index", "type", "data")
        )
        parts: dict[tuple[str, str], dict[tuple[int, str], list[str]]] = {}
        for execution_id, target_id, index, kind, data in rows:
            key = (str(execution_id), str(target_id))
            if key in by_key and data:
                parts.setdefault(key, {}).setdefault((int(index), str(kind)), []).append(str(data))
        for key, streams in parts.items():
            by_key[key].update({stream: "".join(texts) for stream, texts in streams.items()})
    return [by_key[k] for k in keys]


def step_output(loaders: dict[str, Any]) -> DataLoader[tuple[str, str], StepOutput]:
    """A target's step output in a run, from the event rows (the one stored copy), keyed
    (execution id, target id): one query per request for all the target runs asked for."""
    return _loader(loaders, "executions.output", _load_output)


def step_results(loaders: dict[str, Any]) -> DataLoader[int, list[StepResult]]:
    """A target run's step results, in order (one query per request for all runs asked for)."""
    return _loader(loaders, "executions.steps", _load_steps)


def executions(loaders: dict[str, Any]) -> DataLoader[str, Execution]:
    """Runs by id (one query per request, not one per row with its plan, M8)."""
    return _loader(loaders, "executions.by_id", _load_executions)


def target_runs_query(execution_id: str, after: str | None, status: str | None) -> Any:
    """A run's target runs in id order after the cursor ``after``, optionally of one status."""
    query = TargetRun.filter(execution_id=execution_id)
    key = decode_cursor(after, "tr")
    if key is not None:
        if not key.isdigit():
            raise ValidationError("invalid cursor", field="after")
        query = query.filter(id__gt=int(key))
    if status:
        query = query.filter(status=status)
    return query.order_by("id")

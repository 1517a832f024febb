"""DataLoaders (one per request, in ``RequestContext.loaders``): rows the types resolve in bulk."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_executions.models import Execution, StepResult

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


def step_results(loaders: dict[str, Any]) -> DataLoader[int, list[StepResult]]:
    """A target run's step results, in order (one query per request for all runs asked for)."""
    return _loader(loaders, "executions.steps", _load_steps)


def executions(loaders: dict[str, Any]) -> DataLoader[str, Execution]:
    """Runs by id (one query per request, not one per row with its plan, M8)."""
    return _loader(loaders, "executions.by_id", _load_executions)

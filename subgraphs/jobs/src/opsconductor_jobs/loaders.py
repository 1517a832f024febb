"""DataLoaders of the jobs subgraph, built per request (kept in ``RequestContext.loaders``)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_jobs import models
from opsconductor_shared.app import RequestContext


def job_loader(context: RequestContext[Any, Any]) -> DataLoader[str, models.Job | None]:
    """One loader per request, so `_entities` for many jobs costs one query (plus prefetches)."""
    loaders = context.loaders
    if "jobs" not in loaders:

        async def load(ids: list[str]) -> list[models.Job | None]:
            found = await models.live_jobs_by_id(ids)
            return [found.get(i) for i in ids]

        loaders["jobs"] = DataLoader(load_fn=load)
    return loaders["jobs"]

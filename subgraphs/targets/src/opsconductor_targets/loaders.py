"""DataLoaders of the targets subgraph, one per request (kept in the request context)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_targets import models
from opsconductor_targets.service.reads import get_targets


async def _load_host_keys(ids: list[str]) -> list[models.KnownHostKey | None]:
    rows = {r.method_id: r for r in await models.KnownHostKey.filter(method_id__in=ids)}
    return [rows.get(i) for i in ids]


async def _load_targets(ids: list[str]) -> list[models.Target | None]:
    rows = {t.id: t for t in await get_targets(ids, include_inactive=True)}
    return [rows.get(i) for i in ids]


def host_keys(context: Any) -> DataLoader[str, models.KnownHostKey | None]:
    """The trusted host key by method id (``CommunicationMethod.hostKey``)."""
    loaders: dict[str, Any] = context.loaders
    if "targets.host_key" not in loaders:
        loaders["targets.host_key"] = DataLoader(load_fn=_load_host_keys)
    return loaders["targets.host_key"]


def targets(context: Any) -> DataLoader[str, models.Target | None]:
    """Targets by id, deleted ones included (federation references)."""
    loaders: dict[str, Any] = context.loaders
    if "targets.target" not in loaders:
        loaders["targets.target"] = DataLoader(load_fn=_load_targets)
    return loaders["targets.target"]

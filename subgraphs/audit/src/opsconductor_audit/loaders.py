"""DataLoaders of the audit subgraph, one set per request (kept in ``RequestContext.loaders``)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_audit import service
from opsconductor_audit.models import AuditEvent
from opsconductor_shared.app import RequestContext

_EVENT_LOADER = "audit.by_id"


async def _load_events(ids: list[str]) -> list[AuditEvent | None]:
    return await service.load_events(ids)


async def load_event(context: RequestContext[Any, Any], event_id: str) -> AuditEvent | None:
    """One audit event by id, batched per request (``_entities``)."""
    loader: DataLoader[str, AuditEvent | None] | None = context.loaders.get(_EVENT_LOADER)
    if loader is None:
        loader = context.loaders[_EVENT_LOADER] = DataLoader(load_fn=_load_events)
    return await loader.load(event_id)

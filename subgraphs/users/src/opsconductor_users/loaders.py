"""DataLoaders of the users subgraph, one set per request (kept in ``RequestContext.loaders``)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_shared.app import RequestContext
from opsconductor_users import service

_USER_LOADER = "users.by_id"


async def _load_users(ids: list[str]) -> list[service.UserRecord | None]:
    return await service.load_users(ids=ids)


async def load_user(context: RequestContext[Any, Any], user_id: str) -> service.UserRecord | None:
    """One user by id, soft-deleted ones included (marked ``deleted``): batched, one query for all
    ids resolved in the same tick of the request (``user``, ``_entities``)."""
    loader: DataLoader[str, service.UserRecord | None] | None = context.loaders.get(_USER_LOADER)
    if loader is None:
        loader = context.loaders[_USER_LOADER] = DataLoader(load_fn=_load_users)
    return await loader.load(user_id)

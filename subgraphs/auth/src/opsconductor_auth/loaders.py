"""DataLoaders of the auth subgraph, one per request (kept in ``RequestContext.loaders``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader

from opsconductor_auth import service


def last_seen(loaders: dict[str, Any]) -> DataLoader[str, datetime | None]:
    """Each user's latest session activity: a page of users asks once (one grouped query)."""
    loader = loaders.get("auth.last_seen")
    if loader is None:
        loader = loaders["auth.last_seen"] = DataLoader[str, datetime | None](load_fn=service.last_seen)
    return loader

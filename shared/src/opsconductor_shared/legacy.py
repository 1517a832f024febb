"""What every subgraph's legacy-import functions share: ids derived from legacy ids, and an upsert
that writes only what differs (so a second import run changes nothing and a killed run resumes).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from tortoise.models import Model

__all__ = ["LEGACY_NAMESPACE", "Outcome", "aware", "legacy_uuid", "upsert"]

LEGACY_NAMESPACE = uuid.UUID("2f0c6d4e-8a51-4c1b-9d0e-5b7a3c9e1f20")

M = TypeVar("M", bound=Model)


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def legacy_uuid(table: str, legacy_id: object) -> uuid.UUID:
    """The stable id of a legacy row (``uuid5`` of ``table:id``): the same on every run."""
    return uuid.uuid5(LEGACY_NAMESPACE, f"{table}:{legacy_id}")


def aware(value: datetime | None) -> datetime | None:
    """A legacy timestamp as an aware UTC datetime (naive values are UTC in the monolith)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _same(old: object, new: object) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        return aware(old) == aware(new)
    if isinstance(old, uuid.UUID) or isinstance(new, uuid.UUID):
        return str(old) == str(new)
    return old == new


async def upsert(model: type[M], key: dict[str, Any], values: dict[str, Any]) -> tuple[M, Outcome]:
    """Create the row with ``key`` and ``values``, or change only the fields that differ (in the
    caller's transaction). Unchanged rows are not saved (``auto_now`` fields stay as they are)."""
    row = await model.get_or_none(**key)
    if row is None:
        return await model.create(**key, **values), Outcome.CREATED
    changed = [name for name, value in values.items() if not _same(getattr(row, name), value)]
    if not changed:
        return row, Outcome.UNCHANGED
    for name in changed:
        setattr(row, name, values[name])
    await row.save(update_fields=changed)
    return row, Outcome.UPDATED

"""Relay connections (`edges { node cursor }`, `pageInfo`, `first`/`after`) for every list.

Cursors are opaque base64 of the row offset; ``Connection[T]`` names itself ``TConnection``
(``ExecutionConnection``...). ``PageInfo`` is shareable because every subgraph defines it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from opsconductor_shared.errors import ValidationError

T = TypeVar("T")
MAX_PAGE = 500


@strawberry.federation.type(shareable=True, description="Relay page information.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool = False
    start_cursor: str | None = None
    end_cursor: str | None = None


@strawberry.type
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        kind, _, value = raw.partition(":")
        if kind != "o":
            raise ValueError(kind)
        return int(value) + 1
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("invalid cursor", field="after") from exc


def check_first(first: int | None, default: int = 50) -> int:
    value = default if first is None else first
    if value < 0 or value > MAX_PAGE:
        raise ValidationError(f"first must be between 0 and {MAX_PAGE}", field="first")
    return value


async def paginate(
    queryset: Any, *, first: int | None, after: str | None, convert: Callable[[Any], T]
) -> Connection[T]:
    """Page a tortoise queryset (already filtered and ordered)."""
    limit = check_first(first)
    offset = decode_cursor(after)
    total = await queryset.count()
    rows: Sequence[Any] = await queryset.offset(offset).limit(limit + 1)
    has_next = len(rows) > limit
    rows = rows[:limit]
    edges = [Edge(node=convert(row), cursor=encode_cursor(offset + i)) for i, row in enumerate(rows)]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=offset > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )

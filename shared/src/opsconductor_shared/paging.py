"""Relay connections (`edges { node cursor }`, `pageInfo`, `first`/`after`) for every list.

``Connection[T]`` names itself ``TConnection`` (``TargetConnection`` ...). ``PageInfo`` is
shareable because every subgraph defines it. Cursors are opaque to clients: base64url of
``<kind>1:<key>`` where the key is what the list is ordered by (keyset paging, stable while rows
are added: :func:`build_connection`), or a row offset for small lists (:func:`paginate`).
A malformed cursor is a validation error, never a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import strawberry

from opsconductor_shared.errors import ValidationError

T = TypeVar("T")
R = TypeVar("R")
MAX_PAGE = 500


@strawberry.federation.type(shareable=True, description="Where a page sits in the whole list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow; pass `endCursor` as `after`.")
    has_previous_page: bool = strawberry.field(description="This page was requested with `after`.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge (null when empty).")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge (null when empty).")


@strawberry.type(description="One item of a page, with the cursor that points at it.")
class Edge(Generic[T]):
    node: T
    cursor: str = strawberry.field(description="Opaque; pass as `after` to continue after this item.")


@strawberry.type(description="A page of a list (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Items matching the filter, over all pages.")


def encode_cursor(key: str, kind: str = "k") -> str:
    return base64.urlsafe_b64encode(f"{kind}1:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str = "k", *, field: str = "after") -> str | None:
    """The key inside a cursor (``None`` for no cursor); ValidationError if it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("invalid cursor", field=field) from None
    prefix = f"{kind}1:"
    if not text.startswith(prefix) or len(text) == len(prefix):
        raise ValidationError("invalid cursor", field=field)
    return text[len(prefix) :]


def check_first(first: int | None, default: int = 50, maximum: int = MAX_PAGE) -> int:
    if first is None:
        return default
    if not 0 <= first <= maximum:
        raise ValidationError(f"first must be between 0 and {maximum}", field="first")
    return first


def build_connection(
    rows: Sequence[R],
    *,
    node: Callable[[R], T],
    key: Callable[[R], str],
    has_next: bool,
    total: int,
    has_previous: bool | None = None,
    after: str | None = None,
    kind: str = "k",
) -> Connection[T]:
    """A page from rows already fetched in list order (keyset paging)."""
    edges = [Edge(node=node(r), cursor=encode_cursor(key(r), kind)) for r in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous if has_previous is not None else after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )


async def paginate(
    queryset: Any, *, first: int | None, after: str | None, convert: Callable[[Any], T]
) -> Connection[T]:
    """Offset paging of a tortoise queryset (already filtered and ordered)."""
    limit = check_first(first)
    key = decode_cursor(after, "o")
    if key is not None and not key.isdigit():
        raise ValidationError("invalid cursor", field="after")
    offset = int(key) + 1 if key is not None else 0
    total = await queryset.count()
    rows: Sequence[Any] = await queryset.offset(offset).limit(limit + 1)
    page = list(rows[:limit])
    return build_connection(
        page,
        node=convert,
        key=lambda row: str(offset + page.index(row)),
        has_next=len(rows) > limit,
        has_previous=offset > 0,
        total=total,
        kind="o",
    )

"""Relay cursor connections: ``edges { node cursor } pageInfo { ... } totalCount``.

Cursors are opaque (base64url of a versioned key); services page by keyset ("after this id"),
never by offset, so a page stays stable while rows are added.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from opsconductor_shared.errors import ValidationError

T = TypeVar("T")
R = TypeVar("R")

MAX_PAGE = 500


@strawberry.federation.type(shareable=True, description="Where a page sits in the whole list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow `endCursor`.")
    has_previous_page: bool = strawberry.field(
        description="Items precede `startCursor` (forward paging: true when `after` was given)."
    )
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge of this page.")
    end_cursor: str | None = strawberry.field(description="Pass as `after` to get the next page.")


@strawberry.type(description="One item of a connection with its cursor.")
class Edge(Generic[T]):
    node: T
    cursor: str


@strawberry.type(description="A page of items (Relay connection).")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Items matching the filter, over all pages.")


def encode_cursor(key: str, kind: str = "k") -> str:
    return base64.urlsafe_b64encode(f"{kind}1:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: str = "k") -> str | None:
    """The key inside a cursor; ValidationError(field='after') if it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("invalid cursor", field="after") from None
    prefix = f"{kind}1:"
    if not text.startswith(prefix):
        raise ValidationError("invalid cursor", field="after")
    return text[len(prefix) :]


def check_first(first: int | None, default: int = 50) -> int:
    if first is None:
        return default
    if not 0 <= first <= MAX_PAGE:
        raise ValidationError(f"first must be between 0 and {MAX_PAGE}", field="first")
    return first


def build_connection(
    rows: Sequence[R],
    *,
    has_next: bool,
    total: int,
    after: str | None,
    key: Callable[[R], str],
    node: Callable[[R], T],
    kind: str = "k",
) -> Connection[T]:
    edges = [Edge(node=node(r), cursor=encode_cursor(key(r), kind)) for r in rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        total_count=total,
    )

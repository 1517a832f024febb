"""Relay connection helpers: PageInfo, generic Edge/Connection, opaque cursors.

Generic on purpose (nothing here knows about users) so it can move to the shared library.
Cursors are opaque to clients: base64url of ``v1:<key>``, where the key is whatever the service
keysets on (here the UUIDv7 id). A malformed cursor is a validation error, never a 500.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry

from opsconductor_shared.errors import ValidationError

NodeT = TypeVar("NodeT")
ItemT = TypeVar("ItemT")

_PREFIX = "v1:"


@strawberry.federation.type(shareable=True, description="Where a page sits in the whole list (Relay).")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow; pass `endCursor` as `after`.")
    has_previous_page: bool = strawberry.field(description="This page was requested with `after`.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first edge (null when empty).")
    end_cursor: str | None = strawberry.field(description="Cursor of the last edge (null when empty).")


@strawberry.type(description="One item of a page, with the cursor that points at it.")
class Edge(Generic[NodeT]):
    node: NodeT
    cursor: str = strawberry.field(description="Opaque; pass as `after` to continue after this item.")


@strawberry.type(description="A page of a list (Relay connection).")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Items matching the filter, over all pages.")


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, *, field: str = "after") -> str | None:
    """The key inside a cursor; ``None`` for no cursor. Raises ValidationError when malformed."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError("malformed cursor", field=field) from exc
    if not raw.startswith(_PREFIX) or len(raw) == len(_PREFIX):
        raise ValidationError("malformed cursor", field=field)
    return raw[len(_PREFIX) :]


def build_connection(
    items: Sequence[ItemT],
    *,
    node: Callable[[ItemT], NodeT],
    key: Callable[[ItemT], str],
    has_next: bool,
    has_previous: bool,
    total: int,
) -> Connection[NodeT]:
    edges = [Edge(node=node(item), cursor=encode_cursor(key(item))) for item in items]
    return Connection(
        edges=edges,
        total_count=total,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=has_previous,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )

"""Relay connection helpers: keyset cursors and the `first` bound (``PageInfo`` is the shared one).

Cursors are base64 of ``<kind>:<key>``: clients must treat them as opaque; the key is whatever the
list is ordered by (for jobs, the counter number), which makes paging keyset-based and stable
while rows are added.
"""

from __future__ import annotations

import base64
import binascii

from opsconductor_shared.errors import PublicGraphQLError
from opsconductor_shared.paging import MAX_PAGE, PageInfo

__all__ = ["PageInfo", "decode_int_cursor", "encode_cursor", "page_size"]


def bad_input(message: str) -> PublicGraphQLError:
    return PublicGraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def encode_cursor(kind: str, key: int | str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> str:
    """The key inside a cursor made by :func:`encode_cursor`; a foreign or mangled one is bad input."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_input("invalid cursor") from exc
    prefix, sep, key = raw.partition(":")
    if prefix != kind or not sep or not key:
        raise bad_input("invalid cursor")
    return key


def decode_int_cursor(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    key = decode_cursor(kind, cursor)
    if not key.isdigit():
        raise bad_input("invalid cursor")
    return int(key)


def page_size(first: int | None, default: int = 50) -> int:
    if first is None:
        return default
    if not 0 <= first <= MAX_PAGE:
        raise bad_input(f"`first` must be between 0 and {MAX_PAGE}")
    return first

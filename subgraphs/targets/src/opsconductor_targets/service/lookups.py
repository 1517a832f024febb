"""Client-given lookup values (filter strings, ids, cursors) made safe for the ORM (review FUZZ-1..3).

tortoise validates a filter value against its column before it builds the SQL: an exact, ``in``,
``gt``/``lt`` value longer than the column's ``max_length`` raises ``tortoise.exceptions.
ValidationError``, which the GraphQL layer would mask as "Internal server error". And PostgreSQL
text cannot hold NUL, so asyncpg fails on any value containing one. No stored row can hold such a
value, so a lookup by it simply matches nothing: these helpers tell which values can match, and the
callers drop the others (or answer a typed error where the value is a malformed cursor).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tortoise.models import Model


def storable(model: type[Model], field: str, value: Any) -> bool:
    """Whether ``value`` could be the content of ``model.field``: a string without NUL that fits the
    column's ``max_length`` (non-string values and unlimited columns only need no NUL)."""
    if not isinstance(value, str):
        return True
    if "\x00" in value:
        return False
    max_length = getattr(model._meta.fields_map[field], "max_length", None)
    return max_length is None or len(value) <= max_length


def storable_only(model: type[Model], field: str, values: Iterable[Any]) -> list[str]:
    """The distinct values (as strings, in the order given) that ``model.field`` could hold."""
    wanted = dict.fromkeys(str(v) for v in values)
    return [v for v in wanted if storable(model, field, v)]


def searchable(term: str) -> bool:
    """Whether a substring search for ``term`` can run at all (PostgreSQL text has no NUL)."""
    return "\x00" not in term

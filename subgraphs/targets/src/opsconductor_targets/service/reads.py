"""Reads: targets by id (methods and credentials prefetched), lookups, keyset paging, statistics,
and the column-only reads of a connection grant. Used by the rest of the service, the loaders and
the types (no strawberry here)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count

from opsconductor_shared.errors import NotFoundError, ValidationError
from opsconductor_targets.models import CommunicationMethod, Credential, Target, TargetTag
from opsconductor_targets.service.catalog import MAX_FILTER_TAGS, SORT_FIELDS
from opsconductor_targets.service.lookups import searchable, storable, storable_only
from opsconductor_targets.service.validation import TargetQuery

M = TypeVar("M", "CommunicationMethod", "GrantMethod")


def _unique(ids: Sequence[str]) -> list[str]:
    """The distinct ids in the order given, without those no target can have (longer than an id
    column, or with a NUL): those are unknown ids, never an ORM error (review FUZZ-2)."""
    return storable_only(Target, "id", ids)


async def get_targets(ids: Sequence[str], *, include_inactive: bool = False) -> list[Target]:
    """Targets with those ids in the order asked, skipping unknown (and, by default, deleted) ones.

    Methods and their credentials come prefetched (two more queries for the whole batch).
    """
    wanted = _unique(ids)
    if not wanted:
        return []
    query = Target.filter(id__in=wanted)
    if not include_inactive:
        query = query.filter(is_active=True)
    rows = {t.id: t for t in await query.prefetch_related("methods__credentials")}
    return [rows[i] for i in wanted if i in rows]


async def active_target_ids(ids: Sequence[str]) -> list[str]:
    """Those of ``ids`` that are active targets, in the order asked (one query, ids only)."""
    wanted = _unique(ids)
    if not wanted:
        return []
    found = set(await Target.filter(id__in=wanted, is_active=True).values_list("id", flat=True))
    return [i for i in wanted if i in found]


def method_order(method: CommunicationMethod | GrantMethod) -> tuple[bool, int, str]:
    """Primary first, then by priority (then id, for a stable order)."""
    return (not method.is_primary, method.priority, method.id)


def sorted_methods(target: Target) -> list[CommunicationMethod]:
    return sorted(target.methods, key=method_order)


def primary_method(target: Target) -> CommunicationMethod | None:
    """The active primary method, else the active one with the best priority."""
    return best_method(target.methods)


def best_method(methods: Iterable[M]) -> M | None:
    """Of these methods (models or a grant's columns), the one `primary_method` would choose."""
    return min((m for m in methods if m.is_active), key=method_order, default=None)


def active_credential(method: CommunicationMethod) -> Credential | None:
    creds = sorted(
        (c for c in method.credentials if c.is_active), key=lambda c: (not c.is_primary, c.created_at)
    )
    return creds[0] if creds else None


@dataclass
class GrantMethod:
    """The columns of a communication method a connection grant lists."""

    id: str
    type: str
    host: str
    port: int
    is_primary: bool
    is_active: bool
    priority: int


@dataclass
class GrantTarget:
    id: str
    name: str
    methods: list[GrantMethod] = field(default_factory=list)


METHOD_COLUMNS = ("id", "target_id", "type", "host", "port", "is_primary", "is_active", "priority")


async def grant_targets(ids: Sequence[str]) -> list[GrantTarget]:
    """Active targets with their methods, only the columns a grant lists, in the order asked.

    Two plain queries and no model objects: a 500-target grant spent most of its time turning
    every row's timestamps and JSON columns into Python values it never read.
    """
    wanted = _unique(ids)
    if not wanted:
        return []
    rows = await Target.filter(id__in=wanted, is_active=True).values("id", "name")
    found = {r["id"]: GrantTarget(id=r["id"], name=r["name"]) for r in rows}
    for m in await CommunicationMethod.filter(target_id__in=list(found)).values(*METHOD_COLUMNS):
        target_id = m.pop("target_id")
        found[target_id].methods.append(GrantMethod(**m))
    return [found[i] for i in wanted if i in found]


def grant_method(target: GrantTarget, method_id: str | None) -> GrantMethod | None:
    """The method a grant uses: the one asked for if active, else as primary_method chooses."""
    if method_id is not None:
        return next((m for m in target.methods if m.id == method_id and m.is_active), None)
    return best_method(target.methods)


async def get_target(target_id: str) -> Target:
    """The active target (methods and credentials prefetched), or NotFoundError."""
    found = await get_targets([target_id])
    if not found:
        raise NotFoundError(f"target {target_id} not found", id=target_id)
    return found[0]


def find_method(target: Target, method_id: str) -> CommunicationMethod:
    method = next((m for m in target.methods if m.id == method_id), None)
    if method is None:
        raise NotFoundError(f"communication method {method_id} not found on this target", id=method_id)
    return method


async def get_by(*, serial: str | None = None, uuid_text: str | None = None) -> Target | None:
    query = Target.filter(is_active=True)
    if serial is not None:
        if not storable(Target, "serial", serial.strip()):
            return None  # no target has such a serial (review FUZZ-1)
        query = query.filter(serial=serial.strip())
    else:
        try:
            query = query.filter(uuid=uuid.UUID(str(uuid_text)))
        except ValueError:
            return None
    row = await query.first()
    if row is None:
        return None
    found = await get_targets([row.id])
    return found[0] if found else None


def _filtered(query: TargetQuery) -> Any:
    """Active targets matching the filter. A value no row can hold (longer than its column, or
    with a NUL) matches nothing rather than reaching the ORM's validation (review FUZZ-1)."""
    base = Target.filter(is_active=True)
    nothing = Target.filter(id__in=[])
    if query.search:
        term = query.search.strip()
        if not searchable(term):
            return nothing
        host_match = Subquery(CommunicationMethod.filter(host__icontains=term).values("target_id"))
        base = base.filter(
            Q(name__icontains=term)
            | Q(serial__icontains=term)
            | Q(description__icontains=term)
            | Q(location__icontains=term)
            | Q(id__in=host_match)
        )
    if len(query.tags or []) > MAX_FILTER_TAGS:
        raise ValidationError(f"at most {MAX_FILTER_TAGS} tags in a filter", field="tags")
    exact: list[tuple[Any, str, str | None]] = [
        (Target, "os_type", query.os_type and query.os_type.strip().lower()),
        (Target, "environment", query.environment and query.environment.strip().lower()),
        (Target, "status", query.status),
        (Target, "health_status", query.health),
        (Target, "location", query.location and query.location.strip()),
        (CommunicationMethod, "type", query.method_type),
        *((TargetTag, "tag", tag.strip().lower()) for tag in query.tags or []),
    ]
    if any(value and not storable(model, name, value) for model, name, value in exact):
        return nothing
    if query.os_type:
        base = base.filter(os_type=query.os_type.strip().lower())
    if query.environment:
        base = base.filter(environment=query.environment.strip().lower())
    if query.status:
        base = base.filter(status=query.status)
    if query.health:
        base = base.filter(health_status=query.health)
    if query.location:
        base = base.filter(location__iexact=query.location.strip())
    if query.method_type:
        base = base.filter(
            id__in=Subquery(
                CommunicationMethod.filter(type=query.method_type, is_active=True).values("target_id")
            )
        )
    for tag in query.tags or []:
        base = base.filter(id__in=Subquery(TargetTag.filter(tag=tag.strip().lower()).values("target_id")))
    return base


async def list_targets(
    *, query: TargetQuery, first: int, after: str | None
) -> tuple[list[Target], bool, int]:
    """Keyset paging on (sort column, id); ``after`` is the key of the last row seen."""
    if query.sort_field not in SORT_FIELDS:
        raise ValidationError(f"cannot sort by {query.sort_field}", field="sort")
    base = _filtered(query)
    total = await base.count()
    col = query.sort_field
    page = base
    if after:
        if col == "id":
            if not storable(Target, "id", after):
                raise ValidationError("invalid cursor", field="after")
            page = base.filter(id__lt=after) if query.descending else base.filter(id__gt=after)
        else:
            try:
                raw_value, after_id = json.loads(after)
                value: Any = datetime.fromisoformat(raw_value) if col.endswith("_at") else str(raw_value)
            except (ValueError, TypeError):
                raise ValidationError("invalid cursor", field="after") from None
            if not (storable(Target, col, value) and storable(Target, "id", str(after_id))):
                raise ValidationError("invalid cursor", field="after")
            op = "lt" if query.descending else "gt"
            page = base.filter(
                Q(**{f"{col}__{op}": value}) | (Q(**{col: value}) & Q(**{f"id__{op}": str(after_id)}))
            )
    order = [f"-{col}", "-id"] if query.descending else [col, "id"]
    if col == "id":
        order = order[:1]
    rows = await page.order_by(*order).limit(first + 1).prefetch_related("methods__credentials")
    return rows[:first], len(rows) > first, total


def cursor_key(row: Target, sort_field: str) -> str:
    if sort_field == "id":
        return row.id
    value = getattr(row, sort_field)
    return json.dumps([value.isoformat() if isinstance(value, datetime) else value, row.id])


async def statistics(*, query: TargetQuery) -> dict[str, Any]:
    """Counts of (filtered) active targets by OS, environment, health and status, and of their
    active communication methods by type: GROUP BY in the database, one query per breakdown."""

    async def count(rows_of: Any, key: str) -> dict[str, int]:
        rows = await rows_of.annotate(n=Count("id")).group_by(key).values(key, "n")
        return {str(r[key]): int(r["n"]) for r in rows}

    base = _filtered(query)  # querysets are cloned by each call below, never changed
    by_status = await count(base, "status")
    methods = CommunicationMethod.filter(is_active=True, target_id__in=Subquery(base.values("id")))
    return {
        "total": sum(by_status.values()),
        "deleted": await Target.filter(is_active=False).count(),
        "by_os_type": await count(base, "os_type"),
        "by_environment": await count(base, "environment"),
        "by_health": await count(base, "health_status"),
        "by_status": by_status,
        "by_method_type": await count(methods, "type"),
    }

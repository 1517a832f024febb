"""Reads shared by the service and the GraphQL types (models only; no strawberry, no service)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from opsconductor_targets.lookups import storable_only
from opsconductor_targets.models import CommunicationMethod, Credential, Target


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


def best_method(methods: Iterable[CommunicationMethod]) -> CommunicationMethod | None:
    """Of these methods, the one `primary_method` would choose."""
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
    active = sorted((m for m in target.methods if m.is_active), key=method_order)
    return active[0] if active else None

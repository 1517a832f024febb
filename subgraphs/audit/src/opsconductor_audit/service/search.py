"""Searching the chain: the AuditFilter, keyset pages on seq (newest first), statistics, trails.

Every filter column leads an index ending in ``seq`` (models.py), so a page is an index range
scan whatever the table's size; ``text`` is a substring match over type, action, actor name,
subject id and the data (a scan: combine it with another filter or a time range on large tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count

from opsconductor_audit.models import AuditEvent
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.paging import check_first, decode_cursor

COUNT_CAP = 10_000
"""totalCount counts at most this many matches (exactly below it): a count over a million rows
per page would cost more than the page."""


@dataclass
class AuditQuery:
    types: Sequence[str] = ()
    actions: Sequence[str] = ()
    outcomes: Sequence[str] = ()
    severities: Sequence[str] = ()
    actor_id: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    correlation_id: str | None = None
    from_: datetime | None = None
    to: datetime | None = None
    text: str | None = None
    subject_ids: Sequence[str] = field(default_factory=tuple[str, ...])


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filtered(query: AuditQuery) -> Any:
    qs = AuditEvent.all()
    if query.types:
        qs = qs.filter(type__in=list(query.types))
    if query.actions:
        qs = qs.filter(action__in=list(query.actions))
    if query.outcomes:
        qs = qs.filter(outcome__in=list(query.outcomes))
    if query.severities:
        qs = qs.filter(severity__in=list(query.severities))
    if query.actor_id:
        qs = qs.filter(actor_id=query.actor_id)
    if query.subject_type:
        qs = qs.filter(subject_type=query.subject_type)
    if query.subject_id:
        qs = qs.filter(subject_id=query.subject_id)
    if query.correlation_id:
        qs = qs.filter(correlation_id=query.correlation_id)
    if query.from_:
        qs = qs.filter(at__gte=query.from_)
    if query.to:
        qs = qs.filter(at__lt=query.to)
    if query.text:
        text = query.text.strip()
        if len(text) > 200:
            raise ValidationError("text is at most 200 characters", field="filter.text")
        qs = qs.filter(
            Q(type__icontains=text)
            | Q(action__icontains=text)
            | Q(actor_name__icontains=text)
            | Q(subject_id__icontains=text)
            | Q(data__icontains=text)
        )
    return qs


@dataclass
class Page:
    rows: list[AuditEvent]
    has_next: bool
    total: int


def _after_seq(after: str | None) -> int | None:
    key = decode_cursor(after, "s")
    if key is None:
        return None
    if not key.isdigit():
        raise ValidationError("invalid cursor", field="after")
    return int(key)


async def page(query: AuditQuery, *, first: int | None, after: str | None) -> Page:
    """Newest first; ``after`` is the cursor of the last event of the previous page."""
    limit = check_first(first)
    after_seq = _after_seq(after)
    qs = filtered(query)
    rows_qs = qs.filter(seq__lt=after_seq) if after_seq is not None else qs
    rows = list(await rows_qs.order_by("-seq").limit(limit + 1))
    total = len(await qs.limit(COUNT_CAP).values_list("seq", flat=True)) if limit else 0
    return Page(rows=rows[:limit], has_next=len(rows) > limit, total=total)


async def statistics(*, from_: datetime | None, to: datetime | None) -> dict[str, Any]:
    """Counts by type, outcome, severity and actor (the top 50 actors) in the time range."""
    base = filtered(AuditQuery(from_=from_, to=to))

    async def by(column: str, limit: int | None = None) -> list[tuple[str | None, int]]:
        qs = base.annotate(n=Count("seq")).group_by(column).order_by("-n")
        if limit:
            qs = qs.limit(limit)
        return [(key, int(n)) for key, n in await qs.values_list(column, "n")]

    total = await base.count()
    return {
        "total": total,
        "by_type": await by("type"),
        "by_outcome": await by("outcome"),
        "by_severity": await by("severity"),
        "by_actor": await by("actor_id", 50),
    }


async def get_event(event_id: str) -> AuditEvent | None:
    return await AuditEvent.get_or_none(id=event_id)


async def load_events(ids: Sequence[str]) -> list[AuditEvent | None]:
    rows = {r.id: r for r in await AuditEvent.filter(id__in=list(ids))}
    return [rows.get(i) for i in ids]


async def user_trail(*, user_id: str, first: int | None, after: str | None) -> Page:
    """What a user did (actor) or had done to them (subject), newest first."""
    limit = check_first(first)
    after_seq = _after_seq(after)
    qs = AuditEvent.filter(Q(actor_id=user_id) | Q(subject_type="User", subject_id=user_id))
    rows_qs = qs.filter(seq__lt=after_seq) if after_seq is not None else qs
    rows = list(await rows_qs.order_by("-seq").limit(limit + 1))
    total = len(await qs.limit(COUNT_CAP).values_list("seq", flat=True)) if limit else 0
    return Page(rows=rows[:limit], has_next=len(rows) > limit, total=total)

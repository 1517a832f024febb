"""Reads: lists, the calendar of upcoming fires, a job's schedules, previews."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from tortoise.queryset import QuerySet

from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.models import Schedule
from opsconductor_schedules.service.definitions import ScheduleDraft, now_utc, spec_of
from opsconductor_schedules.service.describe import MAX_PREVIEW, Preview, preview
from opsconductor_schedules.service.spec import Kind
from opsconductor_schedules.service.timeline import slots

__all__ = ["UpcomingFire", "list_schedules", "preview_draft", "schedules_of_job", "upcoming_fires"]

MAX_UPCOMING = 1000
MAX_CALENDAR_DAYS = 366


@dataclass(frozen=True)
class UpcomingFire:
    schedule: Schedule
    fire_at: datetime


def list_schedules(
    *, job_id: str | None = None, enabled: bool | None = None, kind: Kind | None = None
) -> QuerySet[Schedule]:
    query = Schedule.filter(is_deleted=False)
    if job_id is not None:
        query = query.filter(job_id=job_id)
    if enabled is not None:
        query = query.filter(enabled=enabled)
    if kind is not None:
        query = query.filter(kind=kind.value)
    return query.order_by("id")


async def schedules_of_job(job_id: str) -> list[Schedule]:
    return await list_schedules(job_id=job_id)


async def next_run_of_job(job_id: str) -> datetime | None:
    row = (
        await Schedule.filter(job_id=job_id, is_deleted=False, enabled=True, next_fire_at__isnull=False)
        .order_by("next_fire_at")
        .first()
    )
    return row.next_fire_at if row else None


async def upcoming_fires(*, start: datetime, end: datetime, job_id: str | None = None) -> list[UpcomingFire]:
    """Every nominal time that would run between ``start`` and ``end`` (a calendar), time order."""
    if end <= start:
        raise InvalidScheduleError("to must be after from", field="to")
    if end - start > timedelta(days=MAX_CALENDAR_DAYS):
        raise InvalidScheduleError(f"at most {MAX_CALENDAR_DAYS} days at a time", field="to")
    found: list[UpcomingFire] = []
    for row in await list_schedules(job_id=job_id, enabled=True):
        after = max(start - timedelta(microseconds=1), row.cursor_at or start)
        for slot in islice(
            slots(spec_of(row), schedule_id=row.id, after=after, fire_count=row.fire_count), MAX_UPCOMING
        ):
            if slot.scheduled_for >= end:
                break
            if slot.outcome is None:
                found.append(UpcomingFire(row, slot.scheduled_for))
    found.sort(key=lambda f: (f.fire_at, f.schedule.id))
    return found[:MAX_UPCOMING]


def preview_draft(draft: ScheduleDraft, *, count: int | None, after: datetime | None) -> Preview:
    if count is not None and not 1 <= count <= MAX_PREVIEW:
        raise InvalidScheduleError(f"count must be 1..{MAX_PREVIEW}", field="count")
    start = (after or now_utc()).astimezone(UTC)
    spec = draft.spec(anchor=start)
    return preview(spec, after=start, count=count or 10)

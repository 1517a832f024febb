"""The legacy scheduling rows as schedules (for the legacy importer; pure mapping).

* ``jobs.scheduled_at`` (a job with status ``scheduled``) becomes a ONCE schedule;
* ``job_schedules`` rows: ``once`` → ONCE, ``cron`` → CRON, ``recurring`` → RECURRING with the
  legacy ``recurring_type`` (minutes, hours, daily, weekly, monthly) as the unit.

Weekdays: legacy stored ``days_of_week`` as numbers the UI wrote with 0 = Sunday, and the backend
read them with 0 = Monday (a known off-by-one). The import keeps what the user chose in the UI
(``convention="ui"``, the default) and says in a note that legacy ran those days one day later;
``convention="backend"`` keeps what legacy actually ran. Either way the result names the days.

Legacy ignored the stored timezone (every computation was UTC): a note says so when it was not UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.service.definitions import ScheduleDraft
from opsconductor_schedules.service.spec import Kind, Recurring, RecurringUnit, Weekday, parse_hhmm, zone

__all__ = ["LegacyMapping", "from_job_scheduled_at", "from_legacy_schedule", "legacy_weekdays"]

UNITS = {
    "minutes": RecurringUnit.MINUTES,
    "hours": RecurringUnit.HOURS,
    "daily": RecurringUnit.DAYS,
    "weekly": RecurringUnit.WEEKS,
    "monthly": RecurringUnit.MONTHS,
}
_SUNDAY_FIRST = (Weekday.SUN, Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI, Weekday.SAT)
_MONDAY_FIRST = tuple(Weekday)


@dataclass(frozen=True)
class LegacyMapping:
    draft: ScheduleDraft
    notes: list[str] = field(default_factory=list[str])


def legacy_weekdays(text: str | None, *, convention: Literal["ui", "backend"] = "ui") -> tuple[Weekday, ...]:
    """``"0,2,4"`` as weekday names (0 = Sunday for ``ui``, 0 = Monday for ``backend``)."""
    table = _SUNDAY_FIRST if convention == "ui" else _MONDAY_FIRST
    days: list[Weekday] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 0 <= int(part) <= 6:
            raise InvalidScheduleError(f"legacy day of week {part!r} is not 0..6", field="recurring.weekdays")
        day = table[int(part)]
        if day not in days:
            days.append(day)
    return tuple(sorted(days, key=lambda d: d.iso_index))


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def from_job_scheduled_at(job_id: str, scheduled_at: datetime) -> LegacyMapping:
    """A legacy one-shot (``jobs.scheduled_at``) as a ONCE schedule."""
    run_at = _aware(scheduled_at)
    assert run_at is not None
    return LegacyMapping(
        ScheduleDraft(
            job_id=job_id, kind=Kind.ONCE, timezone="UTC", run_at=run_at, name="legacy scheduled_at"
        )
    )


def from_legacy_schedule(
    row: dict[str, Any], *, job_id: str, convention: Literal["ui", "backend"] = "ui"
) -> LegacyMapping:
    """One ``job_schedules`` row (column names as in the legacy database) as a schedule draft."""
    notes: list[str] = []
    timezone = (row.get("timezone") or "UTC").strip() or "UTC"
    try:
        zone(timezone)
    except InvalidScheduleError:
        notes.append(f"legacy timezone {timezone!r} is not an IANA name; imported as UTC")
        timezone = "UTC"
    if timezone != "UTC":
        notes.append(
            f"legacy stored {timezone} but computed every time in UTC; the schedule now runs in {timezone}"
        )
    common: dict[str, Any] = {
        "job_id": job_id,
        "timezone": timezone,
        "name": row.get("description") or None,
        "enabled": bool(row.get("enabled", True)),
        "max_runs": row.get("max_executions") or None,
        "end_at": _aware(row.get("end_date")),
    }
    kind = (row.get("schedule_type") or "").strip().lower()
    if kind == "once":
        draft = ScheduleDraft(kind=Kind.ONCE, run_at=_aware(row.get("execute_at")), **common)
    elif kind == "cron":
        draft = ScheduleDraft(kind=Kind.CRON, cron=(row.get("cron_expression") or "").strip(), **common)
        notes.append("legacy evaluated the cron with croniter in UTC; day-of-week 0 and 7 are Sunday in both")
    elif kind == "recurring":
        unit = UNITS.get((row.get("recurring_type") or "").strip().lower())
        if unit is None:
            raise InvalidScheduleError(
                f"unknown legacy recurring_type {row.get('recurring_type')!r}", field="recurring.unit"
            )
        weekdays = (
            legacy_weekdays(row.get("days_of_week"), convention=convention)
            if unit is RecurringUnit.WEEKS
            else ()
        )
        if weekdays and convention == "ui":
            notes.append("days_of_week read as the UI wrote them (0 = Sunday); legacy ran them one day later")
        at_text = (row.get("time") or "").strip()
        at = (
            parse_hhmm(at_text[:5])
            if at_text and unit not in (RecurringUnit.MINUTES, RecurringUnit.HOURS)
            else None
        )
        recurring = Recurring(
            unit=unit,
            every=int(row.get("interval") or 1),
            at=at,
            weekdays=weekdays,
            day_of_month=row.get("day_of_month") if unit is RecurringUnit.MONTHS else None,
        )
        draft = ScheduleDraft(kind=Kind.RECURRING, recurring=recurring, **common)
    else:
        raise InvalidScheduleError(f"unknown legacy schedule_type {row.get('schedule_type')!r}", field="kind")
    draft.spec(anchor=_aware(row.get("created_at")) or datetime.now(UTC))  # validates, naming the field
    return LegacyMapping(draft, notes)

"""Candidate times from APScheduler 3.11's triggers; no cron arithmetic of our own.

Wall-clock kinds (CRON, RECURRING DAYS/WEEKS/MONTHS) run their trigger in UTC, where every wall
time exists exactly once: the trigger yields *naive wall times* of the schedule's timezone and
:mod:`.wallclock` decides what each means on a day with a DST shift (APScheduler's own rule moves
a missing 02:30 to 03:30 and fires a repeated 01:30 twice). Elapsed-time kinds (INTERVAL, ONCE,
RECURRING MINUTES/HOURS) yield UTC instants directly.

Our one translation: the cron day-of-week field. APScheduler 3 reads its numbers as 0 = Monday;
standard cron (and our API) reads 0 and 7 as Sunday. The field is expanded to day names before
APScheduler sees it, and a restricted day-of-month *and* day-of-week fire on either (cron's rule,
an ``OrTrigger``), not on both (APScheduler's).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.calendarinterval import CalendarIntervalTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.service.spec import Kind, RecurringUnit, ScheduleSpec

__all__ = [
    "check_cron",
    "cron_trigger",
    "day_of_week_set",
    "instant_candidates",
    "is_wall_clock",
    "wall_candidates",
]

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: 0 (and 7) = Sunday
_DOW_ITEM = re.compile(r"^(\*|[a-z]{3}|\d)(?:-([a-z]{3}|\d))?(?:/(\d+))?$")
_MAX_CRON_LENGTH = 200
_ONE_SECOND = timedelta(seconds=1)


def _dow_number(token: str, field_name: str) -> int:
    if token.isdigit():
        value = int(token)
        if value > 7:
            raise InvalidScheduleError(
                f"day of week {value} is out of range (0-7, 0 and 7 = Sunday)", field=field_name
            )
        return value % 7
    if token not in _DOW_NAMES:
        raise InvalidScheduleError(f"unknown day of week {token!r} (sun..sat or 0-7)", field=field_name)
    return _DOW_NAMES.index(token)


def _day_of_week(expr: str, field_name: str) -> tuple[str, bool]:
    """The cron day-of-week field as APScheduler day names, and whether it restricts anything."""
    days: set[int] = set()
    restricted = False
    for item in expr.lower().split(","):
        match = _DOW_ITEM.match(item)
        if match is None:
            raise InvalidScheduleError(f"bad day-of-week item {item!r}", field=field_name)
        first, last, step_text = match.groups()
        step = int(step_text) if step_text else 1
        if step < 1:
            raise InvalidScheduleError("a step must be at least 1", field=field_name)
        if first == "*":
            if last is not None:
                raise InvalidScheduleError(f"bad day-of-week item {item!r}", field=field_name)
            low, high = 0, 6
            restricted = restricted or step_text is not None
        else:
            restricted = True
            low = int(first) if first.isdigit() else _dow_number(first, field_name)
            if first.isdigit():
                _dow_number(first, field_name)
            if last is None:
                high = low if step_text is None else 6
            else:
                high = int(last) if last.isdigit() else _dow_number(last, field_name)
                if last.isdigit():
                    _dow_number(last, field_name)
                if high < low:
                    raise InvalidScheduleError(f"day-of-week range {item!r} runs backwards", field=field_name)
        days.update(value % 7 for value in range(low, high + 1, step))
    if not restricted or len(days) == 7:
        return "*", False
    return ",".join(_DOW_NAMES[d] for d in sorted(days)), True


def day_of_week_set(expr: str) -> set[int] | None:
    """The days (0 = Sunday) a valid cron day-of-week field names, None when it is ``*``."""
    names, restricted = _day_of_week(expr, "cron")
    return {_DOW_NAMES.index(n) for n in names.split(",")} if restricted else None


def cron_trigger(expr: str, *, field_name: str = "cron") -> BaseTrigger:
    """A 5-field cron (standard meaning) as an APScheduler trigger in UTC (wall-time space)."""
    if len(expr) > _MAX_CRON_LENGTH:
        raise InvalidScheduleError("cron is too long", field=field_name)
    parts = expr.split()
    if len(parts) != 5:
        raise InvalidScheduleError(
            "cron needs 5 fields: minute hour day-of-month month day-of-week", field=field_name
        )
    minute, hour, dom, month, dow_expr = parts
    dow, dow_restricted = _day_of_week(dow_expr, field_name)
    dom_restricted = dom != "*"
    try:
        if dom_restricted and dow_restricted:  # cron: either matches (vixie/POSIX), not both
            return OrTrigger(
                [
                    CronTrigger(minute=minute, hour=hour, day=dom, month=month, timezone=UTC),
                    CronTrigger(minute=minute, hour=hour, month=month, day_of_week=dow, timezone=UTC),
                ]
            )
        return CronTrigger(minute=minute, hour=hour, day=dom, month=month, day_of_week=dow, timezone=UTC)
    except ValueError as exc:
        raise InvalidScheduleError(f"bad cron {expr!r}: {exc}", field=field_name) from exc


def check_cron(expr: str, *, field_name: str = "cron") -> None:
    """Raise :class:`InvalidScheduleError` if ``expr`` is not a valid cron that ever fires."""
    trigger = cron_trigger(expr, field_name=field_name)
    # `0 0 30 2 *` parses but never fires: APScheduler gives up after its year range.
    if _next(trigger, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise InvalidScheduleError(f"cron {expr!r} never fires", field=field_name)


def _next(trigger: BaseTrigger, start: datetime) -> datetime | None:
    return trigger.get_next_fire_time(None, start)


def is_wall_clock(spec: ScheduleSpec) -> bool:
    """Whether the schedule's times are wall-clock times of its timezone (and DST applies)."""
    if spec.kind is Kind.CRON:
        return True
    return (
        spec.kind is Kind.RECURRING
        and spec.recurring is not None
        and spec.recurring.unit in (RecurringUnit.DAYS, RecurringUnit.WEEKS, RecurringUnit.MONTHS)
    )


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _cron_walls(trigger: BaseTrigger, start: datetime) -> Iterator[datetime]:
    at: datetime | None = start.replace(tzinfo=UTC)
    while at is not None:
        found = _next(trigger, at)
        if found is None:
            return
        yield _naive(found)
        at = found + _ONE_SECOND


def _calendar_walls(trigger: CalendarIntervalTrigger, start: datetime) -> Iterator[datetime]:
    """CalendarIntervalTrigger chains from its previous fire (it ignores ``now`` then)."""
    previous: datetime | None = None
    while True:
        found = trigger.get_next_fire_time(previous, start.replace(tzinfo=UTC))
        if found is None:
            return
        previous = found
        if _naive(found) >= start:
            yield _naive(found)


def _periods_to_skip(anchor: date, start: date, period_days: int) -> int:
    """Whole periods between the anchor and (a period before) ``start``: keeps iteration short."""
    return max(0, (start - anchor).days // period_days - 1)


def wall_candidates(spec: ScheduleSpec, start_wall: datetime) -> Iterator[datetime]:
    """Naive wall times (schedule's timezone) at or after ``start_wall``, in order."""
    if spec.kind is Kind.CRON:
        assert spec.cron is not None
        yield from _cron_walls(cron_trigger(spec.cron), start_wall)
        return
    recurring = spec.recurring
    assert recurring is not None
    at = recurring.at
    hour, minute = (at.hour, at.minute) if at is not None else (0, 0)
    anchor = spec.anchor.astimezone(spec.tz).date()
    if recurring.unit is RecurringUnit.DAYS:
        skip = _periods_to_skip(anchor, start_wall.date(), recurring.every)
        first = anchor + timedelta(days=skip * recurring.every)
        trigger = CalendarIntervalTrigger(
            days=recurring.every, hour=hour, minute=minute, start_date=first, timezone=UTC
        )
        yield from _calendar_walls(trigger, start_wall)
    elif recurring.unit is RecurringUnit.WEEKS:
        week_start = anchor - timedelta(days=anchor.weekday())  # Monday of the anchor's week
        skip = _periods_to_skip(week_start, start_wall.date(), 7 * recurring.every)
        week_start += timedelta(days=7 * recurring.every * skip)
        streams = [
            _calendar_walls(
                CalendarIntervalTrigger(
                    weeks=recurring.every,
                    hour=hour,
                    minute=minute,
                    start_date=week_start + timedelta(days=day.iso_index),
                    timezone=UTC,
                ),
                start_wall,
            )
            for day in recurring.weekdays
        ]
        yield from heapq.merge(*streams)
    else:  # MONTHS: the same day each N months; months without that day are skipped, as cron does
        assert recurring.day_of_month is not None
        year, month = anchor.year, anchor.month
        if anchor.day > recurring.day_of_month:  # this month's day is already past
            month += 1
        # the first month (from the anchor's) that has the day
        while True:
            year += (month - 1) // 12
            month = (month - 1) % 12 + 1
            try:
                first = date(year, month, recurring.day_of_month)
                break
            except ValueError:  # the first month (from the anchor's) that has the day starts the count
                month += 1
        trigger = CalendarIntervalTrigger(
            months=recurring.every, hour=hour, minute=minute, start_date=first, timezone=UTC
        )
        yield from _calendar_walls(trigger, start_wall)


def instant_candidates(spec: ScheduleSpec, start: datetime) -> Iterator[datetime]:
    """UTC instants at or after ``start`` for the elapsed-time kinds (INTERVAL, ONCE, MINUTES, HOURS)."""
    if spec.kind is Kind.ONCE:
        assert spec.run_at is not None
        found = DateTrigger(run_date=spec.run_at, timezone=UTC).get_next_fire_time(None, start)
        if found is not None and found >= start:
            yield found.astimezone(UTC)
        return
    if spec.kind is Kind.INTERVAL:
        assert spec.interval_seconds is not None
        seconds = spec.interval_seconds
    else:
        assert spec.recurring is not None
        unit = 60 if spec.recurring.unit is RecurringUnit.MINUTES else 3600
        seconds = spec.recurring.every * unit
    trigger = IntervalTrigger(seconds=seconds, start_date=spec.anchor, timezone=UTC)
    at = start
    while True:
        found = trigger.get_next_fire_time(None, at)
        if found is None:
            return
        yield found.astimezone(UTC)
        at = found + timedelta(microseconds=1)

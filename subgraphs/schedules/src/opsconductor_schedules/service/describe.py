"""previewSchedule: a description in words, the next fire times and notes on DST shifts (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from opsconductor_schedules.service.spec import Kind, RecurringUnit, ScheduleSpec
from opsconductor_schedules.service.timeline import slots
from opsconductor_schedules.service.triggers import is_wall_clock
from opsconductor_schedules.service.wallclock import shift_label

__all__ = ["Preview", "describe", "dst_transitions", "preview"]

_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_NAMES = tuple(m[:3].lower() for m in _MONTHS)
MAX_PREVIEW = 100
_SCAN_LIMIT = 1000  # slots looked at for one preview (skipped ones included)


@dataclass(frozen=True)
class Preview:
    description: str
    next_fire_times: list[datetime]
    notes: list[str]


def _plural(n: int, unit: str) -> str:
    return f"{unit}" if n == 1 else f"{n} {unit}s"


def _duration(seconds: int) -> str:
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            return _plural(seconds // size, unit)
    return _plural(seconds, "second")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _weekdays(expr: str) -> str | None:
    """``mon-fri`` / ``1-5`` / ``0,6`` in words, or None when not a plain list or range."""
    from opsconductor_schedules.service.triggers import day_of_week_set

    days = day_of_week_set(expr)
    if days is None:
        return None
    ordered = sorted(days, key=lambda d: (d + 6) % 7)  # Monday first
    mondays = [(d + 6) % 7 for d in ordered]
    if len(ordered) > 2 and mondays == list(range(mondays[0], mondays[0] + len(mondays))):
        return f"{_DAYS[ordered[0]]} through {_DAYS[ordered[-1]]}"
    return _join([_DAYS[d] for d in ordered])


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _month(text: str) -> str | None:
    parts = [p.strip().lower() for p in text.split(",")]
    names: list[str] = []
    for part in parts:
        if part.isdigit() and 1 <= int(part) <= 12:
            names.append(_MONTHS[int(part) - 1])
        elif part in _MONTH_NAMES:
            names.append(_MONTHS[_MONTH_NAMES.index(part)])
        else:
            return None
    return _join(names)


def _cron_words(expr: str) -> str:
    minute, hour, dom, month, dow = expr.split()
    m, h = _number(minute), _number(hour)
    if m is not None and h is not None:
        when = f"At {h:02d}:{m:02d}"
    elif m is not None and hour == "*":
        when = f"At minute {m} of every hour"
    elif minute == "*" and hour == "*":
        when = "Every minute"
    elif minute.startswith("*/") and hour == "*" and minute[2:].isdigit():
        when = f"Every {_plural(int(minute[2:]), 'minute')}"
    elif m is not None:
        when = f"At minute {m} of hours {hour}"
    else:
        when = f"At minutes {minute} of hours {hour}"
    days: list[str] = []
    if dom != "*":
        days.append(f"on day {dom} of the month" if not dom.isdigit() else f"on the {_ordinal(int(dom))}")
    if dow != "*":
        words = _weekdays(dow)
        days.append(f"on {words}" if words else f"on weekdays {dow}")
    text = when + (" " + " or ".join(days) if days else (" every day" if when.startswith("At ") else ""))
    if month != "*":
        months = _month(month)
        text += f" in {months}" if months else f" in months {month}"
    return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def describe(spec: ScheduleSpec) -> str:
    """The schedule in words (what previewSchedule and the UI show)."""
    tz = spec.tz
    if spec.kind is Kind.ONCE:
        assert spec.run_at is not None
        at = spec.run_at.astimezone(UTC)
        text = f"Once, at {at:%Y-%m-%d %H:%M} UTC ({at.astimezone(tz):%Y-%m-%d} {shift_label(at, tz)} {spec.timezone})"
    elif spec.kind is Kind.INTERVAL:
        assert spec.interval_seconds is not None
        text = f"Every {_duration(spec.interval_seconds)} (elapsed time, from {spec.anchor.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC)"
    elif spec.kind is Kind.CRON:
        assert spec.cron is not None
        text = f"{_cron_words(spec.cron)} ({spec.timezone}; cron {spec.cron})"
    else:
        r = spec.recurring
        assert r is not None
        at = f" at {r.at:%H:%M}" if r.at is not None else " at 00:00"
        if r.unit in (RecurringUnit.MINUTES, RecurringUnit.HOURS):
            text = f"Every {_plural(r.every, r.unit.lower()[:-1])} (elapsed time)"
        elif r.unit is RecurringUnit.DAYS:
            text = f"Every {_plural(r.every, 'day')}{at} ({spec.timezone})"
        elif r.unit is RecurringUnit.WEEKS:
            names = _join(
                [_DAYS[(d.iso_index + 1) % 7] for d in sorted(r.weekdays, key=lambda d: d.iso_index)]
            )
            text = f"Every {_plural(r.every, 'week')} on {names}{at} ({spec.timezone})"
        else:
            assert r.day_of_month is not None
            text = (
                f"Every {_plural(r.every, 'month')} on the {_ordinal(r.day_of_month)}{at} ({spec.timezone})"
            )
            if r.day_of_month > 28:
                text += f"; months without a {_ordinal(r.day_of_month)} are skipped"
    extras: list[str] = []
    if spec.start_at:
        extras.append(f"from {spec.start_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if spec.end_at:
        extras.append(f"until {spec.end_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if spec.max_runs:
        extras.append(f"at most {_plural(spec.max_runs, 'run')}")
    if spec.jitter_seconds:
        extras.append(f"each start delayed by up to {_plural(spec.jitter_seconds, 'second')} (jitter)")
    if spec.blackouts:
        extras.append(f"not inside {_plural(len(spec.blackouts), 'blackout window')}")
    return text + ("; " + ", ".join(extras) if extras else "")


def dst_transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in [start, end) where ``tz`` changes its UTC offset (at most two years read)."""
    from opsconductor_schedules.service.wallclock import transition_between

    found: list[datetime] = []
    end = min(end, start + timedelta(days=731))
    day = start
    while day < end:
        following = min(day + timedelta(days=1), end)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            found.append(transition_between(day, following, tz))
        day = following
    return found


def preview(spec: ScheduleSpec, *, after: datetime, count: int, schedule_id: str = "preview") -> Preview:
    """The next ``count`` fire times after ``after`` and a note for each DST shift or skip among them."""
    tz = spec.tz
    times: list[datetime] = []
    notes: list[str] = []
    for seen, slot in enumerate(slots(spec, schedule_id=schedule_id, after=after)):
        if len(times) >= count or seen >= _SCAN_LIMIT:
            break
        local = slot.scheduled_for.astimezone(tz)
        if slot.outcome is not None:
            notes.append(f"{local:%Y-%m-%d %H:%M %Z}: {slot.outcome} — {slot.reason}")
            continue
        times.append(slot.scheduled_for)
        if slot.note:
            notes.append(f"{local:%Y-%m-%d}: {slot.note}")
    if times and len(times) >= 2:
        near = timedelta(days=1)
        for shift in dst_transitions(tz, after, times[-1]):
            if not any(abs(t - shift) <= near for t in times):
                continue  # no fire near this shift: nothing to say
            before = (shift - timedelta(seconds=1)).astimezone(tz)
            change = f"{before.tzname()} → {shift.astimezone(tz).tzname()}"
            if is_wall_clock(spec):
                rule = "fire times keep their wall-clock time"
            else:
                rule = "intervals count elapsed time, so wall-clock fire times move with the shift"
            notes.append(
                f"{shift.astimezone(tz):%Y-%m-%d}: clocks change in {spec.timezone} ({change}); {rule}"
            )
    return Preview(description=describe(spec), next_fire_times=times, notes=notes)

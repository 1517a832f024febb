"""The DST layer on real zones: spring-forward gaps and fall-back overlaps, every policy.

New York and Berlin shift by an hour at different wall times, Sydney is southern (spring in
October), Lord Howe shifts by 30 minutes. Pure: no database, no clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from opsconductor_schedules.service.spec import (
    DstGapPolicy,
    DstOverlapPolicy,
    FireOutcome,
    Kind,
    ScheduleSpec,
)
from opsconductor_schedules.service.timeline import Slot, slots

# zone, spring day, a wall time in its gap, where the clocks land, fall day, a repeated wall time, shift
ZONES = [
    ("America/New_York", date(2027, 3, 14), "02:30", "03:00", date(2027, 11, 7), "01:30", 60),
    ("Europe/Berlin", date(2027, 3, 28), "02:30", "03:00", date(2027, 10, 31), "02:30", 60),
    ("Australia/Sydney", date(2027, 10, 3), "02:30", "03:00", date(2027, 4, 4), "02:30", 60),
    ("Australia/Lord_Howe", date(2027, 10, 3), "02:15", "02:30", date(2027, 4, 4), "01:45", 30),
]


def cron_spec(cron: str, tz: str, **kw: object) -> ScheduleSpec:
    return ScheduleSpec(
        kind=Kind.CRON, timezone=tz, anchor=datetime(2027, 1, 1, tzinfo=UTC), cron=cron, **kw
    ).validate()  # type: ignore[arg-type]


def on_day(spec: ScheduleSpec, day: date) -> list[Slot]:
    tz = ZoneInfo(spec.timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz) - timedelta(days=1)
    found: list[Slot] = []
    for slot in slots(spec, schedule_id="s", after=start.astimezone(UTC)):
        local = slot.scheduled_for.astimezone(tz).date()
        if local > day:
            break
        if local == day:
            found.append(slot)
    return found


def daily(wall: str) -> str:
    hour, minute = wall.split(":")
    return f"{int(minute)} {int(hour)} * * *"


def hhmm(slot: Slot, tz: str) -> str:
    return f"{slot.scheduled_for.astimezone(ZoneInfo(tz)):%H:%M}"


def test_the_issue_example_fires_at_three_edt() -> None:
    spec = cron_spec("30 2 * * *", "America/New_York")
    [slot] = on_day(spec, date(2027, 3, 14))
    assert slot.scheduled_for == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert slot.outcome is None
    assert slot.note is not None and "02:30 does not exist" in slot.note and "03:00 EDT" in slot.note


@pytest.mark.parametrize(("tz", "spring", "gap_wall", "lands", "fall", "repeat_wall", "shift"), ZONES)
def test_gap_default_fires_once_at_the_transition(
    tz: str, spring: date, gap_wall: str, lands: str, fall: date, repeat_wall: str, shift: int
) -> None:
    spec = cron_spec(daily(gap_wall), tz)
    [slot] = on_day(spec, spring)
    assert slot.outcome is None
    assert hhmm(slot, tz) == lands
    # the days around it are untouched
    for other in (spring - timedelta(days=1), spring + timedelta(days=1)):
        [normal] = on_day(spec, other)
        assert hhmm(normal, tz) == gap_wall and normal.note is None


@pytest.mark.parametrize(("tz", "spring", "gap_wall", "lands", "fall", "repeat_wall", "shift"), ZONES)
def test_gap_skip_records_a_skipped_dst_slot(
    tz: str, spring: date, gap_wall: str, lands: str, fall: date, repeat_wall: str, shift: int
) -> None:
    spec = cron_spec(daily(gap_wall), tz, dst_gap_policy=DstGapPolicy.SKIP)
    [slot] = on_day(spec, spring)
    assert slot.outcome is FireOutcome.SKIPPED_DST
    assert slot.reason is not None and f"{gap_wall} does not exist" in slot.reason


@pytest.mark.parametrize(("tz", "spring", "gap_wall", "lands", "fall", "repeat_wall", "shift"), ZONES)
def test_overlap_first_fires_once_and_records_the_repeat(
    tz: str, spring: date, gap_wall: str, lands: str, fall: date, repeat_wall: str, shift: int
) -> None:
    spec = cron_spec(daily(repeat_wall), tz)
    first, repeat = on_day(spec, fall)
    assert first.outcome is None and repeat.outcome is FireOutcome.SKIPPED_DST
    assert hhmm(first, tz) == hhmm(repeat, tz) == repeat_wall
    assert repeat.scheduled_for - first.scheduled_for == timedelta(minutes=shift)
    assert first.scheduled_for.astimezone(ZoneInfo(tz)).fold == 0


@pytest.mark.parametrize(("tz", "spring", "gap_wall", "lands", "fall", "repeat_wall", "shift"), ZONES)
def test_overlap_both_fires_twice(
    tz: str, spring: date, gap_wall: str, lands: str, fall: date, repeat_wall: str, shift: int
) -> None:
    spec = cron_spec(daily(repeat_wall), tz, dst_overlap_policy=DstOverlapPolicy.BOTH)
    first, second = on_day(spec, fall)
    assert first.outcome is None and second.outcome is None
    assert second.scheduled_for - first.scheduled_for == timedelta(minutes=shift)


@pytest.mark.parametrize(("tz", "spring", "gap_wall", "lands", "fall", "repeat_wall", "shift"), ZONES)
def test_every_quarter_hour_across_both_shifts(
    tz: str, spring: date, gap_wall: str, lands: str, fall: date, repeat_wall: str, shift: int
) -> None:
    """A frequent cron: the gap's minutes collapse into one fire at the transition (never a double
    with the regular fire there); the repeated minutes fire once (FIRST) or twice (BOTH)."""
    spec = cron_spec("*/15 * * * *", tz)
    spring_slots = on_day(spec, spring)
    fired = [s for s in spring_slots if s.outcome is None]
    assert len({s.scheduled_for for s in fired}) == len(fired)  # no nominal time twice
    assert len(fired) == 96 - shift // 15  # the day is `shift` minutes short
    fall_slots = on_day(spec, fall)
    assert len([s for s in fall_slots if s.outcome is None]) == 96
    assert len([s for s in fall_slots if s.outcome is FireOutcome.SKIPPED_DST]) == shift // 15
    both = on_day(cron_spec("*/15 * * * *", tz, dst_overlap_policy=DstOverlapPolicy.BOTH), fall)
    assert len(both) == 96 + shift // 15 and all(s.outcome is None for s in both)
    instants = [s.scheduled_for for s in both]
    assert instants == sorted(instants)


def test_gap_skip_with_a_regular_fire_at_the_transition_keeps_that_fire() -> None:
    spec = cron_spec("0 * * * *", "America/New_York", dst_gap_policy=DstGapPolicy.SKIP)
    day = on_day(spec, date(2027, 3, 14))
    assert [hhmm(s, "America/New_York") for s in day if s.outcome is None][:3] == ["00:00", "01:00", "03:00"]
    assert len(day) == 23


def test_hourly_default_does_not_double_at_the_transition() -> None:
    day = on_day(cron_spec("0 * * * *", "America/New_York"), date(2027, 3, 14))
    assert [hhmm(s, "America/New_York") for s in day][:4] == ["00:00", "01:00", "03:00", "04:00"]
    assert len(day) == 23 and all(s.outcome is None for s in day)


def test_lord_howe_half_hour_gap_lists_every_missing_minute_once() -> None:
    spec = cron_spec("*/10 2 * * *", "Australia/Lord_Howe")
    day = on_day(spec, date(2027, 10, 3))
    assert [hhmm(s, "Australia/Lord_Howe") for s in day] == ["02:30", "02:40", "02:50"]
    assert day[0].note is not None and "02:00, 02:10, 02:20 do not exist" in day[0].note


def test_slots_come_in_nominal_order_and_unique() -> None:
    for tz, *_ in ZONES:
        spec = cron_spec("*/20 0-4 * * *", tz, dst_overlap_policy=DstOverlapPolicy.BOTH)
        found = [
            s.scheduled_for
            for s in islice(slots(spec, schedule_id="s", after=datetime(2027, 1, 1, tzinfo=UTC)), 2000)
        ]
        assert found == sorted(found) and len(set(found)) == len(found)

"""Calendar edge cases, weekday conventions, the legacy recurring kinds, intervals, blackouts,
jitter, start/end/max runs, validation. Pure: no database, no clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest

from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.service.spec import (
    Blackout,
    FireOutcome,
    Kind,
    Recurring,
    RecurringUnit,
    ScheduleSpec,
    Weekday,
)
from opsconductor_schedules.service.timeline import jitter_offset, slots

START = datetime(2027, 1, 1, tzinfo=UTC)


def spec_of(kind: Kind = Kind.CRON, tz: str = "UTC", **kw: object) -> ScheduleSpec:
    return ScheduleSpec(kind=kind, timezone=tz, anchor=kw.pop("anchor", START), **kw).validate()  # type: ignore[arg-type]


def local(spec: ScheduleSpec, n: int, after: datetime = START) -> list[datetime]:
    tz = ZoneInfo(spec.timezone)
    return [s.scheduled_for.astimezone(tz) for s in islice(slots(spec, schedule_id="s", after=after), n)]


def test_leap_day_cron_fires_only_in_leap_years() -> None:
    fires = local(spec_of(cron="0 0 29 2 *", tz="Europe/Berlin"), 3)
    assert [(f.year, f.month, f.day, f.hour) for f in fires] == [
        (2028, 2, 29, 0),
        (2032, 2, 29, 0),
        (2036, 2, 29, 0),
    ]


def test_thirty_first_fires_only_in_months_that_have_one() -> None:
    fires = local(spec_of(cron="0 12 31 * *", tz="America/New_York"), 7)
    assert [f.month for f in fires] == [1, 3, 5, 7, 8, 10, 12]
    assert all(f.day == 31 and f.hour == 12 for f in fires)


def test_recurring_monthly_on_the_31st_skips_short_months() -> None:
    spec = spec_of(
        Kind.RECURRING,
        tz="Europe/Berlin",
        recurring=Recurring(RecurringUnit.MONTHS, 1, time(6, 0), (), 31),
    )
    fires = local(spec, 4)
    assert [(f.month, f.day, f.hour) for f in fires] == [(1, 31, 6), (3, 31, 6), (5, 31, 6), (7, 31, 6)]


def test_recurring_every_two_months_counts_from_the_first_matching_day() -> None:
    spec = spec_of(
        Kind.RECURRING,
        recurring=Recurring(RecurringUnit.MONTHS, 2, time(0, 0), (), 15),
        anchor=datetime(2027, 2, 20, tzinfo=UTC),
    )
    assert [f.month for f in local(spec, 4)] == [3, 5, 7, 9]  # February's 15th had passed
    short = spec_of(
        Kind.RECURRING,
        recurring=Recurring(RecurringUnit.MONTHS, 2, time(0, 0), (), 31),
        anchor=datetime(2027, 2, 1, tzinfo=UTC),
    )
    assert [f.month for f in local(short, 3)] == [3, 5, 7]


@pytest.mark.parametrize("sunday", ["0", "7", "sun", "SUN"])
def test_sunday_is_zero_seven_or_its_name(sunday: str) -> None:
    fires = local(spec_of(cron=f"0 9 * * {sunday}"), 3)
    assert all(f.weekday() == 6 for f in fires)  # Python: 6 = Sunday
    assert fires[0].date().isoformat() == "2027-01-03"


@pytest.mark.parametrize(
    ("dow", "weekdays"),
    [
        ("1-5", {0, 1, 2, 3, 4}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("5-7", {4, 5, 6}),
        ("0,6", {5, 6}),
        ("*/2", {6, 1, 3, 5}),  # cron: Sunday, Tuesday, Thursday, Saturday
        ("1-7/3", {0, 3, 6}),  # Monday, Thursday, Sunday
    ],
)
def test_weekday_fields_use_the_cron_convention(dow: str, weekdays: set[int]) -> None:
    fires = local(spec_of(cron=f"0 9 * * {dow}"), 21)
    assert {f.weekday() for f in fires} == weekdays


def test_day_of_month_and_weekday_fire_on_either() -> None:
    fires = local(spec_of(cron="0 0 13 * fri"), 10)
    assert all(f.day == 13 or f.weekday() == 4 for f in fires)
    assert any(f.day == 13 and f.weekday() != 4 for f in fires)
    assert any(f.weekday() == 4 and f.day != 13 for f in fires)


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 9 * *", "5 fields"),
        ("0 9 * * * *", "5 fields"),
        ("0 9 * * 8", "out of range"),
        ("0 9 * * funday", "bad day-of-week"),
        ("0 9 * * 5-1", "backwards"),
        ("61 9 * * *", "bad cron"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_invalid_crons_are_refused_with_the_field(cron: str, message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message) as caught:
        spec_of(cron=cron)
    assert caught.value.field == "cron"


def test_recurring_weekdays_by_name_every_week_and_every_other_week() -> None:
    weekly = spec_of(
        Kind.RECURRING,
        tz="Europe/Berlin",
        recurring=Recurring(RecurringUnit.WEEKS, 1, time(8, 30), (Weekday.MON, Weekday.FRI)),
    )
    fires = local(weekly, 6)
    assert [f.weekday() for f in fires] == [4, 0, 4, 0, 4, 0]  # 2027-01-01 is a Friday
    assert all((f.hour, f.minute) == (8, 30) for f in fires)
    fortnightly = spec_of(
        Kind.RECURRING,
        recurring=Recurring(RecurringUnit.WEEKS, 2, time(0, 0), (Weekday.SUN,)),
    )
    fires = local(fortnightly, 3)
    assert [f.date().isoformat() for f in fires] == ["2027-01-03", "2027-01-17", "2027-01-31"]


def test_recurring_daily_goes_through_the_dst_layer() -> None:
    spec = spec_of(
        Kind.RECURRING,
        tz="America/New_York",
        recurring=Recurring(RecurringUnit.DAYS, 1, time(2, 30)),
        anchor=datetime(2027, 3, 12, tzinfo=UTC),
    )
    fires = local(spec, 3, after=datetime(2027, 3, 12, 12, tzinfo=UTC))
    assert [f"{f:%m-%d %H:%M %Z}" for f in fires] == ["03-13 02:30 EST", "03-14 03:00 EDT", "03-15 02:30 EDT"]


def test_recurring_every_three_days_counts_from_the_anchor_even_years_later() -> None:
    spec = spec_of(
        Kind.RECURRING,
        recurring=Recurring(RecurringUnit.DAYS, 3, time(12, 0)),
        anchor=datetime(2020, 1, 1, tzinfo=UTC),
    )
    fires = local(spec, 2, after=datetime(2027, 1, 1, tzinfo=UTC))
    assert all((f.date() - datetime(2020, 1, 1).date()).days % 3 == 0 for f in fires)
    assert fires[1] - fires[0] == timedelta(days=3)


@pytest.mark.parametrize(
    ("unit", "seconds"), [(RecurringUnit.MINUTES, 15 * 60), (RecurringUnit.HOURS, 15 * 3600)]
)
def test_recurring_minutes_and_hours_count_elapsed_time(unit: RecurringUnit, seconds: int) -> None:
    spec = spec_of(Kind.RECURRING, tz="America/New_York", recurring=Recurring(unit, 15))
    fires = local(spec, 3, after=datetime(2027, 3, 14, 5, tzinfo=UTC))
    assert fires[1] - fires[0] == fires[2] - fires[1] == timedelta(seconds=seconds)


def test_interval_is_elapsed_time_across_a_shift_and_anchored() -> None:
    anchor = datetime(2027, 3, 13, 12, 0, 7, tzinfo=UTC)
    spec = spec_of(Kind.INTERVAL, tz="America/New_York", interval_seconds=86400, anchor=anchor)
    fires = local(spec, 3, after=anchor)
    assert [f"{f:%d %H:%M:%S %Z}" for f in fires] == ["14 08:00:07 EDT", "15 08:00:07 EDT", "16 08:00:07 EDT"]
    assert fires[0] == anchor + timedelta(days=1)


def test_once_fires_once() -> None:
    run_at = datetime(2027, 5, 1, 10, tzinfo=UTC)
    spec = spec_of(Kind.ONCE, run_at=run_at)
    assert [s.scheduled_for for s in slots(spec, schedule_id="s", after=START)] == [run_at]
    assert list(slots(spec, schedule_id="s", after=run_at)) == []


def test_start_end_and_max_runs() -> None:
    spec = spec_of(
        cron="0 * * * *",
        start_at=datetime(2027, 1, 1, 5, tzinfo=UTC),
        end_at=datetime(2027, 1, 1, 9, tzinfo=UTC),
    )
    assert [f.hour for f in local(spec, 10)] == [5, 6, 7, 8, 9]  # start and end inclusive
    capped = spec_of(cron="0 * * * *", max_runs=3)
    assert len(list(slots(capped, schedule_id="s", after=START))) == 3
    assert len(list(slots(capped, schedule_id="s", after=START, fire_count=2))) == 1
    assert list(slots(capped, schedule_id="s", after=START, fire_count=3)) == []


def test_blackout_windows_cron_and_fixed() -> None:
    spec = spec_of(
        cron="0 * * * *",
        tz="Europe/Berlin",
        blackouts=(
            Blackout(cron="0 22 * * *", duration=timedelta(minutes=120)),  # 22:00-23:59 Berlin
            Blackout(start=datetime(2027, 1, 2, 10, tzinfo=UTC), end=datetime(2027, 1, 2, 12, tzinfo=UTC)),
        ),
    )
    tz = ZoneInfo("Europe/Berlin")
    found = list(islice(slots(spec, schedule_id="s", after=datetime(2027, 1, 1, 19, tzinfo=UTC)), 20))
    skipped = {
        s.scheduled_for.astimezone(tz).hour for s in found if s.outcome is FireOutcome.SKIPPED_BLACKOUT
    }
    by_hour = {(s.scheduled_for.astimezone(tz).day, s.scheduled_for.astimezone(tz).hour): s for s in found}
    assert by_hour[(1, 22)].outcome is FireOutcome.SKIPPED_BLACKOUT
    assert by_hour[(1, 23)].outcome is FireOutcome.SKIPPED_BLACKOUT
    assert by_hour[(2, 0)].outcome is None  # the window's end is exclusive
    assert by_hour[(1, 21)].outcome is None
    assert by_hour[(2, 11)].outcome is FireOutcome.SKIPPED_BLACKOUT  # 10:00 UTC = 11:00 Berlin
    assert by_hour[(2, 13)].outcome is None  # 12:00 UTC: the fixed window's end is exclusive
    assert skipped == {22, 23, 11, 12}


def test_blackouts_do_not_count_against_max_runs() -> None:
    spec = spec_of(
        cron="0 * * * *",
        max_runs=2,
        blackouts=(
            Blackout(
                start=datetime(2027, 1, 1, 0, 30, tzinfo=UTC), end=datetime(2027, 1, 1, 2, 30, tzinfo=UTC)
            ),
        ),
    )
    found = list(slots(spec, schedule_id="s", after=START))
    assert [s.outcome for s in found] == [
        FireOutcome.SKIPPED_BLACKOUT,
        FireOutcome.SKIPPED_BLACKOUT,
        None,
        None,
    ]


def test_jitter_is_deterministic_bounded_and_keeps_the_nominal_time() -> None:
    spec = spec_of(cron="* * * * *", jitter_seconds=30)
    first = list(islice(slots(spec, schedule_id="abc", after=START), 200))
    again = list(islice(slots(spec, schedule_id="abc", after=START), 200))
    assert first == again
    offsets = [s.fire_at - s.scheduled_for for s in first]
    assert all(timedelta(0) <= o <= timedelta(seconds=30) for o in offsets)
    assert len(set(offsets)) > 50  # spread, not one value
    assert jitter_offset("abc", START, 30) != jitter_offset("abd", START, 30) or jitter_offset(
        "abc", START + timedelta(minutes=1), 30
    ) != jitter_offset("abd", START + timedelta(minutes=1), 30)
    assert all(s.scheduled_for.second == 0 for s in first)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"kind": Kind.CRON}, "cron"),
        ({"kind": Kind.CRON, "cron": "* * * * *", "interval_seconds": 5}, "intervalSeconds"),
        ({"kind": Kind.INTERVAL, "interval_seconds": 0}, "intervalSeconds"),
        ({"kind": Kind.CRON, "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": Kind.CRON, "cron": "* * * * *", "timezone": ""}, "timezone"),
        ({"kind": Kind.CRON, "cron": "* * * * *", "max_runs": 0}, "maxRuns"),
        ({"kind": Kind.CRON, "cron": "* * * * *", "jitter_seconds": -1}, "jitterSeconds"),
        (
            {"kind": Kind.CRON, "cron": "* * * * *", "start_at": START, "end_at": START},
            "endAt",
        ),
        ({"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.WEEKS, 1)}, "recurring.weekdays"),
        ({"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.MONTHS, 1)}, "recurring.dayOfMonth"),
        (
            {"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.HOURS, 1, time(1, 0))},
            "recurring.at",
        ),
        ({"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.DAYS, 0)}, "recurring.every"),
        (
            {"kind": Kind.CRON, "cron": "* * * * *", "blackouts": (Blackout(cron="0 1 * * *"),)},
            "blackouts[0].durationMinutes",
        ),
        (
            {
                "kind": Kind.CRON,
                "cron": "* * * * *",
                "blackouts": (Blackout(cron="x", duration=timedelta(minutes=5)),),
            },
            "blackouts[0].cron",
        ),
    ],
)
def test_validation_names_the_input_field(kw: dict[str, object], field: str) -> None:
    kw.setdefault("timezone", "UTC")
    with pytest.raises(InvalidScheduleError) as caught:
        ScheduleSpec(anchor=START, **kw).validate()  # type: ignore[arg-type]
    assert caught.value.field == field

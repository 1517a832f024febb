"""Misfire policies with the catch-up window, and previewSchedule's words and DST notes (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import islice

import pytest

from opsconductor_schedules.service.describe import describe, preview
from opsconductor_schedules.service.misfire import plan_due
from opsconductor_schedules.service.spec import (
    Blackout,
    DstGapPolicy,
    FireOutcome,
    Kind,
    MisfirePolicy,
    Recurring,
    RecurringUnit,
    ScheduleSpec,
    Weekday,
)
from opsconductor_schedules.service.timeline import Slot, slots

T0 = datetime(2027, 6, 1, 12, tzinfo=UTC)
GRACE = timedelta(seconds=30)


def every_10s_due(outage: timedelta) -> tuple[list[Slot], datetime]:
    """Slots of a 10 s interval that fell due while the scheduler was stopped for ``outage``."""
    spec = ScheduleSpec(kind=Kind.INTERVAL, timezone="UTC", anchor=T0, interval_seconds=10).validate()
    now = T0 + outage
    due = [s for s in islice(slots(spec, schedule_id="s", after=T0), 1000) if s.fire_at <= now]
    return due, now


def outcomes(policy: MisfirePolicy, outage: timedelta, window: timedelta) -> list[FireOutcome | None]:
    due, now = every_10s_due(outage)
    plan = plan_due(due, now=now, policy=policy, catch_up_window=window, grace=GRACE)
    return [d.outcome for d in plan]


def test_skip_records_every_missed_fire_but_runs_the_on_time_ones() -> None:
    got = outcomes(MisfirePolicy.SKIP, timedelta(seconds=90), timedelta(hours=1))
    # 9 fires in 90 s: those 30, 20, 10 and 0 s late are within the 30 s grace
    assert got.count(None) == 4 and got.count(FireOutcome.MISSED) == 5
    assert got[-4:] == [None, None, None, None]


def test_run_once_starts_one_catch_up_run() -> None:
    due, now = every_10s_due(timedelta(seconds=90))
    late = [s for s in due if now - s.fire_at > GRACE]
    plan = plan_due(
        late, now=now, policy=MisfirePolicy.RUN_ONCE, catch_up_window=timedelta(hours=1), grace=GRACE
    )
    runs = [d for d in plan if d.outcome is None]
    assert len(runs) == 1 and runs[0].catch_up and runs[0].slot == late[-1]
    assert all(d.outcome is FireOutcome.MISSED for d in plan if d.outcome is not None)
    assert len(plan) == len(late)


def test_run_once_adds_no_catch_up_when_an_on_time_fire_runs() -> None:
    got = outcomes(MisfirePolicy.RUN_ONCE, timedelta(seconds=90), timedelta(hours=1))
    assert got.count(None) == 4  # the on-time ones; the missed ones are covered by them


def test_run_all_runs_each_missed_fire_inside_the_window_and_records_the_rest() -> None:
    due, now = every_10s_due(timedelta(seconds=90))
    late = [s for s in due if now - s.fire_at > GRACE]
    window = timedelta(seconds=70)
    plan = plan_due(late, now=now, policy=MisfirePolicy.RUN_ALL, catch_up_window=window, grace=GRACE)
    for decision in plan:
        inside = now - decision.slot.scheduled_for <= window
        assert (decision.outcome is None) == inside
        if not inside:
            assert decision.outcome is FireOutcome.MISSED and "catch-up window" in (decision.reason or "")
    assert [d.outcome for d in plan].count(None) == 4  # due 70, 60, 50 and 40 s ago; 80 s ago is MISSED


def test_definition_decisions_pass_through() -> None:
    slot = Slot(T0, T0, FireOutcome.SKIPPED_DST, reason="gap")
    [decision] = plan_due([slot], now=T0 + timedelta(hours=2), policy=MisfirePolicy.RUN_ALL,
                          catch_up_window=timedelta(hours=3), grace=GRACE)  # fmt: skip
    assert decision.outcome is FireOutcome.SKIPPED_DST and decision.reason == "gap"


def test_preview_of_the_issue_example_names_the_shift() -> None:
    spec = ScheduleSpec(kind=Kind.CRON, timezone="America/New_York", anchor=T0, cron="30 2 * * *").validate()
    p = preview(spec, after=datetime(2027, 3, 12, tzinfo=UTC), count=4)
    assert p.description == "At 02:30 every day (America/New_York; cron 30 2 * * *)"
    assert p.next_fire_times[2] == datetime(2027, 3, 14, 7, tzinfo=UTC)
    assert any("2027-03-14" in n and "02:30 does not exist" in n and "03:00 EDT" in n for n in p.notes)
    assert any("clocks change" in n and "EST → EDT" in n for n in p.notes)


def test_preview_lists_skips_in_notes_but_not_in_fire_times() -> None:
    spec = ScheduleSpec(
        kind=Kind.CRON,
        timezone="America/New_York",
        anchor=T0,
        cron="30 2 * * *",
        dst_gap_policy=DstGapPolicy.SKIP,
        blackouts=(Blackout(start=datetime(2027, 3, 16, tzinfo=UTC), end=datetime(2027, 3, 17, tzinfo=UTC)),),
    ).validate()
    p = preview(spec, after=datetime(2027, 3, 13, tzinfo=UTC), count=3)
    assert [f"{t:%d}" for t in p.next_fire_times] == ["13", "15", "17"]
    assert any("SKIPPED_DST" in n for n in p.notes) and any("SKIPPED_BLACKOUT" in n for n in p.notes)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        (
            {"kind": Kind.CRON, "cron": "0 9 * * 1-5"},
            "At 09:00 on Monday through Friday (Europe/Berlin; cron 0 9 * * 1-5)",
        ),
        ({"kind": Kind.CRON, "cron": "*/15 * * * *"}, "Every 15 minutes (Europe/Berlin; cron */15 * * * *)"),
        (
            {"kind": Kind.CRON, "cron": "0 0 29 2 *"},
            "At 00:00 on the 29th in February (Europe/Berlin; cron 0 0 29 2 *)",
        ),
        (
            {"kind": Kind.CRON, "cron": "0 8 * * 0,6"},
            "At 08:00 on Saturday and Sunday (Europe/Berlin; cron 0 8 * * 0,6)",
        ),
        (
            {"kind": Kind.INTERVAL, "interval_seconds": 7200},
            "Every 2 hours (elapsed time, from 2027-06-01 12:00:00 UTC)",
        ),
        (
            {
                "kind": Kind.RECURRING,
                "recurring": Recurring(RecurringUnit.WEEKS, 2, time(9, 0), (Weekday.FRI, Weekday.MON)),
            },
            "Every 2 weeks on Monday and Friday at 09:00 (Europe/Berlin)",
        ),
        (
            {"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.MONTHS, 1, time(0, 0), (), 31)},
            "Every month on the 31st at 00:00 (Europe/Berlin); months without a 31st are skipped",
        ),
        (
            {"kind": Kind.RECURRING, "recurring": Recurring(RecurringUnit.MINUTES, 5)},
            "Every 5 minutes (elapsed time)",
        ),
        (
            {
                "kind": Kind.ONCE,
                "run_at": datetime(2027, 7, 1, 6, tzinfo=UTC),
                "max_runs": 1,
                "jitter_seconds": 10,
            },
            "Once, at 2027-07-01 06:00 UTC (2027-07-01 08:00 CEST Europe/Berlin); at most run, "
            "each start delayed by up to 10 seconds (jitter)",
        ),
    ],
)
def test_descriptions(kw: dict[str, object], words: str) -> None:
    spec = ScheduleSpec(timezone="Europe/Berlin", anchor=T0, **kw).validate()  # type: ignore[arg-type]
    assert describe(spec) == words

"""The legacy scheduling rows mapped onto schedules (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from opsconductor_schedules.errors import InvalidScheduleError
from opsconductor_schedules.service.legacy import from_job_scheduled_at, from_legacy_schedule, legacy_weekdays
from opsconductor_schedules.service.spec import Kind, RecurringUnit, Weekday


def test_weekday_conventions() -> None:
    assert legacy_weekdays("0,6") == (Weekday.SAT, Weekday.SUN)  # UI: 0 = Sunday
    assert legacy_weekdays("0,6", convention="backend") == (Weekday.MON, Weekday.SUN)  # Python weekday
    assert legacy_weekdays("1, 1,2") == (Weekday.MON, Weekday.TUE)
    with pytest.raises(InvalidScheduleError):
        legacy_weekdays("7")


def test_scheduled_at_becomes_once() -> None:
    mapping = from_job_scheduled_at("j1", datetime(2027, 1, 2, 3, 4))
    assert mapping.draft.kind is Kind.ONCE and mapping.draft.run_at == datetime(2027, 1, 2, 3, 4, tzinfo=UTC)


def test_weekly_recurring_row() -> None:
    mapping = from_legacy_schedule(
        {
            "schedule_type": "recurring",
            "recurring_type": "weekly",
            "interval": 2,
            "time": "09:30",
            "days_of_week": "1,5",
            "timezone": "Europe/Berlin",
            "max_executions": 10,
            "enabled": True,
            "created_at": datetime(2025, 1, 1, tzinfo=UTC),
        },
        job_id="j",
    )
    recurring = mapping.draft.recurring
    assert recurring is not None and recurring.unit is RecurringUnit.WEEKS and recurring.every == 2
    assert recurring.weekdays == (Weekday.MON, Weekday.FRI) and recurring.at == time(9, 30)
    assert mapping.draft.max_runs == 10 and mapping.draft.timezone == "Europe/Berlin"
    assert any("one day later" in n for n in mapping.notes) and any(
        "computed every time in UTC" in n for n in mapping.notes
    )


@pytest.mark.parametrize(
    ("row", "kind"),
    [
        ({"schedule_type": "cron", "cron_expression": "0 2 * * 0"}, Kind.CRON),
        ({"schedule_type": "once", "execute_at": datetime(2027, 5, 1, tzinfo=UTC)}, Kind.ONCE),
        (
            {"schedule_type": "recurring", "recurring_type": "minutes", "interval": 15, "time": "10:00"},
            Kind.RECURRING,
        ),
        (
            {"schedule_type": "recurring", "recurring_type": "monthly", "day_of_month": 31, "time": "00:00"},
            Kind.RECURRING,
        ),
        (
            {
                "schedule_type": "recurring",
                "recurring_type": "daily",
                "time": "02:30:00",
                "timezone": "Bogus/Zone",
            },
            Kind.RECURRING,
        ),
    ],
)
def test_other_rows(row: dict[str, object], kind: Kind) -> None:
    assert from_legacy_schedule(row, job_id="j").draft.kind is kind


def test_unknown_types_are_refused() -> None:
    with pytest.raises(InvalidScheduleError):
        from_legacy_schedule({"schedule_type": "hourly"}, job_id="j")
    with pytest.raises(InvalidScheduleError):
        from_legacy_schedule({"schedule_type": "recurring", "recurring_type": "yearly"}, job_id="j")

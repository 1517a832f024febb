"""import_legacy_schedule on a PostgreSQL database of its own: a legacy schedule with its history, once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsconductor_schedules.models import Schedule, ScheduleFire
from opsconductor_schedules.service.importer import LegacyFire, import_legacy_schedule
from opsconductor_schedules.service.legacy import from_legacy_schedule
from opsconductor_shared.db import ServiceDatabase

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime(2027, 6, 1, tzinfo=UTC)


async def test_a_legacy_schedule_and_its_history_import_once(db: ServiceDatabase) -> None:
    mapping = from_legacy_schedule(
        {"schedule_type": "recurring", "recurring_type": "daily", "time": "02:00", "timezone": "UTC"},
        job_id="job-9",
    )
    fires = [
        LegacyFire(1, datetime(2027, 5, 30, 2), "completed", "exec-1", datetime(2027, 5, 30, 2, 0, 12)),
        LegacyFire(
            2, datetime(2027, 5, 30, 2), "completed", "exec-2", datetime(2027, 5, 30, 2, 0, 40)
        ),  # legacy double
        LegacyFire(3, datetime(2027, 5, 31, 2), "failed", None, None, "target unreachable"),
        LegacyFire(4, datetime(2027, 5, 29, 2), "skipped"),
    ]
    report = await import_legacy_schedule(legacy_id=7, mapping=mapping, owner_id="u1", fires=fires, now=NOW)
    assert report.created and report.fires_imported == 3 and report.duplicates == 1
    rows = await ScheduleFire.filter(schedule_id=report.schedule.id).order_by("scheduled_for")
    assert [r.outcome for r in rows] == ["MISSED", "FIRED", "FAILED"]
    assert rows[1].execution_id == "exec-1" and rows[1].late_ms == 12_000
    assert rows[2].reason == "legacy: target unreachable"
    schedule = await Schedule.get(id=report.schedule.id)
    assert schedule.fire_count == 1 and schedule.next_fire_at == datetime(2027, 6, 1, 2, tzinfo=UTC)
    again = await import_legacy_schedule(legacy_id=7, mapping=mapping, owner_id="u1", fires=fires, now=NOW)
    assert not again.created and await ScheduleFire.filter(schedule_id=report.schedule.id).count() == 3

"""ServiceDatabase: its own tortoise context per database, bound per task."""

from __future__ import annotations

from pathlib import Path

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import EventEnvelope, record_event
from shared.tests.conftest import OUTBOX_MIGRATIONS, OUTBOX_MODELS
from shared.tests.outbox_models import Outbox


def database(path: Path) -> ServiceDatabase:
    return ServiceDatabase(
        service="outboxtest",
        url=f"sqlite://{path}",
        models_module=OUTBOX_MODELS,
        migrations_module=OUTBOX_MIGRATIONS,
    )


async def test_start_migrates_ping_and_stop(tmp_path: Path) -> None:
    db = database(tmp_path / "db.sqlite3")
    await db.start()
    try:
        await db.ping()
        with db.bind():
            assert await Outbox.all().count() == 0  # the migration made the table
    finally:
        await db.stop()
    assert (tmp_path / "db.sqlite3").exists()

    again = database(tmp_path / "db.sqlite3")
    await again.start()  # migrations already applied: a no-op
    await again.stop()


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    db = database(tmp_path / "db.sqlite3")
    await db.start()
    with db.bind():
        await record_event(Outbox, EventEnvelope(type="things.made", source="things"))
    await db.stop()
    db = database(tmp_path / "db.sqlite3")
    await db.start()
    try:
        with db.bind():
            assert await Outbox.all().count() == 1
    finally:
        await db.stop()


async def test_two_databases_of_one_service_in_one_process(tmp_path: Path) -> None:
    first, second = database(tmp_path / "a.sqlite3"), database(tmp_path / "b.sqlite3")
    await first.start()
    await second.start()
    try:
        with first.bind():
            await record_event(Outbox, EventEnvelope(type="things.made", source="things"))
        with second.bind():
            assert await Outbox.all().count() == 0
        with first.bind():
            assert await Outbox.all().count() == 1
    finally:
        await first.stop()
        await second.stop()

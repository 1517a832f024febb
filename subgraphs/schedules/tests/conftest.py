"""A schedules database of its own on the test PostgreSQL (for the loop's claiming half and the importer).

PostgreSQL, not SQLite: tortoise caches SQL per connection name process-wide, so a service's test
database must speak the platform's dialect (shared/db.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from opsconductor_shared.db import ServiceDatabase
from tests.support.platform import create_database, drop_database


@pytest_asyncio.fixture(loop_scope="session")
async def db() -> AsyncIterator[ServiceDatabase]:
    url = await create_database("opsc_test_schedules_unit")
    database = ServiceDatabase(
        service="schedules",
        url=url,
        models_module="opsconductor_schedules.models",
        migrations_module="opsconductor_schedules.migrations",
    )
    await database.start()
    try:
        with database.bind():
            yield database
    finally:
        await database.stop()
        await drop_database(url)

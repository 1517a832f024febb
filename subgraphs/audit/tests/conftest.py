"""An audit database of its own on the test PostgreSQL (chain, ingest, retention, legacy tests).

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
    url = await create_database("opsc_test_audit_unit")
    database = ServiceDatabase(
        service="audit",
        url=url,
        models_module="opsconductor_audit.models",
        migrations_module="opsconductor_audit.migrations",
    )
    await database.start()
    try:
        with database.bind():
            from opsconductor_audit import service

            await service.ensure_head()
            yield database
    finally:
        await database.stop()
        await drop_database(url)

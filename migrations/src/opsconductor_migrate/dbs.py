"""The databases the services are configured with (each service's own Settings: the embedded
``.data/`` SQLite files by default, ``OPSC_<SERVICE>_DATABASE_URL`` / ``OPSC_DATA_DIR`` respected),
opened here so each subgraph's own import functions write its own tables."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_settings import SettingsConfigDict
from tortoise.transactions import in_transaction

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.settings import ServiceSettings

__all__ = ["SERVICES", "Databases", "MigrateSettings", "settings_of"]

SERVICES = ("auth", "users", "targets", "jobs", "executions", "schedules", "migrate")


class MigrateSettings(ServiceSettings):
    """The migration's own archive database (env prefix ``OPSC_MIGRATE_``)."""

    model_config = SettingsConfigDict(env_prefix="OPSC_MIGRATE_", extra="ignore", populate_by_name=True)


def settings_of(service: str) -> Any:
    if service == "migrate":
        return MigrateSettings()
    return importlib.import_module(f"opsconductor_{service}.settings").Settings()


def _module(service: str, name: str) -> str:
    return f"opsconductor_{service}.{name}"


class Databases:
    def __init__(self) -> None:
        self.dbs: dict[str, ServiceDatabase] = {}

    async def open(self, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            settings = settings_of(service)
            db = ServiceDatabase(
                service=service,
                url=settings.resolved_database_url(service),
                models_module=_module(service, "models"),
                migrations_module=_module(service, "migrations"),
            )
            await db.start()
            self.dbs[service] = db

    async def close(self) -> None:
        for db in self.dbs.values():
            await db.stop()
        self.dbs.clear()

    @asynccontextmanager
    async def tx(self, service: str) -> AsyncIterator[None]:
        """One transaction in one service's database (committed when the block ends)."""
        with self.dbs[service].bind():
            async with in_transaction(service):
                yield

    @asynccontextmanager
    async def read(self, service: str) -> AsyncIterator[None]:
        with self.dbs[service].bind():
            yield

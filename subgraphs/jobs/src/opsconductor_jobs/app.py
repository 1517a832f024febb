"""Build the jobs service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from starlette.applications import Starlette
from tortoise.transactions import in_transaction

from opsconductor_jobs.models import Outbox
from opsconductor_jobs.schema import schema
from opsconductor_jobs.service import ensure_counters
from opsconductor_jobs.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime = build_runtime(
        name="jobs",
        settings=settings,
        platform=platform,
        models_module="opsconductor_jobs.models",
        migrations_module="opsconductor_jobs.migrations",
        outbox_model=Outbox,
    )

    async def startup(_: Runtime) -> None:
        async with in_transaction():
            await ensure_counters()

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup])

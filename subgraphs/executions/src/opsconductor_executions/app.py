"""Build the executions service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
from typing import Any

from opsconductor_executions.models import Outbox
from opsconductor_executions.schema import schema
from opsconductor_executions.service import Deps
from opsconductor_executions.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app


def create_app(settings: Settings, platform: Platform, engine: Any | None = None):
    runtime = build_runtime(
        name="executions",
        settings=settings,
        platform=platform,
        models_module="opsconductor_executions.models",
        migrations_module="opsconductor_executions.migrations",
        outbox_model=Outbox,
    )
    runtime.deps = Deps(
        settings=settings,
        engine=engine,
        jobs=runtime.client(settings.jobs_url, timeout=10),
        targets=runtime.client(settings.targets_url, timeout=10),
        broadcaster=platform.broadcaster,
    )

    async def startup(rt: Runtime) -> None:
        await rt.deps.reattach()
        rt.deps.sweeper = asyncio.create_task(rt.deps.run_sweeper(), name="executions-sweeper")

    async def shutdown(rt: Runtime) -> None:
        if rt.deps.sweeper is not None:
            rt.deps.sweeper.cancel()
        await rt.deps.release_leases()

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup], on_shutdown=[shutdown])

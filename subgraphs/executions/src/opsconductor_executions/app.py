"""Build the executions service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from typing import Any

from opsconductor_executions.models import Outbox
from opsconductor_executions.schema import schema
from opsconductor_executions.service import ExecutionService
from opsconductor_executions.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app


def create_app(settings: Settings, platform: Platform, engine: Any | None = None):
    runtime: Runtime[Settings, ExecutionService] = build_runtime(
        name="executions",
        settings=settings,
        platform=platform,
        models_module="opsconductor_executions.models",
        migrations_module="opsconductor_executions.migrations",
        outbox_model=Outbox,
    )
    runtime.deps = ExecutionService(
        settings=settings,
        engine=engine,
        jobs=runtime.client(settings.jobs_url, timeout=10),
        targets=runtime.client(settings.targets_url, timeout=10),
        broadcaster=platform.broadcaster,
        runtime=runtime,
    )

    async def startup(rt: Runtime[Settings, ExecutionService]) -> None:
        await rt.deps.reattach()
        rt.deps.start_sweeper()

    async def shutdown(rt: Runtime[Settings, ExecutionService]) -> None:
        await rt.deps.stop()

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup], on_shutdown=[shutdown])

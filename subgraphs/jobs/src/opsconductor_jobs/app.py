"""Build the jobs service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from starlette.applications import Starlette

from opsconductor_jobs import service
from opsconductor_jobs.models import Outbox
from opsconductor_jobs.schema import schema
from opsconductor_jobs.service import danger
from opsconductor_jobs.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.unit_of_work import unit_of_work


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime: Runtime[Settings, service.Deps] = build_runtime(
        name="jobs",
        settings=settings,
        platform=platform,
        models_module="opsconductor_jobs.models",
        migrations_module="opsconductor_jobs.migrations",
        outbox_model=Outbox,
    )
    runtime.deps = service.Deps(
        targets=service.TargetsSubgraph(
            runtime.client(settings.targets_url, timeout=settings.targets_timeout_seconds)
        ),
        rules=danger.build_rules(
            settings.danger_disabled_rules, dict(sorted(settings.danger_extra_rules.items()))
        ),
        scan_timeout_seconds=settings.danger_scan_timeout_seconds,
    )

    async def startup(_: Runtime[Settings, service.Deps]) -> None:
        async with unit_of_work(runtime):
            await service.ensure_counters()

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup])

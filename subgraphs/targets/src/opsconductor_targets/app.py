"""Build the targets service's ASGI app from settings (no work at import time): wiring only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.unit_of_work import unit_of_work
from opsconductor_targets import service
from opsconductor_targets.models import Outbox
from opsconductor_targets.routes import credentials_route
from opsconductor_targets.schema import schema
from opsconductor_targets.settings import Settings

if TYPE_CHECKING:
    from opsconductor_ray.client import EngineClient


def create_app(settings: Settings, platform: Platform, engine: EngineClient | None = None) -> Any:
    runtime: Runtime[Settings, service.Deps] = build_runtime(
        name="targets",
        settings=settings,
        platform=platform,
        models_module="opsconductor_targets.models",
        migrations_module="opsconductor_targets.migrations",
        outbox_model=Outbox,
    )
    keyring = service.load_keyring(settings)
    netpolicy = service.NetPolicy(settings)
    vault = service.Vault(keyring)
    grants = service.GrantSigner(keyring, metrics=runtime.metrics)
    tester = service.ConnectionTester(
        settings=settings, netpolicy=netpolicy, vault=vault, grants=grants, engine=engine
    )
    deps = runtime.deps = service.Deps(
        settings=settings,
        vault=vault,
        grants=grants,
        netpolicy=netpolicy,
        host_keys=service.HostKeys(settings=settings, netpolicy=netpolicy, committer=runtime),
        tester=tester,
        health=service.HealthMonitor(
            settings=settings, tester=tester, broadcaster=platform.broadcaster, committer=runtime
        ),
    )
    checker: list[asyncio.Task[None]] = []

    async def startup(rt: Runtime[Settings, service.Deps]) -> None:
        async with unit_of_work(rt):
            await service.startup(grants=deps.grants)
        # targets consumes no events (events.py)
        if settings.health_check_enabled:
            checker.append(asyncio.create_task(deps.health.run(), name="targets-health"))

    async def shutdown(rt: Runtime[Settings, service.Deps]) -> None:
        for task in checker:
            task.cancel()
        for task in checker:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        checker.clear()
        await deps.host_keys.stop()

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        on_shutdown=[shutdown],
        extra_routes=[credentials_route(deps)],
    )

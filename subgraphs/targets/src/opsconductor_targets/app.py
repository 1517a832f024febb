"""Build the targets service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.logging import get_logger
from opsconductor_targets import events
from opsconductor_targets.health import HealthMonitor
from opsconductor_targets.models import Outbox
from opsconductor_targets.schema import schema
from opsconductor_targets.service import GrantRejected, TargetService
from opsconductor_targets.settings import Settings

if TYPE_CHECKING:
    from opsconductor_ray.client import EngineClient

log = get_logger("opsconductor.targets")


@dataclass
class Deps:
    targets: TargetService
    engine: EngineClient | None
    health: HealthMonitor | None = None


def _reject(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status, headers={"cache-control": "no-store"})


def create_app(settings: Settings, platform: Platform, engine: EngineClient | None = None) -> Any:
    keyring = KeyRing.load_or_create(settings.encryption_keys, settings.data_dir / "targets.keys")
    targets = TargetService(settings, keyring)
    health = HealthMonitor(targets, settings, platform.broadcaster)
    health.engine = engine
    runtime = build_runtime(
        name="targets",
        settings=settings,
        platform=platform,
        models_module="opsconductor_targets.models",
        migrations_module="opsconductor_targets.migrations",
        outbox_model=Outbox,
        deps=Deps(targets=targets, engine=engine, health=health),
    )

    checker: list[asyncio.Task[None]] = []

    async def startup(rt: Runtime) -> None:
        async with in_transaction():
            await targets.startup()
        events.subscribe(rt)
        health.on_committed = rt.events_committed
        if settings.health_check_enabled:
            checker.append(asyncio.create_task(health.run(), name="targets-health"))

    async def shutdown(rt: Runtime) -> None:
        for task in checker:
            task.cancel()
        for task in checker:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        checker.clear()

    async def resolve_credentials(request: Request) -> Response:
        """The engine's resolver: POST {grant, targetId} -> {username, password, privateKey, passphrase}.

        Not routed through the gateway (which proxies /graphql only). Never log the body.
        """
        try:
            body = await request.json()
            grant, target_id = body["grant"], body["targetId"]
            if not isinstance(grant, str) or not isinstance(target_id, str) or not grant or not target_id:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return _reject(400, 'expected JSON {"grant": "...", "targetId": "..."}')
        try:
            creds = await targets.resolve(grant, target_id)
        except GrantRejected as exc:
            log.warning("credential request refused", target_id=target_id[:64], reason=exc.message)
            return _reject(403, exc.message)
        return JSONResponse(creds, headers={"cache-control": "no-store"})

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        on_shutdown=[shutdown],
        extra_routes=[Route("/internal/credentials", resolve_credentials, methods=["POST"])],
    )

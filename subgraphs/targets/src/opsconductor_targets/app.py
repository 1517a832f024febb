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
    targets.register_metrics(runtime.metrics)

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
        await targets.stop_background()

    async def resolve_credentials(request: Request) -> Response:
        """The engine's resolver. Not routed through the gateway (which proxies /graphql only).
        Never log the body.

        - `POST {grant, targetIds: [...]}` (what pools send, once per batch) ->
          `{"credentials": {id: {username, password, privateKey, passphrase, ...}}, "refused": {id: message}}`;
        - `POST {grant, targetId}` -> that one credential object, or 403 `{message}`.

        An invalid grant is 403 `{message}` either way.
        """
        try:
            body = await request.json()
            grant = body["grant"]
            many = body.get("targetIds")
            ids = many if many is not None else [body["targetId"]]
            if (
                not isinstance(grant, str)
                or not grant
                or not isinstance(ids, list)
                or not ids
                or not all(isinstance(i, str) and i for i in ids)
            ):
                raise ValueError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _reject(
                400, 'expected JSON {"grant": "...", "targetIds": ["..."]} or {"grant", "targetId"}'
            )
        if len(ids) > settings.max_grant_targets:
            return _reject(413, f"at most {settings.max_grant_targets} targets per request")
        try:
            answers, refused = await targets.resolve_many(grant, ids)
        except GrantRejected as exc:
            log.warning("credential request refused", targets=len(ids), reason=exc.message)
            return _reject(403, exc.message)
        for target_id, reason in refused.items():
            log.warning("credential request refused", target_id=target_id[:64], reason=reason)
        if many is None:
            if ids[0] in refused:
                return _reject(403, refused[ids[0]])
            return JSONResponse(answers[ids[0]], headers={"cache-control": "no-store"})
        return JSONResponse(
            {"credentials": answers, "refused": refused}, headers={"cache-control": "no-store"}
        )

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        on_shutdown=[shutdown],
        extra_routes=[Route("/internal/credentials", resolve_credentials, methods=["POST"])],
    )

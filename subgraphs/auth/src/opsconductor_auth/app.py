"""Build the auth service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

from opsconductor_auth import events
from opsconductor_auth.guards import ServiceSecrets, announce_bootstrap_password, housekeeping
from opsconductor_auth.models import Outbox
from opsconductor_auth.schema import schema
from opsconductor_auth.service import (
    SERVICE_PERMISSIONS,
    AuthService,
    KeyManager,
    LoginFailed,
    check_admin_password,
    ensure_bootstrap_admin,
)
from opsconductor_auth.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.auth import CachedApiKeyStatus
from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.auth")


@dataclass
class Deps:
    auth: AuthService
    keys: KeyManager


def create_app(settings: Settings, platform: Platform):
    keyring = KeyRing.load_or_create(settings.encryption_keys, settings.data_dir / "auth.keys")
    keys = KeyManager(keyring)
    # Each service's own secret (hashes): a published default or a too short one stops auth here.
    service_secrets = ServiceSecrets.from_settings(settings, SERVICE_PERMISSIONS)
    if settings.admin_password is not None:
        check_admin_password(settings)  # the password policy applies to OPSC_ADMIN_PASSWORD too
    runtime = build_runtime(
        name="auth",
        settings=settings,
        platform=platform,
        models_module="opsconductor_auth.models",
        migrations_module="opsconductor_auth.migrations",
        outbox_model=Outbox,
        deps=Deps(auth=AuthService(settings, keys, platform.revocations, service_secrets), keys=keys),
    )
    background: list[asyncio.Task[None]] = []

    async def api_key_active(key_id: str, token_hash: str) -> bool:
        with runtime.db.bind():
            return await runtime.deps.auth.api_key_active(key_id, token_hash)

    # Auth answers the API key check from its own database (other services ask it over HTTP).
    runtime.verifier.api_keys = CachedApiKeyStatus(api_key_active, ttl=settings.api_key_check_seconds)

    async def startup(rt: Runtime) -> None:
        async with in_transaction():
            await keys.ensure_key()
            generated = await ensure_bootstrap_admin(settings)
        if generated:
            # Shown once, on the first start, on the terminal: never in stdout or a log (L4).
            announce_bootstrap_password(generated, settings.data_dir)
        events.subscribe(rt)
        background.append(
            asyncio.create_task(
                housekeeping(
                    rt,
                    interval=settings.housekeeping_seconds,
                    retention_days=settings.login_attempts_retention_days,
                ),
                name="auth-housekeeping",
            )
        )

    async def shutdown(_: Runtime) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def jwks(_: Request) -> Response:
        with runtime.db.bind():
            return JSONResponse(await keys.jwks(), headers={"cache-control": "public, max-age=60"})

    async def service_token(request: Request) -> Response:
        try:
            body = await request.json()
            with runtime.db.bind():
                token, expires = await runtime.deps.auth.service_token(
                    str(body["service"]), str(body["secret"])
                )
        except (LoginFailed, KeyError, ValueError, TypeError):
            return JSONResponse({"message": "service credentials rejected"}, status_code=401)
        return JSONResponse({"token": token, "expiresAt": expires})

    async def api_key_status(request: Request) -> Response:
        """Whether an API key is still valid; asked (and cached briefly) by every service's verifier.
        The caller must present the token's SHA-256, so only a holder of the key learns anything."""
        try:
            body = await request.json()
            key_id, token_hash = str(body["id"]), str(body["tokenHash"])
        except (KeyError, ValueError, TypeError):
            return JSONResponse({"message": "expected {id, tokenHash}"}, status_code=400)
        with runtime.db.bind():
            active = await runtime.deps.auth.api_key_active(key_id[:64], token_hash[:64])
        return JSONResponse({"active": active})

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        on_shutdown=[shutdown],
        extra_routes=[
            Route("/.well-known/jwks.json", jwks),
            Route("/internal/service-token", service_token, methods=["POST"]),
            Route("/internal/api-key-status", api_key_status, methods=["POST"]),
        ],
    )

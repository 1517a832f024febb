"""Build the auth service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tortoise.transactions import in_transaction

from opsconductor_auth import events
from opsconductor_auth.models import Outbox
from opsconductor_auth.schema import schema
from opsconductor_auth.service import AuthService, KeyManager, LoginFailed, ensure_bootstrap_admin
from opsconductor_auth.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
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
    runtime = build_runtime(
        name="auth",
        settings=settings,
        platform=platform,
        models_module="opsconductor_auth.models",
        migrations_module="opsconductor_auth.migrations",
        outbox_model=Outbox,
        deps=Deps(auth=AuthService(settings, keys, platform.revocations), keys=keys),
    )

    async def startup(rt: Runtime) -> None:
        async with in_transaction():
            await keys.ensure_key()
            generated = await ensure_bootstrap_admin(settings)
        if generated:
            # Printed once, on the first start; it is not stored anywhere in clear text.
            print(f"\n  OpsConductor bootstrap admin: username 'admin', password '{generated}'\n", flush=True)
        events.subscribe(rt)

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
        except (LoginFailed, KeyError, ValueError):
            return JSONResponse({"message": "service credentials rejected"}, status_code=401)
        return JSONResponse({"token": token, "expiresAt": expires})

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        extra_routes=[
            Route("/.well-known/jwks.json", jwks),
            Route("/internal/service-token", service_token, methods=["POST"]),
        ],
    )

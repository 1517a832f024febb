"""Auth's HTTP routes beside GraphQL: JWKS, service tokens, and the API key status every service asks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsconductor_auth import service
from opsconductor_auth.errors import LoginFailed
from opsconductor_auth.settings import Settings
from opsconductor_shared.app import Runtime
from opsconductor_shared.unit_of_work import unit_of_work


def routes(runtime: Runtime[Settings, service.Deps]) -> list[Route]:
    deps = runtime.deps

    async def jwks(_: Request) -> Response:
        with runtime.db.bind():
            return JSONResponse(await deps.keys.jwks(), headers={"cache-control": "public, max-age=60"})

    async def service_token(request: Request) -> Response:
        try:
            body = await request.json()
            with runtime.db.bind():
                token, expires = await service.service_token(
                    deps=deps, service=str(body["service"]), secret=str(body["secret"])
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
            active = await service.api_key_active(key_id=key_id[:64], token_hash=token_hash[:64])
            async with unit_of_work(runtime):
                await service.record_api_key_use(key_id=key_id[:64], active=active)
        return JSONResponse({"active": active})

    return [
        Route("/.well-known/jwks.json", jwks),
        Route("/internal/service-token", service_token, methods=["POST"]),
        Route("/internal/api-key-status", api_key_status, methods=["POST"]),
    ]

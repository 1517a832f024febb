"""Build the executions service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsconductor_executions.models import Outbox
from opsconductor_executions.schema import schema
from opsconductor_executions.service import ExecutionService
from opsconductor_executions.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.auth import AuthenticationError, bearer_token
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.executions")


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

    async def engine_health(request: Request) -> Response:
        """The engine's nodes and actors for the audit service's systemHealth (a service token)."""
        token = bearer_token(request.headers.get("authorization"))
        try:
            identity = await runtime.verifier.verify(token) if token else None
        except AuthenticationError:
            identity = None
        if identity is None or identity.kind != "service":
            return JSONResponse({"detail": "a service token is required"}, status_code=401)
        if engine is None:
            return JSONResponse(
                {"detail": "no engine configured", "nodes": 0, "aliveNodes": 0}, status_code=503
            )
        try:
            return JSONResponse(await engine.health())
        except Exception as exc:  # the engine cannot be asked: say so, never a traceback
            log.info("engine health unavailable", error=type(exc).__name__)
            body = {"detail": f"engine unavailable: {type(exc).__name__}", "nodes": 0, "aliveNodes": 0}
            return JSONResponse(body, status_code=503)

    return create_service_app(
        runtime=runtime,
        schema=schema,
        extra_routes=[Route("/engine", engine_health)],
        on_startup=[startup],
        on_shutdown=[shutdown],
    )

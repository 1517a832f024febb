"""Build the audit service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette

from opsconductor_audit import service
from opsconductor_audit.models import Outbox
from opsconductor_audit.schema import schema
from opsconductor_audit.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit")


async def _every(seconds: float, work: Callable[[], Awaitable[Any]], what: str) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(f"{what} failed", error=type(exc).__name__)


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime = build_runtime(
        name="audit",
        settings=settings,
        platform=platform,
        models_module="opsconductor_audit.models",
        migrations_module="opsconductor_audit.migrations",
        outbox_model=Outbox,
    )
    signer = service.Signer.load_or_create(
        settings.signing_key.get_secret_value() if settings.signing_key else None, settings.data_dir
    )
    ingestor = service.Ingestor(
        sources=settings.sources,
        group=settings.consumer_group,
        consumer=f"audit-{socket.gethostname()}-{os.getpid()}-{id(runtime):x}",
        batch=settings.ingest_batch,
        claim_idle=settings.ingest_claim_idle_seconds,
    )
    runtime.deps = service.Deps(signer=signer, ingestor=ingestor, files_dir=settings.files_dir())
    background: list[asyncio.Task[None]] = []

    if platform.redis is None:
        # the in-process bus (embedded): group commit of what the bus hands over
        platform.bus.subscribe(
            group=settings.consumer_group, sources=list(settings.sources), handler=_bound(runtime)
        )

    async def checkpoint_if_moved() -> None:
        with runtime.db.bind():
            latest = await service.last_checkpoint()
            current = await service.head()
            if current.last_seq and (latest is None or latest.seq != current.last_seq):
                await service.take_checkpoint(signer, reason="periodic")

    async def startup(rt: Runtime[Settings, service.Deps]) -> None:
        await service.ensure_head()
        if platform.redis is not None:
            background.append(asyncio.create_task(ingestor.run_redis(platform.redis), name="audit-ingest"))
        else:
            background.append(asyncio.create_task(ingestor.run_group_commit(), name="audit-ingest"))
        if settings.checkpoint_interval_seconds > 0:
            background.append(
                asyncio.create_task(
                    _every(settings.checkpoint_interval_seconds, checkpoint_if_moved, "audit checkpoint"),
                    name="audit-checkpoint",
                )
            )

    async def shutdown(rt: Runtime[Settings, service.Deps]) -> None:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup], on_shutdown=[shutdown])


def _bound(runtime: Runtime[Settings, service.Deps]) -> Any:
    async def handler(envelope: Any) -> None:
        with runtime.db.bind():
            await runtime.deps.ingestor.submit(envelope)

    return handler

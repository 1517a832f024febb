"""Build the auth service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import contextlib

from opsconductor_auth import events, service
from opsconductor_auth.models import Outbox, ProcessedEvent
from opsconductor_auth.routes import routes
from opsconductor_auth.schema import schema
from opsconductor_auth.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.auth import CachedApiKeyStatus
from opsconductor_shared.events import EventEnvelope
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import unit_of_work

log = get_logger("opsconductor.auth")


async def housekeeping(runtime: Runtime[Settings, service.Deps]) -> None:
    """Runs for the service's lifetime: prunes old login attempts (L16)."""
    settings = runtime.settings
    while True:
        try:
            with runtime.db.bind():
                removed = await service.prune_login_attempts(
                    retention_days=settings.login_attempts_retention_days
                )
            if removed:
                log.info(
                    "login attempts pruned",
                    removed=removed,
                    retention_days=settings.login_attempts_retention_days,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be briefly unavailable: try next time
            log.warning("login attempts pruning failed", error=type(exc).__name__)
        await asyncio.sleep(settings.housekeeping_seconds)


def create_app(settings: Settings, platform: Platform):
    keys = service.KeyManager(service.keyring_of(settings))
    # Each service's own secret (hashes): a published default or a too short one stops auth here.
    service_secrets = service.ServiceSecrets.from_settings(settings)
    if settings.admin_password is not None:
        service.check_admin_password(settings)  # the password policy applies to OPSC_ADMIN_PASSWORD too
    deps = service.Deps.build(
        settings, keys=keys, revocations=platform.revocations, service_secrets=service_secrets
    )
    runtime = build_runtime(
        name="auth",
        settings=settings,
        platform=platform,
        models_module="opsconductor_auth.models",
        migrations_module="opsconductor_auth.migrations",
        outbox_model=Outbox,
        deps=deps,
    )
    background: list[asyncio.Task[None]] = []

    async def api_key_active(key_id: str, token_hash: str) -> bool:
        with runtime.db.bind():
            return await service.api_key_active(key_id=key_id, token_hash=token_hash)

    # Auth answers the API key check from its own database (other services ask it over HTTP).
    runtime.verifier.api_keys = CachedApiKeyStatus(api_key_active, ttl=settings.api_key_check_seconds)

    async def on_user_event(envelope: EventEnvelope) -> None:
        await service.apply_user_event(deps=deps, envelope=envelope)

    async def startup(rt: Runtime[Settings, service.Deps]) -> None:
        async with unit_of_work(rt):
            await keys.ensure_key()
            generated = await service.ensure_bootstrap_admin(settings)
        if generated:
            # Shown once on the terminal (/dev/tty, or stderr if it is one), never in stdout or a log
            # (make dev tees both to .data/services.log). Without a terminal it is written, in clear
            # text, to <OPSC_DATA_DIR>/bootstrap-admin-password (0600): delete it once read (L4).
            service.announce_bootstrap_password(generated, settings.data_dir)
        rt.consume(
            sources=["users"], types=events.CONSUMES, processed_model=ProcessedEvent, handler=on_user_event
        )
        background.append(asyncio.create_task(housekeeping(rt), name="auth-housekeeping"))

    async def shutdown(_: Runtime[Settings, service.Deps]) -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return create_service_app(
        runtime=runtime,
        schema=schema,
        on_startup=[startup],
        on_shutdown=[shutdown],
        extra_routes=routes(runtime),
    )

"""Build the audit service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette

from opsconductor_audit import service
from opsconductor_audit.models import Outbox
from opsconductor_audit.routes import routes
from opsconductor_audit.schema import schema
from opsconductor_audit.service.alerting import store as alert_store
from opsconductor_audit.service.alerting.channels import RetryPolicy
from opsconductor_audit.service.alerting.destinations import DestinationPolicy
from opsconductor_audit.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.crypto import KeyRing
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
        # stable across restarts of this replica (host and port): it re-reads its own pending entries first
        consumer=settings.consumer_name or f"audit-{socket.gethostname()}-{settings.port}",
        batch=settings.ingest_batch,
        claim_idle=settings.ingest_claim_idle_seconds,
    )
    http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
    alerting, monitor = _alerting(settings, runtime, platform, http)
    runtime.deps = service.Deps(
        signer=signer, ingestor=ingestor, files_dir=settings.files_dir(), alerting=alerting, health=monitor
    )

    async def evaluate(rows: Any) -> None:
        alerting.on_events(rows)  # synchronous and cheap: the append loop never waits on alerting

    ingestor.listeners.append(evaluate)
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

    policy = service.Policy(
        max_age=timedelta(days=settings.retention_days) if settings.retention_days else None,
        max_events=settings.retention_max_events,
    )

    async def housekeeping() -> None:
        with runtime.db.bind():
            if policy.max_age is not None or policy.max_events is not None:
                result = await service.apply_retention(
                    policy=policy, signer=signer, files_dir=settings.files_dir()
                )
                if result.archived:
                    log.info("audit events archived", rows=result.archived, to_seq=result.to_seq)
            await service.prune_exports(older_than=timedelta(hours=settings.export_retention_hours))

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

        if settings.retention_interval_seconds > 0:
            background.append(
                asyncio.create_task(
                    _every(settings.retention_interval_seconds, housekeeping, "audit retention"),
                    name="audit-retention",
                )
            )

    async def start_alerting(rt: Runtime[Settings, service.Deps]) -> None:
        await alerting.start()
        monitor.start()

    async def stop_alerting(rt: Runtime[Settings, service.Deps]) -> None:
        await monitor.stop()
        await alerting.stop()
        await http.aclose()

    async def shutdown(rt: Runtime[Settings, service.Deps]) -> None:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    return create_service_app(
        runtime=runtime,
        schema=schema,
        extra_routes=routes(runtime),
        on_startup=[startup, start_alerting],
        on_shutdown=[stop_alerting, shutdown],
    )


def _alerting(
    settings: Settings, runtime: Runtime[Settings, service.Deps], platform: Platform, http: httpx.AsyncClient
) -> tuple[service.Alerting, service.health.HealthMonitor]:
    """Alert rules, notifications (README "Alerting") and the system health monitor."""
    keys = settings.encryption_keys
    keyring = KeyRing.load_or_create(
        keys.get_secret_value() if keys is not None else None, settings.data_dir / "audit.keys"
    )
    services = {
        "auth": settings.auth_url,
        "users": settings.users_url,
        "targets": settings.targets_url,
        "jobs": settings.jobs_url,
        "executions": settings.executions_url,
        "schedules": settings.schedules_url,
    }
    policy = DestinationPolicy(
        deny_networks=settings.notify_deny_networks,
        platform_endpoints=[
            settings.resolved_database_url("audit"),
            settings.redis_url or "",
            settings.router_url,
            settings.base_url,
            settings.jwks_url,
            *services.values(),
        ],
    )
    alerting = service.Alerting(
        secrets=alert_store.Secrets(keyring),
        policy=policy,
        broadcaster=platform.broadcaster,
        retry=RetryPolicy(
            attempts=max(1, settings.notify_attempts), base_delay=settings.notify_backoff_seconds
        ),
        webhook_timeout=settings.webhook_timeout_seconds,
        reload_seconds=settings.alert_rules_reload_seconds,
        bind=runtime.db.bind,
    )
    health = service.health
    timeout = settings.health_timeout_seconds
    probes = [
        health.http_probe(http, name, health.ready_url(url), timeout=timeout)
        for name, url in services.items()
    ]
    probes.append(health.http_probe(http, "audit", f"{settings.base_url}/ready", timeout=timeout))
    if settings.router_url:
        router = settings.router_url.rsplit("/graphql", 1)[0]
        probes.append(
            health.http_probe(http, "router", f"{router}/readiness", kind="router", timeout=timeout)
        )
    probes.append(health.call_probe("database", "database", runtime.db.ping, timeout=timeout))
    if platform.redis is not None:
        probes.append(health.call_probe("redis", "redis", platform.redis.ping, timeout=timeout))
    engine_url = settings.executions_url.rsplit("/graphql", 1)[0] + "/engine"

    async def report(events: Any) -> None:
        with runtime.db.bind():
            for event in events:
                rows = await service.record(
                    str(event["type"]),
                    actor_id=None,
                    subject_type="Component",
                    subject_id=str(event["subjectId"]),
                    data=dict(event["data"]),
                )
                alerting.on_events(rows)

    monitor = health.HealthMonitor(
        probes=probes,
        broadcaster=platform.broadcaster,
        ray_probe=health.ray_http_probe(http, engine_url, runtime.tokens.token, timeout=max(timeout, 10)),
        reporter=report,
        interval_seconds=settings.health_interval_seconds,
    )
    return alerting, monitor


def _bound(runtime: Runtime[Settings, service.Deps]) -> Any:
    async def handler(envelope: Any) -> None:
        with runtime.db.bind():
            await runtime.deps.ingestor.submit(envelope)

    return handler

"""Build the schedules service's ASGI app from settings (no work at import time)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from starlette.applications import Starlette

from opsconductor_schedules import events, service
from opsconductor_schedules.models import Outbox, ProcessedEvent
from opsconductor_schedules.schema import schema
from opsconductor_schedules.settings import Settings
from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.events import EventEnvelope


class _Relay:
    """The firing loop's own commits: the relay publishes their events; the loop is not woken
    again (it computes its next sleep after each pass; a wake per fire row was a pass per commit)."""

    def __init__(self, announce: Callable[[], None]) -> None:
        self.announce = announce

    def events_committed(self) -> None:
        self.announce()


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime = build_runtime(
        name="schedules",
        settings=settings,
        platform=platform,
        models_module="opsconductor_schedules.models",
        migrations_module="opsconductor_schedules.migrations",
        outbox_model=Outbox,
    )
    announce = runtime.events_committed
    scheduler = service.Scheduler(
        committer=_Relay(announce),
        owners=service.OwnerCheck(runtime.client(settings.users_url, timeout=10)),
        runs=service.RunStarter(runtime.client(settings.executions_url, timeout=30)),
        broadcaster=platform.broadcaster,
        config=service.SchedulerConfig(
            misfire_grace=timedelta(seconds=settings.misfire_grace_seconds),
            claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
            queue_recheck=timedelta(seconds=settings.queue_recheck_seconds),
            max_sleep=timedelta(seconds=settings.max_sleep_seconds),
        ),
    )

    def committed() -> None:
        """After every commit of this service (a schedule changed, a fire was recorded): the relay
        publishes the events and the firing loop looks again (a wake-up before the commit could
        miss the change)."""
        announce()
        scheduler.wake()

    runtime.events_committed = committed
    runtime.deps = service.Deps(
        jobs=service.JobDirectory(runtime.client(settings.jobs_url, timeout=10)),
        scheduler=scheduler,
        broadcaster=platform.broadcaster,
    )

    async def on_job_deleted(envelope: EventEnvelope) -> None:
        job_id = str(envelope.data.get("id") or envelope.subject or "")
        if job_id:
            await service.delete_schedules_of_job(job_id=job_id, actor=envelope.actor)

    async def startup(rt: Runtime[Settings, service.Deps]) -> None:
        rt.consume(
            sources=["jobs"],
            types=[events.JOB_DELETED],
            processed_model=ProcessedEvent,
            handler=on_job_deleted,
        )
        if rt.settings.scheduler_enabled:
            rt.deps.scheduler.start()  # inherits the bound database context of the lifespan

    async def shutdown(rt: Runtime[Settings, service.Deps]) -> None:
        await rt.deps.scheduler.stop()

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup], on_shutdown=[shutdown])

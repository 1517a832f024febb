"""Build the users service's ASGI app from settings (no work at import time): the collaborators,
the start-up work (system roles, the bootstrap admin) and the consumer of auth's logins."""

from __future__ import annotations

from starlette.applications import Starlette
from tortoise.exceptions import IntegrityError

from opsconductor_shared.app import Platform, Runtime, build_runtime, create_service_app
from opsconductor_shared.events import EventEnvelope
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import unit_of_work
from opsconductor_users import events, service
from opsconductor_users.models import Outbox, ProcessedEvent
from opsconductor_users.schema import schema
from opsconductor_users.settings import Settings

log = get_logger("opsconductor.users")


def create_app(settings: Settings, platform: Platform) -> Starlette:
    runtime: Runtime[Settings, service.Deps] = build_runtime(
        name="users",
        settings=settings,
        platform=platform,
        models_module="opsconductor_users.models",
        migrations_module="opsconductor_users.migrations",
        outbox_model=Outbox,
    )
    runtime.deps = service.Deps(credentials=service.AuthCredentials(runtime.client(settings.auth_url)))

    async def on_login(envelope: EventEnvelope) -> None:
        if envelope.subject:
            await service.record_login(user_id=envelope.subject, at=envelope.time)

    async def startup(rt: Runtime[Settings, service.Deps]) -> None:
        await service.seed_roles()  # outside a transaction on purpose (README Pitfalls)
        try:
            async with unit_of_work(rt):
                created = await service.ensure_bootstrap_admin()
        except IntegrityError:  # another replica created it first (or a legacy row holds its email)
            created = False
        if created:
            log.info("bootstrap admin user created", user_id=service.BOOTSTRAP_ADMIN_ID)
        rt.consume(
            sources=["auth"],
            types=[events.LOGIN_SUCCEEDED],
            processed_model=ProcessedEvent,
            handler=on_login,
        )

    return create_service_app(runtime=runtime, schema=schema, on_startup=[startup])

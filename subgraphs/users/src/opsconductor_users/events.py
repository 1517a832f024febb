"""Events users publishes (users.user_created / user_updated / user_deactivated) and consumes
(auth.login_succeeded, to keep lastLoginAt)."""

from __future__ import annotations

from opsconductor_shared.app import Runtime
from opsconductor_shared.events import EventEnvelope, deduplicating
from opsconductor_users import service
from opsconductor_users.models import ProcessedEvent

PUBLISHES = ("users.user_created", "users.user_updated", "users.user_deactivated")
CONSUMES = ("auth.login_succeeded",)


def subscribe(runtime: Runtime) -> None:
    async def on_auth_event(envelope: EventEnvelope) -> None:
        if envelope.type not in CONSUMES or not envelope.subject:
            return
        await service.record_login(envelope.subject, envelope.time)

    handler = deduplicating(ProcessedEvent, on_auth_event)  # runs in its own transaction

    async def bound(envelope: EventEnvelope) -> None:
        with runtime.db.bind():
            await handler(envelope)

    runtime.platform.bus.subscribe(group="users", sources=["auth"], handler=bound)

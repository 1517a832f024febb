"""Events users publishes (users.user_created / user_updated / user_deactivated) and consumes
(auth.login_succeeded, to keep lastLoginAt)."""

from __future__ import annotations

from opsconductor_shared.app import Runtime
from opsconductor_shared.events import EventEnvelope
from opsconductor_users import service
from opsconductor_users.models import ProcessedEvent

PUBLISHES = (
    "users.user_created",
    "users.user_updated",
    "users.user_deactivated",
    "users.user_roles_changed",
)
CONSUMES = ("auth.login_succeeded",)


def subscribe(runtime: Runtime) -> None:
    async def on_login(envelope: EventEnvelope) -> None:
        if envelope.subject:
            await service.record_login(envelope.subject, envelope.time)

    runtime.consume(sources=["auth"], types=CONSUMES, processed_model=ProcessedEvent, handler=on_login)

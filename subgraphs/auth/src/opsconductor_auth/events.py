"""Events auth publishes (auth.login_succeeded, auth.session_revoked) and consumes (users.*)."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from opsconductor_auth.models import ProcessedEvent
from opsconductor_auth.service import apply_user_event
from opsconductor_shared.app import Runtime
from opsconductor_shared.events import EventEnvelope, deduplicating

PUBLISHES = ("auth.login_succeeded", "auth.session_revoked")
CONSUMES = ("users.user_created", "users.user_updated", "users.user_deactivated", "users.user_roles_changed")


def subscribe(runtime: Runtime) -> None:
    async def on_user_event(envelope: EventEnvelope) -> None:
        if envelope.type not in CONSUMES:
            return
        with runtime.db.bind():
            async with in_transaction():
                await apply_user_event(envelope, runtime.platform.revocations, runtime.settings)  # type: ignore[arg-type]

    handler = deduplicating(ProcessedEvent, on_user_event)

    async def bound(envelope: EventEnvelope) -> None:
        with runtime.db.bind():
            await handler(envelope)

    runtime.platform.bus.subscribe(group="auth", sources=["users"], handler=bound)

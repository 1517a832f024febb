"""Events auth publishes (auth.login_succeeded, auth.session_revoked) and consumes (users.*)."""

from __future__ import annotations

from opsconductor_auth.models import ProcessedEvent
from opsconductor_shared.app import Runtime
from opsconductor_shared.events import EventEnvelope

PUBLISHES = ("auth.login_succeeded", "auth.session_revoked")
CONSUMES = ("users.user_created", "users.user_updated", "users.user_deactivated", "users.user_roles_changed")


def subscribe(runtime: Runtime) -> None:
    async def on_user_event(envelope: EventEnvelope) -> None:
        await runtime.deps.auth.apply_user_event(envelope)

    runtime.consume(sources=["users"], types=CONSUMES, processed_model=ProcessedEvent, handler=on_user_event)

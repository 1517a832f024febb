"""Events auth publishes (names and envelope builders) and the users events it consumes.

Below the service layer: the service records these envelopes in its outbox; ``app.py`` wires the
consumer of ``CONSUMES`` (to ``service.apply_user_event``).
"""

from __future__ import annotations

from opsconductor_shared.events import EventEnvelope

SOURCE = "auth"

LOGIN_SUCCEEDED = "auth.login_succeeded"
SESSION_REVOKED = "auth.session_revoked"
API_KEY_CREATED = "auth.api_key_created"
API_KEY_REVOKED = "auth.api_key_revoked"

CONSUMES = ("users.user_created", "users.user_updated", "users.user_deactivated", "users.user_roles_changed")
"""The users events that carry a user's claims (kept in auth's replica, ``service.replica``)."""


def login_succeeded(*, user_id: str, session_id: str, ip: str | None) -> EventEnvelope:
    return EventEnvelope(
        type=LOGIN_SUCCEEDED,
        source=SOURCE,
        subject=user_id,
        actor=user_id,
        data={"sessionId": session_id, "ip": ip},
    )


def session_revoked(*, user_id: str, session_id: str, reason: str) -> EventEnvelope:
    return EventEnvelope(
        type=SESSION_REVOKED,
        source=SOURCE,
        subject=user_id,
        data={"sessionId": session_id, "reason": reason},
    )


def api_key_created(*, user_id: str, api_key_id: str, name: str, permissions: list[str]) -> EventEnvelope:
    return EventEnvelope(
        type=API_KEY_CREATED,
        source=SOURCE,
        subject=user_id,
        actor=user_id,
        data={"apiKeyId": api_key_id, "name": name, "permissions": permissions},
    )


def api_key_revoked(*, user_id: str, api_key_id: str, reason: str) -> EventEnvelope:
    return EventEnvelope(
        type=API_KEY_REVOKED,
        source=SOURCE,
        subject=user_id,
        data={"apiKeyId": api_key_id, "reason": reason},
    )

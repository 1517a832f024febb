"""Events auth publishes (names and envelope builders) and the users events it consumes.

Below the service layer: the service records these envelopes in its outbox; ``app.py`` wires the
consumer of ``CONSUMES`` (to ``service.apply_user_event``).
"""

from __future__ import annotations

from opsconductor_shared.events import EventEnvelope

SOURCE = "auth"

LOGIN_SUCCEEDED = "auth.login_succeeded"
LOGIN_FAILED = "auth.login_failed"
"""A refused login: {username, reason (unknown_user, bad_password, locked, disabled), ip, userAgent}."""
ACCOUNT_LOCKED = "auth.account_locked"
"""The failure that locked the account: {username, until, ip, userAgent}."""
SESSION_REFRESHED = "auth.session_refreshed"
REFRESH_FAILED = "auth.refresh_failed"
API_KEY_USED = "auth.api_key_used"
"""A service asked whether an API key is valid (at most once a minute per key and answer)."""
SESSION_REVOKED = "auth.session_revoked"
API_KEY_CREATED = "auth.api_key_created"
API_KEY_REVOKED = "auth.api_key_revoked"

CONSUMES = ("users.user_created", "users.user_updated", "users.user_deactivated", "users.user_roles_changed")
"""The users events that carry a user's claims (kept in auth's replica, ``service.replica``)."""


def login_succeeded(
    *,
    user_id: str,
    session_id: str,
    ip: str | None,
    username: str | None = None,
    user_agent: str | None = None,
) -> EventEnvelope:
    return EventEnvelope(
        type=LOGIN_SUCCEEDED,
        source=SOURCE,
        subject=user_id,
        actor=user_id,
        data={"sessionId": session_id, "ip": ip, "username": username, "userAgent": user_agent},
    )


def login_failed(
    *, username: str, user_id: str | None, reason: str, ip: str | None, user_agent: str | None
) -> EventEnvelope:
    """Never the password; the username as typed (it may be a mistyped password: cut to 100)."""
    return EventEnvelope(
        type=LOGIN_FAILED,
        source=SOURCE,
        subject=user_id,
        data={"username": username[:100], "reason": reason, "ip": ip, "userAgent": user_agent},
    )


def account_locked(
    *, username: str, user_id: str, until: str, ip: str | None, user_agent: str | None
) -> EventEnvelope:
    return EventEnvelope(
        type=ACCOUNT_LOCKED,
        source=SOURCE,
        subject=user_id,
        data={"username": username[:100], "until": until, "ip": ip, "userAgent": user_agent},
    )


def session_refreshed(*, user_id: str, session_id: str) -> EventEnvelope:
    return EventEnvelope(
        type=SESSION_REFRESHED, source=SOURCE, subject=user_id, actor=user_id, data={"sessionId": session_id}
    )


def refresh_failed(*, user_id: str | None, session_id: str | None, reason: str) -> EventEnvelope:
    return EventEnvelope(
        type=REFRESH_FAILED,
        source=SOURCE,
        subject=user_id,
        data={"sessionId": session_id, "reason": reason},
    )


def api_key_used(*, user_id: str | None, api_key_id: str, ok: bool) -> EventEnvelope:
    return EventEnvelope(
        type=API_KEY_USED,
        source=SOURCE,
        subject=user_id,
        actor=user_id,
        data={"apiKeyId": api_key_id, "ok": ok},
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

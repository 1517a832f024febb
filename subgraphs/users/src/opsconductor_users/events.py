"""Events users publishes (outbox -> ``opsc.events.users``) and the one it consumes.

Every ``users.*`` event carries the user's full snapshot (``UserRecord.event_data``), never a
password. The consumer of ``auth.login_succeeded`` is wired in ``app.py``.
"""

from __future__ import annotations

from typing import Any, Protocol

from opsconductor_shared.auth import Identity
from opsconductor_shared.events import EventEnvelope

SOURCE = "users"

USER_CREATED = "users.user_created"
USER_UPDATED = "users.user_updated"
"""Activation and profile changes."""
USER_DEACTIVATED = "users.user_deactivated"
"""Deactivation and soft delete (``deleted: true``): auth revokes every session."""
USER_ROLES_CHANGED = "users.user_roles_changed"
"""setUserRoles, and one per holder when updateRole changes a role's permissions."""

ROLE_CREATED = "users.role_created"
ROLE_UPDATED = "users.role_updated"
ROLE_DELETED = "users.role_deleted"
"""Role definition changes (audited): {name, description, permissions}."""

LOGIN_SUCCEEDED = "auth.login_succeeded"
"""Consumed (group ``users``): keeps ``lastLoginAt``."""


class UserSnapshot(Protocol):
    """What an event needs of a user (the service's ``UserRecord``)."""

    @property
    def id(self) -> str: ...

    def event_data(self) -> dict[str, Any]: ...


def user_event(type: str, user: UserSnapshot, actor: Identity | None) -> EventEnvelope:
    """The envelope of one ``users.*`` event: the user's snapshot, subject = the user's id."""
    return EventEnvelope(
        type=type,
        source=SOURCE,
        subject=user.id,
        actor=actor.subject if actor else None,
        data=user.event_data(),
    )


def role_event(
    type: str, *, name: str, description: str | None, permissions: list[str] | None, actor: Identity | None
) -> EventEnvelope:
    return EventEnvelope(
        type=type,
        source=SOURCE,
        subject=name,
        actor=actor.subject if actor else None,
        data={"name": name, "description": description, "permissions": permissions},
    )

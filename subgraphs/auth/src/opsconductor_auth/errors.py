"""Auth's domain errors (no strawberry): what its services raise; ``types.ERRORS`` maps them to the
GraphQL error types of the result unions. The shared ones (``ValidationError``, ``NotFoundError``,
``ForbiddenError``) come from ``opsconductor_shared.errors``."""

from __future__ import annotations

from datetime import datetime

from opsconductor_shared.errors import DomainError


class LoginFailed(DomainError):
    """Uniform answer for unknown user and wrong password (also a wrong current password)."""


class AccountLocked(DomainError):
    """Too many failed logins: no login until ``until``."""

    def __init__(self, until: datetime) -> None:
        super().__init__("account locked after repeated failed logins")
        self.until = until


class AccountDisabled(DomainError):
    """The account is deactivated (users service)."""


class InvalidRefresh(DomainError):
    """The refresh token is unknown, was used already (the session is then revoked), or its session ended."""


class SessionEndedError(DomainError):
    """The session ended (idle timeout or revoked): it cannot be extended."""

"""The users subgraph's domain errors (no strawberry: ``types.ERRORS`` maps them to GraphQL types)."""

from __future__ import annotations

from opsconductor_shared.errors import DependencyUnavailableError, DomainError, ValidationError


class UsernameTakenError(DomainError):
    def __init__(self, username: str) -> None:
        super().__init__(f"username '{username}' is already taken")
        self.username = username


class SystemRoleError(DomainError):
    """System roles come from code (seeded at every start): changing them here would be undone."""

    def __init__(self, name: str) -> None:
        super().__init__(f"role '{name}' is a system role and cannot be changed or deleted")
        self.name = name


class RoleInUseError(DomainError):
    """Deleting an assigned role would silently strip permissions from people."""

    def __init__(self, name: str, user_count: int) -> None:
        super().__init__(f"role '{name}' is still assigned to {user_count} user(s); reassign them first")
        self.name = name
        self.user_count = user_count


class CredentialRejected(ValidationError):
    """Auth answered and refused the credential (nothing was stored there)."""


class CredentialUnavailable(DependencyUnavailableError):
    """Auth could not be reached or failed; whether it stored the credential is unknown."""

    def __init__(self, message: str) -> None:
        super().__init__(message, service="auth")

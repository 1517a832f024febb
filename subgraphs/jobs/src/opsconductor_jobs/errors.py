"""The jobs service's own domain errors (no strawberry; ``types.ERRORS`` maps them to GraphQL).

Targets being unreachable is the shared ``DependencyUnavailableError(message, "targets")``.
"""

from __future__ import annotations

from opsconductor_shared.errors import DomainError


class UnknownTargetsError(DomainError):
    """Some target ids name no active target, or are not targets of the job (a run's subset)."""

    def __init__(self, target_ids: list[str], message: str | None = None) -> None:
        super().__init__(message or f"unknown target id(s): {', '.join(target_ids)}")
        self.target_ids = target_ids


class VersionConflictError(DomainError):
    """The job changed since the version an edit was based on (or ``expectedVersion``)."""

    code = "CONFLICT"

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"the job is at version {current}, not {expected}; reload it and edit again")
        self.expected = expected
        self.current = current

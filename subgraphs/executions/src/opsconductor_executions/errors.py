"""Domain errors of the executions subgraph (the GraphQL mapping is ``types.ERRORS``)."""

from __future__ import annotations

from typing import Any

from opsconductor_shared.errors import DomainError


class DangerousCommandBlockedError(DomainError):
    """The plan has dangerous steps and the caller may not run them, or did not confirm."""

    code = "DANGEROUS_COMMAND_BLOCKED"

    def __init__(self, message: str, findings: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.findings = findings


class JobAlreadyRunningError(DomainError):
    """The job's concurrency policy is ``skip`` and it has an active run."""

    code = "JOB_ALREADY_RUNNING"

    def __init__(self, message: str, execution_id: str) -> None:
        super().__init__(message)
        self.execution_id = execution_id

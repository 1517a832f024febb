"""The audit subgraph's domain exceptions (no strawberry: ``types.ERRORS`` maps them)."""

from __future__ import annotations

from opsconductor_shared.errors import DomainError

__all__ = ["ChainBrokenError", "ExportGoneError"]


class ChainBrokenError(DomainError):
    """The hash chain does not verify (an edited, deleted, inserted or reordered event)."""

    code = "AUDIT_CHAIN_BROKEN"

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class ExportGoneError(DomainError):
    """An export or report file that expired (or was never made for this caller)."""

    code = "NOT_FOUND"

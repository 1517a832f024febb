"""Domain errors of the targets subgraph (no strawberry: the GraphQL mapping is ``types.ERRORS``)."""

from __future__ import annotations

from opsconductor_shared.errors import DomainError


class HostAlreadyInUse(DomainError):
    """Another active target already uses this host (legacy rule: hosts are unique)."""

    def __init__(self, host: str, target_id: str) -> None:
        super().__init__(f"host {host!r} is already used by another active target")
        self.host = host
        self.target_id = target_id


class LastMethod(DomainError):
    """Removing (or deactivating) this method would leave the target without a way to reach it."""


class HostKeyProblem(DomainError):
    """The host key cannot be fetched, or does not match what the operator confirmed."""


class GrantRejected(DomainError):
    """A connection grant is malformed, forged, expired, or does not cover the target."""


class AddressDenied(DomainError):
    """The address (or one the hostname resolves to) is not one this platform may connect to."""

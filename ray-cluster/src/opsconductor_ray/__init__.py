"""OpsConductor's execution engine: Ray actors that run job steps over SSH.

Services use `EngineClient` (in `opsconductor_ray.client`) and the plain dataclasses of
`opsconductor_ray.protocol`, whose plans carry the run plan's `Step` and `Policy`
(`opsconductor_shared.runplan`); they never import ray themselves. Importing this package
does not import ray: `EngineClient` is loaded on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconductor_ray.errors import (
    AuthenticationFailed,
    CommandTimeout,
    ConnectError,
    ConnectionRefused,
    ConnectTimeout,
    CredentialUnavailable,
    EngineError,
    ExecutionNotFound,
    HostKeyRejected,
)
from opsconductor_ray.protocol import (
    ConnectionTestResult,
    CredentialRef,
    EngineEvent,
    EventType,
    ExecutionPlan,
    Status,
    TargetSpec,
)

if TYPE_CHECKING:
    from opsconductor_ray.client import EngineClient

__all__ = [
    "AuthenticationFailed",
    "CommandTimeout",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionRefused",
    "ConnectionTestResult",
    "CredentialRef",
    "CredentialUnavailable",
    "EngineClient",
    "EngineError",
    "EngineEvent",
    "EventType",
    "ExecutionNotFound",
    "ExecutionPlan",
    "HostKeyRejected",
    "Status",
    "TargetSpec",
]


def __getattr__(name: str) -> Any:
    if name == "EngineClient":
        from opsconductor_ray.client import EngineClient

        return EngineClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

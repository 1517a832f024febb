"""The pool actors: `ConnectionPool` (actor.py) and what it is made of.

Importing this package imports neither asyncssh nor ray: the coordinator (which needs only
`BatchRequest`) and `EngineClient` stay light. `ConnectionPool`, `get_pool` and
`credential_chunks` load their modules on first access.

- actor.py: the Ray actor (batches, cancel, test_connection, stats) and one target's course
- batch.py: a batch of targets and its credential prefetch
- events.py: events on their way to the coordinator
- ssh_connections.py / ssh_steps.py: warm SSH connections, and one step over them
- winrm_steps.py: WinRM targets (winrm/)
- steps.py: a target's steps in order, for both transports
- request.py: `BatchRequest`, what a coordinator sends
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconductor_ray.pool.request import BatchRequest

if TYPE_CHECKING:
    from opsconductor_ray.pool.actor import ConnectionPool, get_pool
    from opsconductor_ray.pool.batch import credential_chunks

__all__ = ["BatchRequest", "ConnectionPool", "credential_chunks", "get_pool"]

_LAZY = {
    "ConnectionPool": "opsconductor_ray.pool.actor",
    "get_pool": "opsconductor_ray.pool.actor",
    "credential_chunks": "opsconductor_ray.pool.batch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

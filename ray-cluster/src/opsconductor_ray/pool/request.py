"""`BatchRequest`: what a coordinator hands one pool for one run (one call, one value).

Kept apart from the actor so the coordinator can import it without asyncssh."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsconductor_ray.config import ActorHandle
from opsconductor_ray.protocol import CredentialRef, RunPolicy, StepSpec, TargetSpec


@dataclass(frozen=True)
class BatchRequest:
    """Run `steps` on `targets`, at most `max_parallel` of them at a time, and push the events
    to `sink.push(execution_id, list[EngineEvent])` (the run's coordinator)."""

    execution_id: str
    steps: tuple[StepSpec, ...]
    targets: tuple[TargetSpec, ...]
    credentials: CredentialRef
    connect_timeout_s: float
    max_parallel: int
    sink: ActorHandle
    policy: RunPolicy = field(default_factory=RunPolicy)
    max_output_bytes: int = 1_048_576

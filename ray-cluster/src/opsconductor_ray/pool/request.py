"""`BatchRequest`: what a coordinator hands one pool for one run (one call, one value).

Kept apart from the actor so the coordinator can import it without asyncssh."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsconductor_ray.config import ActorHandle
from opsconductor_ray.protocol import CredentialRef, TargetSpec
from opsconductor_shared.runplan import DEFAULT_MAX_OUTPUT_BYTES, Policy, Step


@dataclass(frozen=True)
class BatchRequest:
    """Run `steps` on `targets`, at most `max_parallel` of them at a time (this shard's share
    of `policy.max_parallel`), and push the events to `sink.push(execution_id,
    list[EngineEvent])` (the run's coordinator)."""

    execution_id: str
    steps: tuple[Step, ...]
    targets: tuple[TargetSpec, ...]
    credentials: CredentialRef
    connect_timeout_s: float
    max_parallel: int
    sink: ActorHandle
    policy: Policy = field(default_factory=Policy)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES

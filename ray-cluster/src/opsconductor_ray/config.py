"""Pool tuning and the target-to-shard mapping.

Shared by the client, the coordinator and the pools; deliberately free of SSH code so
that importing it (in every coordinator process) stays cheap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

ActorHandle = Any
"""A Ray actor handle: ray types its methods as `Never`, so handles are `Any` here."""


@dataclass(frozen=True)
class PoolConfig:
    """Tuning of every `ConnectionPool` actor; applies when the actor is first created."""

    idle_timeout_s: float = 300.0
    """An unused warm connection is closed after this long."""
    keepalive_interval_s: float = 30.0
    keepalive_count_max: int = 3
    max_handshakes: int = 64
    """Concurrent SSH handshakes per pool actor."""
    max_handshakes_per_host: int = 2
    """Concurrent handshakes per host and pool actor. Targets of one host may sit in every
    shard, so the worst case per host is num_shards x this; 2 x 2 (and 4 x 2) stays under
    OpenSSH's default `MaxStartups 10`, beyond which sshd starts dropping new connections."""
    handshake_jitter_s: float = 0.05
    """A handshake that had to wait for a slot first sleeps a random 0..this long."""
    max_channels_per_connection: int = 8
    """Concurrent sessions per connection, under OpenSSH's default `MaxSessions 10`."""
    max_credential_fetches: int = 32
    """Concurrent credential requests to the resolver per pool actor."""
    known_hosts: str | None = None
    """Pool-wide host-key policy: the path of a known_hosts file the server's key must match
    (else `HostKeyRejected`), used for credentials that come without their own `knownHosts`.
    None (the default): such credentials are refused with `HostKeyUnknown` before any
    connection is made. There is no "accept any key" setting (review H3: fail closed)."""
    flush_interval_s: float = 0.01
    """Under load, pushes of events to the coordinator are at least this far apart (what arrives
    meanwhile is merged into the next one); an idle stream pushes at once (live output). Each push
    is a Ray call to the coordinator and, soon after, the follower's long poll answered: at
    100 targets x 50 lines/s on 2 cores, 5 ms meant ~800 such calls a second and the
    coordinators' share of the CPU grew with them; 10 ms halves that for 5 ms more on average
    (issue 15)..."""
    flush_bytes: int = 64 * 1024
    """...and this much waiting output is pushed without that wait."""
    reap_interval_s: float = 15.0
    key_cache_size: int = 256
    """Parsed private keys kept per pool actor (least recently used evicted first)..."""
    key_cache_ttl_s: float = 3600.0
    """...and for at most this long after parsing (deleted or rotated keys leave memory)."""
    max_kdf_rounds: int = 1024
    """Encrypted OpenSSH keys asking for more bcrypt rounds are refused before parsing (H8)..."""
    max_pbkdf_iterations: int = 1_000_000
    """...and encrypted PKCS#8 keys asking for more PBKDF iterations."""
    key_parse_timeout_s: float = 30.0


DEFAULT_NUM_SHARDS = 2
"""Pool actors when neither `EngineClient(num_shards=...)` nor `EngineSettings.pool_shards`
(`OPSC_RAY_POOL_SHARDS`) says:
one per core of the embedded default's 2-core machine (more pools than cores cost CPU in
process switches: with 4 pools on 2 cores, 500 warm targets end to end took ~6 % longer)."""


def shard_of(target_id: str, num_shards: int) -> int:
    """The pool shard of a target: stable across processes and restarts (unlike `hash`)."""
    digest = hashlib.sha256(target_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def pool_name(shard: int) -> str:
    return f"pool-{shard}"

"""`Batch`: one run's targets in one pool, with their credentials asked for ahead of time."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from opsconductor_ray._aio import Signal
from opsconductor_ray.config import PoolConfig
from opsconductor_ray.credentials import Credential, KeyCache, fetch_credential, fetch_credentials
from opsconductor_ray.errors import CredentialUnavailable
from opsconductor_ray.pool.request import BatchRequest
from opsconductor_ray.protocol import CredentialRef
from opsconductor_shared.runplan import DEFAULT_MAX_OUTPUT_BYTES, Policy, Step

CREDENTIALS_PER_REQUEST = 50
"""A batch's credentials are asked for this many targets at a time (one resolver request each)."""
FIRST_CREDENTIAL_CHUNKS = (10, 25)
"""...after smaller first requests, so the first targets start while the rest are resolved."""
CREDENTIAL_REQUESTS_IN_FLIGHT = 2
"""Per batch: requests go out in order, a couple at a time, so the first answers come back
first instead of all of them together at the end."""

CredentialAnswers = dict[str, Credential | CredentialUnavailable]


def credential_chunks(ids: Sequence[str]) -> list[list[str]]:
    """The batch's targets in resolver requests: 10, 25, then 50 at a time."""
    chunks: list[list[str]] = []
    start = 0
    sizes = iter(FIRST_CREDENTIAL_CHUNKS)
    while start < len(ids):
        size = next(sizes, CREDENTIALS_PER_REQUEST)
        chunks.append(list(ids[start : start + size]))
        start += size
    return chunks


class CredentialFetcher:
    """One pool's way to the credential resolver: a shared HTTP client, a bound on concurrent
    requests (hundreds of targets at once must not swamp the resolver into timeouts) and the
    cache of parsed private keys."""

    def __init__(self, config: PoolConfig) -> None:
        self.keys = KeyCache(
            max_keys=config.key_cache_size,
            ttl_s=config.key_cache_ttl_s,
            max_kdf_rounds=config.max_kdf_rounds,
            max_pbkdf_iterations=config.max_pbkdf_iterations,
            parse_timeout_s=config.key_parse_timeout_s,
        )
        self._max_fetches = config.max_credential_fetches
        self._http: httpx.AsyncClient | None = None
        self._fetches: asyncio.Semaphore | None = None

    def _started(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """The client and the semaphore, made on first use (inside the actor's event loop)."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        if self._fetches is None:
            self._fetches = asyncio.Semaphore(self._max_fetches)
        return self._http, self._fetches

    async def fetch_many(
        self, ref: CredentialRef, target_ids: list[str], in_flight: asyncio.Semaphore
    ) -> CredentialAnswers:
        http, fetches = self._started()
        async with in_flight, fetches:
            return await fetch_credentials(ref, target_ids, client=http, key_cache=self.keys)

    async def fetch(self, ref: CredentialRef, target_id: str) -> Credential:
        http, fetches = self._started()
        async with fetches:
            return await fetch_credential(ref, target_id, client=http, key_cache=self.keys)


def _ignore_result(task: asyncio.Future[CredentialAnswers]) -> None:
    """Mark the outcome retrieved: a request nobody awaits any more must not be logged."""
    if not task.cancelled():
        task.exception()


@dataclass(eq=False)
class Batch:
    execution_id: str
    steps: tuple[Step, ...]
    credentials: CredentialRef
    connect_timeout_s: float
    slots: asyncio.Semaphore
    policy: Policy = field(default_factory=Policy)
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    cancelled: Signal = field(default_factory=Signal)
    """Set by cancel (and the run timeout): running commands are killed."""
    halted: Signal = field(default_factory=Signal)
    """Set by cancel and by fail-fast: targets not started yet do not start."""
    reason: str | None = None
    prefetched: dict[str, asyncio.Future[CredentialAnswers]] = field(
        default_factory=dict[str, asyncio.Future[CredentialAnswers]]
    )
    """Target id -> the resolver request (shared by a chunk of targets, credential_chunks) that
    fetches its credential; queued when the batch arrives."""

    @classmethod
    def of(cls, request: BatchRequest) -> Batch:
        return cls(
            execution_id=request.execution_id,
            steps=tuple(request.steps),
            credentials=request.credentials,
            connect_timeout_s=request.connect_timeout_s,
            slots=asyncio.Semaphore(max(1, request.max_parallel)),
            policy=request.policy,
            max_output_bytes=max(1, request.max_output_bytes),
        )

    def cancel(self, reason: str | None) -> None:
        self.reason = self.reason or reason
        self.cancelled.set()
        self.halted.set()

    def stop_new(self, reason: str | None) -> None:
        self.reason = self.reason or reason
        self.halted.set()

    def not_started_reason(self) -> str:
        return self.reason or "cancelled before the target started"

    # ----------------------------------------------------------------- credentials

    def prefetch(self, fetcher: CredentialFetcher, target_ids: Sequence[str]) -> None:
        """Ask the resolver for the batch's credentials now, a chunk of targets per request
        (credential_chunks), instead of one request per target when each connects."""
        in_flight = asyncio.Semaphore(CREDENTIAL_REQUESTS_IN_FLIGHT)  # FIFO: chunks in order
        for part in credential_chunks(list(dict.fromkeys(target_ids))):
            request = asyncio.ensure_future(fetcher.fetch_many(self.credentials, part, in_flight))
            request.add_done_callback(_ignore_result)
            for target_id in part:
                self.prefetched[target_id] = request

    def credential_now(self, target_id: str) -> Credential | None:
        """The credential if its request has already answered (no wait), else None."""
        request = self.prefetched[target_id]
        if not request.done() or request.cancelled() or request.exception() is not None:
            return None
        answer = request.result()[target_id]
        if isinstance(answer, CredentialUnavailable):
            raise CredentialUnavailable(answer.message)
        return answer

    async def credential(self, target_id: str) -> Credential:
        """A target's credential, from the request `prefetch` started for it."""
        answer = (await asyncio.shield(self.prefetched[target_id]))[target_id]
        if isinstance(answer, CredentialUnavailable):
            raise CredentialUnavailable(answer.message)
        return answer

    def forget_requests(self) -> None:
        for request in self.prefetched.values():
            request.cancel()

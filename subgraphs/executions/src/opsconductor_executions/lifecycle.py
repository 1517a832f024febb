"""Pieces of a run's life the service and its follower share: bounded engine calls, the settled
answer of the engine about a run (never a guess), connection-grant renewal for long rolling runs,
and runJob's idempotency keys.

The engine (``opsconductor_ray.client.EngineClient``) is reached only through ``engine_call``:
every await is bounded by the settings, and the only answer that means "the engine does not have
this run" is ``ExecutionNotFound`` or ``forbid`` → "forbidden". Anything else (a timeout, a Ray
error) means *unknown*: the caller keeps the run's state and asks again later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from opsconductor_executions.models import Execution, IdempotencyKey
from opsconductor_ray.errors import ExecutionNotFound
from opsconductor_ray.protocol import CredentialRef
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.executions")

T = TypeVar("T")
MAX_IDEMPOTENCY_KEY = 200


class EngineCallTimeout(Exception):
    """The engine did not answer within the configured bound: what the call did is unknown."""


async def engine_call(awaitable: Awaitable[T], timeout_s: float, what: str) -> T:
    """Await an engine call at most ``timeout_s``; EngineCallTimeout after."""
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError as exc:
        raise EngineCallTimeout(f"the execution engine did not answer {what} within {timeout_s:g}s") from exc


async def engine_has(engine: Any, execution_id: str, timeout_s: float) -> bool | None:
    """True: a coordinator hosts the run; False: none does (settled); None: could not ask."""
    try:
        await engine_call(engine.status(execution_id), timeout_s, "status")
    except ExecutionNotFound:
        return False
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("could not ask the engine about a run", execution_id=execution_id, error=str(exc))
        return None
    return True


async def settle(engine: Any, execution_id: str, timeout_s: float) -> str | None:
    """``engine.forbid``: "known", "released", "forbidden" (never started and never will), or
    None when the engine could not be asked."""
    try:
        return str(await engine_call(engine.forbid(execution_id), timeout_s, "forbid"))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("could not settle a run with the engine", execution_id=execution_id, error=str(exc))
        return None


# ---- connection grants ---------------------------------------------------------------------------


def _expiry(grant: dict[str, Any]) -> float | None:
    raw = grant.get("expiresAt")
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass
class GrantClock:
    """When a run's connection grant must be renewed: after ``fraction`` of its lifetime."""

    renew_at: float
    """Wall-clock time (0: at once, e.g. an adopted run whose grant we never saw)."""

    @classmethod
    def of(cls, grant: dict[str, Any] | None, fraction: float) -> GrantClock:
        issued = time.time()
        expires = _expiry(grant or {})
        if expires is None:
            return cls(renew_at=0.0)
        return cls(renew_at=issued + max(0.0, expires - issued) * min(max(fraction, 0.05), 0.95))

    def due(self) -> bool:
        return time.time() >= self.renew_at


async def renew_grant(deps: Any, execution: Execution, clock: GrantClock) -> GrantClock:
    """Issue a fresh grant for the run's targets and hand it to its coordinator. On failure the
    clock retries in a few seconds (the old grant may still cover the next batch)."""
    ids = [t["id"] for t in (execution.plan or {}).get("targets", [])]
    try:
        grant = await deps._grant(ids)
        cred = CredentialRef(resolver_url=grant["resolverUrl"], grant=grant["grant"])
        accepted = await engine_call(
            deps.engine.update_credentials(execution.id, cred),
            deps.settings.engine_call_timeout_seconds,
            "update_credentials",
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("could not renew the run's connection grant", execution_id=execution.id, error=str(exc))
        return GrantClock(renew_at=time.time() + 5)
    log.info("renewed the run's connection grant", execution_id=execution.id, accepted=bool(accepted))
    return GrantClock.of(grant, deps.settings.grant_renew_fraction)


# ---- idempotency keys ----------------------------------------------------------------------------


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationError(
            f"idempotencyKey must be 1-{MAX_IDEMPOTENCY_KEY} characters", field="idempotencyKey"
        )
    return key


async def remembered_execution(
    actor: str | None, job_id: str, key: str, retention: timedelta
) -> Execution | None:
    """The run an unexpired key of this caller and job created, if any."""
    row = await IdempotencyKey.get_or_none(actor=actor or "", job_id=job_id, key=key)
    if row is None or row.created_at < datetime.now(UTC) - retention:
        return None
    return await Execution.get_or_none(id=row.execution_id)


async def remember_key(
    actor: str | None, job_id: str, key: str, execution_id: str, retention: timedelta
) -> None:
    """Inside the run's creating transaction (under the job's lock): an expired row of the same
    key goes first; a concurrent insert of the same key fails the transaction (unique)."""
    await IdempotencyKey.filter(
        actor=actor or "", job_id=job_id, key=key, created_at__lt=datetime.now(UTC) - retention
    ).delete()
    await IdempotencyKey.create(actor=actor or "", job_id=job_id, key=key, execution_id=execution_id)


async def prune_keys(retention: timedelta) -> int:
    """Delete expired idempotency keys (the sweep; keeps the table bounded)."""
    return int(await IdempotencyKey.filter(created_at__lt=datetime.now(UTC) - retention).delete())

"""Pieces of a run's life the launcher and the followers share: bounded engine calls, the settled
answer of the engine about a run (never a guess), connection-grant clocks, leases, the per-job
advisory lock, ending a run the engine does not run, and runJob's idempotency keys.

The engine (``opsconductor_ray.client.EngineClient``) is reached only through ``engine_call``:
every await is bounded by the settings, and the only answer that means "the engine does not have
this run" is ``ExecutionNotFound`` or ``forbid`` → "forbidden". Anything else (a timeout, a Ray
error) means *unknown*: the caller keeps the run's state and asks again later.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tortoise.expressions import Q

from opsconductor_executions import events
from opsconductor_executions.models import (
    ACTIVE,
    TERMINAL,
    Execution,
    ExecutionEvent,
    IdempotencyKey,
    Outbox,
    TargetRun,
)
from opsconductor_ray.errors import ExecutionNotFound
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import record_event
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


def _expiry(raw: str | None) -> float | None:
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
    def of(cls, expires_at: str | None, fraction: float) -> GrantClock:
        issued = time.time()
        expires = _expiry(expires_at)
        if expires is None:
            return cls(renew_at=0.0)
        return cls(renew_at=issued + max(0.0, expires - issued) * min(max(fraction, 0.05), 0.95))

    def due(self) -> bool:
        return time.time() >= self.renew_at


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


# ---- leases, the job lock, ending without the engine ------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


async def advisory_lock(conn: Any, key: str) -> None:
    """A PostgreSQL transaction-scoped lock per job. SQLite (``make dev``) has none: there one
    process writes at a time anyway, and a number clash is retried."""
    if getattr(conn.capabilities, "dialect", "") == "postgres":
        await conn.execute_query("SELECT pg_advisory_xact_lock(hashtext($1))", [key])


async def claim(execution_id: str, *, replica: str, lease: timedelta) -> bool:
    """Take the run's lease if it expired (or is ours already)."""
    t = now()
    claimed = (
        await Execution.filter(id=execution_id, status__in=ACTIVE)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=t) | Q(lease_owner=replica))
        .update(lease_owner=replica, lease_until=t + lease)
    )
    return bool(claimed)


async def renew(execution_id: str, *, replica: str, lease: timedelta) -> bool:
    renewed = await Execution.filter(id=execution_id, lease_owner=replica).update(lease_until=now() + lease)
    return bool(renewed)


async def end_without_engine(
    execution_id: str, message: str, *, status: str = "FAILED", only_waiting: bool = False
) -> tuple[Execution, ExecutionEvent] | None:
    """In the caller's transaction: end a run the engine settled it does not run (it never started
    and never will, or its coordinator is gone). ``only_waiting``: only if it still waits behind
    another run (never handed to the engine). None: nothing done (already ended, or no longer
    waiting); else the run and its EXECUTION_FINISHED row (to publish after the commit)."""
    execution = await Execution.select_for_update().get(id=execution_id)
    if execution.status in TERMINAL or (only_waiting and not execution.waiting):
        return None
    execution.status = status
    execution.message = message
    execution.finished_at = now()
    execution.waiting = False
    pending = await TargetRun.filter(execution_id=execution_id).exclude(status__in=TERMINAL).count()
    if status == "CANCELLED":
        execution.cancelled_targets += pending
    else:
        execution.failed_targets += pending
    await (
        TargetRun.filter(execution_id=execution_id)
        .exclude(status__in=TERMINAL)
        .update(status=status, message=message, finished_at=now())
    )
    seq = execution.last_seq + 1
    row = await ExecutionEvent.create(
        execution=execution,
        seq=seq,
        type="EXECUTION_FINISHED",
        status=status,
        data=json.dumps({"message": message}),
        at=now(),
    )
    execution.last_seq = seq
    execution.lease_owner = None
    execution.lease_until = None
    await execution.save()
    await record_event(
        Outbox,
        events.execution_finished(
            execution, targets=events.target_digest(await TargetRun.filter(execution_id=execution.id))
        ),
    )
    return execution, row

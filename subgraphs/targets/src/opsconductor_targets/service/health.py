"""Target health: classify check outcomes, record them, and the periodic checker.

Why its own module: health is written from three places (testConnection, checkTargetHealth /
bulk tests, the periodic checker) and must be classified, stored (``healthHistory``), evented
(``targets.target_health_changed`` through the outbox) and broadcast (``targetHealth``
subscription) the same way each time.

Classification (legacy rule, thresholds are settings): a successful check with latency
<= ``health_healthy_ms`` is healthy, <= ``health_warning_ms`` warning, slower critical. A failure
is critical once ``health_failures_for_critical`` checks in a row failed (legacy: 1), warning
before that.

Each check's outcome is recorded in a unit of work of its own (``unit_of_work(committer)``), also
when a resolver asked for the check: a check is seconds of network I/O, and bulk tests run many
at once, so no resolver transaction spans them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.functions import Count

from opsconductor_shared.errors import NotFoundError
from opsconductor_shared.events import Broadcaster, record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import Committer, unit_of_work
from opsconductor_targets import events
from opsconductor_targets.models import HealthCheck, HealthState, Outbox, Target
from opsconductor_targets.service.connectivity import ConnectionTester, ConnectionTestOutcome, SharedTestGrant
from opsconductor_targets.service.reads import get_targets, primary_method
from opsconductor_targets.settings import Settings

log = get_logger("opsconductor.targets.health")

CHANNEL = "targets:health"


def classify(ok: bool, latency_ms: float | None, consecutive_failures: int, settings: Settings) -> str:
    if not ok:
        return "critical" if consecutive_failures >= settings.health_failures_for_critical else "warning"
    if latency_ms is None or latency_ms <= settings.health_healthy_ms:
        return "healthy"
    if latency_ms <= settings.health_warning_ms:
        return "warning"
    return "critical"


def interval_for(settings: Settings, environment: str, health: str) -> float:
    """Seconds until the next periodic check (per environment x current health, legacy style)."""
    table = settings.health_intervals
    env = table.get(environment) or table.get("default") or {}
    value = env.get(health) or env.get("unknown") or 300
    return float(value)


@dataclass
class HealthOutcome:
    target_id: str
    health_status: str
    previous: str
    changed: bool
    check: HealthCheck
    outcome: ConnectionTestOutcome


def change_payload(target_id: str, health: str, previous: str, check: HealthCheck | None) -> dict[str, Any]:
    """What subscribers see on ``targetHealth`` (no secrets: ids, status, latency, message)."""
    return {
        "targetId": target_id,
        "healthStatus": health,
        "previous": previous,
        "ok": check.ok if check else None,
        "latencyMs": check.latency_ms if check else None,
        "message": check.message if check else "",
        "methodId": check.method_id if check else None,
        "checkedAt": (check.checked_at or datetime.now(UTC)).isoformat() if check else None,
    }


class HealthMonitor:
    """Runs checks and records them; ``run`` is the periodic loop (off unless enabled)."""

    def __init__(
        self,
        *,
        settings: Settings,
        tester: ConnectionTester,
        broadcaster: Broadcaster | None,
        committer: Committer,
    ) -> None:
        self.settings = settings
        self.tester = tester
        self.broadcaster = broadcaster
        self.committer = committer
        # one bound for every check_ids call at once (bulk tests, rounds, the checker: L7)
        self._slots: asyncio.Semaphore | None = None
        self._pruned_at = 0.0

    @property
    def slots(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.settings.health_concurrency))
        return self._slots

    async def record(self, target: Target, outcome: ConnectionTestOutcome, trigger: str) -> HealthOutcome:
        """Store one check's outcome and apply the resulting health (its own unit of work)."""
        now = datetime.now(UTC)
        async with unit_of_work(self.committer):
            fresh = await Target.filter(id=target.id).select_for_update().first()
            previous = fresh.health_status if fresh else target.health_status
            state = await HealthState.filter(target_id=target.id).select_for_update().first()
            if state is None:
                state = await HealthState.create(target_id=target.id)
            state.consecutive_failures = 0 if outcome.ok else state.consecutive_failures + 1
            health = classify(outcome.ok, outcome.latency_ms, state.consecutive_failures, self.settings)
            state.last_checked_at = now
            state.next_check_at = now + timedelta(
                seconds=interval_for(self.settings, target.environment, health)
            )
            await state.save()
            check = await HealthCheck.create(
                target_id=target.id,
                method_id=outcome.method_id,
                method_type=outcome.method_type,
                ok=outcome.ok,
                latency_ms=outcome.latency_ms,
                message=outcome.message[:2000],
                health_status=health,
                previous_status=previous,
                trigger=trigger,
            )
            changed = previous != health
            if changed:
                await Target.filter(id=target.id).update(health_status=health, updated_at=now)
                await record_event(Outbox, events.health_changed(target.id, health, previous))
        target.health_status = health
        if changed:
            log.info("target health changed", target_id=target.id, health=health, previous=previous)
            if self.broadcaster is not None:
                with contextlib.suppress(Exception):
                    await self.broadcaster.publish(
                        CHANNEL, json.dumps(change_payload(target.id, health, previous, check))
                    )
        return HealthOutcome(target.id, health, previous, changed, check, outcome)

    async def check(
        self,
        target: Target,
        trigger: str,
        method_id: str | None = None,
        shared: SharedTestGrant | None = None,
    ) -> HealthOutcome:
        """Test the target (its primary method, or ``method_id``) and record the result."""
        if method_id:
            method = next((m for m in target.methods if m.id == method_id and m.is_active), None)
            if method is None:
                outcome = ConnectionTestOutcome(
                    False, None, f"communication method {method_id} not found on this target", None
                )
                return await self.record(target, outcome, trigger)
        else:
            method = primary_method(target)
        if method is None:
            outcome = ConnectionTestOutcome(False, None, "target has no active communication method", None)
        else:
            outcome = await self.tester.test_saved_method(target, method, shared)
        return await self.record(target, outcome, trigger)

    async def check_ids(self, target_ids: list[str], trigger: str) -> list[HealthOutcome]:
        """Check several targets, at most ``health_concurrency`` at a time (unknown ids skipped)."""
        targets = await get_targets(target_ids)
        sem = self.slots  # shared by concurrent calls, not one per call
        shared = SharedTestGrant(self.tester, [(t, primary_method(t)) for t in targets])

        async def one(t: Target) -> HealthOutcome:
            async with sem:
                return await self.check(t, trigger, shared=shared)

        return list(await asyncio.gather(*(one(t) for t in targets)))

    async def due_target_ids(self, limit: int, among: list[str] | None = None) -> list[str]:
        """Active targets whose next check is due or that were never checked (optionally only ``among``)."""
        now = datetime.now(UTC)
        # a subquery: the not-yet-due ids never travel to Python and back as a parameter list
        not_due = Subquery(HealthState.filter(next_check_at__gt=now).values("target_id"))
        where = Q(is_active=True) & ~Q(id__in=not_due) & ~Q(status="maintenance")
        if among is not None:
            where &= Q(id__in=among)
        rows = await Target.filter(where).order_by("id").limit(limit).values_list("id", flat=True)
        return [str(r) for r in rows]

    async def run_due(
        self, limit: int, among: list[str] | None = None, *, prune: bool = True
    ) -> list[HealthOutcome]:
        """One round of the periodic checker: check the targets that are due now, then prune the
        health history (L16; the loop prunes every ``health_prune_interval_seconds``)."""
        ids = await self.due_target_ids(limit, among)
        done = await self.check_ids(ids, "periodic") if ids else []
        if prune:
            await self.prune_history()
        return done

    async def tick(self) -> int:
        now = time.monotonic()
        prune = now - self._pruned_at >= self.settings.health_prune_interval_seconds
        done = await self.run_due(self.settings.health_batch_size, prune=prune)
        if prune:
            self._pruned_at = now
        return len(done)

    async def prune_history(self, max_targets: int = 500) -> int:
        """Retention of ``target_health_checks`` (review L16): rows older than
        ``health_history_retention_days``, and beyond the newest ``health_history_max_per_target``
        of a target (at most ``max_targets`` targets per call). Returns the rows deleted."""
        deleted = 0
        days = self.settings.health_history_retention_days
        if days > 0:
            cutoff = datetime.now(UTC) - timedelta(days=days)
            deleted += await HealthCheck.filter(checked_at__lt=cutoff).delete()
        cap = self.settings.health_history_max_per_target
        if cap > 0:
            over = (
                await HealthCheck.annotate(n=Count("id"))
                .group_by("target_id")
                .filter(n__gt=cap)
                .limit(max_targets)
                .values_list("target_id", flat=True)
            )
            for target_id in over:
                keep_from = (
                    await HealthCheck.filter(target_id=target_id)
                    .order_by("-id")
                    .offset(cap - 1)
                    .limit(1)
                    .values_list("id", flat=True)
                )
                if keep_from:
                    deleted += await HealthCheck.filter(target_id=target_id, id__lt=keep_from[0]).delete()
        if deleted:
            log.info("health history pruned", rows=deleted)
        return deleted

    async def run(self) -> None:
        """The periodic checker: every ``health_tick_seconds``, check the due targets."""
        log.info("health checker started", tick=self.settings.health_tick_seconds)
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("health tick failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.settings.health_tick_seconds)


async def test_connection(
    *, health: HealthMonitor, target_id: str, method_id: str | None
) -> ConnectionTestOutcome:
    """testConnection: the target's primary method (or ``method_id``) tested from the engine (a
    local probe for other types), recorded as a check (healthHistory, healthStatus, event,
    targetHealth). An unknown target is a failed outcome, not an error (as always)."""
    found = await get_targets([target_id])
    if not found:
        return ConnectionTestOutcome(False, None, f"target {target_id} not found", None)
    checked = await health.check(found[0], "connection_test", method_id)
    return checked.outcome


async def check_target_health(*, health: HealthMonitor, target_id: str) -> HealthOutcome:
    found = await get_targets([target_id])
    if not found:
        raise NotFoundError(f"target {target_id} not found", id=target_id)
    return await health.check(found[0], "manual")

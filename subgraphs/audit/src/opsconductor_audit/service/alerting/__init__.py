"""Alerting: rules over the audit event stream, alerts, notifications (README "Alerting").

The hook the audit core calls: :meth:`Alerting.on_events` with each batch of audit events right
after it was committed, in commit order. It is synchronous and cheap (the rules engine, no I/O,
never raises): triggers are queued, and a background task records alerts (in their own
transaction), publishes ``alertRaised`` and schedules the notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from opsconductor_audit.models import Alert, AlertRule
from opsconductor_audit.service.alerting import alerts, store
from opsconductor_audit.service.alerting.channels import RetryPolicy
from opsconductor_audit.service.alerting.destinations import DestinationPolicy
from opsconductor_audit.service.alerting.notifier import Notifier
from opsconductor_audit.service.alerting.rules import RuleEngine, Trigger
from opsconductor_shared.events import Broadcaster
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit.alerting")

ALERTS_CHANNEL = "audit.alerts"
"""Broadcaster channel of ``alertRaised`` (the alert id, as JSON)."""
QUEUE_SIZE = 10_000


class Alerting:
    def __init__(
        self,
        *,
        secrets: store.Secrets,
        policy: DestinationPolicy,
        broadcaster: Broadcaster,
        retry: RetryPolicy | None = None,
        webhook_timeout: float = 10.0,
        reload_seconds: float = 60.0,
        bind: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.engine = RuleEngine()
        self.secrets = secrets
        self.policy = policy
        self.broadcaster = broadcaster
        self.reload_seconds = reload_seconds
        self._bind = bind or contextlib.nullcontext
        self.notifier = Notifier(
            secrets=secrets,
            policy=policy,
            retry=retry or RetryPolicy(),
            webhook_timeout=webhook_timeout,
            bind=self._bind,
        )
        self._queue: asyncio.Queue[Trigger] = asyncio.Queue(QUEUE_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    # ---- the hook ----------------------------------------------------------------------------

    def on_events(self, events: Iterable[Any]) -> int:
        """Evaluate committed audit events (rows, envelopes or dicts); returns the triggers queued."""
        queued = 0
        try:
            for trigger in self.engine.observe_all(events):
                try:
                    self._queue.put_nowait(trigger)
                    queued += 1
                except asyncio.QueueFull:
                    self.dropped += 1
                    log.warning("alert trigger dropped (queue full)", rule=trigger.rule.name)
        except Exception as exc:  # never break the caller's append loop
            log.warning("alert rule evaluation failed", error=type(exc).__name__)
        return queued

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, seed: bool = True) -> None:
        if seed:
            async with in_transaction():
                await store.seed_defaults()
        await self.reload()
        self._tasks.append(asyncio.create_task(self._run(), name="audit-alerting"))
        if self.reload_seconds > 0:
            self._tasks.append(asyncio.create_task(self._reload_periodically(), name="audit-alert-rules"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.notifier.close()

    async def reload(self) -> None:
        rows = await AlertRule.filter(is_deleted=False)
        self.engine.load(store.spec_of(r) for r in rows)

    def rule_changed(self, row: AlertRule) -> None:
        """A rule was created, changed or deleted in this process (its windows start again)."""
        if row.is_deleted:
            self.engine.remove(row.id)
        else:
            self.engine.put(store.spec_of(row))

    async def idle(self) -> None:
        """Wait until queued triggers are recorded and their notifications done (tests)."""
        await self._queue.join()
        await self.notifier.idle()

    async def _reload_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.reload_seconds)
            try:
                with self._bind():
                    await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alert rules reload failed", error=type(exc).__name__)

    async def _run(self) -> None:
        while True:
            trigger = await self._queue.get()
            try:
                with self._bind():
                    await self.handle(trigger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("recording an alert failed", rule=trigger.rule.name, error=type(exc).__name__)
            finally:
                self._queue.task_done()

    async def handle(self, trigger: Trigger) -> Alert:
        """Record one trigger; a new alert is announced and notified after its commit."""
        try:
            async with in_transaction():
                alert, is_new = await alerts.record_trigger(trigger)
        except IntegrityError:  # another replica opened this rule and group's alert a moment ago
            async with in_transaction():
                alert, is_new = await alerts.record_trigger(trigger)
        if is_new:
            rule = await AlertRule.filter(id=trigger.rule.id).first()
            await self.broadcaster.publish(ALERTS_CHANNEL, json.dumps({"id": alert.id}))
            self.notifier.notify(alert, rule)
        return alert

"""Alerts: raised by a rule's trigger, acknowledged, resolved; every state change in their history.

While an alert of a rule and group key is open (ACTIVE or ACKNOWLEDGED), further triggers add to
it (REPEATED, no new notification); ``open_key`` is unique, so two replicas cannot open two.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tortoise.queryset import QuerySet

from opsconductor_audit.models import Alert, AlertHistory, AlertRule
from opsconductor_audit.service.alerting.rules import Trigger
from opsconductor_shared.errors import NotFoundError, ValidationError

ACTIVE, ACKNOWLEDGED, RESOLVED = "ACTIVE", "ACKNOWLEDGED", "RESOLVED"
STATUSES = (ACTIVE, ACKNOWLEDGED, RESOLVED)
MAX_NOTE = 2000


@dataclass(frozen=True)
class Actor:
    id: str | None
    name: str | None


SYSTEM = Actor(id=None, name="system")


@dataclass(frozen=True)
class AlertFilterSpec:
    statuses: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    rule_id: str | None = None
    group_key: str | None = None
    start: datetime | None = None
    end: datetime | None = None


def _open_key(rule_id: str, key: str | None) -> str:
    return f"{rule_id}:{key or ''}"[:300]


def describe(trigger: Trigger) -> tuple[str, str]:
    rule = trigger.rule
    where = f" for {rule.group_by}={trigger.group_key}" if trigger.group_key is not None else ""
    title = f"{rule.name}{where}"[:300]
    message = (
        f"{trigger.count} event(s) of {', '.join(rule.event_types)}"
        f"{' with outcome ' + rule.outcome if rule.outcome else ''}{where} within "
        f"{rule.window_seconds}s (threshold {rule.threshold}); last: {trigger.last_event.type}"
        f" at {trigger.last_at.isoformat()}."
    )
    return title, message


async def _history(alert: Alert, action: str, actor: Actor, note: str | None = None) -> AlertHistory:
    return await AlertHistory.create(
        id=str(uuid.uuid4()),
        alert=alert,
        action=action,
        status=alert.status,
        actor_id=actor.id,
        actor_name=actor.name,
        note=note,
        at=datetime.now(UTC),
    )


async def record_trigger(trigger: Trigger) -> tuple[Alert, bool]:
    """The open alert of this rule and group, added to; or a new one. (alert, is_new)."""
    rule = trigger.rule
    key = _open_key(rule.id, trigger.group_key)
    now = datetime.now(UTC)
    await AlertRule.filter(id=rule.id).update(last_triggered_at=now)
    rule_row = await AlertRule.filter(id=rule.id).first()
    if rule_row is not None:
        rule_row.trigger_count += 1
        await rule_row.save(update_fields=["trigger_count"])
    existing = await Alert.filter(open_key=key).select_for_update().first()
    if existing is not None:
        existing.count += trigger.count
        existing.triggers += 1
        existing.last_event_at = max(existing.last_event_at, trigger.last_at)
        existing.event_ids = (list(existing.event_ids) + list(trigger.event_ids))[-50:]
        await existing.save()
        await _history(existing, "REPEATED", SYSTEM, f"{trigger.count} more event(s)")
        return existing, False
    title, message = describe(trigger)
    context: dict[str, Any] = {
        "eventType": trigger.last_event.type,
        "source": trigger.last_event.source,
        "subjectType": trigger.last_event.subject_type,
        "subjectId": trigger.last_event.subject_id,
        "windowSeconds": rule.window_seconds,
        "threshold": rule.threshold,
        "groupBy": rule.group_by,
    }
    alert = Alert(
        id=str(uuid.uuid4()),
        rule_id=rule.id,
        rule_name=rule.name,
        group_key=trigger.group_key,
        open_key=key,
        severity=rule.severity,
        status=ACTIVE,
        title=title,
        message=message,
        count=trigger.count,
        triggers=1,
        first_event_at=trigger.first_at,
        last_event_at=trigger.last_at,
        event_ids=list(trigger.event_ids),
        context=context,
        raised_at=now,
    )
    await alert.save()  # IntegrityError: another replica opened it a moment ago (the caller retries)
    await _history(alert, "RAISED", SYSTEM)
    return alert, True


async def get_alert(alert_id: str, *, lock: bool = False) -> Alert:
    query = Alert.filter(id=alert_id)
    if lock:
        query = query.select_for_update()
    row = await query.first()
    if row is None:
        raise NotFoundError("no alert with that id", id=alert_id)
    return row


async def acknowledge(*, alert_id: str, actor: Actor) -> Alert:
    alert = await get_alert(alert_id, lock=True)
    if alert.status != ACTIVE:
        raise ValidationError(f"the alert is {alert.status.lower()}, not active", field="id")
    alert.status = ACKNOWLEDGED
    alert.acknowledged_at = datetime.now(UTC)
    alert.acknowledged_by = actor.id
    await alert.save()
    await _history(alert, "ACKNOWLEDGED", actor)
    return alert


async def resolve(*, alert_id: str, actor: Actor, note: str | None) -> Alert:
    if note is not None and len(note) > MAX_NOTE:
        raise ValidationError(f"note is longer than {MAX_NOTE} characters", field="note")
    alert = await get_alert(alert_id, lock=True)
    if alert.status == RESOLVED:
        raise ValidationError("the alert is already resolved", field="id")
    alert.status = RESOLVED
    alert.resolved_at = datetime.now(UTC)
    alert.resolved_by = actor.id
    alert.resolution_note = note
    alert.open_key = None  # the next trigger of this rule and group opens a new alert
    await alert.save()
    await _history(alert, "RESOLVED", actor, note)
    return alert


async def history_of(alert_id: str) -> list[AlertHistory]:
    return await AlertHistory.filter(alert_id=alert_id).order_by("at", "id")


def list_alerts(spec: AlertFilterSpec) -> QuerySet[Alert]:
    query = Alert.all()
    if spec.statuses:
        query = query.filter(status__in=list(spec.statuses))
    if spec.severities:
        query = query.filter(severity__in=list(spec.severities))
    if spec.rule_id:
        query = query.filter(rule_id=spec.rule_id)
    if spec.group_key is not None:
        query = query.filter(group_key=spec.group_key)
    if spec.start is not None:
        query = query.filter(raised_at__gte=spec.start)
    if spec.end is not None:
        query = query.filter(raised_at__lt=spec.end)
    return query.order_by("-raised_at", "-id")

"""The rules engine: alert rules over audit event types, evaluated on the event stream.

A rule matches an event by type (exact, or a glob such as ``executions.*``), optionally by
outcome and by equality on fields of the event's ``data`` (``dataMatch``). Matching events are
counted in a **sliding window per rule and group key** (``groupBy`` names an event field such
as ``subjectId`` or ``data.jobId``; none: one window per rule). When a window holds
``threshold`` events within ``windowSeconds`` (event time, not wall time), the rule triggers and
that window starts again empty: the next trigger needs ``threshold`` new events.

Pure and synchronous (no I/O): :meth:`RuleEngine.observe` is O(rules matching the type) per
event, and memory is bounded (``max_keys`` windows per rule, least recently used dropped).
"""

from __future__ import annotations

import fnmatch
import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsconductor_shared.errors import ValidationError

OUTCOMES = ("SUCCESS", "FAILURE", "DENIED")
SEVERITIES = ("INFO", "WARNING", "ERROR", "CRITICAL")
CHANNEL_TYPES = ("EMAIL", "WEBHOOK")
GROUP_FIELDS = {
    "type": "type",
    "source": "source",
    "actorId": "actor_id",
    "actorName": "actor_name",
    "ip": "ip",
    "subjectType": "subject_type",
    "subjectId": "subject_id",
    "correlationId": "correlation_id",
    "outcome": "outcome",
    "severity": "severity",
}
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_THRESHOLD = 100_000
SAMPLE_IDS = 20


@dataclass(frozen=True)
class Channel:
    type: str  # EMAIL | WEBHOOK
    target: str  # an address, or an https?:// URL


@dataclass(frozen=True)
class RuleSpec:
    """What a rule says (its row, in the engine's terms)."""

    id: str
    name: str
    event_types: tuple[str, ...]
    threshold: int
    window_seconds: int
    severity: str = "WARNING"
    outcome: str | None = None
    group_by: str | None = None
    data_match: Mapping[str, Any] = field(default_factory=dict[str, Any])
    channels: tuple[Channel, ...] = ()
    enabled: bool = True
    version: int = 1


@dataclass(frozen=True)
class Observed:
    """One audit event as the engine sees it (built from a row, a GraphQL node or a dict)."""

    type: str
    at: datetime
    id: str | None = None
    seq: int | None = None
    outcome: str | None = None
    severity: str | None = None
    source: str | None = None
    actor_id: str | None = None
    actor_name: str | None = None
    ip: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    correlation_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict[str, Any])


@dataclass(frozen=True)
class Trigger:
    """A rule's window reached its threshold."""

    rule: RuleSpec
    group_key: str | None
    count: int
    first_at: datetime
    last_at: datetime
    event_ids: tuple[str, ...]
    last_event: Observed


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]  # pyright: ignore[reportUnknownVariableType]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    value = getattr(value, "value", value)  # enums
    return str(value)


def observed(event: Any) -> Observed:
    """An :class:`Observed` from an audit event row, an envelope or a mapping (snake or camel case)."""
    if isinstance(event, Observed):
        return event
    at = _get(event, "at", "occurred_at", "occurredAt", "time")
    if isinstance(at, str):
        at = datetime.fromisoformat(at.replace("Z", "+00:00"))
    if not isinstance(at, datetime):
        at = datetime.now(UTC)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    data = _get(event, "data")
    if isinstance(data, str | bytes):  # the audit row keeps its data as canonical JSON text
        try:
            data = json.loads(data)
        except ValueError:
            data = {}
    seq = _get(event, "seq")
    return Observed(
        type=str(_get(event, "type") or ""),
        at=at,
        id=_text(_get(event, "id")),
        seq=int(seq) if isinstance(seq, int) else None,
        outcome=_text(_get(event, "outcome")),
        severity=_text(_get(event, "severity")),
        source=_text(_get(event, "source")),
        actor_id=_text(_get(event, "actor_id", "actorId", "actor")),
        actor_name=_text(_get(event, "actor_name", "actorName")),
        ip=_text(_get(event, "ip")),
        subject_type=_text(_get(event, "subject_type", "subjectType")),
        subject_id=_text(_get(event, "subject_id", "subjectId", "subject")),
        correlation_id=_text(_get(event, "correlation_id", "correlationId")),
        data=data if isinstance(data, Mapping) else {},  # pyright: ignore[reportUnknownArgumentType]
    )


def _data_value(data: Mapping[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]  # pyright: ignore[reportUnknownVariableType]
    return value  # pyright: ignore[reportUnknownVariableType]


def group_key(rule: RuleSpec, event: Observed) -> str | None:
    """The value of the rule's ``groupBy`` field on this event (None: the rule's one window)."""
    if not rule.group_by:
        return None
    if rule.group_by.startswith("data."):
        value = _data_value(event.data, rule.group_by[5:])
    else:
        value = getattr(event, GROUP_FIELDS[rule.group_by])
    return None if value is None else str(value)[:255]


def matches(rule: RuleSpec, event: Observed) -> bool:
    if not rule.enabled:
        return False
    if not any(p == event.type or fnmatch.fnmatchcase(event.type, p) for p in rule.event_types):
        return False
    if rule.outcome is not None and (event.outcome or "").upper() != rule.outcome:
        return False
    for key, expected in rule.data_match.items():
        actual = _data_value(event.data, key)
        if actual != expected and str(actual) != str(expected):
            return False
    return True


def validate(
    *,
    name: str,
    event_types: Sequence[str],
    threshold: int,
    window_seconds: int,
    severity: str,
    outcome: str | None,
    group_by: str | None,
    data_match: Any,
    channels: Sequence[Channel],
) -> None:
    """ValidationError naming the field when a rule cannot be evaluated as written."""
    if not name.strip() or len(name) > 200:
        raise ValidationError("name must be 1..200 characters", field="name")
    if not event_types or len(event_types) > 50:
        raise ValidationError("eventTypes must list 1..50 event types", field="eventTypes")
    for pattern in event_types:
        if not pattern or len(pattern) > 200 or any(c.isspace() for c in pattern):
            raise ValidationError(f"invalid event type {pattern[:60]!r}", field="eventTypes")
    if not 1 <= threshold <= MAX_THRESHOLD:
        raise ValidationError(f"threshold must be between 1 and {MAX_THRESHOLD}", field="threshold")
    if not 1 <= window_seconds <= MAX_WINDOW_SECONDS:
        raise ValidationError(
            f"windowSeconds must be between 1 and {MAX_WINDOW_SECONDS}", field="windowSeconds"
        )
    if severity not in SEVERITIES:
        raise ValidationError(f"severity must be one of {', '.join(SEVERITIES)}", field="severity")
    if outcome is not None and outcome not in OUTCOMES:
        raise ValidationError(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    if (
        group_by is not None
        and group_by not in GROUP_FIELDS
        and not (group_by.startswith("data.") and 5 < len(group_by) <= 200)
    ):
        raise ValidationError(
            f"groupBy must be one of {', '.join(GROUP_FIELDS)} or data.<key>", field="groupBy"
        )
    if not isinstance(data_match, Mapping) or len(data_match) > 20:  # pyright: ignore[reportUnknownArgumentType]
        raise ValidationError("dataMatch must be a JSON object of at most 20 keys", field="dataMatch")
    if len(channels) > 20:
        raise ValidationError("at most 20 channels", field="channels")
    for channel in channels:
        if channel.type not in CHANNEL_TYPES:
            raise ValidationError("channel type must be EMAIL or WEBHOOK", field="channels")


@dataclass
class _Window:
    events: deque[tuple[datetime, str | None]] = field(default_factory=deque[tuple[datetime, str | None]])
    newest: datetime | None = None


class RuleEngine:
    """Sliding windows per (rule, group key); see the module doc."""

    def __init__(self, *, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._rules: dict[str, RuleSpec] = {}
        self._windows: dict[str, OrderedDict[str | None, _Window]] = {}

    @property
    def rules(self) -> list[RuleSpec]:
        return list(self._rules.values())

    def load(self, rules: Iterable[RuleSpec]) -> None:
        """Replace the rule set; a rule whose definition did not change keeps its windows."""
        fresh = {r.id: r for r in rules}
        for rule_id, old in list(self._rules.items()):
            new = fresh.get(rule_id)
            if new is None or new.version != old.version or new != old:
                self._windows.pop(rule_id, None)
        self._rules = fresh

    def put(self, rule: RuleSpec) -> None:
        """One rule created or changed (its windows start again)."""
        self._windows.pop(rule.id, None)
        self._rules[rule.id] = rule

    def remove(self, rule_id: str) -> None:
        self._rules.pop(rule_id, None)
        self._windows.pop(rule_id, None)

    def window_count(self, rule_id: str, key: str | None = None) -> int:
        window = self._windows.get(rule_id, OrderedDict[str | None, _Window]()).get(key)
        return len(window.events) if window else 0

    def observe(self, event: Observed) -> list[Trigger]:
        out: list[Trigger] = []
        for rule in self._rules.values():
            if not matches(rule, event):
                continue
            trigger = self._count(rule, event)
            if trigger is not None:
                out.append(trigger)
        return out

    def observe_all(self, events: Iterable[Any]) -> list[Trigger]:
        out: list[Trigger] = []
        for event in events:
            out.extend(self.observe(observed(event)))
        return out

    def _count(self, rule: RuleSpec, event: Observed) -> Trigger | None:
        key = group_key(rule, event)
        windows = self._windows.setdefault(rule.id, OrderedDict())
        window = windows.get(key)
        if window is None:
            window = windows[key] = _Window()
            while len(windows) > self.max_keys:
                windows.popitem(last=False)
        else:
            windows.move_to_end(key)
        events = window.events
        # In commit order; an event older than the newest seen (a late one) still counts.
        events.append((event.at, event.id))
        window.newest = event.at if window.newest is None else max(window.newest, event.at)
        horizon = window.newest - timedelta(seconds=rule.window_seconds)
        if events[0][0] <= horizon:
            kept = [e for e in events if e[0] > horizon]
            events.clear()
            events.extend(kept)
        if len(events) < rule.threshold:
            return None
        ids = tuple(i for _, i in events if i is not None)[-SAMPLE_IDS:]
        trigger = Trigger(
            rule=rule,
            group_key=key,
            count=len(events),
            first_at=min(at for at, _ in events),
            last_at=max(at for at, _ in events),
            event_ids=ids,
            last_event=event,
        )
        events.clear()
        return trigger

"""Bounded event retention for the coordinator (review M12).

A coordinator keeps each run's events until the run is released, so that a restarted
executions service can read from any sequence number it has not stored yet. Unbounded, one
run with much output (or a follower that stopped reading) could grow the actor until it dies
of OOM with every run it hosts. `EventLog` and `EventBudget` bound that memory:

- per run and in total, in (approximate) bytes and in event count (`RetentionLimits`);
- when a limit is hit, events already *delivered* are released first: of finished runs
  (oldest finished first), then of running ones. An event counts as delivered once the reader
  asked for events after it twice: the executions follower asks for the next batch while it
  stores the current one, so only the batch before that is known to be stored;
- if that is not enough, new STDOUT/STDERR of the run is dropped: its first dropped chunk per
  (target, step, stream) is replaced by a marker line, later ones are not kept. Completion
  events (STEP_FINISHED, TARGET_FINISHED, EXECUTION_FINISHED, ...) are never dropped.

Sequence numbers stay gapless (a dropped chunk never gets one) and the coordinator numbers
each target's events itself, so target_seq stays gapless too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsconductor_ray.protocol import EngineEvent, EventType

if TYPE_CHECKING:
    from opsconductor_ray.settings import EventRetentionSettings

logger = logging.getLogger(__name__)

EVENT_OVERHEAD_BYTES = 200
"""What an event costs besides its text (the object and its fields), roughly."""
OUTPUT_DROPPED_MARKER = "\n[opsconductor: output dropped: the engine's event buffer for this run is full]\n"
_OUTPUT = (EventType.STDOUT, EventType.STDERR)
_COMPACT_AT = 1024


@dataclass(frozen=True)
class RetentionLimits:
    """How many events (and bytes of them) a coordinator keeps, per run and in total."""

    run_bytes: int = 256 * 1024 * 1024
    run_events: int = 500_000
    total_bytes: int = 1024 * 1024 * 1024
    total_events: int = 2_000_000

    @classmethod
    def from_settings(cls, settings: EventRetentionSettings) -> RetentionLimits:
        """The limits `OPSC_RAY_EVENTS_MAX_RUN_BYTES`, `..._MAX_RUN_EVENTS`, `..._MAX_TOTAL_BYTES`,
        `..._MAX_TOTAL_EVENTS` set (see `EventRetentionSettings`)."""
        return cls(
            run_bytes=settings.max_run_bytes,
            run_events=settings.max_run_events,
            total_bytes=settings.max_total_bytes,
            total_events=settings.max_total_events,
        )


def event_size(event: EngineEvent) -> int:
    return EVENT_OVERHEAD_BYTES + len(event.data or "")


class EventBudget:
    """The totals of one coordinator's logs, and the eviction order when they are too big."""

    def __init__(self, limits: RetentionLimits | None = None) -> None:
        self.limits = limits or RetentionLimits()
        self.bytes = 0
        self.count = 0
        self._logs: set[EventLog] = set()

    def register(self, log: EventLog) -> None:
        self._logs.add(log)

    def forget(self, log: EventLog) -> None:
        """The run was released or dropped: its events leave the totals (the log itself stays
        readable for a long poll still holding it, and goes with its last reference)."""
        if log in self._logs:
            self._logs.discard(log)
            self.bytes -= log.bytes
            self.count -= log.count

    def fits(self, size: int) -> bool:
        return self.bytes + size <= self.limits.total_bytes and self.count + 1 <= self.limits.total_events

    def make_room(self, size: int, asking: EventLog) -> bool:
        """Release delivered events of other runs (finished ones first, oldest first) until
        `size` more fits; True if it does."""
        if self.fits(size):
            return True
        others = [log for log in self._logs if log is not asking]
        finished = sorted(
            (log for log in others if log.finished_at is not None), key=lambda x: x.finished_at or 0
        )
        running = sorted((log for log in others if log.finished_at is None), key=lambda x: x.created_at)
        for log in (*finished, *running):
            log.compact()
            if self.fits(size):
                return True
        return False


class EventLog:
    """One run's events by seq, with the delivered ones releasable from the front."""

    def __init__(self, budget: EventBudget) -> None:
        self.budget = budget
        self._events: list[EngineEvent | None] = []
        self._start = 0
        """Index in `_events` of the first retained event (the slots before it are None)."""
        self.last_seq = 0
        self.bytes = 0
        self.count = 0
        self.delivered = 0
        """Events up to this seq are known to be stored by the reader: they may be released."""
        self._asked = 0
        self.cut: set[tuple[str | None, int | None, str]] = set()
        self.dropped = 0
        self.created_at = time.monotonic()
        self.finished_at: float | None = None
        budget.register(self)

    # ------------------------------------------------------------------ reading

    @property
    def first_seq(self) -> int:
        """The seq of the oldest retained event (last_seq + 1 when none is retained)."""
        return self.last_seq - self.count + 1

    def read(self, after_seq: int, limit: int) -> list[EngineEvent]:
        after_seq = max(0, after_seq)
        first = self.first_seq
        if after_seq + 1 < first:
            logger.warning(
                "events %d..%d were released before this reader asked for them (after_seq %d)",
                after_seq + 1,
                first - 1,
                after_seq,
            )
            after_seq = first - 1
        index = self._start + (after_seq + 1 - first)
        return [event for event in self._events[index : index + limit] if event is not None]

    def acknowledge(self, after_seq: int) -> None:
        """A reader asks for events after `after_seq`, so it holds those up to it; the ones
        before its previous request are stored (see the module docstring)."""
        if after_seq > self._asked:
            self.delivered = max(self.delivered, self._asked)
            self._asked = min(after_seq, self.last_seq)

    # ------------------------------------------------------------------ writing

    def admit(self, event: EngineEvent) -> EngineEvent | None:
        """The event to append (as is, or output replaced by the marker), or None to drop it."""
        if event.type not in _OUTPUT:
            return event
        size = event_size(event)
        if self._fits(size):
            return event
        self.compact()
        if self._fits_run(size) and self.budget.make_room(size, self):
            return event
        key = (event.target_id, event.step_index, str(event.type))
        self.dropped += 1
        if key in self.cut:
            return None
        self.cut.add(key)
        return EngineEvent(
            seq=0,
            type=event.type,
            at=event.at,
            target_id=event.target_id,
            target_seq=event.target_seq,
            step_index=event.step_index,
            step_name=event.step_name,
            data=OUTPUT_DROPPED_MARKER,
        )

    def append(self, event: EngineEvent) -> None:
        """`event` with its seq set (last_seq + 1)."""
        size = event_size(event)
        self._events.append(event)
        self.last_seq = event.seq
        self.count += 1
        self.bytes += size
        self.budget.count += 1
        self.budget.bytes += size

    def _fits_run(self, size: int) -> bool:
        limits = self.budget.limits
        return self.bytes + size <= limits.run_bytes and self.count + 1 <= limits.run_events

    def _fits(self, size: int) -> bool:
        return self._fits_run(size) and self.budget.fits(size)

    def compact(self) -> int:
        """Release the delivered events; returns how many."""
        released = 0
        while self.count and self.first_seq <= self.delivered:
            event = self._events[self._start]
            assert event is not None
            size = event_size(event)
            self._events[self._start] = None  # the memory goes now, not at the next list compaction
            self._start += 1
            self.count -= 1
            self.bytes -= size
            self.budget.count -= 1
            self.budget.bytes -= size
            released += 1
        if self._start >= _COMPACT_AT and self._start * 2 >= len(self._events):
            del self._events[: self._start]
            self._start = 0
        return released

"""Events between services: envelope, transactional outbox, bus (Redis Streams or in-process),
and a broadcaster for live fan-out (Redis pub/sub or in-process).

A service writes an event into its own ``outbox`` table in the same transaction as the change
(:func:`record_event`); :class:`OutboxRelay` publishes pending rows to the bus and marks them, so
nothing is lost while Redis is down (rows wait). Consumers read with consumer groups and
deduplicate by event id (:class:`ProcessedEventBase`), giving at-least-once, effectively-once.
Secrets never go into events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, Field
from tortoise import fields, models

from opsconductor_shared.live import (
    Broadcaster,
    InProcessBroadcaster,
    LiveUnavailableError,
    RedisBroadcaster,
    SlowReaderError,
)
from opsconductor_shared.logging import correlation_id, get_logger

log = get_logger("opsconductor.events")


def new_uuid7() -> uuid.UUID:
    """UUIDv7 (RFC 9562): 48-bit ms timestamp then random bits, so ids sort by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 68) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


class EventEnvelope(BaseModel):
    id: str = Field(default_factory=lambda: str(new_uuid7()))
    type: str
    source: str
    subject: str | None = None
    actor: str | None = None
    correlation_id: str | None = Field(default_factory=correlation_id.get)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = Field(default_factory=dict)
    version: int = 1

    @property
    def stream(self) -> str:
        return f"opsc.events.{self.source}"


# ---- outbox (each service subclasses these in its own models.py) ------------------------------


class OutboxBase(models.Model):
    id = fields.UUIDField(primary_key=True)
    stream = fields.CharField(max_length=100)
    envelope: fields.Field[dict[str, Any]] = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    published_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        abstract = True


class ProcessedEventBase(models.Model):
    event_id = fields.CharField(max_length=64, primary_key=True)
    processed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        abstract = True


_relays: dict[type[OutboxBase], weakref.WeakSet[OutboxRelay]] = defaultdict(weakref.WeakSet)
"""The running relays of each outbox model in this process, woken by each write."""


async def record_event(
    outbox_model: type[OutboxBase], envelope: EventEnvelope, *, using_db: Any = None
) -> None:
    """Write the event in the caller's transaction; the relay publishes it after commit."""
    await outbox_model.create(
        id=uuid.UUID(envelope.id),
        stream=envelope.stream,
        envelope=json.loads(envelope.model_dump_json()),
        using_db=using_db,
    )
    for relay in list(_relays.get(outbox_model, ())):
        relay.notify()  # it looks now (the row shows at commit) and then polls at its busy pace


Handler = Callable[[EventEnvelope], Awaitable[None]]


class EventBus(Protocol):
    async def publish(self, envelope: EventEnvelope) -> None: ...
    def subscribe(self, *, group: str, sources: list[str], handler: Handler) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class InProcessEventBus:
    """The embedded default: one process, each group gets each event at least once.

    ``publish`` returns only once every group subscribed to the event's source has handled it; a
    failing handler is retried with exponential backoff (``retry_initial`` doubling up to
    ``retry_max``) without repeating the groups that succeeded. So the outbox relay marks a row
    published only after delivery, and what is in flight when the process stops stays pending in
    the outbox and is delivered again at the next start (consumers deduplicate by event id).

    Nothing is delivered before :meth:`start`: the launcher calls it once every service of the
    process has subscribed, so an event published before its consumer subscribed waits (its
    publish, and with it the outbox row) instead of reaching nobody.
    """

    awaits_delivery = True
    """The relay publishes rows concurrently and marks each when its publish returns."""

    def __init__(self, *, retry_initial: float = 0.1, retry_max: float = 30.0) -> None:
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._subs: dict[str, list[tuple[str, Handler]]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = asyncio.Event()
        self._stopped = False

    async def publish(self, envelope: EventEnvelope) -> None:
        if self._stopped:
            raise RuntimeError("event bus stopped")
        await self._started.wait()
        deliveries = [
            asyncio.create_task(self._deliver(group, handler, envelope))
            for group, handler in self._subs.get(envelope.source, [])
        ]
        for task in deliveries:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if deliveries:
            await asyncio.gather(*deliveries)  # cancelled with us (or by stop()): the row stays pending

    async def _deliver(self, group: str, handler: Handler, envelope: EventEnvelope) -> None:
        delay = self.retry_initial
        while True:
            try:
                await handler(envelope)
                return
            except Exception:
                log.exception(
                    "event handler failed; will retry",
                    group=group,
                    event_type=envelope.type,
                    event_id=envelope.id,
                    retry_in=delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def subscribe(self, *, group: str, sources: list[str], handler: Handler) -> None:
        for source in sources:
            self._subs[source].append((group, handler))

    async def start(self) -> None:
        self._started.set()

    async def stop(self) -> None:
        self._stopped = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


DEAD_LETTER_STREAM = "opsc.events.dead"
"""Where a consumer parks a stream entry it cannot parse (with the reason), then acknowledges it."""


def _stream_id(value: Any) -> tuple[int, int]:
    text = value.decode() if isinstance(value, bytes) else str(value)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class RedisStreamsEventBus:
    """Redis Streams with consumer groups; handlers ack after success, failures are redelivered.

    Streams are never capped on XADD. Every ``trim_seconds`` the bus trims the streams it publishes
    to or reads (XTRIM MINID) below the oldest entry some consumer group still needs (its oldest
    pending entry, else its last delivered one); a stream no group reads yet keeps
    ``unread_retention_seconds`` of entries (the outbox keeps the durable copy).
    """

    def __init__(
        self,
        redis: Any,
        *,
        consumer: str,
        retry_seconds: float = 1.0,
        trim_seconds: float = 60.0,
        unread_retention_seconds: float | None = 7 * 24 * 3600,
        dead_letter_maxlen: int = 10_000,
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.retry_seconds = retry_seconds
        self.trim_seconds = trim_seconds
        self.unread_retention_seconds = unread_retention_seconds
        self.dead_letter_maxlen = dead_letter_maxlen
        self._subs: list[tuple[str, list[str], Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._streams: set[str] = set()

    async def publish(self, envelope: EventEnvelope) -> None:
        self._streams.add(envelope.stream)
        await self.redis.xadd(envelope.stream, {"envelope": envelope.model_dump_json()})

    def subscribe(self, *, group: str, sources: list[str], handler: Handler) -> None:
        streams = [f"opsc.events.{s}" for s in sources]
        self._streams.update(streams)
        self._subs.append((group, streams, handler))

    async def start(self) -> None:
        for group, streams, handler in self._subs:
            for stream in streams:
                with contextlib.suppress(Exception):  # BUSYGROUP: the group exists already
                    await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            self._tasks.append(asyncio.create_task(self._consume(group, streams, handler)))
        if self.trim_seconds > 0:
            self._tasks.append(asyncio.create_task(self._trim_periodically()))

    async def _consume(self, group: str, streams: list[str], handler: Handler) -> None:
        """New entries as they come; every ``retry_seconds`` also the group's entries left unacknowledged
        (a failed handler here, or a consumer that died) for longer than that, claimed with XAUTOCLAIM.
        A poison entry is retried on that timer and never blocks new ones; a malformed one is
        parked in the dead-letter stream."""
        next_retry = 0.0
        while True:
            try:
                if time.monotonic() >= next_retry:
                    next_retry = time.monotonic() + self.retry_seconds
                    for stream in streams:
                        _next, claimed, *_ = await self.redis.xautoclaim(
                            stream,
                            group,
                            self.consumer,
                            min_idle_time=int(self.retry_seconds * 1000),
                            start_id="0-0",
                            count=100,
                        )
                        await self._handle(group, stream, claimed, handler)
                batches: (
                    list[tuple[Any, list[tuple[Any, dict[Any, Any]]]]] | None
                ) = await self.redis.xreadgroup(
                    group,
                    self.consumer,
                    dict.fromkeys(streams, ">"),
                    count=100,
                    block=int(self.retry_seconds * 500),
                )
                for stream, entries in batches or []:
                    await self._handle(group, stream, entries, handler)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event consumer error; retrying", group=group)
                await asyncio.sleep(1)

    async def _handle(
        self, group: str, stream: Any, entries: list[tuple[Any, dict[Any, Any]]] | None, handler: Handler
    ) -> None:
        for entry_id, values in entries or []:
            raw: Any = (values or {}).get(b"envelope") or (values or {}).get("envelope")
            if raw is None and not values:  # deleted from the stream while pending: nothing to deliver
                await self.redis.xack(stream, group, entry_id)
                continue
            try:
                if raw is None:
                    raise ValueError("no 'envelope' field")
                envelope = EventEnvelope.model_validate_json(raw)
            except ValueError as exc:
                await self._dead_letter(group, stream, entry_id, values, f"malformed envelope: {exc}")
                await self.redis.xack(stream, group, entry_id)
                continue
            try:
                await handler(envelope)
            except Exception:
                log.exception(
                    "event handler failed; will retry", event_type=envelope.type, event_id=envelope.id
                )
                continue
            await self.redis.xack(stream, group, entry_id)

    async def _dead_letter(self, group: str, stream: Any, entry_id: Any, values: Any, reason: str) -> None:
        def text(v: object) -> str:
            return v.decode(errors="replace") if isinstance(v, bytes) else str(v)

        log.error("malformed stream entry parked in the dead-letter stream", stream=text(stream), group=group)
        fields: dict[str, Any] = {
            "stream": text(stream),
            "entry_id": text(entry_id),
            "group": group,
            "reason": reason[:2000],
        }
        items: dict[Any, Any] = values or {}
        for key, value in items.items():
            fields[f"field.{text(key)}"] = value
        await self.redis.xadd(DEAD_LETTER_STREAM, fields, maxlen=self.dead_letter_maxlen, approximate=True)

    async def _trim_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.trim_seconds)
            for stream in sorted(self._streams):
                try:
                    await self.trim(stream)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("stream trim failed", stream=stream, error=type(exc).__name__)

    async def trim(self, stream: str) -> int:
        """Trim ``stream`` below the oldest entry a consumer group still needs; returns entries removed."""
        try:
            groups = await self.redis.xinfo_groups(stream)
        except Exception:  # no such stream
            return 0
        if groups:
            floor: tuple[int, int] | None = None
            for info in groups:
                needed = _stream_id(info["last-delivered-id"])
                if int(info["pending"]):
                    name = info["name"]
                    summary = await self.redis.xpending(
                        stream, name.decode() if isinstance(name, bytes) else name
                    )
                    if summary.get("min") is not None:
                        needed = min(needed, _stream_id(summary["min"]))
                floor = needed if floor is None else min(floor, needed)
            assert floor is not None
            minid = f"{floor[0]}-{floor[1]}"
        elif self.unread_retention_seconds is not None:
            minid = f"{int((time.time() - self.unread_retention_seconds) * 1000)}-0"
        else:
            return 0
        return int(await self.redis.xtrim(stream, minid=minid, approximate=False))

    async def stop(self) -> None:
        for task in self._tasks:
            # Cancel until it ends: on Python 3.11 a cancel that lands in the asyncio.wait_for of
            # redis-py's socket send can be swallowed (CPython gh-86296), and the consumer runs on.
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class OutboxRelay:
    """Publishes a service's committed outbox rows to the bus, oldest first.

    Woken by `notify()` (by record_event, and after a commit); otherwise it polls every
    `interval` while it was notified in the last `busy_for` seconds (a transaction's rows appear at its commit,
    which the relay cannot see coming), and every `idle_interval` when it has not (rows of a
    replica that stopped before relaying them). An idle service costs a query per
    `idle_interval`, not four a second.

    On a bus whose publish returns only after delivery (the in-process bus), rows are published
    concurrently, each marked when its delivery is done; at most ``max_in_flight`` at a time, so
    a failing consumer delays its rows but never the others. Cancelling the relay leaves rows in
    flight unpublished (delivered again later).
    """

    def __init__(
        self,
        outbox_model: type[OutboxBase],
        bus: EventBus,
        *,
        interval: float = 0.25,
        idle_interval: float = 2.0,
        busy_for: float = 5.0,
        ack_wait: float = 1.0,
        max_in_flight: int = 500,
    ) -> None:
        self.outbox_model = outbox_model
        self.bus = bus
        self.interval = interval
        self.idle_interval = max(idle_interval, interval)
        self.busy_for = busy_for
        self.ack_wait = ack_wait
        self.max_in_flight = max_in_flight
        self._wake = asyncio.Event()
        self._notified_at: float | None = None
        self._in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}

    def next_poll_in(self) -> float:
        """Seconds until the next poll when nothing is pending."""
        last = self._notified_at
        busy = last is not None and time.monotonic() - last < self.busy_for
        return self.interval if busy else self.idle_interval

    def notify(self) -> None:
        """Rows were (or are being) written: look now, then poll at the busy pace. Harmless on a
        relay whose event loop has ended."""
        self._notified_at = time.monotonic()
        with contextlib.suppress(RuntimeError):
            self._wake.set()

    async def relay_once(self) -> int:
        if getattr(self.bus, "awaits_delivery", False):
            return await self._relay_concurrently()
        rows = await self.outbox_model.filter(published_at=None).order_by("created_at").limit(200)
        sent = 0
        for row in rows:
            envelope = EventEnvelope.model_validate(row.envelope)
            await self.bus.publish(envelope)
            row.published_at = datetime.now(UTC)
            await row.save(update_fields=["published_at"])
            sent += 1
        return sent

    async def _relay_concurrently(self) -> int:
        room = min(200, self.max_in_flight - len(self._in_flight))
        if room <= 0:
            return 0
        query = self.outbox_model.filter(published_at=None)
        if self._in_flight:
            query = query.exclude(id__in=list(self._in_flight))
        rows = await query.order_by("created_at").limit(room)
        tasks: list[asyncio.Task[None]] = []
        for row in rows:
            task = asyncio.create_task(self._publish_row(row))
            self._in_flight[row.id] = task
            task.add_done_callback(lambda t, key=row.id: self._row_done(key, t))
            tasks.append(task)
        if not tasks:
            return 0
        done, _ = await asyncio.wait(tasks, timeout=self.ack_wait)
        sent, error = 0, None
        for task in tasks:  # in row order, so the first failure is the oldest row's
            if task not in done or task.cancelled():
                continue
            if task.exception() is None:
                sent += 1
            elif error is None:
                error = task.exception()
        if error is not None:
            raise error
        return sent

    async def _publish_row(self, row: OutboxBase) -> None:
        await self.bus.publish(EventEnvelope.model_validate(row.envelope))
        row.published_at = datetime.now(UTC)
        await row.save(update_fields=["published_at"])

    def _row_done(self, key: uuid.UUID, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("outbox row not delivered; it stays pending", error=type(task.exception()).__name__)

    async def run(self) -> None:
        _relays[self.outbox_model].add(self)
        try:
            while True:
                try:
                    if await self.relay_once() == 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.next_poll_in())
                        self._wake.clear()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox relay failed; rows stay pending")
                    await asyncio.sleep(1)
        finally:
            _relays[self.outbox_model].discard(self)
            in_flight = list(self._in_flight.values())
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)


def deduplicating(processed_model: type[ProcessedEventBase], handler: Handler) -> Handler:
    """Wrap a consumer so an event id is handled once even when delivered twice."""
    from tortoise.exceptions import IntegrityError
    from tortoise.transactions import in_transaction

    async def wrapped(envelope: EventEnvelope) -> None:
        if await processed_model.exists(event_id=envelope.id):
            return
        async with in_transaction():
            try:
                await processed_model.create(event_id=envelope.id)
            except IntegrityError:
                return
            await handler(envelope)

    return wrapped


# ---- retention --------------------------------------------------------------------------------


async def prune_events(
    outbox_model: type[OutboxBase] | None,
    processed_models: Sequence[type[ProcessedEventBase]],
    *,
    outbox_older_than: timedelta,
    processed_older_than: timedelta,
) -> int:
    """Delete outbox rows published more than ``outbox_older_than`` ago (never a pending one) and
    processed-event ids recorded more than ``processed_older_than`` ago; returns the rows deleted.

    The processed ids only need to outlive any redelivery of their event, which comes from a
    pending outbox row or an unacknowledged stream entry, i.e. within the retention."""
    now = datetime.now(UTC)
    deleted = 0
    if outbox_model is not None:
        deleted += await outbox_model.filter(published_at__lt=now - outbox_older_than).delete()
    for model in processed_models:
        deleted += await model.filter(processed_at__lt=now - processed_older_than).delete()
    return deleted


# ---- live fan-out: see opsconductor_shared.live (re-exported here) ----------------------------

__all__ = [
    "Broadcaster",
    "EventBus",
    "EventEnvelope",
    "InProcessBroadcaster",
    "InProcessEventBus",
    "LiveUnavailableError",
    "OutboxBase",
    "OutboxRelay",
    "ProcessedEventBase",
    "RedisBroadcaster",
    "RedisStreamsEventBus",
    "SlowReaderError",
    "deduplicating",
    "new_uuid7",
    "prune_events",
    "record_event",
]

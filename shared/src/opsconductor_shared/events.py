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
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field
from tortoise import fields, models

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
    envelope = fields.JSONField()
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
    """The embedded default: one process, groups get each event once, delivery is async."""

    def __init__(self) -> None:
        self._subs: dict[str, list[tuple[str, Handler]]] = defaultdict(list)
        self._tasks: set[asyncio.Task[None]] = set()

    async def publish(self, envelope: EventEnvelope) -> None:
        for _group, handler in self._subs.get(envelope.source, []):
            task = asyncio.create_task(self._deliver(handler, envelope))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _deliver(handler: Handler, envelope: EventEnvelope) -> None:
        try:
            await handler(envelope)
        except Exception:
            log.exception("event handler failed", event_type=envelope.type, event_id=envelope.id)

    def subscribe(self, *, group: str, sources: list[str], handler: Handler) -> None:
        for source in sources:
            self._subs[source].append((group, handler))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class RedisStreamsEventBus:
    """Redis Streams with consumer groups; handlers ack after success, failures are redelivered."""

    def __init__(
        self, redis: Any, *, consumer: str, maxlen: int = 100_000, retry_seconds: float = 1.0
    ) -> None:
        self.redis = redis
        self.consumer = consumer
        self.maxlen = maxlen
        self.retry_seconds = retry_seconds
        self._subs: list[tuple[str, list[str], Handler]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def publish(self, envelope: EventEnvelope) -> None:
        await self.redis.xadd(
            envelope.stream, {"envelope": envelope.model_dump_json()}, maxlen=self.maxlen, approximate=True
        )

    def subscribe(self, *, group: str, sources: list[str], handler: Handler) -> None:
        self._subs.append((group, [f"opsc.events.{s}" for s in sources], handler))

    async def start(self) -> None:
        for group, streams, handler in self._subs:
            for stream in streams:
                with contextlib.suppress(Exception):  # BUSYGROUP: the group exists already
                    await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            self._tasks.append(asyncio.create_task(self._consume(group, streams, handler)))

    async def _consume(self, group: str, streams: list[str], handler: Handler) -> None:
        """New entries as they come; every ``retry_seconds`` also the group's entries left unacknowledged
        (a failed handler here, or a consumer that died) for longer than that, claimed with XAUTOCLAIM.
        A poison entry is retried on that timer and never blocks new ones."""
        next_retry = 0.0
        while True:
            try:
                if time.monotonic() >= next_retry:
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
                    next_retry = time.monotonic() + self.retry_seconds
                batches = await self.redis.xreadgroup(
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

    async def _handle(self, group: str, stream: Any, entries: Any, handler: Handler) -> None:
        for entry_id, values in entries or []:
            raw = (values or {}).get(b"envelope") or (values or {}).get("envelope")
            if raw is None:  # trimmed from the stream while pending: nothing left to deliver
                await self.redis.xack(stream, group, entry_id)
                continue
            envelope = EventEnvelope.model_validate_json(raw)
            try:
                await handler(envelope)
            except Exception:
                log.exception(
                    "event handler failed; will retry", event_type=envelope.type, event_id=envelope.id
                )
                continue
            await self.redis.xack(stream, group, entry_id)

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
    """

    def __init__(
        self,
        outbox_model: type[OutboxBase],
        bus: EventBus,
        *,
        interval: float = 0.25,
        idle_interval: float = 2.0,
        busy_for: float = 5.0,
    ) -> None:
        self.outbox_model = outbox_model
        self.bus = bus
        self.interval = interval
        self.idle_interval = max(idle_interval, interval)
        self.busy_for = busy_for
        self._wake = asyncio.Event()
        self._notified_at: float | None = None

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
        rows = await self.outbox_model.filter(published_at=None).order_by("created_at").limit(200)
        sent = 0
        for row in rows:
            envelope = EventEnvelope.model_validate(row.envelope)
            await self.bus.publish(envelope)
            row.published_at = datetime.now(UTC)
            await row.save(update_fields=["published_at"])
            sent += 1
        return sent

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


# ---- live fan-out (not durable: the durable copy is in the owner's database) ----------------


class Broadcaster(Protocol):
    async def publish(self, channel: str, message: str) -> None: ...
    def listen(self, channel: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[str]]: ...


class InProcessBroadcaster:
    def __init__(self) -> None:
        self._queues: dict[str, set[asyncio.Queue[str]]] = defaultdict(set)

    async def publish(self, channel: str, message: str) -> None:
        for queue in list(self._queues.get(channel, ())):
            queue.put_nowait(message)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._queues[channel].add(queue)

        async def messages() -> AsyncIterator[str]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            self._queues[channel].discard(queue)
            if not self._queues[channel]:
                self._queues.pop(channel, None)


class RedisBroadcaster:
    """Redis pub/sub, so any replica of a service can serve a subscription."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def publish(self, channel: str, message: str) -> None:
        await self.redis.publish(f"opsc.live.{channel}", message)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(f"opsc.live.{channel}")

        async def messages() -> AsyncIterator[str]:
            while True:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    data = msg["data"]
                    yield data.decode() if isinstance(data, bytes) else data

        try:
            yield messages()
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe()
                await pubsub.aclose()

"""Live fan-out for subscriptions (not durable: the durable copy is in the owner's database).

A broadcaster publishes short messages on a channel; each running subscription listens to one.
Every listener has a bounded queue: a reader that falls more than ``queue_size`` messages behind is
ended with :class:`SlowReaderError` (a clear GraphQL error) instead of growing memory without bound.
The Redis version shares ONE pub/sub connection per broadcaster (one per process) among all its
listeners: subscribing a channel when its first listener comes, unsubscribing when its last leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

from opsconductor_shared.errors import DomainError
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.live")

DEFAULT_QUEUE_SIZE = 1000


class SlowReaderError(DomainError):
    """The subscriber did not read its messages fast enough; its subscription is ended."""

    code = "SLOW_READER"


class LiveUnavailableError(DomainError):
    """Live updates cannot be delivered right now (Redis unreachable); retry later."""

    code = "SERVICE_UNAVAILABLE"


class Broadcaster(Protocol):
    async def publish(self, channel: str, message: str) -> None: ...
    def listen(self, channel: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[str]]: ...


class _Listener:
    """One subscription's bounded queue; once it overflows, nothing more is queued and the reader
    gets :class:`SlowReaderError` at its next read."""

    def __init__(self, channel: str, queue_size: int) -> None:
        self.channel = channel
        self.queue_size = queue_size
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.overflowed = False

    def put(self, message: str) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("live subscriber too slow; ending it", channel=self.channel, queued=self.queue_size)

    async def messages(self) -> AsyncIterator[str]:
        while True:
            if self.overflowed:
                raise SlowReaderError(
                    f"subscription ended: the client fell more than {self.queue_size} messages "
                    "behind; subscribe again (and read faster)"
                )
            yield await self.queue.get()


class InProcessBroadcaster:
    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._listeners: dict[str, set[_Listener]] = defaultdict(set)

    @property
    def _queues(self) -> dict[str, set[_Listener]]:  # what tests look at: channels with listeners
        return self._listeners

    async def publish(self, channel: str, message: str) -> None:
        for listener in list(self._listeners.get(channel, ())):
            listener.put(message)

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncGenerator[AsyncIterator[str], None]:
        listener = _Listener(channel, self.queue_size)
        self._listeners[channel].add(listener)
        try:
            yield listener.messages()
        finally:
            self._listeners[channel].discard(listener)
            if not self._listeners[channel]:
                self._listeners.pop(channel, None)

    async def close(self) -> None:
        return None


class RedisBroadcaster:
    """Redis pub/sub, so any replica of a service can serve a subscription.

    One pub/sub connection for every listener of this broadcaster, read by one task that hands
    each message to the listeners of its channel. redis-py reconnects that connection and
    re-subscribes its channels after a Redis restart.
    """

    def __init__(self, redis: Any, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self._listeners: dict[str, set[_Listener]] = defaultdict(set)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def publish(self, channel: str, message: str) -> None:
        await self.redis.publish(f"opsc.live.{channel}", message)

    @property
    def connections(self) -> int:
        """Pub/sub connections this broadcaster holds (0 or 1)."""
        return 0 if self._pubsub is None or self._pubsub.connection is None else 1

    @contextlib.asynccontextmanager
    async def listen(self, channel: str) -> AsyncGenerator[AsyncIterator[str], None]:
        name = f"opsc.live.{channel}"
        listener = _Listener(channel, self.queue_size)
        async with self._lock:
            first = not self._listeners.get(name)
            self._listeners[name].add(listener)
            try:
                if first:
                    if self._pubsub is None:
                        self._pubsub = self.redis.pubsub()
                    await self._pubsub.subscribe(name)
            except Exception as exc:
                self._forget(name, listener)
                log.warning("live subscribe failed", channel=channel, error=type(exc).__name__)
                raise LiveUnavailableError("live updates are unavailable right now; retry later") from exc
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="live-pubsub-reader")
        try:
            yield listener.messages()
        finally:
            async with self._lock:
                if self._forget(name, listener) and self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(name)

    def _forget(self, name: str, listener: _Listener) -> bool:
        """Drop ``listener``; True when it was its channel's last."""
        listeners = self._listeners.get(name)
        if listeners is None:
            return False
        listeners.discard(listener)
        if listeners:
            return False
        del self._listeners[name]
        return True

    async def _read(self) -> None:
        while True:
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis gone: redis-py reconnects (and re-subscribes) next time
                log.warning("live pub/sub read failed; retrying", error=type(exc).__name__)
                await asyncio.sleep(1)
                continue
            if msg is None or msg.get("type") != "message":
                continue
            channel, data = msg["channel"], msg["data"]
            name = channel.decode() if isinstance(channel, bytes) else channel
            text = data.decode() if isinstance(data, bytes) else data
            for listener in list(self._listeners.get(name, ())):
                listener.put(text)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

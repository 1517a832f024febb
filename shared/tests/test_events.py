"""Events: ids, envelope, the in-process and Redis Streams buses, the outbox relay on a real SQLite
database, deduplicating consumers, and the live broadcasters (in-process and Redis pub/sub)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import (
    EventEnvelope,
    Handler,
    InProcessBroadcaster,
    InProcessEventBus,
    OutboxRelay,
    RedisBroadcaster,
    RedisStreamsEventBus,
    deduplicating,
    new_uuid7,
    record_event,
)
from opsconductor_shared.logging import correlation_id
from shared.tests.event_helpers import Recorder, envelope, eventually, source
from shared.tests.outbox_models import Outbox, ProcessedEvent

# ---- ids and envelope ---------------------------------------------------------------------------


async def test_uuid7_has_version_7_and_sorts_by_time() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_uuid7())
        await asyncio.sleep(0.002)  # the order is by millisecond; within one ms it is random
    assert all(u.version == 7 for u in ids)
    assert all(u.variant == uuid.RFC_4122 for u in ids)
    assert ids == sorted(ids)
    assert [str(u) for u in ids] == sorted(str(u) for u in ids)  # as text too (outbox ids, cursors)
    ms = ids[-1].int >> 80
    assert abs(ms - time.time_ns() // 1_000_000) < 1000


def test_uuid7_is_unique() -> None:
    assert len({new_uuid7() for _ in range(10_000)}) == 10_000


def test_envelope_round_trip() -> None:
    token = correlation_id.set("cid-123")
    try:
        env = EventEnvelope(type="targets.created", source="targets", subject="t1", actor="u1", data={"n": 1})
    finally:
        correlation_id.reset(token)
    assert env.correlation_id == "cid-123"
    assert env.stream == "opsc.events.targets"
    assert uuid.UUID(env.id).version == 7
    assert env.time.tzinfo is not None
    again = EventEnvelope.model_validate_json(env.model_dump_json())
    assert again == env
    assert EventEnvelope.model_validate(env.model_dump(mode="json")) == env


# ---- in-process bus ---------------------------------------------------------------------------


async def test_in_process_bus_delivers_to_each_subscriber_of_the_source() -> None:
    bus = InProcessEventBus()
    first, second, elsewhere = Recorder(), Recorder(), Recorder()
    bus.subscribe(group="a", sources=["things"], handler=first)
    bus.subscribe(group="b", sources=["things", "other"], handler=second)
    bus.subscribe(group="c", sources=["other"], handler=elsewhere)
    await bus.start()
    env = envelope("things")
    await bus.publish(env)
    await first.count(1)
    await second.count(1)
    await asyncio.sleep(0.05)
    assert first.got == [env]
    assert second.got == [env]
    assert elsewhere.got == []
    await bus.stop()


async def test_in_process_bus_a_failing_handler_does_not_stop_others() -> None:
    bus = InProcessEventBus()
    ok = Recorder()

    async def boom(_env: EventEnvelope) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe(group="bad", sources=["things"], handler=boom)
    bus.subscribe(group="good", sources=["things"], handler=ok)
    await bus.start()
    # publish returns only once every group handled the event: the failing one never does.
    publishing = [asyncio.create_task(bus.publish(envelope("things"))) for _ in range(2)]
    await ok.count(2)
    assert not any(task.done() for task in publishing)
    await bus.stop()
    for task in publishing:
        with pytest.raises(asyncio.CancelledError):
            await task


# ---- Redis Streams bus --------------------------------------------------------------------------


async def pending_count(redis: Redis, stream: str, group: str) -> int:
    return int((await redis.xpending(stream, group))["pending"])


async def test_redis_bus_delivers_and_acks(
    buses: Callable[[str], RedisStreamsEventBus], redis: Redis
) -> None:
    src = source()
    bus = buses("c1")
    got = Recorder()
    bus.subscribe(group="g", sources=[src], handler=got)
    await bus.start()
    env = envelope(src, n=1)
    await bus.publish(env)
    await got.count(1)
    assert got.got == [env]

    async def acked() -> bool:
        return await pending_count(redis, env.stream, "g") == 0

    await eventually(acked)


async def test_redis_bus_delivers_events_published_before_the_consumer_started(
    buses: Callable[[str], RedisStreamsEventBus],
) -> None:
    src = source()
    early = envelope(src, n=1)
    await buses("publisher").publish(early)
    bus = buses("late-consumer")
    got = Recorder()
    bus.subscribe(group="g", sources=[src], handler=got)
    await bus.start()
    await got.count(1)
    assert got.got == [early]


async def test_redis_bus_every_group_gets_every_event(buses: Callable[[str], RedisStreamsEventBus]) -> None:
    src = source()
    bus = buses("c1")
    audit, search = Recorder(), Recorder()
    bus.subscribe(group="audit", sources=[src], handler=audit)
    bus.subscribe(group="search", sources=[src], handler=search)
    await bus.start()
    sent = [envelope(src, n=i) for i in range(3)]
    for env in sent:
        await bus.publish(env)
    await audit.count(3)
    await search.count(3)
    assert audit.got == sent
    assert search.got == sent


async def test_redis_bus_failed_handler_leaves_the_event_pending_and_it_is_redelivered(
    buses: Callable[[str], RedisStreamsEventBus], redis: Redis
) -> None:
    src = source()
    attempts: list[str] = []

    async def flaky(env: EventEnvelope) -> None:
        attempts.append(env.id)
        if len(attempts) == 1:
            raise ConnectionError("database blip")

    first = buses("worker-1")
    first.subscribe(group="g", sources=[src], handler=flaky)
    await first.start()
    env = envelope(src)
    await first.publish(env)

    async def tried_once() -> bool:
        return len(attempts) == 1

    await eventually(tried_once)
    assert await pending_count(redis, env.stream, "g") == 1  # not acked
    await first.stop()

    # The same consumer after a restart reads its pending entries first.
    again = buses("worker-1")
    again.subscribe(group="g", sources=[src], handler=flaky)
    await again.start()

    async def redelivered_and_acked() -> bool:
        return len(attempts) == 2 and await pending_count(redis, env.stream, "g") == 0

    await eventually(redelivered_and_acked)
    assert attempts == [env.id, env.id]


async def test_redis_bus_live_consumer_retries_a_failed_event(
    buses: Callable[[str], RedisStreamsEventBus],
) -> None:
    src = source()
    attempts: list[str] = []

    async def flaky(env: EventEnvelope) -> None:
        attempts.append(env.id)
        if len(attempts) == 1:
            raise ConnectionError("database blip")

    bus = buses("worker-1")
    bus.subscribe(group="g", sources=[src], handler=flaky)
    await bus.start()
    await bus.publish(envelope(src))

    async def retried() -> bool:
        return len(attempts) >= 2

    await eventually(retried, within=3)


async def test_redis_bus_a_poison_event_does_not_block_new_ones_after_restart(
    buses: Callable[[str], RedisStreamsEventBus],
) -> None:
    src = source()
    got = Recorder()
    poison = envelope(src, poison=True)
    cured = False

    async def handler(env: EventEnvelope) -> None:
        if env.data.get("poison") and not cured:
            raise ValueError("cannot handle this one")
        await got(env)

    first = buses("worker-1")
    first.subscribe(group="g", sources=[src], handler=handler)
    await first.start()
    await first.publish(poison)
    await asyncio.sleep(0.3)
    await first.stop()

    again = buses("worker-1")
    again.subscribe(group="g", sources=[src], handler=handler)
    await again.start()
    fine = envelope(src, n=1)
    await again.publish(fine)
    try:
        await got.count(1, within=1.5)
        assert got.got == [fine]
    finally:
        # Let the poison entry succeed so a spinning consumer settles before the fixture stops it.
        cured = True
        await got.count(1, within=5)


async def test_redis_bus_two_consumers_in_one_group_split_the_work(
    buses: Callable[[str], RedisStreamsEventBus], redis: Redis
) -> None:
    src = source()
    seen: dict[str, list[str]] = {"a": [], "b": []}

    def worker(name: str) -> Handler:
        async def handle(env: EventEnvelope) -> None:
            seen[name].append(env.id)
            await asyncio.sleep(0.02)  # busy, so the other consumer takes the next entry

        return handle

    for name in ("a", "b"):
        bus = buses(name)
        bus.subscribe(group="workers", sources=[src], handler=worker(name))
        await bus.start()
    publisher = buses("publisher")
    await asyncio.sleep(0.1)  # both consumers are blocked in XREADGROUP
    sent = [envelope(src, n=i) for i in range(20)]
    for env in sent:
        await publisher.publish(env)
        await asyncio.sleep(0.005)

    async def all_handled() -> bool:
        return len(seen["a"]) + len(seen["b"]) >= len(sent)

    await eventually(all_handled)
    await asyncio.sleep(0.1)
    assert sorted(seen["a"] + seen["b"]) == sorted(e.id for e in sent)  # each exactly once
    assert seen["a"]
    assert seen["b"]
    assert await pending_count(redis, sent[0].stream, "workers") == 0


# ---- outbox relay on a real database ----------------------------------------------------------


class SwitchableBus(InProcessEventBus):
    """A fake bus that can be taken down: publishing raises while ``down`` (like Redis unreachable)."""

    def __init__(self, *, down: bool = False, fail_after: int | None = None) -> None:
        super().__init__()
        self._started.set()  # started: every consumer of these tests subscribed first
        self.down = down
        self.fail_after = fail_after
        self.published: list[EventEnvelope] = []

    async def publish(self, envelope: EventEnvelope) -> None:
        if self.down or (self.fail_after is not None and len(self.published) >= self.fail_after):
            raise ConnectionError("bus unreachable")
        self.published.append(envelope)
        await super().publish(envelope)


async def record(*envelopes: EventEnvelope) -> None:
    async with in_transaction():
        for env in envelopes:
            await record_event(Outbox, env)


async def unpublished() -> int:
    return await Outbox.filter(published_at=None).count()


async def test_relay_publishes_pending_rows_in_order_and_marks_them(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        sent = [envelope("things", n=i) for i in range(3)]
        await record(*sent)
        row = await Outbox.get(id=uuid.UUID(sent[0].id))
        assert row.stream == "opsc.events.things"
        assert row.published_at is None

        bus = SwitchableBus()
        relay = OutboxRelay(Outbox, bus)
        assert await relay.relay_once() == 3
        assert bus.published == sent
        assert await unpublished() == 0
        assert await relay.relay_once() == 0  # marked: not sent twice
        assert bus.published == sent


async def test_relay_rolled_back_events_are_never_published(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        with pytest.raises(RuntimeError):
            async with in_transaction():
                await record_event(Outbox, envelope("things"))
                raise RuntimeError("the change failed")
        bus = SwitchableBus()
        assert await OutboxRelay(Outbox, bus).relay_once() == 0
        assert bus.published == []


async def test_relay_rows_wait_while_the_bus_is_down(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        sent = [envelope("things", n=i) for i in range(3)]
        await record(*sent)
        bus = SwitchableBus(fail_after=1)
        relay = OutboxRelay(Outbox, bus)
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert bus.published == sent[:1]  # the first went out and was marked
        assert await unpublished() == 2

        bus.down, bus.fail_after = True, None
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert await unpublished() == 2

        bus.down = False
        assert await relay.relay_once() == 2
        assert bus.published == sent
        assert await unpublished() == 0


async def test_relay_loop_survives_an_outage_and_wakes_on_notify(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        bus = SwitchableBus(down=True)
        got = Recorder()
        bus.subscribe(group="g", sources=["things"], handler=got)
        relay = OutboxRelay(Outbox, bus, interval=30)  # only notify() or a retry can wake it
        task = asyncio.create_task(relay.run())
        try:
            await record(envelope("things", n=1))
            relay.notify()
            await asyncio.sleep(0.3)
            assert await unpublished() == 1  # the bus is down: the row waits
            bus.down = False
            await got.count(1, within=5)  # the loop retried after its error pause
            await eventually(lambda: _none_unpublished())

            await record(envelope("things", n=2))
            started = time.monotonic()
            relay.notify()
            await got.count(2, within=5)
            assert time.monotonic() - started < 1  # woken, not waiting out the 30 s poll
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_relay_polls_slowly_when_idle_and_a_write_wakes_it(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        bus = SwitchableBus()
        got = Recorder()
        bus.subscribe(group="g", sources=["things"], handler=got)
        relay = OutboxRelay(Outbox, bus, interval=0.05, idle_interval=30, busy_for=0.5)
        assert relay.next_poll_in() == 30  # idle: one query per idle_interval
        task = asyncio.create_task(relay.run())
        try:
            await asyncio.sleep(0.2)  # its first look found nothing: now it waits out the 30 s
            started = time.monotonic()
            await record(envelope("things", n=1))  # no notify(): the write itself wakes it
            await got.count(1, within=5)
            assert time.monotonic() - started < 5
            assert relay.next_poll_in() == 0.05  # rows were just written: the busy pace
            await asyncio.sleep(0.6)
            assert relay.next_poll_in() == 30
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def _none_unpublished() -> bool:
    return await unpublished() == 0


async def test_relay_to_redis_end_to_end(
    outbox_db: ServiceDatabase, buses: Callable[[str], RedisStreamsEventBus]
) -> None:
    src = source()
    bus = buses("relay")
    got = Recorder()
    bus.subscribe(group="consumer", sources=[src], handler=got)
    await bus.start()
    with outbox_db.bind():
        env = envelope(src, n=42)
        await record(env)
        assert await OutboxRelay(Outbox, bus).relay_once() == 1
    await got.count(1)
    assert got.got == [env]


async def test_deduplicating_handles_an_event_id_once(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        got = Recorder()
        handler = deduplicating(ProcessedEvent, got)
        env = envelope("things")
        await handler(env)
        await handler(env)
        await handler(EventEnvelope.model_validate_json(env.model_dump_json()))  # redelivered copy
        assert got.got == [env]
        assert await ProcessedEvent.exists(event_id=env.id)
        other = envelope("things")
        await handler(other)
        assert got.got == [env, other]


async def test_deduplicating_a_failed_handler_is_not_marked_processed(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        attempts: list[str] = []

        async def flaky(env: EventEnvelope) -> None:
            attempts.append(env.id)
            if len(attempts) == 1:
                raise ConnectionError("blip")

        handler = deduplicating(ProcessedEvent, flaky)
        env = envelope("things")
        with pytest.raises(ConnectionError):
            await handler(env)
        assert not await ProcessedEvent.exists(event_id=env.id)
        await handler(env)  # the redelivery is handled
        await handler(env)  # and only once
        assert attempts == [env.id, env.id]


# ---- live broadcasters ------------------------------------------------------------------------


async def test_in_process_broadcaster() -> None:
    hub = InProcessBroadcaster()
    async with hub.listen("job-1") as first, hub.listen("job-1") as second, hub.listen("job-2") as other:
        await hub.publish("job-1", "line 1")
        await hub.publish("job-1", "line 2")
        assert await asyncio.wait_for(anext(first), 1) == "line 1"
        assert await asyncio.wait_for(anext(first), 1) == "line 2"
        assert await asyncio.wait_for(anext(second), 1) == "line 1"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(other), 0.1)
    await hub.publish("job-1", "nobody listens")  # no error, nothing kept
    assert hub._queues == {}


async def test_redis_broadcaster(redis_url: str) -> None:
    channel = f"job-{uuid.uuid4().hex}"
    listener_client, publisher_client = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        listener, publisher = RedisBroadcaster(listener_client), RedisBroadcaster(publisher_client)
        async with listener.listen(channel) as messages:
            await publisher.publish(f"{channel}-other", "not for us")
            await publisher.publish(channel, "line 1")
            await publisher.publish(channel, "line 2 ünïcode")
            assert await asyncio.wait_for(anext(messages), 5) == "line 1"
            assert await asyncio.wait_for(anext(messages), 5) == "line 2 ünïcode"
        assert await publisher_client.pubsub_numsub(f"opsc.live.{channel}") == [
            (f"opsc.live.{channel}".encode(), 0)
        ]
    finally:
        await listener_client.aclose()
        await publisher_client.aclose()

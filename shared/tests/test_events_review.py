"""Security-review fixes in the event plumbing (security-review-2026-12.md): M4 at-least-once delivery
on the in-process bus, M5 dead-letter stream and safe stream trimming, M9 bounded live queues and one
Redis pub/sub connection per process, L16 event retention. Real SQLite databases and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import (
    DEAD_LETTER_STREAM,
    EventEnvelope,
    InProcessBroadcaster,
    InProcessEventBus,
    OutboxRelay,
    RedisBroadcaster,
    RedisStreamsEventBus,
    SlowReaderError,
    deduplicating,
    prune_events,
    record_event,
)
from shared.tests.event_helpers import Recorder, envelope, eventually, source
from shared.tests.outbox_models import Outbox, ProcessedEvent


async def record(*envelopes: EventEnvelope) -> None:
    async with in_transaction():
        for env in envelopes:
            await record_event(Outbox, env)


async def unpublished() -> int:
    return await Outbox.filter(published_at=None).count()


async def stop_relay(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---- M4: the in-process bus delivers at least once -----------------------------------------------


async def test_m4_a_handler_that_raises_once_gets_the_event_again_and_the_row_waits_for_it(
    outbox_db: ServiceDatabase,
) -> None:
    """M4: the outbox row stays unpublished until the consumer's handler succeeded; the failed
    delivery is retried (backoff) and applied."""
    with outbox_db.bind():
        bus = InProcessEventBus(retry_initial=0.05)
        attempts: list[str] = []
        applied = Recorder()
        fail = asyncio.Event()
        fail.set()

        async def flaky(env: EventEnvelope) -> None:
            attempts.append(env.id)
            if fail.is_set():
                raise ConnectionError("database blip")
            await applied(env)

        bus.subscribe(group="auth", sources=["things"], handler=deduplicating(ProcessedEvent, flaky))
        await bus.start()
        relay = OutboxRelay(Outbox, bus, ack_wait=0.3)
        env = envelope("things", n=1)
        await record(env)
        assert await relay.relay_once() == 0  # not delivered yet: not marked
        assert await unpublished() == 1

        async def retried() -> bool:
            return len(attempts) >= 2

        await eventually(retried)
        assert await unpublished() == 1  # still failing: still pending
        fail.clear()
        await applied.count(1)
        assert applied.got == [env]

        async def marked() -> bool:
            return await unpublished() == 0

        await eventually(marked)
        assert await ProcessedEvent.exists(event_id=env.id)
        assert await relay.relay_once() == 0
        await asyncio.sleep(0.1)
        assert applied.got == [env]  # applied once
        await bus.stop()


async def test_m4_only_the_failed_group_is_retried(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        bus = InProcessEventBus(retry_initial=0.05)
        good, flaky_got = Recorder(), Recorder()
        failures = [1]

        async def flaky(env: EventEnvelope) -> None:
            if failures:
                failures.pop()
                raise RuntimeError("once")
            await flaky_got(env)

        bus.subscribe(group="good", sources=["things"], handler=good)
        bus.subscribe(group="flaky", sources=["things"], handler=flaky)
        await bus.start()
        await record(envelope("things"))
        assert await OutboxRelay(Outbox, bus).relay_once() == 1
        assert len(good.got) == 1 and len(flaky_got.got) == 1
        assert await unpublished() == 0
        await bus.stop()


async def test_m4_stop_keeps_in_flight_events_pending_for_the_next_start(outbox_db: ServiceDatabase) -> None:
    """M4: stopping while a handler runs loses nothing: the row stays unpublished and the next
    process delivers it."""
    with outbox_db.bind():
        bus = InProcessEventBus()
        entered = asyncio.Event()

        async def stuck(_env: EventEnvelope) -> None:
            entered.set()
            await asyncio.Event().wait()

        bus.subscribe(group="users", sources=["things"], handler=stuck)
        await bus.start()
        relay = asyncio.create_task(OutboxRelay(Outbox, bus).run())
        env = envelope("things", n=2)
        await record(env)
        await asyncio.wait_for(entered.wait(), 5)
        await stop_relay(relay)  # the service's lifespan ends
        await bus.stop()
        assert await unpublished() == 1

        again, got = InProcessEventBus(), Recorder()
        again.subscribe(group="users", sources=["things"], handler=got)
        await again.start()
        relay = asyncio.create_task(OutboxRelay(Outbox, again).run())
        try:
            await got.count(1)
            assert got.got == [env]

            async def marked() -> bool:
                return await unpublished() == 0

            await eventually(marked)
        finally:
            await stop_relay(relay)
            await again.stop()


async def test_m4_events_published_before_the_consumer_subscribes_wait_for_it(
    outbox_db: ServiceDatabase,
) -> None:
    """M4: auth's relay runs before users subscribes (the launcher starts services one by one):
    the event waits for the bus to start instead of reaching nobody."""
    with outbox_db.bind():
        bus = InProcessEventBus()
        relay = asyncio.create_task(OutboxRelay(Outbox, bus, interval=0.05).run())
        try:
            env = envelope("things", n=3)
            await record(env)
            await asyncio.sleep(0.5)
            assert await unpublished() == 1  # nobody listens yet: kept
            got = Recorder()
            bus.subscribe(group="late", sources=["things"], handler=got)
            await bus.start()
            await got.count(1)
            assert got.got == [env]

            async def marked() -> bool:
                return await unpublished() == 0

            await eventually(marked)
        finally:
            await stop_relay(relay)
            await bus.stop()


async def test_m4_a_failing_consumer_does_not_hold_back_other_rows(outbox_db: ServiceDatabase) -> None:
    with outbox_db.bind():
        bus = InProcessEventBus(retry_initial=0.05, retry_max=0.2)
        got = Recorder()

        async def handler(env: EventEnvelope) -> None:
            if env.data.get("poison"):
                raise ValueError("cannot handle this one")
            await got(env)

        bus.subscribe(group="g", sources=["things"], handler=handler)
        await bus.start()
        relay = asyncio.create_task(OutboxRelay(Outbox, bus, interval=0.05, ack_wait=0.2).run())
        try:
            poison, fine = envelope("things", poison=True), envelope("things", n=4)
            await record(poison)
            await record(fine)
            await got.count(1)
            assert got.got == [fine]
            await asyncio.sleep(0.3)
            assert await Outbox.filter(published_at=None).values_list("id", flat=True) == [
                uuid.UUID(poison.id)
            ]
        finally:
            await stop_relay(relay)
            await bus.stop()


# ---- M5: malformed entries go to the dead-letter stream; trimming keeps unread entries ----------


async def test_m5_a_malformed_entry_is_dead_lettered_and_the_next_event_is_applied(
    buses: Callable[..., RedisStreamsEventBus], redis: Redis
) -> None:
    """M5 (the review's test): XADD {"envelope": "{}"} then a valid event: the valid one is applied,
    the bad one is parked in opsc.events.dead with the reason, and nothing stays pending."""
    src = source()
    stream = f"opsc.events.{src}"
    bad_id = (await redis.xadd(stream, {"envelope": "{}"})).decode()
    no_field_id = (await redis.xadd(stream, {"other": "x"})).decode()
    bus = buses("consumer-1")
    got = Recorder()
    bus.subscribe(group="users", sources=[src], handler=got)
    await bus.start()
    valid = envelope(src, n=1)
    await bus.publish(valid)
    await got.count(1)
    assert got.got == [valid]

    async def parked() -> bool:
        entries = await redis.xrange(DEAD_LETTER_STREAM)
        return len([e for e in entries if e[1][b"stream"] == stream.encode()]) == 2

    await eventually(parked)
    dead = {
        fields[b"entry_id"].decode(): fields
        for _id, fields in await redis.xrange(DEAD_LETTER_STREAM)
        if fields[b"stream"] == stream.encode()
    }
    assert set(dead) == {bad_id, no_field_id}
    assert dead[bad_id][b"group"] == b"users"
    assert dead[bad_id][b"reason"].startswith(b"malformed envelope")
    assert dead[bad_id][b"field.envelope"] == b"{}"

    async def nothing_pending() -> bool:
        return int((await redis.xpending(stream, "users"))["pending"]) == 0

    await eventually(nothing_pending)


async def test_m5_trimming_never_drops_what_a_group_has_not_read_or_acked(
    buses: Callable[..., RedisStreamsEventBus], redis: Redis
) -> None:
    """M5: no MAXLEN on XADD; trim() cuts only below the oldest entry some group still needs."""
    src = source()
    stream = f"opsc.events.{src}"
    bus = buses("trimmer", trim_seconds=0)
    ids = []
    for i in range(10):
        await bus.publish(envelope(src, n=i))
    ids = [entry_id for entry_id, _ in await redis.xrange(stream)]
    assert len(ids) == 10
    assert await bus.trim(stream) == 0  # no group yet, entries recent: kept
    await redis.xgroup_create(stream, "fast", id="0")
    await redis.xgroup_create(stream, "slow", id="0")
    assert await bus.trim(stream) == 0  # neither group read anything
    fast = await redis.xreadgroup("fast", "c", {stream: ">"}, count=100)
    await redis.xack(stream, "fast", *[entry_id for entry_id, _ in fast[0][1]])
    slow = await redis.xreadgroup("slow", "c", {stream: ">"}, count=4)
    await redis.xack(stream, "slow", *[entry_id for entry_id, _ in slow[0][1][:2]])  # 2 stay pending
    assert await bus.trim(stream) == 2  # only the two entries every group acknowledged
    left = [entry_id for entry_id, _ in await redis.xrange(stream)]
    assert left == ids[2:]
    pending = await redis.xpending_range(stream, "slow", min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == ids[2:4]
    rest = await redis.xreadgroup("slow", "c", {stream: ">"}, count=100)
    assert [entry_id for entry_id, _ in rest[0][1]] == ids[4:]


async def test_m5_the_consumer_trims_its_streams_periodically(
    buses: Callable[..., RedisStreamsEventBus], redis: Redis
) -> None:
    src = source()
    stream = f"opsc.events.{src}"
    bus = buses("c1", trim_seconds=0.2)
    got = Recorder()
    bus.subscribe(group="g", sources=[src], handler=got)
    await bus.start()
    for i in range(5):
        await bus.publish(envelope(src, n=i))
    await got.count(5)

    async def trimmed() -> bool:
        return int(await redis.xlen(stream)) <= 1  # the last delivered entry may stay

    await eventually(trimmed)


# ---- M9: bounded live queues, one pub/sub connection per process ----------------------------------


async def test_m9_a_slow_reader_is_ended_instead_of_queueing_without_bound() -> None:
    hub = InProcessBroadcaster(queue_size=3)
    async with hub.listen("run-1") as slow, hub.listen("run-1") as fast:
        for i in range(10):
            await hub.publish("run-1", f"line {i}")
            assert await asyncio.wait_for(anext(fast), 1) == f"line {i}"  # keeps up: fine
        overflowed = [x for x in hub._listeners["run-1"] if x.overflowed]
        assert len(overflowed) == 1 and overflowed[0].queue.qsize() == 3  # bounded, then dropped
        with pytest.raises(SlowReaderError) as info:
            await asyncio.wait_for(anext(slow), 1)
        assert info.value.extensions == {"code": "SLOW_READER"}
        assert "behind" in info.value.message


async def test_m9_redis_broadcaster_slow_reader_is_ended(redis_url: str) -> None:
    channel = f"run-{uuid.uuid4().hex}"
    client = Redis.from_url(redis_url)
    try:
        hub = RedisBroadcaster(client, queue_size=5)
        async with hub.listen(channel) as slow:
            for i in range(20):
                await hub.publish(channel, f"line {i}")
            with pytest.raises(SlowReaderError):
                for _ in range(30):
                    await asyncio.wait_for(anext(slow), 5)
        await hub.close()
    finally:
        await client.aclose()


async def test_m9_all_listeners_share_one_pubsub_connection(redis_url: str) -> None:
    """M9: 30 subscriptions (25 channels) hold one Redis connection between them, not one each."""
    name = f"m9-{uuid.uuid4().hex[:8]}"
    client = Redis.from_url(redis_url, client_name=name)
    publisher = Redis.from_url(redis_url)
    hub = RedisBroadcaster(client)
    try:
        async with contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(hub.listen(f"{name}-{i % 25}")) for i in range(30)]
            clients = [c for c in await publisher.client_list() if c.get("name") == name]
            assert len(clients) == 1, clients
            await publisher.publish(f"opsc.live.{name}-3", "to 3")
            await publisher.publish(f"opsc.live.{name}-4", "to 4")
            assert await asyncio.wait_for(anext(streams[3]), 5) == "to 3"
            assert await asyncio.wait_for(anext(streams[28]), 5) == "to 3"  # 28 % 25 == 3
            assert await asyncio.wait_for(anext(streams[4]), 5) == "to 4"

        # The last listener of each channel unsubscribed it.
        async def all_unsubscribed() -> bool:
            numsub = await publisher.pubsub_numsub(*[f"opsc.live.{name}-{i}" for i in range(25)])
            return all(count == 0 for _channel, count in numsub)

        await eventually(all_unsubscribed)
        # And a new listener still works on the same connection.
        async with hub.listen(f"{name}-again") as again:
            await publisher.publish(f"opsc.live.{name}-again", "hello")
            assert await asyncio.wait_for(anext(again), 5) == "hello"
    finally:
        await hub.close()
        await client.aclose()
        await publisher.aclose()


# ---- L16: retention ------------------------------------------------------------------------------


async def test_l16_prune_deletes_old_published_rows_and_processed_ids_only(
    outbox_db: ServiceDatabase,
) -> None:
    with outbox_db.bind():
        old_published, old_pending, recent = envelope("things"), envelope("things"), envelope("things")
        await record(old_published, old_pending, recent)
        long_ago = datetime.now(UTC) - timedelta(days=30)
        await Outbox.filter(id=uuid.UUID(old_published.id)).update(published_at=long_ago, created_at=long_ago)
        await Outbox.filter(id=uuid.UUID(old_pending.id)).update(created_at=long_ago)
        await Outbox.filter(id=uuid.UUID(recent.id)).update(published_at=datetime.now(UTC))
        await ProcessedEvent.create(event_id="old")
        await ProcessedEvent.create(event_id="new")
        await ProcessedEvent.filter(event_id="old").update(processed_at=long_ago)

        deleted = await prune_events(
            Outbox,
            [ProcessedEvent],
            outbox_older_than=timedelta(days=7),
            processed_older_than=timedelta(days=7),
        )
        assert deleted == 2
        left = {str(i) for i in await Outbox.all().values_list("id", flat=True)}
        assert left == {old_pending.id, recent.id}  # a pending row is never pruned, however old
        assert await ProcessedEvent.all().values_list("event_id", flat=True) == ["new"]

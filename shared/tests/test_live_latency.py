"""Live output (issue 15): the broadcasters hand a message to their listeners at once, without a
polling interval, also after the channel has been quiet for longer than any read timeout."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

from redis.asyncio import Redis

from opsconductor_shared.live import Broadcaster, InProcessBroadcaster, RedisBroadcaster

QUIET_S = 1.5
"""Longer than RedisBroadcaster's read timeout (1 s): a poll loop would show here."""


async def _latencies(hub: Broadcaster, channel: str, count: int = 20) -> list[float]:
    async with hub.listen(channel) as messages:
        await asyncio.sleep(QUIET_S)
        took = []
        for i in range(count):
            sent = time.perf_counter()
            await hub.publish(channel, f"line {i}")
            assert await asyncio.wait_for(anext(messages), 5) == f"line {i}"
            took.append(time.perf_counter() - sent)
            await asyncio.sleep(0.02 if i % 5 else QUIET_S / 3)  # paced, with quiet spells
    return took


def _assert_prompt(took: list[float]) -> None:
    # generous bounds for a loaded 2-core CI machine; a 1 s poll or a 50 ms batch would fail
    assert statistics.median(took) < 0.025, took
    assert max(took) < 0.25, took


async def test_the_in_process_broadcaster_delivers_without_waiting() -> None:
    _assert_prompt(await _latencies(InProcessBroadcaster(), "run-live"))


async def test_the_redis_broadcaster_delivers_without_waiting(redis_url: str) -> None:
    client = Redis.from_url(redis_url)
    hub = RedisBroadcaster(client)
    try:
        _assert_prompt(await _latencies(hub, f"run-{uuid.uuid4().hex}"))
    finally:
        await hub.close()
        await client.aclose()

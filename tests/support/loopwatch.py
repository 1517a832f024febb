"""Fail a test when the event loop is blocked: ``async with loop_watch(): ...``.

The platform fixture runs every service in the test process's event loop (as ``make dev`` runs
them in one process), so CPU work a service does on the loop — a regex over a megabyte, argon2,
key parsing, a big ``json.dumps`` — stalls the test's own loop too. The watcher runs a ticker
task that sleeps ``tick`` seconds at a time and records how late each wake-up is; leaving the
block raises ``LoopBlocked`` when the worst lateness was over ``limit`` (100 ms by default).

Usage::

    from tests.support.loopwatch import loop_watch

    async def test_big_request_does_not_block(platform):
        async with loop_watch() as watch:
            await send_the_big_request()
        assert watch.ticks > 0  # optional: the ticker really ran

The ticker is bounded (``max_seconds``): a watch left open longer stops measuring and fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

DEFAULT_LIMIT = 0.1
DEFAULT_TICK = 0.005


class LoopBlocked(AssertionError):
    """The event loop did not run the ticker for longer than the limit."""


@dataclass
class LoopWatch:
    limit: float = DEFAULT_LIMIT
    tick: float = DEFAULT_TICK
    max_seconds: float = 120.0
    worst: float = 0.0  # the largest lateness seen, in seconds
    ticks: int = 0
    overran: bool = False  # the watch stayed open past max_seconds
    lags: list[float] = field(default_factory=list, repr=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(int(self.max_seconds / self.tick) + 1):
            before = loop.time()
            await asyncio.sleep(self.tick)
            lag = loop.time() - before - self.tick
            self.ticks += 1
            if lag > self.worst:
                self.worst = lag
            if lag > self.limit:
                self.lags.append(lag)
        self.overran = True

    def check(self) -> None:
        if self.overran:
            raise LoopBlocked(f"the loop watch stayed open longer than {self.max_seconds} s")
        if self.worst > self.limit:
            raise LoopBlocked(
                f"the event loop was blocked for {self.worst * 1000:.0f} ms "
                f"(limit {self.limit * 1000:.0f} ms; {len(self.lags)} late wake-up(s))"
            )


@asynccontextmanager
async def loop_watch(
    limit: float = DEFAULT_LIMIT, *, tick: float = DEFAULT_TICK, max_seconds: float = 120.0
) -> AsyncIterator[LoopWatch]:
    """Watch the running loop while the block runs; raise :class:`LoopBlocked` after it if it
    was blocked for more than ``limit`` seconds at a time."""
    watch = LoopWatch(limit=limit, tick=tick, max_seconds=max_seconds)
    task = asyncio.create_task(watch._run(), name="loop-watch")
    await asyncio.sleep(0)  # let the ticker take its first timestamp
    try:
        yield watch
    finally:
        # One more tick, so a block that ended just now is measured too.
        await asyncio.sleep(watch.tick * 2)
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    watch.check()  # only reached when the block itself succeeded

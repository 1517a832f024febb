"""Helpers of the event tests: a stream of the test's own, envelopes, waiting, a recording handler."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from opsconductor_shared.events import (
    EventEnvelope,
)


def source() -> str:
    """A source (so a stream, `opsc.events.<source>`) of this test alone."""
    return f"test{uuid.uuid4().hex[:10]}"


def envelope(src: str = "things", **data: object) -> EventEnvelope:
    return EventEnvelope(type=f"{src}.happened", source=src, subject="thing-1", data=dict(data))


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Recorder:
    """A handler that records what it got."""

    def __init__(self) -> None:
        self.got: list[EventEnvelope] = []

    async def __call__(self, env: EventEnvelope) -> None:
        self.got.append(env)

    async def count(self, n: int, *, within: float = 5.0) -> None:
        async def reached() -> bool:
            return len(self.got) >= n

        await eventually(reached, within=within)

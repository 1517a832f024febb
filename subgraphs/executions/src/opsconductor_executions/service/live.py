"""Live fan-out of a run's events: the broadcaster channel, the message format (a JSON list of
event payloads), and the replay/live merge every subscription reads (``event_batches``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from opsconductor_executions.models import TERMINAL, Execution, ExecutionEvent
from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.errors import NotFoundError
from opsconductor_shared.events import Broadcaster

PUBLISH_CHUNK = 500
"""Events per live message: a persisted batch goes out as one message (a JSON list), so a run of
thousands of events costs subscribers, Redis and the router tens of messages, not thousands."""
MESSAGE_DATA_BYTES = 1_048_576
"""...and a message carries about this much output at most (more only when one event is larger)."""
REPLAY_PAGE = 1000
LIVE_QUIET_SECONDS = 2.0  # then look in the database (a missed message, another replica)
GAP_RETRY_SECONDS = 0.05  # with a gap in the live events: how soon to look in the database again
MAX_AHEAD = 100_000
"""Live events kept past a gap, at most (beyond, they are read from the database)."""


def channel(execution_id: str) -> str:
    return f"execution:{execution_id}"


def chunk_events(
    payloads: list[dict[str, Any]], max_count: int, max_bytes: int = MESSAGE_DATA_BYTES
) -> list[list[dict[str, Any]]]:
    """Consecutive runs of ``payloads`` of at most ``max_count`` events and about ``max_bytes``
    of output each (an event is never split; one larger than the budget goes alone)."""
    chunks: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for payload in payloads:
        cost = len(payload.get("data") or "")
        if current and (len(current) >= max_count or size + cost > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(payload)
        size += cost
    if current:
        chunks.append(current)
    return chunks


async def publish_events(broadcaster: Broadcaster, execution_id: str, payloads: list[dict[str, Any]]) -> None:
    """Publish events to live subscribers, in order, in chunks (chunk_events)."""
    for chunk in chunk_events(payloads, PUBLISH_CHUNK):
        await broadcaster.publish(channel(execution_id), json.dumps(chunk))


def decode_live(message: str) -> list[dict[str, Any]]:
    """A live message: a list of event payloads."""
    return json.loads(message)


def event_payload(row: ExecutionEvent) -> dict[str, Any]:
    """The JSON form published to live subscribers (same fields as the GraphQL type)."""
    return {
        "seq": row.seq,
        "type": row.type,
        "targetId": row.target_id,
        "stepIndex": row.step_index,
        "stepName": row.step_name,
        "data": row.data,
        "exitCode": row.exit_code,
        "status": row.status,
        "at": row.at.isoformat(),
    }


class LiveInbox:
    """The live messages one subscription has not read yet, at most ``size`` (M9): a reader slower
    than the run loses the oldest live messages, never memory; the gap this leaves is filled from
    the database (which holds every event before it is published), so it still gets every event."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max(1, size))
        self.dropped = 0

    def put(self, message: str) -> None:
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
        self.queue.put_nowait(message)


class Sequencer:
    """Puts a run's events in order for one reader: each seq once, none skipped. Events past a
    gap (published, their predecessors not read yet) are kept until the gap is filled."""

    def __init__(self, last: int) -> None:
        self.last = last
        self.ahead: dict[int, dict[str, Any]] = {}

    @property
    def gap(self) -> bool:
        return bool(self.ahead)

    def take(
        self, payloads: list[dict[str, Any]], *, stored: bool = False
    ) -> tuple[list[dict[str, Any]], bool]:
        """The events that continue the sequence (from these and the ones kept ahead), and
        whether a gap remains. ``stored``: rows from the database, which win over live ones."""
        for payload in payloads:
            if payload["seq"] > self.last:
                if stored:
                    self.ahead[payload["seq"]] = payload
                else:
                    self.ahead.setdefault(payload["seq"], payload)
        if len(self.ahead) > MAX_AHEAD:
            self.ahead.clear()  # a reader far behind: the database has them (or will), read from there
        fresh = []
        while (payload := self.ahead.pop(self.last + 1, None)) is not None:
            fresh.append(payload)
            self.last = payload["seq"]
            if payload["type"] == "EXECUTION_FINISHED":
                self.ahead.clear()
                break
        return fresh, self.gap


async def event_batches(
    *,
    broadcaster: Broadcaster,
    db: ServiceDatabase,
    execution_id: str,
    after_seq: int,
    inbox_messages: int,
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """A run's events after ``after_seq`` as gapless, in-order lists: database pages first, then
    each live message (one persisted batch) as it comes; ends with the list holding
    EXECUTION_FINISHED. A gap in the live messages (one missed, another replica) is filled from
    the database, which always holds an event before it is published."""
    with db.bind():
        if not await Execution.exists(id=execution_id):
            raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
    order = Sequencer(after_seq)
    take = order.take

    async def replay() -> AsyncGenerator[list[dict[str, Any]], None]:
        while True:
            with db.bind():
                rows = (
                    await ExecutionEvent.filter(execution_id=execution_id, seq__gt=order.last)
                    .order_by("seq")
                    .limit(REPLAY_PAGE)
                )
            fresh, _ = take([event_payload(row) for row in rows], stored=True)
            if fresh:
                yield fresh
            if len(rows) < REPLAY_PAGE or not fresh:
                return

    def finished(batch: list[dict[str, Any]]) -> bool:
        return bool(batch) and batch[-1]["type"] == "EXECUTION_FINISHED"

    async with broadcaster.listen(channel(execution_id)) as live:
        # Subscribed before replaying, so nothing published in between is missed. The live
        # iterator is drained by its own task into a queue: timing out on the queue is safe,
        # whereas cancelling the iterator's __anext__ would close it for good.
        inbox = LiveInbox(inbox_messages)
        queue = inbox.queue

        async def pump() -> None:
            async for message in live:
                inbox.put(message)

        pumping = asyncio.create_task(pump())
        try:
            async for page in replay():
                yield page
                if finished(page):
                    return
            gap = False
            while True:
                try:
                    # a gap: its events were published before we listened (or dropped, M9) and
                    # are being stored: look in the database again soon
                    wait = GAP_RETRY_SECONDS if gap else LIVE_QUIET_SECONDS
                    messages = [await asyncio.wait_for(queue.get(), timeout=wait)]
                except TimeoutError:
                    messages = []  # quiet: check the database in case a live message was missed
                while not queue.empty():  # what queued up meanwhile goes out together
                    messages.append(queue.get_nowait())
                batch, gap = take([p for m in messages for p in decode_live(m)])
                if gap or not messages:
                    async for page in replay():
                        batch += page
                    gap = order.gap
                if batch:
                    yield batch
                    if finished(batch):
                        return
                if not messages:
                    with db.bind():
                        row = await Execution.get_or_none(id=execution_id)
                    if row is not None and row.status in TERMINAL and row.last_seq <= order.last:
                        return
        finally:
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping

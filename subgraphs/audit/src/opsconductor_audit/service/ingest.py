"""Ingest: every service's event stream into the chain, each event once, nothing lost.

With Redis (``opsc.events.<source>`` streams): one consumer group (``audit``) for every replica.
A replica reads up to ``batch`` entries over all streams, appends them in one transaction (the
chain's lock) and acknowledges them only after the commit. An entry it read but did not commit
(crash, database down) stays pending: this replica re-reads its own pending entries first, and
entries pending on a replica that died are claimed by another after ``claim_idle`` (XAUTOCLAIM).
Redelivery is harmless: the chain skips event ids it already holds (unique index). Audit down:
the group's position waits in Redis and the producers' streams are not trimmed below it.

Without Redis (the embedded in-process bus): the bus hands each event to :meth:`Ingestor.submit`,
which waits until the batch holding it is committed (group commit), so the outbox row of the
producer is marked published only then.

``listeners`` are called with the rows of each committed batch (alert rules evaluate there).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opsconductor_audit.models import AuditEvent
from opsconductor_audit.service import chain
from opsconductor_audit.service.mapping import draft_of
from opsconductor_shared.events import EventEnvelope
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit.ingest")

Listener = Callable[[Sequence[AuditEvent]], Awaitable[None]]


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def unreadable_draft(stream: str, entry_id: str, raw: Any, reason: str) -> chain.Draft:
    """A stream entry that is not an event envelope is audited as such (never dropped)."""
    return chain.Draft(
        id=f"unreadable:{stream}:{entry_id}"[:64],
        at=datetime.now(UTC),
        type="audit.unreadable_event",
        action="unreadable_event",
        outcome="FAILURE",
        severity="ERROR",
        source="audit",
        subject_type=None,
        data={"stream": stream, "entryId": entry_id, "reason": reason[:500], "raw": _text(raw)[:2000]},
    )


class Ingestor:
    def __init__(
        self,
        *,
        sources: Sequence[str],
        group: str = "audit",
        consumer: str | None = None,
        batch: int = 500,
        claim_idle: float = 30.0,
        block_ms: int = 1000,
    ) -> None:
        self.streams = [f"opsc.events.{s}" for s in sources]
        self.group = group
        self.consumer = consumer or f"audit-{uuid.uuid4().hex[:8]}"
        self.batch = max(1, batch)
        self.claim_idle = claim_idle
        self.block_ms = block_ms
        self.listeners: list[Listener] = []
        self._queue: list[tuple[chain.Draft, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self.appended = 0

    # ---- committing -----------------------------------------------------------------------

    async def commit(self, drafts: Sequence[chain.Draft]) -> list[AuditEvent]:
        rows = await chain.append(drafts)
        self.appended += len(rows)
        for listener in list(self.listeners):
            try:
                await listener(rows)
            except Exception:
                log.exception("audit listener failed")
        return rows

    # ---- in-process bus: group commit -----------------------------------------------------

    async def submit(self, envelope: EventEnvelope) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((draft_of(envelope), future))
        self._wake.set()
        await future

    async def run_group_commit(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the events published together arrive
            while self._queue:
                taken, self._queue = self._queue[: self.batch], self._queue[self.batch :]
                try:
                    await self.commit([d for d, _ in taken])
                except Exception as exc:
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)  # the bus retries the delivery
                    continue
                for _, future in taken:
                    if not future.done():
                        future.set_result(None)

    # ---- Redis streams ----------------------------------------------------------------------

    async def ensure_groups(self, redis: Any) -> None:
        for stream in self.streams:
            with contextlib.suppress(Exception):  # BUSYGROUP: exists already
                await redis.xgroup_create(stream, self.group, id="0", mkstream=True)

    def _drafts(self, stream: str, entries: Sequence[tuple[Any, Any]]) -> list[chain.Draft]:
        drafts: list[chain.Draft] = []
        for entry_id, values in entries:
            items: dict[Any, Any] = values or {}
            raw = items.get(b"envelope") or items.get("envelope")
            if raw is None:
                if items:
                    drafts.append(unreadable_draft(stream, _text(entry_id), items, "no 'envelope' field"))
                continue
            try:
                drafts.append(draft_of(EventEnvelope.model_validate_json(raw)))
            except ValueError as exc:
                drafts.append(unreadable_draft(stream, _text(entry_id), raw, f"malformed envelope: {exc}"))
        return drafts

    async def consume_once(self, redis: Any, *, pending: bool = False) -> int:
        """One batch: this consumer's own pending entries (``pending``), entries idle on a dead
        replica, or new ones. Returns entries handled (acknowledged after the commit)."""
        got: list[tuple[str, list[tuple[Any, Any]]]] = []
        if pending:
            batches = await redis.xreadgroup(
                self.group, self.consumer, dict.fromkeys(self.streams, "0"), count=self.batch
            )
            got = [(_text(s), list(e)) for s, e in batches or [] if e]
        if not got and self.claim_idle >= 0:
            for stream in self.streams:
                _next, claimed, *_ = await redis.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    min_idle_time=int(self.claim_idle * 1000),
                    start_id="0-0",
                    count=self.batch,
                )
                if claimed:
                    got.append((stream, list(claimed)))
        if not got and not pending:
            batches = await redis.xreadgroup(
                self.group,
                self.consumer,
                dict.fromkeys(self.streams, ">"),
                count=self.batch,
                block=self.block_ms,
            )
            got = [(_text(s), list(e)) for s, e in batches or [] if e]
        if not got:
            return 0
        drafts: list[chain.Draft] = []
        for stream, entries in got:
            drafts.extend(self._drafts(stream, entries))
        drafts.sort(key=lambda d: d.at)  # across streams, roughly in time order
        await self.commit(drafts)
        handled = 0
        for stream, entries in got:
            ids = [entry_id for entry_id, _ in entries]
            await redis.xack(stream, self.group, *ids)
            handled += len(ids)
        return handled

    async def run_redis(self, redis: Any) -> None:
        """Forever: own pending entries first (after a restart or a failed commit), then new ones."""
        pending = True
        while True:
            try:
                if pending:
                    await self.ensure_groups(redis)
                handled = await self.consume_once(redis, pending=pending)
                if pending and handled == 0:
                    pending = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("audit ingest failed; entries stay pending", error=type(exc).__name__)
                pending = True
                await asyncio.sleep(1)

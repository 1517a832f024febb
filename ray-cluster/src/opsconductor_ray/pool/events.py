"""`EventStream`: a batch's events on their way from a pool to its coordinator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsconductor_ray.config import ActorHandle, PoolConfig
from opsconductor_ray.protocol import EngineEvent, EventType

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    type: EventType
    target_id: str | None
    at: float
    fields: dict[str, Any]


class EventStream:
    """A batch's events on their way to the coordinator, in order, in few calls.

    Live output (issue 15): an idle stream pushes as soon as something arrives. Coalescing
    happens only under load: one push at a time, the next one no sooner than `flush_interval_s`
    after the previous one began, and whatever arrived meanwhile goes in it (consecutive output
    chunks of one target's step merged). `flush_bytes` of waiting output, a finished target or
    the run's end are pushed without that wait. If the coordinator cannot be reached,
    `on_failure` is called (the batch is then cancelled).
    """

    def __init__(
        self, sink: ActorHandle, execution_id: str, config: PoolConfig, on_failure: Callable[[], None]
    ) -> None:
        self._sink = sink
        self._execution_id = execution_id
        self._interval = config.flush_interval_s
        self._max_bytes = config.flush_bytes
        self._on_failure = on_failure
        self._pending: list[_Pending] = []
        self._open_output: dict[str, _Pending] = {}
        self._target_seq: dict[str, int] = {}
        self._bytes = 0
        self._room = asyncio.Event()
        self._room.set()
        self._wake = asyncio.Event()
        """Something is waiting to be pushed."""
        self._urgent = asyncio.Event()
        """...and it should not wait for the coalescing interval."""
        self._last_push = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.failed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def emit(self, type: EventType, target_id: str | None, **fields: Any) -> None:
        if target_id is not None:
            self._open_output.pop(target_id, None)
        self._pending.append(_Pending(type, target_id, time.time(), fields))
        self._wake.set()
        if type in (EventType.TARGET_FINISHED, EventType.EXECUTION_FINISHED):
            self._urgent.set()

    def output(self, type: EventType, target_id: str, step_index: int, step_name: str, text: str) -> None:
        if not text:
            return
        last = self._open_output.get(target_id)
        if last is not None and last.type == type and last.fields["step_index"] == step_index:
            last.fields["data"] += text
        else:
            last = _Pending(
                type, target_id, time.time(), {"step_index": step_index, "step_name": step_name, "data": text}
            )
            self._pending.append(last)
            self._open_output[target_id] = last
        self._bytes += len(text)
        self._wake.set()
        if self._bytes >= self._max_bytes:
            self._urgent.set()
        if self._bytes >= self._max_bytes * 8:
            self._room.clear()

    async def room(self) -> None:
        """Wait while too much output is queued: a flooding command is slowed down to what
        the coordinator takes (SSH flow control then throttles the remote side)."""
        await self._room.wait()

    async def _loop(self) -> None:
        while not self._closing:
            await self._wake.wait()
            # Under load (the previous push began less than an interval ago), let more output
            # join this push; an idle stream pushes at once.
            pause = self._last_push + self._interval - time.monotonic()
            if pause > 0 and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), pause)
            await self.flush()
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            self._wake.clear()
            self._urgent.clear()
            if not self._pending or self.failed:
                return
            self._last_push = time.monotonic()
            batch, self._pending = self._pending, []
            self._open_output.clear()
            self._bytes = 0
            self._room.set()
            events: list[EngineEvent] = []
            for pending in batch:
                target_seq = None
                if pending.target_id is not None:
                    target_seq = self._target_seq.get(pending.target_id, 0) + 1
                    self._target_seq[pending.target_id] = target_seq
                events.append(
                    EngineEvent(
                        seq=0,  # the coordinator numbers the execution's events
                        type=pending.type,
                        at=pending.at,
                        target_id=pending.target_id,
                        target_seq=target_seq,
                        **pending.fields,
                    )
                )
            try:
                known = await self._sink.push.remote(self._execution_id, events)
            except Exception:
                logger.exception("coordinator unreachable; cancelling the batch")
                known = False
            if known is False:
                logger.warning("execution %s: the coordinator no longer has this run", self._execution_id)
                self.failed = True
                self._pending.clear()
                self._on_failure()

    async def close(self) -> None:
        """Push what is left and stop. Never cancels a push midway (it would lose events)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()

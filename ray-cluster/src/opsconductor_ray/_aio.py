"""asyncio primitives of the pool: a cancellation signal, a race against it, per-host locks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """The execution was cancelled while we waited."""


class Signal(asyncio.Event):
    """An asyncio.Event that also calls back: `race` watches it without a task of its own."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: set[Callable[[], None]] = set()

    def set(self) -> None:
        if not self.is_set():
            super().set()
            for callback in list(self._callbacks):
                callback()

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.add(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.discard(callback)


async def race(
    awaitable: Awaitable[T],
    cancelled: Signal,
    *,
    timeout_s: float | None = None,
    on_orphan: Callable[[T], object] | None = None,
) -> T:
    """Await `awaitable` unless `cancelled` is set first (`Cancelled`) or `timeout_s` passes
    (`TimeoutError`). A result that arrives too late is handed to `on_orphan` to undo.

    One task (the awaitable's) and callbacks, not asyncio.wait over a second task watching the
    signal: a pool races several times per target, hundreds of targets at once."""
    task = asyncio.ensure_future(awaitable)
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(*_: object) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    cancelled.subscribe(wake)
    timer = loop.call_later(timeout_s, wake) if timeout_s is not None else None
    if cancelled.is_set():
        wake()
    try:
        await waiter
    except BaseException:
        task.cancel()
        raise
    finally:
        cancelled.unsubscribe(wake)
        task.remove_done_callback(wake)
        if timer is not None:
            timer.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(BaseException):
        result = await task
        if on_orphan is not None:
            on_orphan(result)
    if cancelled.is_set():
        raise Cancelled
    raise TimeoutError


class HostLocks:
    """Per-host locks held by an execution: its targets on one host may share it, another
    execution waits until the host is free."""

    def __init__(self) -> None:
        self._holders: dict[tuple[str, int], tuple[str, int]] = {}
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiting = 0

    def try_acquire(self, host: tuple[str, int], execution_id: str) -> bool:
        """Take the host at once if it is free or this execution's; False if another holds it."""
        owner, count = self._holders.get(host, (execution_id, 0))
        if owner != execution_id:
            return False
        self._holders[host] = (owner, count + 1)
        return True

    async def acquire(self, host: tuple[str, int], execution_id: str) -> None:
        self._waiting += 1
        try:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._holders.get(host, (execution_id, 0))[0] == execution_id
                )
                owner, count = self._holders.get(host, (execution_id, 0))
                self._holders[host] = (owner, count + 1)
        finally:
            self._waiting -= 1

    def release(self, host: tuple[str, int], execution_id: str) -> None:
        owner, count = self._holders.get(host, (execution_id, 0))
        if owner != execution_id or count <= 0:
            return
        if count == 1:
            del self._holders[host]
            if not self._waiting:
                return
            task = asyncio.get_running_loop().create_task(self._notify())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            self._holders[host] = (owner, count - 1)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

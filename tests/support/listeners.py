"""Loopback TCP listeners for the tests (an asyncio server on a port of its own)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def listening(host: str, handle: Handler) -> AsyncIterator[int]:
    """Serve ``handle`` on ``host`` at a free port; yields the port; the server is closed on exit."""
    server = await asyncio.start_server(handle, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()

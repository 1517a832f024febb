"""Another service instance in the test's own event loop: a real uvicorn server on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn


@contextlib.asynccontextmanager
async def serve_graphql(app: Any, port: int) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan on, websockets) on 127.0.0.1:``port``; yields its GraphQL URL and
    stops the server gracefully on exit."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on", ws="websockets")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started:
                break
            assert not task.done(), task.result()
            await asyncio.sleep(0.05)
        assert server.started, "replica did not start"
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)

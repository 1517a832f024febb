"""Database lifecycle for one service: its own tortoise context, connection and migrations.

Several services may share one process (``make dev``), so each owns a ``TortoiseContext``
instead of tortoise's global state. ``ServiceDatabase.bind()`` makes the context current for the
running task; the ASGI middleware binds it per request and background tasks inherit it.
Schema changes go through tortoise's built-in migrations (``migrations/`` in each subgraph),
applied on start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from tortoise.context import TortoiseContext, _current_context  # tortoise has no public token API
from tortoise.migrations.executor import MigrationExecutor


class ServiceDatabase:
    """The database of exactly one service (SQLite file by default, PostgreSQL when a URL is set)."""

    def __init__(self, *, service: str, url: str, models_module: str, migrations_module: str) -> None:
        self.service = service
        self.url = url
        # Named after the service. Tortoise keeps the connection name on the model classes and caches
        # SQL per (connection name, table) process-wide, so: services sharing a process never share a
        # name, and two databases of one service in one process (tests only) must share a dialect.
        self.connection_name = service
        self.config: dict[str, Any] = {
            "connections": {self.connection_name: url},
            "apps": {
                service: {
                    "models": [models_module],
                    "default_connection": self.connection_name,
                    "migrations": migrations_module,
                }
            },
            "use_tz": True,
            "timezone": "UTC",
        }
        self.ctx = TortoiseContext()

    @contextmanager
    def bind(self) -> Iterator[TortoiseContext]:
        token = _current_context.set(self.ctx)
        try:
            yield self.ctx
        finally:
            _current_context.reset(token)

    async def start(self, *, migrate: bool = True) -> None:
        with self.bind():
            await self.ctx.init(config=self.config)
            if migrate:
                await MigrationExecutor(self.ctx.db(self.connection_name), self.config["apps"]).migrate(None)

    async def stop(self) -> None:
        with self.bind():
            await self.ctx.close_connections()

    async def ping(self) -> None:
        with self.bind():
            await self.ctx.db(self.connection_name).execute_query("SELECT 1")


class BindDatabaseMiddleware:
    """ASGI middleware: every request of this app runs with its service's tortoise context."""

    def __init__(self, app: ASGIApp, db: ServiceDatabase) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.db.bind():
            await self.app(scope, receive, send)

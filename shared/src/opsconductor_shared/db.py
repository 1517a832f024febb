"""Database lifecycle for one service: its own tortoise context, connection and migrations.

Several services may share one process (``make dev``), so each owns a ``TortoiseContext``
instead of tortoise's global state. ``ServiceDatabase.bind()`` makes the context current for the
running task; the ASGI middleware binds it per request and background tasks inherit it.
Schema changes go through tortoise's built-in migrations (``migrations/`` in each subgraph),
applied on start-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from tortoise.context import TortoiseContext, _current_context  # pyright: ignore[reportPrivateUsage] - tortoise has no public token API
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
    def bind(self) -> Generator[TortoiseContext, None, None]:
        token = _current_context.set(self.ctx)
        try:
            yield self.ctx
        finally:
            _current_context.reset(token)

    def sqlite_file(self) -> Path | None:
        """The SQLite file of an embedded database (None for PostgreSQL or in-memory)."""
        if not self.url.startswith("sqlite://"):
            return None
        path = self.url.removeprefix("sqlite://").split("?", 1)[0]
        return None if path in ("", ":memory:") else Path(path)

    def _secure_sqlite(self) -> None:
        """The SQLite file and its -wal/-shm/-journal are private (0600): created so before SQLite
        opens it (SQLite gives its side files the database file's mode), and fixed if older."""
        path = self.sqlite_file()
        if path is None:
            return
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        for file in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))):
            with contextlib.suppress(FileNotFoundError):
                file.chmod(0o600)

    async def start(self, *, migrate: bool = True) -> None:
        self._secure_sqlite()
        with self.bind():
            await self.ctx.init(config=self.config)
            if migrate:
                await MigrationExecutor(self.ctx.db(self.connection_name), self.config["apps"]).migrate(None)
        self._secure_sqlite()  # side files SQLite made before a mode fix, from older versions

    async def stop(self) -> None:
        with self.bind():
            await self.ctx.close_connections()

    async def ping(self) -> None:
        with self.bind():
            await self.ctx.db(self.connection_name).execute_query("SELECT 1")  # pyright: ignore[reportUnknownMemberType]


class BindDatabaseMiddleware:
    """ASGI middleware: every request of this app runs with its service's tortoise context."""

    def __init__(self, app: ASGIApp, db: ServiceDatabase) -> None:
        self.app = app
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self.db.bind():
            await self.app(scope, receive, send)

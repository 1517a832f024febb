"""Schedules replicas as real processes (``opsconductor serve schedules``), for the replica and
restart tests: each one its own process on its own port, sharing one schedules database of the
test's own with the other replicas, and the session's Redis, auth, users, jobs and executions.

The session platform also runs a schedules service (in the test process) on its own database; the
replicas never see it, so only they fire the schedules created here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from tests.support.net import free_port
from tests.support.platform import create_database, drop_database

READY = "OPSCONDUCTOR_READY"


def pg_dsn(url: str) -> str:
    """asyncpg's DSN for a tortoise postgres:// URL."""
    return url.replace("postgres://", "postgresql://", 1)


@dataclass
class Replica:
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup (a crashed replica)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        """SIGTERM: the launcher's graceful stop (the firing loop is cancelled, the server closes)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.kill()
                await self.process.wait()


@dataclass
class ReplicaSet:
    database_url: str
    workdir: Path
    env: dict[str, str]
    replicas: list[Replica]

    async def start(self, name: str) -> Replica:
        port = free_port()
        log = self.workdir / f"{name}.log"
        env = {
            **os.environ,
            **self.env,
            "OPSC_SCHEDULES_DATABASE_URL": self.database_url,
            "OPSC_SCHEDULES_PORT": str(port),
            "OPSC_LOG_JSON": "0",
        }
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "opsconductor_launcher",
                "serve",
                "schedules",
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # a test's Ctrl-C never reaches it; we stop it ourselves
            )
        replica = Replica(name=name, port=port, process=process, log=log)
        self.replicas.append(replica)
        deadline = time.monotonic() + 60
        while READY not in log.read_text(errors="replace"):
            if process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"replica {name} did not start:\n{log.read_text(errors='replace')[-3000:]}"
                )
            await asyncio.sleep(0.1)
        return replica

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_dsn(self.database_url))
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def replica_set(workdir: Path, **env: str) -> AsyncIterator[ReplicaSet]:
    """A fresh schedules database; replicas started with :meth:`ReplicaSet.start` are stopped (and
    the database dropped) on exit, also when the test fails."""
    url = await create_database("opsc_test_schedules_replicas")
    replicas = ReplicaSet(database_url=url, workdir=workdir, env=env, replicas=[])
    try:
        yield replicas
    finally:
        for replica in replicas.replicas:
            await replica.stop()
        await drop_database(url)

"""Session fixtures for the real platform: PostgreSQL databases per service, Redis, the services.

``platform`` starts every subgraph in the test process (the same launcher ``make dev`` uses) with
one freshly created PostgreSQL database per service and Redis for events, pub/sub and
revocations. ``OPSC_TEST_SERVICES=auth,users`` limits which services start (for working on one).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.support.net import free_port

PG_ADMIN_DSN = os.environ.get("OPSC_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("OPSC_TEST_REDIS", "redis://127.0.0.1:6379")
ADMIN_PASSWORD = "admin-Test-Pass-1"


async def create_database(prefix: str) -> str:
    """Create a fresh PostgreSQL database and return its tortoise URL."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


async def drop_database(url: str) -> None:
    import asyncpg

    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _fresh_redis_db() -> str:
    """A Redis logical database of its own (1-15, chosen at random and flushed), so concurrent test
    sessions on one machine never consume each other's events."""
    import random

    from redis.asyncio import Redis

    url = f"{REDIS_BASE}/{random.randint(1, 15)}"  # noqa: S311 - not security
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


@dataclass
class RunningPlatform:
    ports: dict[str, int]
    databases: dict[str, str]
    admin_password: str
    engine: Any | None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}/graphql"

    def base(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


async def gql(
    url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout: float = 30,
) -> dict[str, Any]:
    """POST one GraphQL request; returns the whole response body (data and errors)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=timeout) as http:
        resp = await http.post(url, json={"query": query, "variables": variables or {}}, headers=headers)
    return resp.json()


LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
  __typename ... on LoginSuccess { accessToken refreshToken user { id } } ... on Error { message } } }"""


async def login(url: str, username: str, password: str) -> str:
    body = await gql(url, LOGIN, {"u": username, "p": password})
    result = body["data"]["login"]
    assert result["__typename"] == "LoginSuccess", body
    return str(result["accessToken"])


@pytest_asyncio.fixture(scope="session")
async def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningPlatform]:
    from opsconductor_launcher.platform import SERVICES, EmbeddedPlatform, wiring_env

    wanted = tuple(s for s in os.environ.get("OPSC_TEST_SERVICES", ",".join(SERVICES)).split(",") if s)
    engine = None
    if any(SERVICES[s] for s in wanted):
        request.getfixturevalue("ray_session")
        from opsconductor_ray.client import EngineClient

        engine = EngineClient()
        await engine.connect()
    ports = {name: free_port() for name in SERVICES}
    databases = {name: await create_database(f"opsc_test_{name}") for name in wanted}
    saved = dict(os.environ)
    os.environ.update({f"OPSC_{n.upper()}_DATABASE_URL": url for n, url in databases.items()})
    os.environ["OPSC_REDIS_URL"] = await _fresh_redis_db()
    os.environ["OPSC_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    os.environ["OPSC_DATA_DIR"] = str(tmp_path_factory.mktemp("opsc-data"))
    os.environ.pop("OPSC_SERVICE_SECRET", None)  # the removed shared secret: refused at start
    for name in SERVICES:  # each service its own secret (tests read them here to act as a service)
        os.environ[f"OPSC_SERVICE_SECRET_{name.upper()}"] = uuid.uuid4().hex
    os.environ["OPSC_CLIENT_IP_SECRET"] = uuid.uuid4().hex  # router -> auth client IP signature (L2)
    os.environ["OPSC_EXECUTIONS_CONNECT_TIMEOUT_SECONDS"] = "3"
    os.environ["OPSC_TARGETS_ALLOW_NETWORKS"] = "127.0.0.0/8"  # test targets (sshd, doubles) are loopback
    # the platform's own endpoints stay denied; tests that monitor the local PostgreSQL say so (M11)
    os.environ["OPSC_TARGETS_ALLOW_PLATFORM_ENDPOINTS"] = "127.0.0.1:5432"
    # The launcher hands its services their wiring as settings; tests that start one more instance
    # of a service (a second replica, a service with a broken dependency) build it from the
    # environment, as a deployment would: say where this session's services listen.
    os.environ.update(wiring_env(ports))
    running = EmbeddedPlatform(services=wanted, ports=ports, engine=engine)
    await running.start()
    try:
        yield RunningPlatform(ports=ports, databases=databases, admin_password=ADMIN_PASSWORD, engine=engine)
    finally:
        await running.stop()
        os.environ.clear()
        os.environ.update(saved)
        for url in databases.values():
            await drop_database(url)


SESSION_ROUTER_RATE_LIMITS = {
    "OPSC_ROUTER_RATE_LIMIT_PER_IP": "1000000",
    "OPSC_ROUTER_RATE_LIMIT_PER_USER": "1000000",
    "OPSC_ROUTER_RATE_LIMIT_LOGIN_PER_IP": "1000000",
}


@pytest.fixture(scope="session")
def router(platform: RunningPlatform) -> Any:
    """The real Hive Gateway in front of the session's subgraphs."""
    from tests.support.router import start_router, subgraph_urls_env

    proc = start_router(
        free_port(),
        {
            **subgraph_urls_env(platform.ports),
            "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
            # Every test talks from 127.0.0.1: the session router keeps its limiter on (shared in
            # Redis) with budgets no test reaches; tests/test_router_security.py checks real limits.
            **SESSION_ROUTER_RATE_LIMITS,
        },
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="session")
async def admin_token(platform: RunningPlatform) -> str:
    return await login(platform.url("auth"), "admin", platform.admin_password)


async def subscribe(
    ws_url: str,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Run one subscription over graphql-transport-ws until it completes; returns each `data` payload.

    Errors arrive as an exception carrying the server's error list.
    """
    import asyncio
    import json

    import websockets

    results: list[dict[str, Any]] = []

    async def run() -> None:
        async with websockets.connect(
            ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
        ) as ws:
            params = {"authorization": f"Bearer {token}"} if token else {}
            await ws.send(json.dumps({"type": "connection_init", "payload": params}))
            ack = json.loads(await ws.recv())
            if ack["type"] != "connection_ack":
                raise SubscriptionError([ack])
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": query, "variables": variables or {}},
                    }
                )
            )
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "next":
                    if msg["payload"].get("errors"):
                        raise SubscriptionError(msg["payload"]["errors"])
                    results.append(msg["payload"]["data"])
                elif msg["type"] == "error":
                    raise SubscriptionError(msg["payload"])
                elif msg["type"] == "complete":
                    return
                elif msg["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))

    await asyncio.wait_for(run(), timeout)
    return results


class SubscriptionError(Exception):
    def __init__(self, errors: Any) -> None:
        super().__init__(str(errors))
        self.errors = errors

"""The app factory: a tiny service built exactly like a subgraph (build_runtime + create_service_app)
with a real SQLite database, served by uvicorn, called over HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import strawberry
import websockets
from prometheus_client import CollectorRegistry
from tortoise.transactions import in_transaction

from opsconductor_shared.app import (
    Platform,
    RequestContext,
    Runtime,
    build_runtime,
    build_schema,
    create_service_app,
)
from opsconductor_shared.auth import Authenticated, Public
from opsconductor_shared.events import EventEnvelope, record_event
from opsconductor_shared.settings import ServiceSettings
from shared.tests.conftest import AUDIENCE, ISSUER, OUTBOX_MIGRATIONS, OUTBOX_MODELS, SigningKey
from shared.tests.outbox_models import Outbox, ProcessedEvent
from shared.tests.support import free_port, serve

MAX_BYTES = 4000
Info = strawberry.Info[RequestContext, None]


@strawberry.type
class Query:
    @strawberry.field(permission_classes=[Public])
    def hello(self) -> str:
        return "hi"

    @strawberry.field(permission_classes=[Authenticated])
    def whoami(self, info: Info) -> str:
        assert info.context.identity is not None
        return info.context.identity.subject

    @strawberry.field(permission_classes=[Public], description="Reads the service's own database.")
    async def outbox_size(self) -> int:
        return await Outbox.all().count()


@strawberry.type
class Mutation:
    @strawberry.mutation(permission_classes=[Public])
    async def emit(self, info: Info, n: int) -> str:
        env = EventEnvelope(type="things.emitted", source="things", data={"n": n})
        async with in_transaction():
            await record_event(Outbox, env)
        info.context.runtime.events_committed()
        return env.id


@strawberry.type
class Subscription:
    @strawberry.subscription(permission_classes=[Authenticated])
    async def count(self, to: int) -> AsyncIterator[int]:
        for i in range(1, to + 1):
            yield i

    @strawberry.subscription(permission_classes=[Authenticated], description="Ticks until cancelled.")
    async def ticks(self) -> AsyncIterator[int]:
        i = 0
        while True:
            i += 1
            yield i
            await asyncio.sleep(0.05)


schema = build_schema(query=Query, mutation=Mutation, subscription=Subscription)


def make_runtime(data_dir: Path, jwks_url: str, *, redis_url: str | None = None) -> Runtime:
    settings = ServiceSettings(
        port=free_port(),
        data_dir=data_dir,
        database_url=None,  # the embedded default: SQLite under data_dir
        redis_url=redis_url,
        jwks_url=jwks_url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        max_request_bytes=MAX_BYTES,
        subscription_revocation_check_seconds=0.2,
    )
    return build_runtime(
        name="outboxtest",
        settings=settings,
        platform=Platform.from_settings(settings, consumer="test"),
        models_module=OUTBOX_MODELS,
        migrations_module=OUTBOX_MIGRATIONS,
        outbox_model=Outbox,
    )


class Service:
    def __init__(self, runtime: Runtime, base: str) -> None:
        self.runtime = runtime
        self.base = base
        self.events: asyncio.Queue[EventEnvelope] = asyncio.Queue()
        self.consumed: asyncio.Queue[tuple[EventEnvelope, int]] = asyncio.Queue()

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                f"{self.base}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
            )
        assert resp.status_code == 200, resp.text
        return resp.json()


@pytest_asyncio.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory, jwks_url: str) -> AsyncIterator[Service]:
    runtime = make_runtime(tmp_path_factory.mktemp("app"), jwks_url)
    holder: dict[str, Service] = {}

    async def on_event(env: EventEnvelope) -> None:
        await holder["service"].events.put(env)

    runtime.platform.bus.subscribe(group="test", sources=["things"], handler=on_event)

    async def on_emitted(env: EventEnvelope) -> None:
        # Runs with the service's database bound (no request here), inside the dedup transaction.
        await holder["service"].consumed.put((env, await Outbox.all().count()))

    runtime.consume(
        sources=["things"], types=["things.emitted"], processed_model=ProcessedEvent, handler=on_emitted
    )
    await runtime.platform.bus.start()  # every consumer subscribed (the launcher does this)
    async with serve(create_service_app(runtime=runtime, schema=schema), lifespan="on") as base:
        holder["service"] = Service(runtime, base)
        yield holder["service"]
    await runtime.platform.close()


async def get(url: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(url, **kwargs)


async def test_health(service: Service) -> None:
    resp = await get(f"{service.base}/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok", "service": "outboxtest"}


async def test_ready_with_database(service: Service) -> None:
    resp = await get(f"{service.base}/ready")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_database_is_the_sqlite_file_under_data_dir(service: Service) -> None:
    settings = service.runtime.settings
    path = (settings.data_dir / "outboxtest.sqlite3").resolve()
    assert service.runtime.db.url == f"sqlite://{path}?synchronous=NORMAL"
    assert path.exists()
    # WAL, and commits without an fsync each (synchronous=NORMAL is 1)
    with service.runtime.db.bind() as ctx:
        conn = ctx.db(service.runtime.db.connection_name)
        assert (await conn.execute_query_dict("PRAGMA journal_mode"))[0]["journal_mode"] == "wal"
        assert (await conn.execute_query_dict("PRAGMA synchronous"))[0]["synchronous"] == 1


async def test_ready_is_503_when_redis_is_unreachable(service: Service) -> None:
    """The same service (same, started database) with a platform whose Redis is a closed port."""
    settings = service.runtime.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    runtime = dataclasses.replace(
        service.runtime, platform=Platform.from_settings(settings), _clients={}, metrics=CollectorRegistry()
    )
    try:
        # No lifespan: the database is the running service's, started and stopped by its fixture.
        async with serve(create_service_app(runtime=runtime, schema=schema)) as base:
            started = time.monotonic()
            resp = await get(f"{base}/ready")
            assert time.monotonic() - started < 10
            health = await get(f"{base}/health")
    finally:
        await runtime.platform.close()
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("error: ")
    assert health.status_code == 200  # alive, just not ready


async def test_metrics_count_requests(service: Service) -> None:
    await get(f"{service.base}/health")
    resp = await get(f"{service.base}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    line = re.search(r"^opsc_http_requests_total\{([^}]*)\} (\S+)$", resp.text, re.MULTILINE)
    assert line is not None, resp.text
    assert 'path="/health",service="outboxtest",status="200"' in resp.text
    assert "opsc_http_request_seconds_bucket" in resp.text


async def test_sdl(service: Service) -> None:
    resp = await get(f"{service.base}/sdl")
    assert resp.status_code == 200
    assert "type Query" in resp.text
    assert "_service: _Service!" in resp.text  # a federation subgraph


async def test_body_over_the_limit_is_413(service: Service) -> None:
    query = "{ hello }" + " " * MAX_BYTES
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{service.base}/graphql", json={"query": query})
    assert resp.status_code == 413
    assert resp.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    ok = await service.graphql("{ hello }")
    assert ok == {"data": {"hello": "hi"}}


async def test_chunked_body_over_the_limit_is_413(service: Service) -> None:
    payload = json.dumps({"query": "{ hello }" + " " * (MAX_BYTES * 4)}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 1000):
            yield payload[i : i + 1000]

    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{service.base}/graphql", content=chunks(), headers={"content-type": "application/json"}
        )
    assert resp.status_code == 413


async def test_correlation_id_is_echoed_or_made(service: Service) -> None:
    resp = await get(f"{service.base}/health", headers={"x-correlation-id": "abc-123"})
    assert resp.headers["x-correlation-id"] == "abc-123"
    made = (await get(f"{service.base}/health")).headers["x-correlation-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    long = "x" * 500
    assert (await get(f"{service.base}/health", headers={"x-correlation-id": long})).headers[
        "x-correlation-id"
    ] == long[:64]


async def test_graphql_identity_from_the_bearer_token(service: Service, signing_key: SigningKey) -> None:
    now = int(time.time())
    good = signing_key.sign({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "iat": now, "exp": now + 60})
    expired = signing_key.sign({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "iat": now - 99, "exp": now - 9})

    assert await service.graphql("{ whoami }", headers={"authorization": f"Bearer {good}"}) == {
        "data": {"whoami": "user-7"}
    }
    cases = {
        None: "authentication required",
        f"Bearer {expired}": "token expired",
        "Basic dXNlcjpwYXNz": "malformed Authorization header (expected 'Bearer <token>')",
        "Bearer not-a-jwt": "malformed token",
    }
    for header, message in cases.items():
        body = await service.graphql("{ whoami }", headers={"authorization": header} if header else None)
        assert body["data"] is None
        assert body["errors"][0]["message"] == message
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # A bad token does not break public fields.
    body = await service.graphql("{ hello }", headers={"authorization": f"Bearer {expired}"})
    assert body == {"data": {"hello": "hi"}}


async def test_outbox_event_goes_out_after_commit_with_the_correlation_id(service: Service) -> None:
    cid = uuid.uuid4().hex
    body = await service.graphql("mutation { emit(n: 7) }", headers={"x-correlation-id": cid})
    event_id = body["data"]["emit"]
    env = await asyncio.wait_for(service.events.get(), 5)
    assert env.id == event_id
    assert env.data == {"n": 7}
    assert env.correlation_id == cid
    count = await service.graphql("{ outboxSize }")
    assert count["data"]["outboxSize"] >= 1
    with service.runtime.db.bind():
        row = await Outbox.get(id=uuid.UUID(event_id))
    assert row.published_at is not None


async def test_consume_filters_types_deduplicates_and_binds_the_database(service: Service) -> None:
    while not service.consumed.empty():
        service.consumed.get_nowait()
    body = await service.graphql("mutation { emit(n: 8) }")
    env, outbox_rows = await asyncio.wait_for(service.consumed.get(), 5)
    assert env.id == body["data"]["emit"]
    assert outbox_rows >= 1  # the handler could query the service's own database

    bus = service.runtime.platform.bus
    await bus.publish(env)  # delivered again: handled once
    await bus.publish(EventEnvelope(type="things.other", source="things"))  # not a consumed type
    await asyncio.sleep(0.2)
    assert service.consumed.empty()
    with service.runtime.db.bind():
        assert await ProcessedEvent.exists(event_id=env.id)


async def ws_messages(base: str, init_payload: dict[str, Any], query: str) -> list[dict[str, Any]]:
    url = base.replace("http://", "ws://") + "/graphql"
    out: list[dict[str, Any]] = []
    async with websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init_payload}))
        try:
            ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        except websockets.ConnectionClosed as closed:
            return [
                {
                    "closed": closed.rcvd.code if closed.rcvd else None,
                    "reason": closed.rcvd and closed.rcvd.reason,
                }
            ]
        out.append(ack)
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            out.append(msg)
            if msg["type"] in ("complete", "error"):
                return out


async def test_websocket_needs_a_token_in_connection_params(
    service: Service, signing_key: SigningKey
) -> None:
    [refused] = await ws_messages(service.base, {}, "subscription { count(to: 2) }")
    assert refused == {"closed": 4403, "reason": "Forbidden"}  # graphql-transport-ws: refused at init

    now = int(time.time())
    token = signing_key.sign({"iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "iat": now, "exp": now + 60})
    msgs = await ws_messages(
        service.base, {"authorization": f"Bearer {token}"}, "subscription { count(to: 2) }"
    )
    assert msgs[0]["type"] == "connection_ack"
    assert [m["payload"]["data"]["count"] for m in msgs if m["type"] == "next"] == [1, 2]
    assert msgs[-1]["type"] == "complete"


async def test_a_running_subscription_ends_when_its_session_is_revoked(
    service: Service, signing_key: SigningKey
) -> None:
    """The identity is checked at connection_init; a revocation later must still end the stream."""
    now = int(time.time())
    sid = f"s-{uuid.uuid4().hex[:8]}"
    token = signing_key.sign(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-8", "sid": sid, "iat": now, "exp": now + 60}
    )
    other = signing_key.sign(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-9", "sid": f"{sid}-other", "iat": now, "exp": now + 60}
    )
    url = service.base.replace("http://", "ws://") + "/graphql"

    async def open_stream(tok: str) -> Any:
        ws = await websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
        await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
        await ws.send(
            json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "subscription { ticks }"}})
        )
        return ws

    revoked_ws, other_ws = await open_stream(token), await open_stream(other)
    try:
        first = json.loads(await asyncio.wait_for(revoked_ws.recv(), 5))
        assert first["type"] == "next" and first["payload"]["data"]["ticks"] == 1
        await service.runtime.platform.revocations.revoke_session(sid, 60)
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["type"] != "complete":
            seen.append(json.loads(await asyncio.wait_for(revoked_ws.recv(), 5)))
        errors = [m["payload"]["errors"] for m in seen if m["type"] == "next" and m["payload"].get("errors")]
        assert errors and errors[-1][0]["extensions"]["code"] == "UNAUTHENTICATED", seen
        assert errors[-1][0]["message"] == "session revoked"
        # Another session's stream goes on.
        for _ in range(3):
            msg = json.loads(await asyncio.wait_for(other_ws.recv(), 5))
            assert msg["type"] == "next" and not msg["payload"].get("errors"), msg
    finally:
        await revoked_ws.close()
        await other_ws.close()

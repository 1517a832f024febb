"""Security-review fixes in the app factory (security-review-2026-12.md): M13 Redis outage answers
SERVICE_UNAVAILABLE, L13 bad headers answer 400, L6 subscriptions end at token expiry, M9 per-user
subscription cap, L16 periodic pruning, L3 private data directory. A service built like a subgraph
(tests in test_app.py), real SQLite, uvicorn, HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets
from prometheus_client import CollectorRegistry

from opsconductor_shared.app import Platform, create_service_app
from opsconductor_shared.auth import TokenVerifier
from opsconductor_shared.ws import TOKEN_EXPIRED_MESSAGE
from shared.tests.conftest import AUDIENCE, ISSUER, SigningKey
from shared.tests.event_helpers import envelope, eventually
from shared.tests.outbox_models import Outbox
from shared.tests.support import free_port, serve
from shared.tests.test_app import make_runtime, schema

CAP = 3


@dataclasses.dataclass
class Running:
    runtime: Any
    base: str
    data_dir: Path


@pytest_asyncio.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory, jwks_url: str) -> AsyncIterator[Running]:
    data_dir = tmp_path_factory.mktemp("review") / "data"  # made by the service, with the default umask
    runtime = make_runtime(data_dir, jwks_url)
    runtime.settings = runtime.settings.model_copy(
        update={"max_subscriptions_per_user": CAP, "event_prune_interval_seconds": 0.2}
    )
    await runtime.platform.bus.start()
    async with serve(create_service_app(runtime=runtime, schema=schema), lifespan="on") as base:
        yield Running(runtime, base, data_dir)
    await runtime.platform.close()


def token(key: SigningKey, sub: str, *, ttl: int = 60, sid: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + ttl}
    if sid:
        claims["sid"] = sid
    return key.sign(claims)


async def open_ws(base: str, tok: str) -> Any:
    url = base.replace("http://", "ws://") + "/graphql"
    ws = await websockets.connect(url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")])
    await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {tok}"}}))
    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
    return ws


async def start_ticks(ws: Any, op_id: str) -> dict[str, Any]:
    await ws.send(
        json.dumps({"id": op_id, "type": "subscribe", "payload": {"query": "subscription { ticks }"}})
    )
    deadline = time.monotonic() + 10  # other operations' ticks arrive meanwhile: bounded
    while time.monotonic() < deadline:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg.get("id") == op_id:
            return msg
    raise AssertionError(f"no answer for operation {op_id}")


# ---- M13 -----------------------------------------------------------------------------------------


async def test_m13_redis_outage_answers_service_unavailable_not_500(
    service: Running, signing_key: SigningKey
) -> None:
    """M13: the same service with its Redis on a port where nothing listens: a user request (its
    session must be checked in Redis) gets a typed SERVICE_UNAVAILABLE answer, not a 500."""
    settings = service.runtime.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    platform = Platform.from_settings(settings)
    verifier = TokenVerifier(
        jwks_url=settings.jwks_url, issuer=ISSUER, audience=AUDIENCE, revocations=platform.revocations
    )
    runtime = dataclasses.replace(
        service.runtime, platform=platform, verifier=verifier, _clients={}, metrics=CollectorRegistry()
    )
    user = token(signing_key, "user-1", sid=f"s-{uuid.uuid4().hex[:8]}")
    no_session = token(signing_key, "svc-1")
    try:
        async with serve(create_service_app(runtime=runtime, schema=schema)) as base:
            async with httpx.AsyncClient(timeout=20) as http:
                started = time.monotonic()
                resp = await http.post(
                    f"{base}/graphql",
                    json={"query": "{ whoami }"},
                    headers={"authorization": f"Bearer {user}"},
                )
                assert time.monotonic() - started < 10
                other = await http.post(
                    f"{base}/graphql",
                    json={"query": "{ whoami }"},
                    headers={"authorization": f"Bearer {no_session}"},
                )
            url = base.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(
                url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
            ) as ws:
                await ws.send(
                    json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {user}"}})
                )
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
    finally:
        await runtime.platform.close()
    assert resp.status_code == 503, resp.text
    body = resp.json()
    assert body["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert "retry" in body["errors"][0]["message"]
    assert other.json() == {"data": {"whoami": "svc-1"}}  # no session to check: unaffected
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


# ---- L13 -----------------------------------------------------------------------------------------


async def test_l13_non_utf8_correlation_id_is_400(service: Running) -> None:
    port = int(service.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-correlation-id: \xff\xfe\r\nContent-Length: 17\r\n\r\n" + b'{"query":"{ hello }"}'[:17]
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(4000), 5)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw
    assert json.loads(body)["errors"][0]["message"] == "the x-correlation-id header is not valid UTF-8"


async def test_l13_non_integer_content_length_is_400(service: Running) -> None:
    """uvicorn's parser refuses such a request itself; another ASGI server may pass it on, so the
    app is called directly (ASGI) with it."""
    runtime = dataclasses.replace(service.runtime, _clients={}, metrics=CollectorRegistry())
    app = create_service_app(runtime=runtime, schema=schema)  # no lifespan: the running service's db
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for value in (b"abc", b"1.5", b"\xff"):
        sent.clear()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-length", value), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
        assert sent[0]["status"] == 400, sent
        body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert body["errors"][0]["message"] == "the Content-Length header is not an integer"


# ---- L6 ------------------------------------------------------------------------------------------


async def test_l6_a_subscription_ends_when_its_token_expires(
    service: Running, signing_key: SigningKey
) -> None:
    """L6: the token was valid at connection_init; at its exp the stream ends with an
    UNAUTHENTICATED error saying what to do, then complete. Another caller's stream goes on."""
    short = token(signing_key, "user-exp", ttl=2, sid=f"s-{uuid.uuid4().hex[:8]}")
    long = token(signing_key, "user-long", ttl=120)
    short_ws, long_ws = await open_ws(service.base, short), await open_ws(service.base, long)
    try:
        assert (await start_ticks(short_ws, "1"))["type"] == "next"
        assert (await start_ticks(long_ws, "1"))["type"] == "next"
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15  # ticks come every 50 ms: a bounded wait for the end
        while (not seen or seen[-1]["type"] != "complete") and time.monotonic() < deadline:
            seen.append(json.loads(await asyncio.wait_for(short_ws.recv(), 10)))
        assert seen[-1]["type"] == "complete", seen[-3:]
        errors = [m["payload"]["errors"] for m in seen if m["type"] == "next" and m["payload"].get("errors")]
        assert errors, seen
        assert errors[-1][0]["message"] == TOKEN_EXPIRED_MESSAGE
        assert errors[-1][0]["extensions"]["code"] == "UNAUTHENTICATED"
        msg = json.loads(await asyncio.wait_for(long_ws.recv(), 5))
        assert msg["type"] == "next" and not msg["payload"].get("errors")
    finally:
        await short_ws.close()
        await long_ws.close()


# ---- M9 ------------------------------------------------------------------------------------------


async def test_m9_per_user_cap_on_open_subscriptions(service: Running, signing_key: SigningKey) -> None:
    """M9: one caller holds at most max_subscriptions_per_user running subscriptions in the
    process, whatever number of WebSockets it opens; others are not affected; ending one frees a slot."""
    alice = token(signing_key, f"alice-{uuid.uuid4().hex[:6]}")
    bob = token(signing_key, f"bob-{uuid.uuid4().hex[:6]}")
    sockets = [await open_ws(service.base, alice) for _ in range(2)]
    other = await open_ws(service.base, bob)
    try:
        for i in range(CAP):
            assert (await start_ticks(sockets[i % 2], f"a{i}"))["type"] == "next"
        refused = await start_ticks(sockets[1], "over")
        assert refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert f"at most {CAP}" in refused["payload"][0]["message"]
        assert (await start_ticks(other, "b0"))["type"] == "next"  # another user: fine

        await sockets[0].send(json.dumps({"id": "a0", "type": "complete"}))

        async def slot_freed() -> bool:
            return service.runtime.open_subscriptions.get(service_subject(alice), 0) < CAP

        await eventually(slot_freed)
        assert (await start_ticks(sockets[1], "again"))["type"] == "next"
    finally:
        for ws in [*sockets, other]:
            await ws.close()

    async def all_closed() -> bool:
        return not service.runtime.open_subscriptions

    await eventually(all_closed)


def service_subject(tok: str) -> str:
    import jwt

    return str(jwt.decode(tok, options={"verify_signature": False})["sub"])


# ---- L16 -----------------------------------------------------------------------------------------


async def test_l16_the_service_prunes_old_published_outbox_rows_periodically(service: Running) -> None:
    with service.runtime.db.bind():
        old, pending = envelope("nobody"), envelope("nobody")
        for env in (old, pending):
            await Outbox.create(
                id=uuid.UUID(env.id), stream=env.stream, envelope=json.loads(env.model_dump_json())
            )
        long_ago = datetime.now(UTC) - timedelta(days=30)
        await Outbox.filter(id=uuid.UUID(old.id)).update(published_at=long_ago, created_at=long_ago)
        await Outbox.filter(id=uuid.UUID(pending.id)).update(created_at=long_ago)

        async def pruned() -> bool:
            return not await Outbox.exists(id=uuid.UUID(old.id))

        await eventually(pruned)
        assert await Outbox.exists(id=uuid.UUID(pending.id))


# ---- L3 ------------------------------------------------------------------------------------------


async def test_l3_data_dir_and_sqlite_files_are_private(service: Running) -> None:
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(service.data_dir) == 0o700
    db = service.data_dir / "outboxtest.sqlite3"
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    assert all(f.exists() for f in files), list(service.data_dir.iterdir())
    assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}

"""Health monitoring through the targets subgraph: checks recorded, health from latency and
failures, healthHistory, targets.target_health_changed, and the targetHealth subscription over
graphql-transport-ws. A TCP server started here plays the target (telnet method)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import websockets

from opsconductor_targets.service.health import classify, interval_for
from opsconductor_targets.settings import Settings
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE = """mutation($input: CreateTargetInput!) { createTarget(input: $input) { __typename
  ... on TargetCreated { target { id healthStatus communicationMethods { id } } } ... on Error { message } } }"""
CHECK = """mutation($id: ID!) { checkTargetHealth(targetId: $id) { __typename
  ... on TargetHealthChecked { targetId healthStatus previous check { ok latencyMs message trigger method } }
  ... on NotFound { message } } }"""
HISTORY = """query($id: ID!, $first: Int, $after: String) { healthHistory(targetId: $id, first: $first, after: $after) {
  totalCount pageInfo { hasNextPage endCursor } edges { node { ok healthStatus previous trigger message } } } }"""
BULK = """mutation($ids: [ID!]!) { bulkTestConnections(targetIds: $ids) { targetId healthStatus
  result { ok message method } } }"""
TEST_CONNECTION = """mutation($id: ID!) { testConnection(targetId: $id) { ok latencyMs message method } }"""
SUBSCRIBE = """subscription($ids: [ID!]) { targetHealth(targetIds: $ids) {
  targetId healthStatus previous ok message } }"""


def loopback() -> str:
    raw = uuid.uuid4().bytes
    return f"127.{raw[0] % 250 + 1}.{raw[1]}.{max(raw[2], 1)}"


class Switch:
    """A TCP service that can be turned off and on at a fixed address."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.port = 0
        self.server: asyncio.AbstractServer | None = None

    async def on(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"switch ready\r\n")
            with contextlib.suppress(Exception):
                await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def off(self) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 10)
        self.server = None


@contextlib.asynccontextmanager
async def switch() -> AsyncIterator[Switch]:
    s = Switch(loopback())
    await s.on()
    try:
        yield s
    finally:
        if s.server is not None:
            await s.off()


async def create_telnet(platform: Any, token: str, host: str, port: int, env: str = "testing") -> str:
    body = await gql(
        platform.url("targets"),
        CREATE,
        {
            "input": {
                "name": f"sw-{uuid.uuid4().hex[:6]}",
                "osType": "linux",
                "environment": env,
                "methods": [{"type": "TELNET", "host": host, "port": port, "config": {"timeout": 5}}],
            }
        },
        token=token,
    )
    result = body["data"]["createTarget"]
    assert result["__typename"] == "TargetCreated", body
    assert result["target"]["healthStatus"] == "UNKNOWN"
    return str(result["target"]["id"])


async def test_classify_and_intervals_follow_settings() -> None:
    s = Settings(health_healthy_ms=5000, health_warning_ms=10000, health_failures_for_critical=2)
    assert classify(True, 12.0, 0, s) == "healthy"
    assert classify(True, 5000.0, 0, s) == "healthy"
    assert classify(True, 7000.0, 0, s) == "warning"
    assert classify(True, 10001.0, 0, s) == "critical"
    assert classify(False, None, 1, s) == "warning"  # one failure of two allowed
    assert classify(False, None, 2, s) == "critical"
    legacy = Settings()
    assert classify(False, None, 1, legacy) == "critical"  # legacy: a failure is critical
    assert interval_for(legacy, "production", "healthy") == 300
    assert interval_for(legacy, "production", "critical") == 60
    assert interval_for(legacy, "lab", "healthy") == legacy.health_intervals["default"]["healthy"]


async def test_health_check_history_event_and_no_secrets(platform: Any, admin_token: str) -> None:
    url = platform.url("targets")
    async with switch() as sw:
        tid = await create_telnet(platform, admin_token, sw.host, sw.port)
        up = (await gql(url, CHECK, {"id": tid}, token=admin_token))["data"]["checkTargetHealth"]
        assert up["healthStatus"] == "HEALTHY" and up["previous"] == "UNKNOWN", up
        assert up["check"]["ok"] and up["check"]["trigger"] == "manual" and up["check"]["method"] == "TELNET"
        assert "banner: switch ready" in up["check"]["message"]
        await sw.off()
        down = (await gql(url, CHECK, {"id": tid}, token=admin_token))["data"]["checkTargetHealth"]
        assert down["healthStatus"] == "CRITICAL" and down["previous"] == "HEALTHY", down
        assert down["check"]["message"] == "connection refused"
        tested = (await gql(url, TEST_CONNECTION, {"id": tid}, token=admin_token))["data"]["testConnection"]
        assert tested["ok"] is False and tested["method"] == "TELNET"
        await sw.on()
        bulk = (await gql(url, BULK, {"ids": [tid, "no-such-target"]}, token=admin_token))["data"]
        assert [
            (b["targetId"], b["healthStatus"], b["result"]["ok"]) for b in bulk["bulkTestConnections"]
        ] == [(tid, "HEALTHY", True)]

    page = (await gql(url, HISTORY, {"id": tid, "first": 2}, token=admin_token))["data"]["healthHistory"]
    assert page["totalCount"] == 4 and page["pageInfo"]["hasNextPage"]
    assert [e["node"]["trigger"] for e in page["edges"]] == ["bulk", "connection_test"]  # newest first
    rest = await gql(
        url, HISTORY, {"id": tid, "first": 10, "after": page["pageInfo"]["endCursor"]}, token=admin_token
    )
    older = rest["data"]["healthHistory"]["edges"]
    assert [(e["node"]["trigger"], e["node"]["healthStatus"]) for e in older] == [
        ("manual", "CRITICAL"),
        ("manual", "HEALTHY"),
    ]

    conn = await asyncpg.connect(platform.databases["targets"])
    try:
        rows = await conn.fetch(
            "SELECT envelope FROM outbox WHERE envelope::text LIKE '%target_health_changed%' AND envelope::text LIKE $1",
            f"%{tid}%",
        )
    finally:
        await conn.close()
    changes = [json.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows]
    data = [c["data"] for c in changes]
    assert {"id": tid, "healthStatus": "healthy", "previous": "unknown"} in data
    assert {"id": tid, "healthStatus": "critical", "previous": "healthy"} in data
    assert {"id": tid, "healthStatus": "healthy", "previous": "critical"} in data


async def test_health_reads_need_permission(platform: Any) -> None:
    body = await gql(platform.url("targets"), HISTORY, {"id": "x"})
    assert body.get("errors"), body
    body = await gql(platform.url("targets"), CHECK, {"id": "x"})
    assert body.get("errors"), body


async def test_check_unknown_target_is_not_found(platform: Any, admin_token: str) -> None:
    body = await gql(platform.url("targets"), CHECK, {"id": "nope"}, token=admin_token)
    assert body["data"]["checkTargetHealth"]["__typename"] == "NotFound", body


async def _next(ws: Any, timeout: float = 30) -> dict[str, Any]:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] == "next":
            return msg["payload"]
        if msg["type"] in ("error", "complete"):
            raise AssertionError(msg)


async def test_target_health_subscription(platform: Any, admin_token: str) -> None:
    url = platform.url("targets")
    ws_url = url.replace("http://", "ws://")
    async with switch() as sw, switch() as other:
        tid = await create_telnet(platform, admin_token, sw.host, sw.port)
        other_id = await create_telnet(platform, admin_token, other.host, other.port)
        async with websockets.connect(
            ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {admin_token}"}})
            )
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            await ws.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIBE, "variables": {"ids": [tid]}},
                    }
                )
            )
            # The subscription is registered once the server has processed the message; a check on
            # the other target first shows filtering, and gives the server time to subscribe.
            for _ in range(20):
                await gql(url, CHECK, {"id": other_id}, token=admin_token)
                await gql(url, CHECK, {"id": tid}, token=admin_token)
                try:
                    first = await _next(ws, timeout=2)
                    break
                except TimeoutError:
                    await sw.off()  # flip health so the next check changes it again
                    await sw.on()
                    await gql(url, CHECK, {"id": tid}, token=admin_token)
                    await sw.off()
                    continue
            else:
                raise AssertionError("no targetHealth message")
            change = first["data"]["targetHealth"]
            assert change["targetId"] == tid, first
            if sw.server is not None:
                await sw.off()
            nxt_status = "CRITICAL" if change["healthStatus"] == "HEALTHY" else None
            if nxt_status:
                await gql(url, CHECK, {"id": tid}, token=admin_token)
                again = (await _next(ws))["data"]["targetHealth"]
                assert again == {
                    "targetId": tid,
                    "healthStatus": "CRITICAL",
                    "previous": "HEALTHY",
                    "ok": False,
                    "message": "connection refused",
                }
            await ws.send(json.dumps({"id": "1", "type": "complete"}))


async def test_subscription_refused_without_token(platform: Any) -> None:
    ws_url = platform.url("targets").replace("http://", "ws://")
    async with websockets.connect(
        ws_url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
    ) as ws:
        try:
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await asyncio.wait_for(ws.recv(), 10)
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIBE}}))
            msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        except websockets.exceptions.ConnectionClosedError as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 4403, exc  # refused: Forbidden
        else:
            assert msg["type"] == "error" or msg["payload"].get("errors"), msg


DUE = """mutation($ids: [ID!], $limit: Int!) { runDueHealthChecks(targetIds: $ids, limit: $limit) {
  targetId healthStatus result { ok message } } }"""


async def test_periodic_round_checks_only_due_targets(platform: Any, admin_token: str) -> None:
    """One round of the periodic checker (what its loop runs every tick): never-checked targets are
    due, a checked one waits for its environment x health interval, maintenance is skipped."""
    url = platform.url("targets")
    async with switch() as sw, switch() as other:
        fresh = await create_telnet(platform, admin_token, sw.host, sw.port)
        resting = await create_telnet(platform, admin_token, other.host, other.port, env="production")
        await gql(
            url,
            """mutation($id: ID!) { updateTarget(id: $id, input: { status: MAINTENANCE }) { __typename } }""",
            {"id": resting},
            token=admin_token,
        )
        first = (await gql(url, DUE, {"ids": [fresh, resting], "limit": 10}, token=admin_token))["data"]
        assert [(d["targetId"], d["healthStatus"]) for d in first["runDueHealthChecks"]] == [
            (fresh, "HEALTHY")
        ]
        again = (await gql(url, DUE, {"ids": [fresh, resting], "limit": 10}, token=admin_token))["data"]
        assert again["runDueHealthChecks"] == []  # next check of a healthy testing target: minutes away
    page = (await gql(url, HISTORY, {"id": fresh, "first": 5}, token=admin_token))["data"]["healthHistory"]
    assert [e["node"]["trigger"] for e in page["edges"]] == ["periodic"]
    bad = await gql(url, DUE, {"ids": None, "limit": 0}, token=admin_token)
    assert bad.get("errors") and "limit" in bad["errors"][0]["message"], bad

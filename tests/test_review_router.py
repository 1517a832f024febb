"""Security review 2026-12, router side: M1 (login budget per login field), M8 (query cost limit),
M9 (open subscriptions per user), L2 (the client IP auth records)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from tests.support.access import ROLE_PASSWORD, create_user
from tests.support.platform import RunningPlatform, free_port, gql, login

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _router_env(platform: RunningPlatform, **extra: str) -> dict[str, str]:
    from tests.support.router import subgraph_urls_env

    return {
        **subgraph_urls_env(platform.ports),
        "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
        "OPSC_REDIS_URL": os.environ["OPSC_REDIS_URL"],
        "OPSC_ROUTER_RATE_LIMIT_PREFIX": f"opsc:rl:review-{uuid.uuid4().hex[:8]}:",
        "OPSC_ROUTER_RATE_LIMIT_PER_IP": "100000",
        "OPSC_ROUTER_RATE_LIMIT_PER_USER": "100000",
        **extra,
    }


@contextlib.asynccontextmanager
async def _router(platform: RunningPlatform, **extra: str) -> AsyncIterator[Any]:
    from tests.support.router import start_router

    env = _router_env(platform, **extra)
    proc = await asyncio.to_thread(start_router, free_port(), env)
    try:
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


def _rate_limited(resp: httpx.Response) -> bool:
    codes = [e.get("extensions", {}).get("code") for e in resp.json().get("errors") or []]
    return resp.status_code == 429 and "RATE_LIMITED" in codes


# ---- M1: every login field counts against the login budget ------------------------------------

INLINE_LOGIN = """mutation { ... on Mutation { login(username: "m1-nobody", password: "wrong-Pass-1") {
  __typename } } }"""


async def test_m1_inline_fragment_logins_hit_the_login_budget(platform: RunningPlatform) -> None:
    """M1: `... on Mutation { login }` used to skip the 20/min/IP login budget (top-level fields only)."""
    async with _router(platform) as router, httpx.AsyncClient(timeout=60) as http:
        answers = []
        for _ in range(25):
            resp = await http.post(router.url, json={"query": INLINE_LOGIN})
            answers.append(resp)
            if _rate_limited(resp):
                break
    assert any(_rate_limited(r) for r in answers), [r.status_code for r in answers]
    assert len(answers) == 21, [r.text for r in answers[-2:]]  # 20 allowed, the 21st refused
    assert answers[0].json()["data"]["login"]["__typename"] == "InvalidCredentials", answers[0].text


async def test_m1_thirty_aliased_logins_cost_thirty(platform: RunningPlatform) -> None:
    """M1: one request with 30 `login` fields (aliases, one fragment spread) counts 30, not 1."""
    from redis.asyncio import Redis

    direct = " ".join(f'a{i}: login(username: "m1-x{i}", password: "p") {{ __typename }}' for i in range(20))
    spread = " ".join(f'b{i}: login(username: "m1-y{i}", password: "p") {{ __typename }}' for i in range(10))
    query = f"mutation {{ {direct} ...More }} fragment More on Mutation {{ {spread} }}"
    async with _router(platform, OPSC_ROUTER_RATE_LIMIT_LOGIN_PER_IP="20") as router:
        async with httpx.AsyncClient(timeout=60) as http:
            resp = await http.post(router.url, json={"query": query})
        prefix = router.env["OPSC_ROUTER_RATE_LIMIT_PREFIX"]
        redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])
        try:
            counted = await redis.get(f"{prefix}login:127.0.0.1")
        finally:
            await redis.aclose()
    assert counted is not None and int(counted) == 30, counted
    # 30 > 20: refused before any password is checked.
    assert _rate_limited(resp), resp.text


# ---- M8: query cost limit ---------------------------------------------------------------------

CYCLE = """query { executions(first: 500) { edges { node { id targetRuns { status execution {
  targetRuns { steps { stdout } } } } } } } }"""

# No `job { name }`: runs of jobs other tests deleted cannot resolve their `Job!` (a known gap,
# not the cost limit's concern), and this page must pass whatever the session's data.
RUN_PAGE = """query { executions(first: 20) { edges { node { id number status
  targetRuns { status exitCode target { id name } steps { name status exitCode stdout stderr durationMs } } } }
  pageInfo { hasNextPage endCursor } } }"""


async def test_m8_nested_execution_cycle_is_refused_by_the_cost_limit(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """M8: executions(first:500){…targetRuns{execution{targetRuns{steps{stdout}}}}} is refused up front;
    a page of runs with their targets and steps still passes, and so does introspection."""
    from graphql import get_introspection_query

    suffix = uuid.uuid4().hex[:6]
    await create_user(platform, admin_token, f"m8viewer{suffix}", ["viewer"])
    viewer = await login(platform.url("auth"), f"m8viewer{suffix}", ROLE_PASSWORD)
    refused = await gql(router.url, CYCLE, token=viewer)
    assert not refused.get("data"), refused
    error = refused["errors"][0]
    assert error["extensions"]["code"] == "COST_LIMIT_EXCEEDED", refused
    assert "query cost" in error["message"] and "exceeds the limit" in error["message"], refused

    page = await gql(router.url, RUN_PAGE, token=viewer)
    # The page is within the limit: no cost error. (Other errors can come from the session's data:
    # runs whose job or target other tests deleted do not resolve their non-null fields.)
    codes = [e.get("extensions", {}).get("code") for e in page.get("errors") or []]
    assert "COST_LIMIT_EXCEEDED" not in codes, page
    schema = await gql(router.url, get_introspection_query(), token=viewer)
    assert not schema.get("errors") and schema["data"]["__schema"]["queryType"], str(schema)[:500]


# ---- M9: open subscriptions per user ----------------------------------------------------------

HEALTH = "subscription { targetHealth(targetIds: [$TARGET]) { targetId healthStatus } }"


class _Socket:
    """One graphql-transport-ws connection to the router."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, token: str) -> _Socket:
        ws = await websockets.connect(
            url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")], open_timeout=10
        )
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ack["type"] == "connection_ack", ack
        return cls(ws)

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg.get("type") == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                elif "id" in msg:
                    self.messages.setdefault(msg["id"], []).append(msg)

    async def subscribe(self, sub_id: str, query: str) -> None:
        await self.ws.send(json.dumps({"id": sub_id, "type": "subscribe", "payload": {"query": query}}))

    async def complete(self, sub_id: str) -> None:
        await self.ws.send(json.dumps({"id": sub_id, "type": "complete"}))

    def errors(self, sub_id: str) -> list[Any]:
        found: list[Any] = []
        for msg in self.messages.get(sub_id, []):
            if msg["type"] == "error":
                found.extend(msg["payload"])
            elif msg["type"] == "next":
                found.extend(msg["payload"].get("errors") or [])
        return found

    def data(self, sub_id: str) -> list[Any]:
        return [
            m["payload"]["data"]
            for m in self.messages.get(sub_id, [])
            if m["type"] == "next" and m["payload"].get("data")
        ]

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self.ws.close()


async def _publish_until(target: str, received: Any, timeout: float = 30) -> None:
    """Publish a health change of `target` on the live channel until `received()` holds."""
    from redis.asyncio import Redis

    payload = json.dumps({"targetId": target, "healthStatus": "healthy", "previous": "unknown"})
    redis = Redis.from_url(os.environ["OPSC_REDIS_URL"])
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not received():
            assert asyncio.get_running_loop().time() < deadline, "subscriptions received nothing"
            await redis.publish("opsc.live.targets:health", payload)
            await asyncio.sleep(0.3)
    finally:
        await redis.aclose()


async def _wait_for(check: Any, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_m9_open_subscriptions_are_capped_per_user(platform: RunningPlatform, admin_token: str) -> None:
    """M9: with a cap of 3, a user's 4th open subscription (on another WebSocket) is refused; other
    users are unaffected; closing one frees its slot."""
    suffix = uuid.uuid4().hex[:6]
    await create_user(platform, admin_token, f"m9viewer{suffix}", ["viewer"])
    viewer = await login(platform.url("auth"), f"m9viewer{suffix}", ROLE_PASSWORD)
    target = f"m9-{suffix}"
    query = HEALTH.replace("$TARGET", json.dumps(target))
    async with _router(platform, OPSC_ROUTER_MAX_SUBSCRIPTIONS_PER_USER="3") as router:
        first = await _Socket.open(router.ws_url, viewer)
        second = await _Socket.open(router.ws_url, viewer)
        third = await _Socket.open(router.ws_url, viewer)
        other = await _Socket.open(router.ws_url, admin_token)
        try:
            await first.subscribe("a", query)
            await first.subscribe("b", query)
            await second.subscribe("c", query)
            await other.subscribe("o", query)
            live = [(first, "a"), (first, "b"), (second, "c"), (other, "o")]
            await _publish_until(target, lambda: all(s.data(i) for s, i in live))
            assert not any(s.errors(i) for s, i in live)

            await third.subscribe("d", query)
            await _wait_for(lambda: third.errors("d"))
            error = third.errors("d")[0]
            assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS", error
            assert "at most 3 per user" in error["message"], error

            # Closing one frees its slot (the count follows the subscription's end).
            await first.complete("a")
            for attempt in range(20):
                sub_id = f"e{attempt}"
                await third.subscribe(sub_id, query)
                await _publish_until(target, lambda s=sub_id: bool(third.data(s) or third.errors(s)))
                if third.data(sub_id):
                    break
                await asyncio.sleep(0.2)  # the router may not have seen "complete" yet
            assert third.data(sub_id) and not third.errors(sub_id), third.messages
        finally:
            for s in (first, second, third, other):
                await s.close()


# ---- L2: the client IP auth records -----------------------------------------------------------

ATTEMPTS = """query($u: String!) { loginAttempts(username: $u, first: 5) { edges { node { ipAddress } } } }"""


async def _attempt_ips(platform: RunningPlatform, admin_token: str, username: str) -> list[str | None]:
    body = await gql(platform.url("auth"), ATTEMPTS, {"u": username}, token=admin_token)
    assert not body.get("errors"), body
    return [e["node"]["ipAddress"] for e in body["data"]["loginAttempts"]["edges"]]


SPOOF = {"x-forwarded-for": "10.9.9.9", "x-opsc-client-ip": "10.9.9.9", "x-opsc-client-ip-signature": "00"}


async def test_l2_login_attempts_record_the_client_ip_through_the_router(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """L2: through the router, the attempt carries the client's address (here 127.0.0.23), not the
    router's, and not what the client wrote in X-Forwarded-For."""
    username = f"l2-router-{uuid.uuid4().hex[:6]}"
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.23")
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        resp = await http.post(
            router.url,
            json={"query": INLINE_LOGIN.replace("m1-nobody", username)},
            headers=SPOOF,
        )
    assert resp.json()["data"]["login"]["__typename"] == "InvalidCredentials", resp.text
    assert await _attempt_ips(platform, admin_token, username) == ["127.0.0.23"]


async def test_l2_a_direct_callers_forwarded_ip_is_ignored(
    platform: RunningPlatform, admin_token: str
) -> None:
    """L2: a caller talking to auth directly cannot choose the recorded address with X-Forwarded-For
    or the router's header (it lacks the router's signature)."""
    username = f"l2-direct-{uuid.uuid4().hex[:6]}"
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.24")
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        resp = await http.post(
            platform.url("auth"),
            json={"query": INLINE_LOGIN.replace("m1-nobody", username)},
            headers=SPOOF,
        )
    assert resp.json()["data"]["login"]["__typename"] == "InvalidCredentials", resp.text
    assert await _attempt_ips(platform, admin_token, username) == ["127.0.0.24"]

"""ServiceClient and ServiceTokenProvider against a tiny real HTTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from opsconductor_shared.client import ServiceCallError, ServiceClient, ServiceTokenProvider
from opsconductor_shared.logging import correlation_id
from shared.tests.support import free_port, serve


class FakeSubgraph:
    """A stand-in for another service: each route counts its calls and answers as scripted."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []
        self.unavailable_for = 2  # /flaky answers 503 this many times first
        self.token_ttl = 600.0

    def _count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def flaky(self, request: Request) -> Response:
        if self._count("flaky") <= self.unavailable_for:
            return PlainTextResponse("upstream restarting", status_code=503)
        return JSONResponse({"data": {"ok": True}})

    async def graphql_errors(self, _: Request) -> Response:
        self._count("errors")
        return JSONResponse(
            {"data": None, "errors": [{"message": "target not found"}, {"message": "and another"}]}
        )

    async def echo(self, request: Request) -> Response:
        self._count("echo")
        body = await request.json()
        self.requests.append({"headers": dict(request.headers), "body": body})
        return JSONResponse({"data": {"variables": body["variables"]}})

    async def slow(self, _: Request) -> Response:
        self._count("slow")
        await asyncio.sleep(0.6)
        return JSONResponse({"data": {}})

    async def not_json(self, _: Request) -> Response:
        self._count("not_json")
        return PlainTextResponse("Not Found", status_code=404)

    async def service_token(self, request: Request) -> Response:
        n = self._count("token")
        body = await request.json()
        self.requests.append({"token_request": body})
        if body.get("secret") != "right-secret":
            return JSONResponse({"message": "service credentials rejected"}, status_code=401)
        return JSONResponse({"token": f"token-{n}", "expiresAt": time.time() + self.token_ttl})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/flaky", self.flaky, methods=["POST"]),
                Route("/errors", self.graphql_errors, methods=["POST"]),
                Route("/echo", self.echo, methods=["POST"]),
                Route("/slow", self.slow, methods=["POST"]),
                Route("/not-json", self.not_json, methods=["POST"]),
                Route("/internal/service-token", self.service_token, methods=["POST"]),
            ]
        )


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[tuple[FakeSubgraph, str]]:
    subgraph = FakeSubgraph()
    async with serve(subgraph.app()) as base:
        yield subgraph, base


async def test_retries_on_503_then_succeeds(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    client = ServiceClient(f"{base}/flaky", None, retries=3, backoff=0.01)
    try:
        assert await client.execute("{ ok }") == {"ok": True}
    finally:
        await client.aclose()
    assert subgraph.calls["flaky"] == 3


async def test_gives_up_after_the_retries(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    subgraph.unavailable_for = 100
    client = ServiceClient(f"{base}/flaky", None, retries=2, backoff=0.01)
    try:
        with pytest.raises(ServiceCallError, match="answered 503"):
            await client.execute("{ ok }")
        assert subgraph.calls["flaky"] == 3
        with pytest.raises(ServiceCallError):
            await client.execute("mutation { doIt }", retries=0)  # mutations: no blind retries
        assert subgraph.calls["flaky"] == 4
    finally:
        await client.aclose()


async def test_graphql_errors_are_not_retried(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    client = ServiceClient(f"{base}/errors", None, retries=3, backoff=0.01)
    try:
        with pytest.raises(ServiceCallError) as info:
            await client.execute("{ target(id: 1) { id } }")
    finally:
        await client.aclose()
    assert str(info.value) == "target not found; and another"
    assert subgraph.calls["errors"] == 1


async def test_unreachable_fails_quickly() -> None:
    client = ServiceClient(f"http://127.0.0.1:{free_port()}/graphql", None, retries=2, backoff=0.01)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceCallError, match="unreachable"):
            await client.execute("{ ok }")
    finally:
        await client.aclose()
    assert time.monotonic() - started < 10


async def test_timeout_is_a_service_call_error(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    client = ServiceClient(f"{base}/slow", None, timeout=0.2, retries=0)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceCallError, match="unreachable"):
            await client.execute("{ ok }")
    finally:
        await client.aclose()
    assert time.monotonic() - started < 5
    assert subgraph.calls["slow"] == 1


async def test_non_json_answer_is_a_service_call_error(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    client = ServiceClient(f"{base}/not-json", None, retries=3, backoff=0.01)
    try:
        with pytest.raises(ServiceCallError, match="404"):
            await client.execute("{ ok }")
    finally:
        await client.aclose()
    assert subgraph.calls["not_json"] == 1


async def test_sends_variables_service_token_and_correlation_id(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    tokens = ServiceTokenProvider(auth_url=f"{base}/", service="jobs", secret="right-secret")
    client = ServiceClient(f"{base}/echo", tokens)
    cid = correlation_id.set("cid-42")
    try:
        data = await client.execute("query($id: ID!) { target(id: $id) { id } }", {"id": "t1"})
        await client.execute("{ again }")
    finally:
        correlation_id.reset(cid)
        await client.aclose()
    assert data == {"variables": {"id": "t1"}}
    echoed = [r for r in subgraph.requests if "headers" in r]
    assert [r["headers"]["authorization"] for r in echoed] == ["Bearer token-1", "Bearer token-1"]
    assert echoed[0]["headers"]["x-correlation-id"] == "cid-42"
    assert echoed[0]["body"]["query"].startswith("query($id: ID!)")
    assert {"token_request": {"service": "jobs", "secret": "right-secret"}} in subgraph.requests


async def test_token_provider_caches_the_token(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    tokens = ServiceTokenProvider(auth_url=base, service="jobs", secret="right-secret")
    assert await tokens.token() == "token-1"
    assert await tokens.token() == "token-1"
    assert set(await asyncio.gather(*(tokens.token() for _ in range(5)))) == {"token-1"}
    assert subgraph.calls["token"] == 1


async def test_token_provider_renews_a_token_about_to_expire(fake: tuple[FakeSubgraph, str]) -> None:
    subgraph, base = fake
    subgraph.token_ttl = 10  # inside the 30 s safety margin: never reused
    tokens = ServiceTokenProvider(auth_url=base, service="jobs", secret="right-secret")
    assert await tokens.token() == "token-1"
    assert await tokens.token() == "token-2"
    assert subgraph.calls["token"] == 2


async def test_token_provider_refused(fake: tuple[FakeSubgraph, str]) -> None:
    _subgraph, base = fake
    tokens = ServiceTokenProvider(auth_url=base, service="jobs", secret="wrong")
    with pytest.raises(ServiceCallError, match="auth refused a service token for jobs"):
        await tokens.token()
    client = ServiceClient(f"{base}/echo", tokens, retries=3, backoff=0.01)
    try:
        with pytest.raises(ServiceCallError, match="auth refused"):
            await client.execute("{ ok }")  # not retried: a refusal will not change
    finally:
        await client.aclose()

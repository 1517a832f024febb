"""Router hardening: security headers, CSRF prevention, and production mode (no Laboratory, no introspection)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.platform import RunningPlatform, free_port, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_security_headers(router: Any) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(router.url, json={"query": "{ __typename }"})
    assert resp.status_code == 200
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert "max-age=" in resp.headers["strict-transport-security"]
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]


async def test_a_simple_cross_site_request_is_refused(router: Any) -> None:
    """A form POST (no preflight) from another site must not run an operation with the victim's cookies."""
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(
            router.url,
            content="query={__typename}",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        allowed = await http.post(
            router.url,
            content="query={__typename}",
            headers={"content-type": "application/x-www-form-urlencoded", "x-graphql-csrf": "1"},
        )
    assert resp.status_code in (400, 403), resp.text
    assert allowed.status_code != 403


async def test_production_mode_hides_laboratory_and_introspection(platform: RunningPlatform) -> None:
    from tests.support.router import start_router, subgraph_urls_env

    proc = start_router(
        free_port(),
        {
            **subgraph_urls_env(platform.ports),
            "OPSC_ROUTER_PRODUCTION": "1",
            "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
        },
    )
    try:
        body = await gql(proc.url, "{ __schema { queryType { name } } }")
        assert body.get("errors"), body
        async with httpx.AsyncClient(timeout=30) as http:
            page = await http.get(proc.url, headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()
        ok = await gql(proc.url, "{ __typename }")
        assert ok == {"data": {"__typename": "Query"}}, ok
    finally:
        proc.stop()

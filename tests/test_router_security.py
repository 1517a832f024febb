"""Router hardening: security headers, CSRF prevention, and production mode (no Laboratory, no introspection)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

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


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def _forgeries(router: Any, platform: RunningPlatform) -> dict[str, str]:
    """Tokens an attacker could build from a real one and the public JWKS."""
    import json

    import jwt
    from jwt.algorithms import RSAAlgorithm

    from tests.support.platform import login

    real = await login(router.url, "admin", platform.admin_password)
    header, payload, signature = real.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    async with httpx.AsyncClient(timeout=30) as http:
        jwks = (await http.get(f"{platform.base('auth')}/.well-known/jwks.json")).json()
    public_key = RSAAlgorithm.from_jwk(json.dumps(jwks["keys"][0]))
    public_pem = public_key.public_bytes(  # type: ignore[union-attr]
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    escalated = dict(claims, sub="someone-else", permissions=["*"])
    return {
        "alg none": f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}."
        f"{_b64(json.dumps(escalated).encode())}.",
        "HS256 with the public key": _hs256(escalated, public_pem, jwks["keys"][0]["kid"]),
        "tampered payload": f"{header}.{_b64(json.dumps(escalated).encode())}.{signature}",
        "unknown kid": f"{_b64(json.dumps({'alg': 'RS256', 'kid': 'no-such-key'}).encode())}.{payload}.{signature}",
        "garbage": "not.a.token",
    }


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    import hashlib
    import hmac
    import json

    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


async def test_forged_tokens_are_refused_at_the_router(router: Any, platform: RunningPlatform) -> None:
    for name, token in (await _forgeries(router, platform)).items():
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.post(
                router.url, json={"query": "{ me { id } }"}, headers={"authorization": f"Bearer {token}"}
            )
        body = resp.json()
        assert resp.status_code in (400, 401) or body.get("errors"), (name, resp.status_code, body)
        assert not (body.get("data") or {}).get("me"), (name, body)

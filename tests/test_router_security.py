"""Router hardening: security headers, CSRF prevention, production mode, forged tokens, rate limits, CORS, aliases."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.access import create_user, role_login
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


# ---- rate limits (shared by replicas through Redis), CORS allow-list, alias limit ------------


def _limited_env(platform: RunningPlatform, prefix: str, **limits: str) -> dict[str, str]:
    import os

    from tests.support.router import subgraph_urls_env

    return {
        **subgraph_urls_env(platform.ports),
        "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
        "OPSC_REDIS_URL": os.environ["OPSC_REDIS_URL"],
        "OPSC_ROUTER_RATE_LIMIT_PREFIX": prefix,
        **limits,
    }


@pytest.fixture(scope="module")
def limited_routers(platform: RunningPlatform) -> Any:
    """Two router replicas sharing one Redis budget: 3 logins per IP, 4 operations per user."""
    import uuid

    from tests.support.router import start_router

    env = _limited_env(
        platform,
        f"opsc:rl:test-{uuid.uuid4().hex[:8]}:",
        OPSC_ROUTER_RATE_LIMIT_PER_IP="100000",
        OPSC_ROUTER_RATE_LIMIT_LOGIN_PER_IP="3",
        OPSC_ROUTER_RATE_LIMIT_PER_USER="4",
    )
    a = start_router(free_port(), env)
    try:
        b = start_router(free_port(), env)
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


LOGIN_Q = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
  __typename ... on LoginSuccess { accessToken } ... on Error { message } } }"""


def _rate_limited(resp: httpx.Response) -> bool:
    body = resp.json()
    codes = [e.get("extensions", {}).get("code") for e in body.get("errors") or []]
    return resp.status_code == 429 and "RATE_LIMITED" in codes


async def test_login_budget_is_shared_by_router_replicas(
    limited_routers: Any, platform: RunningPlatform
) -> None:
    a, b = limited_routers
    answers = []
    async with httpx.AsyncClient(timeout=30) as http:
        for router in (a, b, a, b, a):
            answers.append(
                await http.post(
                    router.url,
                    json={"query": LOGIN_Q, "variables": {"u": "admin", "p": platform.admin_password}},
                )
            )
        other = await http.post(a.url, json={"query": "{ __typename }"})
    assert [r.status_code for r in answers[:3]] == [200, 200, 200], [r.text for r in answers]
    assert all(r.json()["data"]["login"]["__typename"] == "LoginSuccess" for r in answers[:3])
    # The fourth login (on the other replica) is over the shared budget, even with the right password.
    assert _rate_limited(answers[3]) and _rate_limited(answers[4]), [r.text for r in answers[3:]]
    assert int(answers[3].headers["retry-after"]) >= 1
    assert other.status_code == 200 and other.json() == {"data": {"__typename": "Query"}}


async def test_per_user_budget_is_shared_and_per_user(
    limited_routers: Any, platform: RunningPlatform
) -> None:
    import uuid

    from tests.support.platform import login

    a, b = limited_routers
    admin = await login(platform.url("auth"), "admin", platform.admin_password)  # not through the router
    name = f"rl{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin, name, ["viewer"])
    other = await role_login(platform, name)
    async with httpx.AsyncClient(timeout=30) as http:

        async def me(router: Any, token: str) -> httpx.Response:
            return await http.post(
                router.url, json={"query": "{ me { id } }"}, headers={"authorization": f"Bearer {token}"}
            )

        first = [await me(r, admin) for r in (a, b, a, b)]
        over = await me(b, admin)
        fine = await me(a, other)
    assert all(r.status_code == 200 and r.json()["data"]["me"] for r in first), [r.text for r in first]
    assert _rate_limited(over), over.text
    assert fine.status_code == 200 and fine.json()["data"]["me"], fine.text


async def test_per_ip_budget(platform: RunningPlatform) -> None:
    import uuid

    from tests.support.router import start_router

    proc = start_router(
        free_port(),
        _limited_env(platform, f"opsc:rl:test-{uuid.uuid4().hex[:8]}:", OPSC_ROUTER_RATE_LIMIT_PER_IP="5"),
    )
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            answers = [await http.post(proc.url, json={"query": "{ __typename }"}) for _ in range(7)]
    finally:
        proc.stop()
    assert [r.status_code for r in answers[:5]] == [200] * 5
    assert _rate_limited(answers[5]) and _rate_limited(answers[6])
    assert "5 requests per IP" in answers[5].json()["errors"][0]["message"]


async def test_cors_allows_only_listed_origins(router: Any) -> None:
    allowed = f"http://127.0.0.1:{router.port}"
    async with httpx.AsyncClient(timeout=30) as http:
        ok = await http.options(
            router.url, headers={"origin": allowed, "access-control-request-method": "POST"}
        )
        evil = await http.options(
            router.url, headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
        )
        evil_post = await http.post(
            router.url, json={"query": "{ __typename }"}, headers={"origin": "http://evil.example"}
        )
    assert ok.headers.get("access-control-allow-origin") == allowed
    assert ok.headers.get("access-control-allow-credentials") == "true"
    assert evil.headers.get("access-control-allow-origin") in (None, "null")
    assert evil_post.headers.get("access-control-allow-origin") in (None, "null")


async def test_alias_limit(router: Any, admin_token: str) -> None:
    many = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(31)) + " }"
    few = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(3)) + " }"
    refused = await gql(router.url, many, token=admin_token)
    allowed = await gql(router.url, few, token=admin_token)
    assert refused.get("errors") and not refused.get("data"), refused
    assert "Aliases limit of 30 exceeded" in refused["errors"][0]["message"]
    assert not allowed.get("errors") and allowed["data"]["a2"]["id"], allowed

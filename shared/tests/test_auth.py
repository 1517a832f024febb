"""TokenVerifier against a real JWKS endpoint, the revocation stores, and Identity.has."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from redis.asyncio import Redis

from opsconductor_shared.auth import (
    AuthenticationError,
    Identity,
    InMemoryRevocationStore,
    RedisRevocationStore,
    RevocationStore,
    TokenVerifier,
    bearer_token,
)
from shared.tests.conftest import AUDIENCE, ISSUER, SigningKey, new_key


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "kind": "user",
        "username": "alice",
        "roles": ["operator"],
        "permissions": ["targets:read", "jobs:*"],
        "sid": str(uuid.uuid4()),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def verifier(jwks_url: str, revocations: RevocationStore | None = None) -> TokenVerifier:
    return TokenVerifier(
        jwks_url=jwks_url,
        issuer=ISSUER,
        audience=AUDIENCE,
        revocations=revocations or InMemoryRevocationStore(),
    )


async def rejected(v: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await v.verify(token)
    return str(info.value)


async def test_good_token_gives_identity(jwks_url: str, signing_key: SigningKey) -> None:
    c = claims()
    identity = await verifier(jwks_url).verify(signing_key.sign(c))
    assert identity == Identity(
        subject="user-1",
        kind="user",
        username="alice",
        roles=("operator",),
        permissions=frozenset({"targets:read", "jobs:*"}),
        session_id=c["sid"],
        token_id=c["jti"],
        expires_at=c["exp"],
    )


async def test_service_token_without_session(jwks_url: str, signing_key: SigningKey) -> None:
    token = signing_key.sign(claims(sub="service:users", kind="service", sid=None, username=None, roles=None))
    identity = await verifier(jwks_url).verify(token)
    assert identity.kind == "service"
    assert identity.session_id is None
    assert identity.roles == ()


async def test_alg_none_is_refused(jwks_url: str) -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    assert await rejected(verifier(jwks_url), token) == "unsupported token algorithm"


async def test_alg_none_with_known_kid_is_refused(jwks_url: str, signing_key: SigningKey) -> None:
    token = f"{segment({'alg': 'none', 'typ': 'JWT', 'kid': signing_key.kid})}.{segment(claims())}."
    assert await rejected(verifier(jwks_url), token) == "unsupported token algorithm"


async def test_hs256_signed_with_the_public_key_is_refused(jwks_url: str, signing_key: SigningKey) -> None:
    """The classic key-confusion attack: HMAC keyed with the (public) RSA key."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': signing_key.kid})}.{segment(claims())}"
    mac = hmac.new(signing_key.public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64url(mac)}"
    assert await rejected(verifier(jwks_url), token) == "unsupported token algorithm"


async def test_expired(jwks_url: str, signing_key: SigningKey) -> None:
    now = int(time.time())
    token = signing_key.sign(claims(iat=now - 600, nbf=now - 600, exp=now - 60))
    assert await rejected(verifier(jwks_url), token) == "token expired"


async def test_not_yet_valid(jwks_url: str, signing_key: SigningKey) -> None:
    token = signing_key.sign(claims(nbf=int(time.time()) + 600))
    message = await rejected(verifier(jwks_url), token)
    assert message.startswith("invalid token:")
    assert "not yet valid" in message


async def test_wrong_issuer(jwks_url: str, signing_key: SigningKey) -> None:
    message = await rejected(verifier(jwks_url), signing_key.sign(claims(iss="someone-else")))
    assert message == "invalid token: Invalid issuer"


async def test_wrong_audience(jwks_url: str, signing_key: SigningKey) -> None:
    message = await rejected(verifier(jwks_url), signing_key.sign(claims(aud="another-product")))
    assert message == "invalid token: Audience doesn't match"


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud"])
async def test_required_claims(jwks_url: str, signing_key: SigningKey, missing: str) -> None:
    message = await rejected(verifier(jwks_url), signing_key.sign(claims(**{missing: None})))
    assert message == f'invalid token: Token is missing the "{missing}" claim'


async def test_unknown_kid(jwks_url: str) -> None:
    stranger = new_key()
    assert await rejected(verifier(jwks_url), stranger.sign(claims())) == "token signed by an unknown key"


async def test_no_kid(jwks_url: str, signing_key: SigningKey) -> None:
    token = jwt.encode(claims(), signing_key.private, algorithm="RS256")
    assert await rejected(verifier(jwks_url), token) == "token signed by an unknown key"


async def test_known_kid_but_other_key(jwks_url: str, signing_key: SigningKey) -> None:
    impostor = new_key()
    message = await rejected(verifier(jwks_url), impostor.sign(claims(), kid=signing_key.kid))
    assert message == "invalid token: Signature verification failed"


async def test_tampered_payload(jwks_url: str, signing_key: SigningKey) -> None:
    header, _payload, signature = signing_key.sign(claims()).split(".")
    escalated = segment(claims(permissions=["*"]))
    message = await rejected(verifier(jwks_url), f"{header}.{escalated}.{signature}")
    assert message == "invalid token: Signature verification failed"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9", "...."])
async def test_malformed(jwks_url: str, token: str) -> None:
    assert await rejected(verifier(jwks_url), token) == "malformed token"


async def test_unreachable_jwks_rejects_instead_of_crashing(signing_key: SigningKey) -> None:
    from shared.tests.support import free_port

    v = verifier(f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")
    assert (
        await rejected(v, signing_key.sign(claims()))
        == "cannot verify tokens: the auth service's JWKS is unreachable"
    )


async def test_revoked_session_in_memory(jwks_url: str, signing_key: SigningKey) -> None:
    store = InMemoryRevocationStore()
    v = verifier(jwks_url, store)
    c = claims()
    token = signing_key.sign(c)
    other = signing_key.sign(claims())
    await v.verify(token)
    await store.revoke_session(c["sid"], 60)
    assert await rejected(v, token) == "session revoked"
    assert (await v.verify(other)).session_id != c["sid"]  # only that session


async def test_in_memory_revocation_expires() -> None:
    store = InMemoryRevocationStore()
    await store.revoke_session("s1", 0)
    assert not await store.is_session_revoked("s1")
    await store.revoke_session("s2", 60)
    assert await store.is_session_revoked("s2")
    assert not await store.is_session_revoked("never-revoked")


async def test_revoked_session_in_redis(jwks_url: str, signing_key: SigningKey, redis: Redis) -> None:
    store = RedisRevocationStore(redis)
    v = verifier(jwks_url, store)
    c = claims()
    token = signing_key.sign(c)
    await v.verify(token)
    await store.revoke_session(c["sid"], 60)
    assert await rejected(v, token) == "session revoked"
    ttl = await redis.ttl(f"opsc:revoked:session:{c['sid']}")
    assert 0 < ttl <= 60


async def test_redis_revocation_outlives_processes(redis_url: str) -> None:
    """A second client (another replica) sees the revocation; ttl 0 still stores it for a second."""
    sid = str(uuid.uuid4())
    writer, reader = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        await RedisRevocationStore(writer).revoke_session(sid, 0)
        assert await RedisRevocationStore(reader).is_session_revoked(sid)
        assert not await RedisRevocationStore(reader).is_session_revoked(str(uuid.uuid4()))
    finally:
        await writer.aclose()
        await reader.aclose()


def test_identity_has() -> None:
    def who(*perms: str) -> Identity:
        return Identity(subject="u", kind="user", permissions=frozenset(perms))

    assert who("*").has("targets:write")
    assert who("*").has("anything:at:all")
    assert who("targets:*").has("targets:write")
    assert who("targets:*").has("targets:connect")
    assert not who("targets:*").has("jobs:read")
    assert who("targets:read").has("targets:read")
    assert not who("targets:read").has("targets:write")
    assert not who("targets:read").has("targets")
    assert not who("targets").has("targets:read")
    assert not who().has("targets:read")
    assert who("auth:*").has("auth:credentials:write")


def test_identity_from_claims_defaults() -> None:
    identity = Identity.from_claims({"sub": 42})
    assert identity.subject == "42"
    assert identity.kind == "user"
    assert identity.permissions == frozenset()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("BEARER abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token

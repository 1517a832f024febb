"""Fixtures for the shared library's tests: a Redis database of their own, an RSA key and its JWKS."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import RedisStreamsEventBus
from shared.tests.support import serve

REDIS_BASE = os.environ.get("OPSC_TEST_REDIS", "redis://127.0.0.1:6379")
OUTBOX_MODELS = "shared.tests.outbox_models"
OUTBOX_MIGRATIONS = "shared.tests.outbox_migrations"
ISSUER = "opsconductor-auth"
AUDIENCE = "opsconductor"


@pytest_asyncio.fixture(scope="session")
async def redis_url() -> str:
    """A random Redis logical database (1-15), flushed once. Keys and streams in these tests are
    unique per test, so a concurrent session that picks the same database cannot confuse them."""
    taken = os.environ.get("OPSC_REDIS_URL", "")  # the platform fixture's database, when it runs
    choices = [n for n in range(1, 16) if not taken.endswith(f"/{n}")]
    url = f"{REDIS_BASE}/{random.choice(choices)}"  # noqa: S311 - not security
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url


@pytest_asyncio.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@dataclass
class SigningKey:
    """An RS256 key as the auth service holds one: the private key and its ``kid``."""

    kid: str
    private: rsa.RSAPrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwk(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


def new_key() -> SigningKey:
    return SigningKey(
        kid=f"k-{uuid.uuid4().hex[:8]}",
        private=rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return new_key()


@pytest_asyncio.fixture(scope="session")
async def jwks_url(signing_key: SigningKey) -> AsyncIterator[str]:
    """A real HTTP JWKS endpoint listing ``signing_key`` (what auth serves at /.well-known/jwks.json)."""

    async def jwks(_: Request) -> JSONResponse:
        return JSONResponse({"keys": [signing_key.jwk()]})

    async with serve(Starlette(routes=[Route("/.well-known/jwks.json", jwks)])) as base:
        yield f"{base}/.well-known/jwks.json"


@pytest_asyncio.fixture
async def outbox_db(tmp_path: Path) -> AsyncIterator[ServiceDatabase]:
    """A service database (SQLite file, migrations applied) with the test outbox models.

    Tests bind it themselves (``with outbox_db.bind():``), as code outside a request must."""
    db = ServiceDatabase(
        service="outboxtest",
        url=f"sqlite://{tmp_path / 'outboxtest.sqlite3'}",
        models_module=OUTBOX_MODELS,
        migrations_module=OUTBOX_MIGRATIONS,
    )
    await db.start()
    try:
        yield db
    finally:
        await db.stop()


@pytest_asyncio.fixture
async def buses(redis_url: str) -> AsyncIterator[Callable[..., RedisStreamsEventBus]]:
    """Make Redis Streams buses (each with its own connection, like separate processes); stops them all."""
    made: list[tuple[RedisStreamsEventBus, Redis]] = []

    def make(consumer: str, **kwargs: object) -> RedisStreamsEventBus:
        client = Redis.from_url(redis_url)
        bus = RedisStreamsEventBus(client, consumer=consumer, **kwargs)  # type: ignore[arg-type]
        made.append((bus, client))
        return bus

    yield make
    for bus, client in made:
        await bus.stop()
        await client.aclose()

"""Tokens an attacker (or a stolen key) could craft, for the security tests.

``real_signer`` reads the auth service's current private signing key the way auth itself does (its
KeyRing file under OPSC_DATA_DIR decrypts the row in auth's database), so tests can build tokens
with a *valid* signature and bad claims: only the claim checks can then refuse them.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from tests.support.platform import RunningPlatform


@dataclass
class RealSigner:
    kid: str
    private_key: Any

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, algorithm: str = "RS256") -> str:
        return jwt.encode(claims, self.private_key, algorithm=algorithm, headers={"kid": kid or self.kid})


async def real_signer(platform: RunningPlatform) -> RealSigner:
    import asyncpg
    from cryptography.hazmat.primitives import serialization

    from opsconductor_shared.crypto import KeyRing

    spec = os.environ.get("OPSC_AUTH_ENCRYPTION_KEYS")
    keyring = (
        KeyRing.parse(spec)
        if spec
        else KeyRing.parse((Path(os.environ["OPSC_DATA_DIR"]) / "auth.keys").read_text().strip())
    )
    conn = await asyncpg.connect(platform.databases["auth"].replace("postgres://", "postgresql://", 1))
    try:
        row = await conn.fetchrow(
            "SELECT kid, private_key_encrypted FROM signing_keys WHERE active ORDER BY created_at DESC LIMIT 1"
        )
    finally:
        await conn.close()
    assert row is not None, "auth has no signing key"
    pem = keyring.decrypt(row["private_key_encrypted"], aad=row["kid"].encode())
    return RealSigner(kid=row["kid"], private_key=serialization.load_pem_private_key(pem, password=None))


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a real token, unverified (a template for crafted ones)."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def bad_claim_variants(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Claims that a correct signature must not make acceptable."""
    now = int(time.time())
    fresh = dict(template, iat=now - 5, exp=now + 600)
    fresh.pop("nbf", None)
    return {
        "expired": dict(fresh, iat=now - 3600, exp=now - 600),
        "not yet valid (nbf)": dict(fresh, nbf=now + 3600, exp=now + 7200),
        "issued in the future (iat)": dict(fresh, iat=now + 3600, exp=now + 7200),
        "wrong issuer": dict(fresh, iss="someone-else"),
        "wrong audience": dict(fresh, aud="another-app"),
        "no expiry": {k: v for k, v in fresh.items() if k != "exp"},
    }


def fresh_claims(template: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    claims = dict(template, iat=now - 5, exp=now + 600)
    claims.pop("nbf", None)
    return claims


def b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unsigned(claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."

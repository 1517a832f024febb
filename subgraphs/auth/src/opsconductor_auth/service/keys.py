"""RS256 signing keys and rotation (:class:`KeyManager`), the tokens auth signs (:class:`TokenIssuer`),
and service tokens (each internal service's own secret, :class:`ServiceSecrets`)."""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from opsconductor_auth.errors import LoginFailed
from opsconductor_auth.models import ApiKey, Credential, SigningKey
from opsconductor_auth.settings import Settings
from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.logging import get_logger
from opsconductor_shared.settings import (
    KNOWN_DEFAULT_SECRETS,
    InsecureSettings,
    ServiceSettings,
    check_service_secret,
    secret_sha256,
)

if TYPE_CHECKING:
    from opsconductor_auth.service.deps import Deps

log = get_logger("opsconductor.auth")

# What each internal service may do with its service token (audience-bound, short-lived).
SERVICE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "users": ("auth:credentials:write",),
    "targets": ("targets:read",),
    "jobs": ("targets:read",),
    "executions": ("jobs:read", "targets:read", "targets:connect"),
    "schedules": ("jobs:read", "jobs:execute", "executions:read", "users:read"),
    "audit": (),  # system health: the engine's /engine on executions (any service token)
    "auth": (),
}
SERVICE_TOKEN_MINUTES = 10


def now() -> datetime:
    return datetime.now(UTC)


def keyring_of(settings: Settings) -> KeyRing:
    """Auth's key ring for signing keys at rest: ``OPSC_AUTH_ENCRYPTION_KEYS``, else the key file."""
    spec = settings.encryption_keys.get_secret_value() if settings.encryption_keys is not None else None
    return KeyRing.load_or_create(spec, settings.data_dir / "auth.keys")


# ---- signing keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationResult:
    kid: str  # the new current key
    listed: list[str]  # what JWKS lists now, newest first
    retired: list[str]  # removed from JWKS by this rotation


class KeyManager:
    """RS256 signing keys stored encrypted in auth's database; JWKS lists every non-retired key.

    The newest active row is the current key. ``sign`` looks it up on every call (one indexed
    query on a tiny table), so a rotation made by ``opsconductor rotate-signing-key`` (another
    process) takes effect at once in every auth replica, without a restart.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self._private: dict[str, Any] = {}

    async def ensure_key(self) -> None:
        if await self._current() is None:
            await self.rotate(retain_seconds=0)

    async def _current(self) -> SigningKey | None:
        return await SigningKey.filter(active=True, superseded_at=None).order_by("-created_at").first()

    def _load(self, row: SigningKey) -> Any:
        if row.kid not in self._private:
            pem = self.keyring.decrypt(row.private_key_encrypted, aad=row.kid.encode())
            self._private[row.kid] = serialization.load_pem_private_key(pem, password=None)
        return self._private[row.kid]

    async def rotate(self, *, retain_seconds: int) -> RotationResult:
        """Create a new current key. Earlier keys stay in JWKS (tokens they signed keep verifying)
        until they have been superseded for longer than ``retain_seconds`` (the longest lifetime of a
        token signed with them) and no live API key was signed with them; then they are retired:
        out of JWKS, private key erased."""
        at = now()
        await SigningKey.filter(active=True, superseded_at=None).update(superseded_at=at)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = f"k-{at:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        await SigningKey.create(
            kid=kid, private_key_encrypted=self.keyring.encrypt(pem, aad=kid.encode()), public_jwk=jwk
        )
        retired: list[str] = []
        cutoff = at - timedelta(seconds=retain_seconds)
        for old in await SigningKey.filter(active=True, superseded_at__lte=cutoff):
            # API keys live for months and carry the kid of the key current when they were made.
            in_use = await ApiKey.filter(
                revoked_at=None,
                expires_at__gt=at,
                created_at__gte=old.created_at,
                created_at__lt=old.superseded_at,
            ).exists()
            if in_use:
                continue
            old.active = False
            old.private_key_encrypted = ""
            await old.save(update_fields=["active", "private_key_encrypted"])
            self._private.pop(old.kid, None)
            retired.append(old.kid)
        listed = [r.kid for r in await SigningKey.filter(active=True).order_by("-created_at")]
        return RotationResult(kid=kid, listed=listed, retired=retired)

    async def jwks(self) -> dict[str, Any]:
        rows = await SigningKey.filter(active=True).order_by("-created_at")
        return {"keys": [r.public_jwk for r in rows]}

    async def sign(self, claims: dict[str, Any]) -> str:
        row = await self._current()
        if row is None:
            raise RuntimeError("no signing key: auth has not started")
        return jwt.encode(claims, self._load(row), algorithm="RS256", headers={"kid": row.kid})


def token_retention_seconds(settings: Settings) -> int:
    """How long a superseded key must stay in JWKS: the longest access/service token lifetime + 1 min."""
    return max(settings.access_token_minutes, SERVICE_TOKEN_MINUTES) * 60 + 60


# ---- the tokens auth signs --------------------------------------------------------------------


class TokenIssuer:
    """Builds and signs auth's three kinds of token: user access tokens, API keys, service tokens."""

    def __init__(self, keys: KeyManager, *, issuer: str, audience: str, access_minutes: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_minutes = access_minutes

    @classmethod
    def from_settings(cls, keys: KeyManager, settings: Settings) -> TokenIssuer:
        return cls(
            keys,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            access_minutes=settings.access_token_minutes,
        )

    @property
    def revocation_seconds(self) -> int:
        """How long a revoked session stays on the revocation list: an access token's lifetime + 1 min."""
        return self.access_minutes * 60 + 60

    async def access(self, cred: Credential, session_id: str) -> tuple[str, datetime]:
        issued = now()
        expires = issued + timedelta(minutes=self.access_minutes)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": cred.user_id,
            "kind": "user",
            "username": cred.username,
            "roles": list(cred.roles),
            "permissions": list(cred.permissions),
            "sid": session_id,
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "nbf": int(issued.timestamp()) - 5,
            "exp": int(expires.timestamp()),
        }
        return await self.keys.sign(claims), expires

    async def api_key(
        self,
        *,
        owner: Credential,
        key_id: uuid.UUID,
        permissions: list[str],
        issued: datetime,
        expires: datetime,
    ) -> str:
        """An API key is a signed token whose ``sid`` is the key's id (revoked like a session)."""
        return await self.keys.sign(
            {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": owner.user_id,
                "kind": "api_key",
                "username": owner.username,
                "roles": [],
                "permissions": permissions,
                "sid": f"apikey:{key_id}",
                "jti": uuid.uuid4().hex,
                "iat": int(issued.timestamp()),
                "exp": int(expires.timestamp()),
            }
        )

    async def service(self, service: str) -> tuple[str, float]:
        issued = now()
        expires = issued + timedelta(minutes=SERVICE_TOKEN_MINUTES)
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": f"service:{service}",
            "kind": "service",
            "permissions": list(SERVICE_PERMISSIONS[service]),
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return await self.keys.sign(claims), expires.timestamp()


# ---- service tokens (H1) ----------------------------------------------------------------------


class ServiceSecrets:
    """The SHA-256 of each service's own secret: a secret is accepted only for its own service,
    so one service's secret cannot mint another service's token."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = {name: bytes.fromhex(h) for name, h in hashes.items()}

    @classmethod
    def from_settings(
        cls, settings: ServiceSettings, services: Iterable[str] = SERVICE_PERMISSIONS
    ) -> ServiceSecrets:
        """Hashes of the known services' secrets (OPSC_SERVICE_SECRET_SHA256_<NAME>, else the
        hash of OPSC_SERVICE_SECRET_<NAME>). A published default or too short secret stops auth;
        a service without one simply gets no token (logged)."""
        hashes: dict[str, str] = {}
        for name in services:
            given = settings.service_secret_hashes.get(name)
            if given:
                h = given.strip().lower()
                if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                    raise InsecureSettings(
                        f"OPSC_SERVICE_SECRET_SHA256_{name.upper()} is not a SHA-256 hex digest"
                    )
                if h in {secret_sha256(k) for k in KNOWN_DEFAULT_SECRETS}:
                    raise InsecureSettings(
                        f"OPSC_SERVICE_SECRET_SHA256_{name.upper()} hashes a published default"
                    )
                hashes[name] = h
                continue
            secret = settings.service_secrets.get(name)
            if secret is None:
                log.warning("no secret configured for a service: it cannot get service tokens", service=name)
                continue
            hashes[name] = secret_sha256(check_service_secret(name, secret.get_secret_value()))
        return cls(hashes)

    def accepts(self, service: str, secret: str) -> bool:
        expected = self._hashes.get(service)
        if expected is None or not secret or secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
            return False
        return hmac.compare_digest(bytes.fromhex(secret_sha256(secret)), expected)


async def service_token(*, deps: Deps, service: str, secret: str) -> tuple[str, float]:
    """A 10-minute token with ``service``'s own permissions, for that service's own secret only."""
    if service not in SERVICE_PERMISSIONS or not deps.service_secrets.accepts(service, secret):
        raise LoginFailed("service credentials rejected")
    return await deps.tokens.service(service)

"""Verified identity and permission checks, identical in every subgraph.

Tokens are RS256 JWTs issued by the auth service and verified locally against its JWKS (PyJWT's
client, cached). Over HTTP the token comes from ``Authorization: Bearer``; over WebSocket from
``connectionParams.authorization`` (Strawberry ignores ``extensions`` on subscribe). Every root
field declares its permission with :func:`requires` (or :class:`Public` for login-type fields), so
a test can walk the schema and find any field that forgot. Entity resolvers (``resolve_reference``,
reached through ``_entities``) declare theirs with :func:`entity_permission`, for the same reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
import jwt
import strawberry
from jwt import PyJWKClient
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.permission import BasePermission

UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"


@dataclass(frozen=True)
class Identity:
    """Who is calling: a user (via a session), or a service."""

    subject: str
    kind: str  # "user" | "service"
    username: str | None = None
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = field(default_factory=frozenset[str])
    session_id: str | None = None
    token_id: str | None = None
    expires_at: float | None = None

    def has(self, permission: str) -> bool:
        if "*" in self.permissions or permission in self.permissions:
            return True
        resource = permission.split(":", 1)[0]
        return f"{resource}:*" in self.permissions

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> Identity:
        return cls(
            subject=str(claims["sub"]),
            kind=str(claims.get("kind", "user")),
            username=claims.get("username"),
            roles=tuple(claims.get("roles", ())),
            permissions=frozenset(claims.get("permissions", ())),
            session_id=claims.get("sid"),
            token_id=claims.get("jti"),
            expires_at=claims.get("exp"),
        )


class AuthenticationError(Exception):
    """The presented token is not acceptable; the message says why (safe to show)."""


class RevocationStore(Protocol):
    async def revoke_session(self, session_id: str, ttl_seconds: int) -> None: ...
    async def is_session_revoked(self, session_id: str) -> bool: ...


class InMemoryRevocationStore:
    """Revoked session ids for the embedded platform (one process hosts every service)."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def revoke_session(self, session_id: str, ttl_seconds: int) -> None:
        self._until[session_id] = time.time() + ttl_seconds

    async def is_session_revoked(self, session_id: str) -> bool:
        until = self._until.get(session_id)
        if until is None:
            return False
        if until < time.time():
            self._until.pop(session_id, None)
            return False
        return True


class RedisRevocationStore:
    """Revoked session ids in Redis, kept until the longest access token could have expired."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def revoke_session(self, session_id: str, ttl_seconds: int) -> None:
        await self.redis.set(f"opsc:revoked:session:{session_id}", "1", ex=max(ttl_seconds, 1))

    async def is_session_revoked(self, session_id: str) -> bool:
        return bool(await self.redis.exists(f"opsc:revoked:session:{session_id}"))


API_KEY_SID_PREFIX = "apikey:"

ApiKeyFetch = Callable[[str, str], Awaitable[bool]]
"""``(key_id, token_sha256) -> still valid?``: auth's stored state of one API key."""


class CachedApiKeyStatus:
    """Whether an API key is still valid (not revoked or expired, owner active, permissions still
    held), as auth's database says, cached per token for ``ttl`` seconds.

    The revocation list stops a revoked key at once where it is shared; this check is what keeps it
    stopped when the list is lost (embedded mode restarts with an empty one; Redis can evict) or
    not shared (a service without Redis). Failures are not cached; concurrent checks of one token
    share one request.
    """

    def __init__(self, fetch: ApiKeyFetch, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self._fetch = fetch
        self.ttl = ttl
        self.max_entries = max_entries
        self._known: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._pending: dict[str, asyncio.Future[bool]] = {}

    async def is_active(self, key_id: str, token_hash: str) -> bool:
        cached = self._known.get(token_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(token_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[token_hash] = future
        try:
            active = await self._fetch(key_id, token_hash)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._pending.pop(token_hash, None)
        future.set_result(active)
        self._known[token_hash] = (time.monotonic() + self.ttl, active)
        self._known.move_to_end(token_hash)
        while len(self._known) > self.max_entries:
            self._known.popitem(last=False)
        return active


def http_api_key_fetch(auth_url: str, *, timeout: float = 5.0) -> ApiKeyFetch:
    """Ask auth (``POST /internal/api-key-status``); only a holder of the token can ask about it."""
    url = f"{auth_url.rstrip('/')}/internal/api-key-status"

    async def fetch(key_id: str, token_hash: str) -> bool:
        async with httpx.AsyncClient(timeout=timeout) as http:
            resp = await http.post(url, json={"id": key_id, "tokenHash": token_hash})
        resp.raise_for_status()
        return resp.json().get("active") is True

    return fetch


class TokenVerifier:
    """Checks signature (JWKS, by ``kid``), expiry, issuer, audience, session revocation and, for
    API keys, their stored state in auth (:class:`CachedApiKeyStatus`)."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        revocations: RevocationStore,
        cache_seconds: float = 300,
        api_keys: CachedApiKeyStatus | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.revocations = revocations
        self.api_keys = api_keys
        self._jwks = PyJWKClient(jwks_url, cache_keys=True, lifespan=cache_seconds, timeout=5)

    async def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationError("malformed token") from exc
        if header.get("alg") != "RS256":
            raise AuthenticationError("unsupported token algorithm")
        try:
            # PyJWKClient does blocking I/O on a cache miss: keep it off the event loop.
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError("cannot verify tokens: the auth service's JWKS is unreachable") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationError("token signed by an unknown key") from exc
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        identity = Identity.from_claims(claims)
        if identity.session_id and await self.revocations.is_session_revoked(identity.session_id):
            raise AuthenticationError("session revoked")
        sid = identity.session_id or ""
        if self.api_keys is not None and (identity.kind == "api_key" or sid.startswith(API_KEY_SID_PREFIX)):
            key_id = sid.removeprefix(API_KEY_SID_PREFIX)
            try:
                active = await self.api_keys.is_active(key_id, hashlib.sha256(token.encode()).hexdigest())
            except Exception as exc:
                raise AuthenticationError(
                    "cannot verify the API key: the auth service did not answer"
                ) from exc
            if not active:
                raise AuthenticationError("API key revoked")
        return identity


def bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# ---- permissions ------------------------------------------------------------------------------


class _AuthContext(Protocol):
    identity: Identity | None
    auth_error: str | None


def _deny(message: str, code: str, **extra: str) -> StrawberryGraphQLError:
    return StrawberryGraphQLError(message, extensions={"code": code, **extra})


def require_identity(context: _AuthContext) -> Identity:
    if context.identity is None:
        raise _deny(context.auth_error or "authentication required", UNAUTHENTICATED)
    return context.identity


def check_permission(context: _AuthContext, permission: str) -> Identity:
    """Raise the typed GraphQL error unless the caller holds ``permission``."""
    identity = require_identity(context)
    if not identity.has(permission):
        raise _deny(f"permission '{permission}' required", FORBIDDEN, permission=permission)
    return identity


class Public(BasePermission):
    """Declares a field open to anonymous callers (login, refreshSession)."""

    required_permission: str | None = None

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        return True


class Authenticated(BasePermission):
    """Any verified caller (`me`, `logout`)."""

    required_permission: str | None = "authenticated"

    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        require_identity(info.context)
        return True


def requires(permission: str) -> type[BasePermission]:
    """A permission class for one `resource:action` permission; denials raise typed errors."""

    class Requires(BasePermission):
        required_permission: str | None = permission

        def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
            check_permission(info.context, permission)
            return True

    Requires.__name__ = f"Requires[{permission}]"
    return Requires


# ---- entity resolvers (`_entities`) --------------------------------------------------------------

AUTHENTICATED = "authenticated"
"""Pseudo-permission for :func:`entity_permission`: any verified caller (user or service)."""

ENTITY_PERMISSION_ATTR = "__opsc_entity_permission__"

_F = TypeVar("_F", bound=Callable[..., Any])


def entity_permission(permission: str) -> Callable[[_F], _F]:
    """Declare and enforce the permission an entity's ``resolve_reference`` needs.

    ``_entities`` is a root field of every subgraph that anyone can call directly, so an entity
    lookup is an operation like any other: it must say who may run it. Put this *under*
    ``@classmethod``. The check runs before the resolver; the wrapper always receives Strawberry's
    ``info`` (it advertises an ``info`` parameter) and passes it on only if the resolver takes it.
    The declaration is recorded on the function (:func:`entity_permission_of`) so the schema
    contract test finds entity types that forgot. ``permission`` is a ``resource:action`` string
    or :data:`AUTHENTICATED`.
    """

    def decorate(func: _F) -> _F:
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        takes_info = "info" in sig.parameters
        if not takes_info:
            info_param = inspect.Parameter("info", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            params = [params[0], info_param, *params[1:]] if params else [info_param]

        def check(info: Any) -> None:
            if permission == AUTHENTICATED:
                require_identity(info.context)
            else:
                check_permission(info.context, permission)

        async def async_wrapper(cls: Any, info: Any, **kwargs: Any) -> Any:
            check(info)
            if takes_info:
                kwargs["info"] = info
            return await func(cls, **kwargs)

        def sync_wrapper(cls: Any, info: Any, **kwargs: Any) -> Any:
            check(info)
            if takes_info:
                kwargs["info"] = info
            return func(cls, **kwargs)

        wrapper: Any = async_wrapper if inspect.iscoroutinefunction(func) else sync_wrapper

        # No __wrapped__: Strawberry reads this signature to decide whether to pass `info`.
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__name__ = func.__name__
        wrapper.__qualname__ = func.__qualname__
        wrapper.__doc__ = func.__doc__
        setattr(wrapper, ENTITY_PERMISSION_ATTR, permission)
        return wrapper  # type: ignore[return-value]

    return decorate


def entity_permission_of(cls: type) -> str | None:
    """The permission declared on ``cls.resolve_reference`` with :func:`entity_permission`, if any."""
    resolver = getattr(cls, "resolve_reference", None)
    return getattr(resolver, ENTITY_PERMISSION_ATTR, None) if resolver is not None else None


# The bootstrap admin has the same id in the users and auth services, so both can create their
# half idempotently at start-up without waiting for each other.
BOOTSTRAP_ADMIN_USERNAME = "admin"
BOOTSTRAP_ADMIN_ID = "00000000-0000-4000-8000-000000000001"

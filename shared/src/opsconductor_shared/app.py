"""The app factory: one Starlette app per subgraph with the same plumbing everywhere.

Routes: ``/graphql`` (HTTP + ``graphql-transport-ws``), ``/health`` (alive), ``/ready`` (database
and Redis reachable), ``/metrics`` (Prometheus). Middleware binds the service's database
context, assigns the correlation id, caps request size and records request metrics. The
lifespan starts the database (with migrations), the outbox relay and the event consumers.
A subgraph's ``app.py`` only says which schema, models and hooks it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar, cast

import strawberry
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from opsconductor_shared.auth import (
    AuthenticationError,
    CachedApiKeyStatus,
    Identity,
    InMemoryRevocationStore,
    RedisRevocationStore,
    RevocationStore,
    TokenVerifier,
    bearer_token,
    http_api_key_fetch,
)
from opsconductor_shared.client import ServiceClient, ServiceTokenProvider
from opsconductor_shared.db import BindDatabaseMiddleware, ServiceDatabase
from opsconductor_shared.errors import ClientErrorsQuietSchema, mask_errors_extension
from opsconductor_shared.events import (
    Broadcaster,
    EventBus,
    EventEnvelope,
    InProcessBroadcaster,
    InProcessEventBus,
    OutboxBase,
    OutboxRelay,
    ProcessedEventBase,
    RedisBroadcaster,
    RedisStreamsEventBus,
    deduplicating,
    prune_events,
)
from opsconductor_shared.logging import correlation_id, get_logger, new_correlation_id
from opsconductor_shared.mutation_audit import audit_mutations
from opsconductor_shared.settings import ServiceSettings
from opsconductor_shared.ws import SERVICE_UNAVAILABLE, RevocationAwareTransportWSHandler

log = get_logger("opsconductor.app")


@dataclass
class Platform:
    """What services share: the event bus, live broadcaster, revocation list and Redis.

    Embedded mode (no ``OPSC_REDIS_URL``) makes in-process versions shared by every service in
    the process; distributed mode gives each process its own Redis-backed ones.
    """

    bus: EventBus
    broadcaster: Broadcaster
    revocations: RevocationStore
    redis: Any | None = None

    @classmethod
    def from_settings(cls, settings: ServiceSettings, *, consumer: str = "opsc") -> Platform:
        if settings.redis_url:
            from redis.asyncio import Redis

            # A Redis that does not answer fails a request in seconds (SERVICE_UNAVAILABLE), not never.
            redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5)  # pyright: ignore[reportUnknownMemberType] - redis types **kwargs loosely
            return cls(
                bus=RedisStreamsEventBus(redis, consumer=f"{consumer}-{socket.gethostname()}-{os.getpid()}"),
                broadcaster=RedisBroadcaster(redis, queue_size=settings.subscription_queue_size),
                revocations=RedisRevocationStore(redis),
                redis=redis,
            )
        return cls(
            bus=InProcessEventBus(),
            broadcaster=InProcessBroadcaster(queue_size=settings.subscription_queue_size),
            revocations=InMemoryRevocationStore(),
        )

    async def close(self) -> None:
        await self.bus.stop()
        close = getattr(self.broadcaster, "close", None)
        if close is not None:
            await close()
        if self.redis is not None:
            await self.redis.aclose()


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
DepsT = TypeVar("DepsT")


@dataclass
class Runtime(Generic[SettingsT, DepsT]):
    """Everything one service needs at run time; built in the entry point, passed to resolvers.

    Generic over the service's own settings class and its collaborators (``deps``), so a
    subgraph's resolvers see both typed: ``Info = strawberry.Info[RequestContext[Settings, Deps], None]``.
    """

    name: str
    settings: SettingsT
    db: ServiceDatabase
    platform: Platform
    verifier: TokenVerifier
    tokens: ServiceTokenProvider
    outbox_model: type[OutboxBase] | None = None
    relay: OutboxRelay | None = None
    deps: DepsT = cast(Any, None)  # noqa: RUF009 - a typed "not set yet" (app.py sets it)
    """The service's own collaborators (service clients, engine, keys), built in its ``app.py``."""
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    """What ``/metrics`` serves: the HTTP metrics, and whatever the service registers here."""
    processed_models: list[type[ProcessedEventBase]] = field(default_factory=list[type[ProcessedEventBase]])
    """The deduplication tables of this service's consumers (pruned with the outbox)."""
    open_subscriptions: dict[str, int] = field(default_factory=dict[str, int])
    """Running WebSocket operations per caller (subject) in this process, for the per-user cap."""
    _clients: dict[str, ServiceClient] = field(default_factory=dict[str, ServiceClient])

    def client(self, url: str, *, timeout: float = 5.0) -> ServiceClient:
        if url not in self._clients:
            self._clients[url] = ServiceClient(url, self.tokens, timeout=timeout)
        return self._clients[url]

    async def close_clients(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    def consume(
        self,
        *,
        sources: Sequence[str],
        types: Sequence[str],
        processed_model: type[ProcessedEventBase],
        handler: Callable[[EventEnvelope], Awaitable[None]],
    ) -> None:
        """Subscribe this service (its own consumer group) to other services' events.

        Only ``types`` reach ``handler``; each event id is handled once (deduplicated in this
        service's database, in the handler's transaction), with this service's database bound.
        """
        wanted = frozenset(types)

        async def on_event(envelope: EventEnvelope) -> None:
            if envelope.type in wanted:
                await handler(envelope)

        once = deduplicating(processed_model, on_event)
        if processed_model not in self.processed_models:
            self.processed_models.append(processed_model)

        async def bound(envelope: EventEnvelope) -> None:
            with self.db.bind():
                await once(envelope)

        self.platform.bus.subscribe(group=self.name, sources=list(sources), handler=bound)

    def events_committed(self) -> None:
        if self.relay is not None:
            self.relay.notify()


@dataclass
class RequestContext(Generic[SettingsT, DepsT]):
    """Strawberry context for one HTTP request or one WebSocket connection."""

    runtime: Runtime[SettingsT, DepsT]
    request: Request | WebSocket | None = None
    response: Response | None = None
    identity: Identity | None = None
    auth_error: str | None = None
    connection_params: dict[str, Any] | None = None
    correlation_id: str | None = None
    loaders: dict[str, Any] = field(default_factory=dict[str, Any])

    @property
    def deps(self) -> DepsT:
        return self.runtime.deps

    @property
    def settings(self) -> SettingsT:
        return self.runtime.settings


class ServiceUnavailableError(Exception):
    """A platform dependency every request needs (Redis, for revocations) is unreachable."""


def _is_backend_outage(exc: Exception) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, RedisError | OSError | TimeoutError)


class ServiceGraphQL(GraphQL):
    """Strawberry's ASGI view with our context: identity from the header or connectionParams."""

    graphql_transport_ws_handler_class = RevocationAwareTransportWSHandler

    def __init__(self, schema: strawberry.federation.Schema, runtime: Runtime[Any, Any]) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=50,
        )
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await super().__call__(scope, receive, tracking_send)
        except ServiceUnavailableError as exc:
            if started:
                raise
            body = {
                "data": None,
                "errors": [{"message": str(exc), "extensions": {"code": SERVICE_UNAVAILABLE}}],
            }
            await JSONResponse(body, status_code=503, headers={"retry-after": "5"})(scope, receive, send)

    # strawberry types the base as returning None
    async def get_context(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, request: Request | WebSocket, response: Any = None
    ) -> RequestContext[Any, Any]:
        ctx = RequestContext(
            runtime=self.runtime, request=request, response=response, correlation_id=correlation_id.get()
        )
        if isinstance(request, Request):
            await self._authenticate(ctx, request.headers.get("authorization"))
        return ctx

    async def _authenticate(self, ctx: RequestContext[Any, Any], header: str | None) -> None:
        token = bearer_token(header)
        if header and token is None:
            ctx.auth_error = "malformed Authorization header (expected 'Bearer <token>')"
            return
        if token is None:
            return
        try:
            ctx.identity = await self.runtime.verifier.verify(token)
        except AuthenticationError as exc:
            ctx.auth_error = str(exc)
        except Exception as exc:
            if not _is_backend_outage(exc):
                raise
            # Fail closed, but say so: the session cannot be checked against the revocation list.
            log.warning("token check unavailable", service=self.runtime.name, error=type(exc).__name__)
            raise ServiceUnavailableError(
                "service temporarily unavailable: cannot check the session (Redis unreachable); retry later"
            ) from exc

    async def on_ws_connect(self, context: RequestContext[Any, Any]) -> dict[str, object] | None:  # type: ignore[override]
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        try:
            await self._authenticate(context, str(header) if header else None)
        except ServiceUnavailableError as exc:
            raise ConnectionRejectionError({"message": str(exc), "code": SERVICE_UNAVAILABLE}) from exc
        if context.identity is None:
            # Every subscription needs a verified caller: refuse the connection itself (close 4403).
            raise ConnectionRejectionError({"message": context.auth_error or "authentication required"})
        return None


def build_schema(
    *, query: type, mutation: type | None = None, subscription: type | None = None, types: Sequence[type] = ()
) -> strawberry.federation.Schema:
    """A federation 2.9 schema with our limits and error masking; every mutation is audited."""
    audit_mutations(mutation)
    return ClientErrorsQuietSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=list(types),
        federation_version="2.9",
        extensions=[
            lambda: QueryDepthLimiter(max_depth=15),
            lambda: MaxTokensLimiter(max_token_count=5000),
            lambda: MaxAliasesLimiter(max_alias_count=30),
            mask_errors_extension,
        ],
    )


# ---- middleware -------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    pass


class _RequestMiddleware:
    """Correlation id, request-size cap and metrics for one service."""

    def __init__(self, app: ASGIApp, *, service: str, max_bytes: int, registry: CollectorRegistry) -> None:
        self.app = app
        self.service = service
        self.max_bytes = max_bytes
        self.requests = Counter(
            "opsc_http_requests_total", "HTTP requests", ["service", "path", "status"], registry=registry
        )
        self.latency = Histogram(
            "opsc_http_request_seconds", "HTTP request latency", ["service", "path"], registry=registry
        )

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = {
            "errors": [
                {
                    "message": f"request body over {self.max_bytes} bytes",
                    "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                }
            ]
        }
        await JSONResponse(body, status_code=413)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        problem = None
        try:
            cid = (headers.get(b"x-correlation-id") or b"").decode()[:64] or new_correlation_id()
        except UnicodeDecodeError:
            cid, problem = new_correlation_id(), "the x-correlation-id header is not valid UTF-8"
        token = correlation_id.set(cid)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)  # a bad correlation id there: a fresh one
                return
            try:
                length = int((headers.get(b"content-length") or b"0").decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                length, problem = 0, problem or "the Content-Length header is not an integer"
            if problem is not None:
                log.info("bad request headers", service=self.service, problem=problem)
                body = {"errors": [{"message": problem, "extensions": {"code": "BAD_REQUEST"}}]}
                await JSONResponse(body, status_code=400, headers={"x-correlation-id": cid})(
                    scope, receive, send
                )
                self.requests.labels(self.service, scope.get("path", ""), "400").inc()
                return
            if length > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            status = {"code": 500, "sent": 0}

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                    status["sent"] = 1
                    message.setdefault("headers", []).append((b"x-correlation-id", cid.encode()))
                await send(message)

            received = 0

            async def receive_capped() -> Message:
                # Content-Length can be absent (chunked uploads): count what actually arrives.
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > self.max_bytes:
                        raise _BodyTooLarge
                return message

            started = time.perf_counter()
            path = scope.get("path", "")
            try:
                await self.app(scope, receive_capped, send_wrapper)
            except _BodyTooLarge:
                if not status["sent"]:
                    await self._too_large(scope, receive, send)
                    status["code"] = 413
            finally:
                self.requests.labels(self.service, path, str(status["code"])).inc()
                self.latency.labels(self.service, path).observe(time.perf_counter() - started)
        finally:
            correlation_id.reset(token)


# ---- factory ----------------------------------------------------------------------------------


async def prune_once(runtime: Runtime[Any, Any]) -> int:
    """L16: delete this service's published outbox rows and processed-event ids past retention."""
    settings = runtime.settings
    with runtime.db.bind():
        return await prune_events(
            runtime.outbox_model,
            runtime.processed_models,
            outbox_older_than=timedelta(hours=settings.outbox_retention_hours),
            processed_older_than=timedelta(hours=settings.processed_events_retention_hours),
        )


async def _prune_periodically(runtime: Runtime[Any, Any]) -> None:
    while True:
        try:
            deleted = await prune_once(runtime)
            if deleted:
                log.info("pruned old event rows", service=runtime.name, deleted=deleted)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("event pruning failed", service=runtime.name, error=type(exc).__name__)
        await asyncio.sleep(runtime.settings.event_prune_interval_seconds)


Hook = Callable[[Runtime[Any, Any]], Awaitable[None]]


def create_service_app(
    *,
    runtime: Runtime[Any, Any],
    schema: strawberry.federation.Schema,
    extra_routes: Sequence[BaseRoute] = (),
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Starlette:
    registry = runtime.metrics
    graphql_app = ServiceGraphQL(schema, runtime)
    background: list[asyncio.Task[None]] = []

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "service": runtime.name})

    async def ready(_: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(runtime.db.ping(), 3)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        if runtime.platform.redis is not None:
            try:
                await asyncio.wait_for(runtime.platform.redis.ping(), 3)
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    async def metrics(_: Request) -> Response:
        return PlainTextResponse(generate_latest(registry).decode(), media_type=CONTENT_TYPE_LATEST)

    async def sdl(_: Request) -> Response:
        return PlainTextResponse(schema.as_str())

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncGenerator[None, None]:
        with runtime.db.bind():
            await runtime.db.start()
            if runtime.outbox_model is not None:
                runtime.relay = OutboxRelay(runtime.outbox_model, runtime.platform.bus)
                background.append(asyncio.create_task(runtime.relay.run(), name=f"{runtime.name}-outbox"))
            if runtime.settings.event_prune_interval_seconds > 0 and (
                runtime.outbox_model is not None or runtime.processed_models
            ):
                background.append(
                    asyncio.create_task(_prune_periodically(runtime), name=f"{runtime.name}-prune")
                )
            for hook in on_startup:
                await hook(runtime)
        log.info("service started", service=runtime.name, url=runtime.settings.base_url)
        try:
            yield
        finally:
            with runtime.db.bind():
                for hook in on_shutdown:
                    with contextlib.suppress(Exception):
                        await hook(runtime)
                for task in background:
                    task.cancel()
                for task in background:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await runtime.close_clients()
                await runtime.db.stop()

    routes: list[BaseRoute] = [
        Route("/graphql", graphql_app, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        Route("/health", health),
        Route("/ready", ready),
        Route("/metrics", metrics),
        Route("/sdl", sdl),
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(BindDatabaseMiddleware, db=runtime.db)
    app.add_middleware(
        _RequestMiddleware,
        service=runtime.name,
        max_bytes=runtime.settings.max_request_bytes,
        registry=registry,
    )
    return app


def build_runtime(
    *,
    name: str,
    settings: SettingsT,
    platform: Platform,
    models_module: str,
    migrations_module: str,
    outbox_model: type[OutboxBase] | None,
    deps: DepsT = cast(Any, None),
) -> Runtime[SettingsT, DepsT]:
    db = ServiceDatabase(
        service=name,
        url=settings.resolved_database_url(name),
        models_module=models_module,
        migrations_module=migrations_module,
    )
    verifier = TokenVerifier(
        jwks_url=settings.jwks_url,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        revocations=platform.revocations,
        api_keys=CachedApiKeyStatus(
            http_api_key_fetch(settings.auth_internal_url), ttl=settings.api_key_check_seconds
        ),
    )
    own_secret = settings.service_secrets.get(name)
    tokens = ServiceTokenProvider(
        auth_url=settings.auth_internal_url,
        service=name,
        secret=own_secret.get_secret_value() if own_secret else None,
    )
    return Runtime(
        name=name,
        settings=settings,
        db=db,
        platform=platform,
        verifier=verifier,
        tokens=tokens,
        outbox_model=outbox_model,
        deps=deps,
    )

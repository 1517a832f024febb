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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import GraphQLError
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
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult

from opsconductor_shared.auth import (
    UNAUTHENTICATED,
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
from opsconductor_shared.errors import mask_errors_extension
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
)
from opsconductor_shared.logging import correlation_id, get_logger, new_correlation_id
from opsconductor_shared.settings import ServiceSettings

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

            redis = Redis.from_url(settings.redis_url)
            return cls(
                bus=RedisStreamsEventBus(redis, consumer=f"{consumer}-{socket.gethostname()}-{os.getpid()}"),
                broadcaster=RedisBroadcaster(redis),
                revocations=RedisRevocationStore(redis),
                redis=redis,
            )
        return cls(
            bus=InProcessEventBus(), broadcaster=InProcessBroadcaster(), revocations=InMemoryRevocationStore()
        )

    async def close(self) -> None:
        await self.bus.stop()
        if self.redis is not None:
            await self.redis.aclose()


@dataclass
class Runtime:
    """Everything one service needs at run time; built in the entry point, passed to resolvers."""

    name: str
    settings: ServiceSettings
    db: ServiceDatabase
    platform: Platform
    verifier: TokenVerifier
    tokens: ServiceTokenProvider
    outbox_model: type[OutboxBase] | None = None
    relay: OutboxRelay | None = None
    deps: Any = None  # the service's own collaborators (service clients, engine, keys)
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    """What ``/metrics`` serves: the HTTP metrics, and whatever the service registers here."""
    _clients: dict[str, ServiceClient] = field(default_factory=dict)

    def client(self, url: str, *, timeout: float = 5.0) -> ServiceClient:
        if url not in self._clients:
            self._clients[url] = ServiceClient(url, self.tokens, timeout=timeout)
        return self._clients[url]

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

        async def bound(envelope: EventEnvelope) -> None:
            with self.db.bind():
                await once(envelope)

        self.platform.bus.subscribe(group=self.name, sources=list(sources), handler=bound)

    def events_committed(self) -> None:
        if self.relay is not None:
            self.relay.notify()


@dataclass
class RequestContext:
    """Strawberry context for one HTTP request or one WebSocket connection."""

    runtime: Runtime
    request: Request | WebSocket | None = None
    response: Response | None = None
    identity: Identity | None = None
    auth_error: str | None = None
    connection_params: dict[str, Any] | None = None
    correlation_id: str | None = None
    loaders: dict[str, Any] = field(default_factory=dict)

    @property
    def deps(self) -> Any:
        return self.runtime.deps


class RevocationAwareTransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws handler whose operations end when the caller's session is revoked.

    The identity is verified once, at ``connection_init``; a subscription can then run for hours.
    Every ``subscription_revocation_check_seconds`` the session is looked up in the revocation
    list, and a revoked one ends each running operation with an ``UNAUTHENTICATED`` error followed
    by ``complete`` (the router passes both on to the client), so logout, revokeSession or a
    deactivated user stop live streams too, not only new requests.
    """

    async def _send_result_stream(self, operation: Operation, result_source: Any) -> None:  # type: ignore[type-arg, override]
        ctx = self.context
        identity = getattr(ctx, "identity", None)
        runtime = getattr(ctx, "runtime", None)
        interval = float(
            getattr(getattr(runtime, "settings", None), "subscription_revocation_check_seconds", 0) or 0
        )
        if identity is None or identity.session_id is None or runtime is None or interval <= 0:
            await super()._send_result_stream(operation, result_source)
            return
        stream = asyncio.create_task(super()._send_result_stream(operation, result_source))
        watcher = asyncio.create_task(self._until_revoked(runtime, identity.session_id, interval))
        try:
            done, _ = await asyncio.wait({stream, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not stream.done() and not watcher.done():  # we were cancelled (client completed)
                stream.cancel()
                watcher.cancel()
        if stream in done:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            stream.result()
            return
        stream.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stream
        log.info("subscription ended: session revoked", service=runtime.name, session=identity.session_id)
        error = GraphQLError("session revoked", extensions={"code": UNAUTHENTICATED})
        await operation.send_next(ExecutionResult(data=None, errors=[error]))

    @staticmethod
    async def _until_revoked(runtime: Runtime, session_id: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if await runtime.platform.revocations.is_session_revoked(session_id):
                    return
            except Exception as exc:  # Redis hiccup: keep the stream, check again next time
                log.warning("revocation check failed", service=runtime.name, error=type(exc).__name__)


class ServiceGraphQL(GraphQL):
    """Strawberry's ASGI view with our context: identity from the header or connectionParams."""

    graphql_transport_ws_handler_class = RevocationAwareTransportWSHandler

    def __init__(self, schema: strawberry.federation.Schema, runtime: Runtime) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql",
            keep_alive=True,
            keep_alive_interval=15,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            max_subscriptions_per_connection=50,
        )
        self.runtime = runtime

    async def get_context(self, request: Request | WebSocket, response: Any = None) -> RequestContext:  # type: ignore[override]
        ctx = RequestContext(
            runtime=self.runtime, request=request, response=response, correlation_id=correlation_id.get()
        )
        if isinstance(request, Request):
            await self._authenticate(ctx, request.headers.get("authorization"))
        return ctx

    async def _authenticate(self, ctx: RequestContext, header: str | None) -> None:
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

    async def on_ws_connect(self, context: RequestContext) -> dict[str, object] | None:  # type: ignore[override]
        params = context.connection_params or {}
        header = params.get("authorization") or params.get("Authorization")
        await self._authenticate(context, str(header) if header else None)
        if context.identity is None:
            # Every subscription needs a verified caller: refuse the connection itself (close 4403).
            raise ConnectionRejectionError({"message": context.auth_error or "authentication required"})
        return None


def build_schema(
    *, query: type, mutation: type | None = None, subscription: type | None = None, types: Sequence[type] = ()
) -> strawberry.federation.Schema:
    """A federation 2.9 schema with our limits and error masking."""
    return strawberry.federation.Schema(
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
        cid = (headers.get(b"x-correlation-id") or b"").decode()[:64] or new_correlation_id()
        token = correlation_id.set(cid)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            length = int(headers.get(b"content-length", b"0") or 0)
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

Hook = Callable[[Runtime], Awaitable[None]]


def create_service_app(
    *,
    runtime: Runtime,
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
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        with runtime.db.bind():
            await runtime.db.start()
            if runtime.outbox_model is not None:
                runtime.relay = OutboxRelay(runtime.outbox_model, runtime.platform.bus)
                background.append(asyncio.create_task(runtime.relay.run(), name=f"{runtime.name}-outbox"))
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
                for client in runtime._clients.values():
                    await client.aclose()
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
    settings: ServiceSettings,
    platform: Platform,
    models_module: str,
    migrations_module: str,
    outbox_model: type[OutboxBase] | None,
    deps: Any = None,
) -> Runtime:
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

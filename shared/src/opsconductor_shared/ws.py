"""graphql-transport-ws handling every subgraph shares: a subscription ends with its caller's
session (revoked) or access token (expired), and one caller holds a bounded number of them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.execution import ExecutionResult

from opsconductor_shared.auth import UNAUTHENTICATED, Identity
from opsconductor_shared.logging import get_logger

if TYPE_CHECKING:
    from opsconductor_shared.app import Runtime

log = get_logger("opsconductor.ws")

SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
RATE_LIMITED = "RATE_LIMITED"
TOKEN_EXPIRED_MESSAGE = "access token expired: refresh it and subscribe again with the new token"  # noqa: S105 - not a secret


class RevocationAwareTransportWSHandler(BaseGraphQLTransportWSHandler):  # type: ignore[type-arg]
    """graphql-transport-ws handler whose operations end with the caller's session or token.

    The identity is verified once, at ``connection_init``; a subscription can then run for hours.
    Every ``subscription_revocation_check_seconds`` the session is looked up in the revocation
    list, and a revoked one ends each running operation with an ``UNAUTHENTICATED`` error followed
    by ``complete`` (the router passes both on to the client), so logout, revokeSession or a
    deactivated user stop live streams too, not only new requests. The same happens when the
    access token's ``exp`` passes: since an access token outlives neither its session's idle
    timeout nor its absolute end by more than its own lifetime, a subscription ends with them too.

    A caller holds at most ``max_subscriptions_per_user`` running operations in this process
    (over all its connections); more are refused with a ``RATE_LIMITED`` error.
    """

    async def run_operation(self, operation: Operation) -> None:  # type: ignore[type-arg, override]
        ctx = self.context
        identity: Identity | None = getattr(ctx, "identity", None)
        runtime: Runtime[Any, Any] | None = getattr(ctx, "runtime", None)
        cap = int(getattr(getattr(runtime, "settings", None), "max_subscriptions_per_user", 0) or 0)
        if identity is None or runtime is None or cap <= 0:
            await super().run_operation(operation)
            return
        counts, key = runtime.open_subscriptions, identity.subject
        if counts.get(key, 0) >= cap:
            log.info("subscription refused: per-user cap", service=runtime.name, subject=key, cap=cap)
            error = GraphQLError(
                f"too many open subscriptions: at most {cap} per user; end one first",
                extensions={"code": RATE_LIMITED},
            )
            await operation.send_initial_errors([error])
            return
        counts[key] = counts.get(key, 0) + 1
        try:
            await super().run_operation(operation)
        finally:
            counts[key] -= 1
            if counts[key] <= 0:
                counts.pop(key, None)

    async def _send_result_stream(self, operation: Operation, result_source: Any) -> None:  # type: ignore[type-arg, override]
        ctx = self.context
        identity = getattr(ctx, "identity", None)
        runtime = getattr(ctx, "runtime", None)
        interval = float(
            getattr(getattr(runtime, "settings", None), "subscription_revocation_check_seconds", 0) or 0
        )
        watch_session = identity is not None and identity.session_id is not None and interval > 0
        watch_expiry = identity is not None and identity.expires_at is not None
        if runtime is None or not (watch_session or watch_expiry):
            await super()._send_result_stream(operation, result_source)
            return
        assert identity is not None
        stream = asyncio.create_task(super()._send_result_stream(operation, result_source))
        watcher = asyncio.create_task(self._until_ended(runtime, identity, interval if watch_session else 0))
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
        message = watcher.result()
        log.info(f"subscription ended: {message}", service=runtime.name, session=identity.session_id)
        error = GraphQLError(message, extensions={"code": UNAUTHENTICATED})
        await operation.send_next(ExecutionResult(data=None, errors=[error]))

    @staticmethod
    async def _until_ended(runtime: Runtime[Any, Any], identity: Identity, interval: float) -> str:
        """Return why the caller's stream must end: its token expired or its session was revoked.
        ``interval`` 0: the token's expiry only."""
        while True:
            left = identity.expires_at - time.time() if identity.expires_at is not None else None
            if left is not None and left <= 0:
                return TOKEN_EXPIRED_MESSAGE
            waits = [w for w in (left, interval if interval > 0 else None) if w is not None]
            await asyncio.sleep(min(waits))
            if identity.expires_at is not None and time.time() >= identity.expires_at:
                return TOKEN_EXPIRED_MESSAGE
            if interval <= 0 or identity.session_id is None:
                continue
            try:
                if await runtime.platform.revocations.is_session_revoked(identity.session_id):
                    return "session revoked"
            except Exception as exc:  # Redis hiccup: keep the stream, check again next time
                log.warning("revocation check failed", service=runtime.name, error=type(exc).__name__)

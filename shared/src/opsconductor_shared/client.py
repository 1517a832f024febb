"""Service-to-service calls: GraphQL over HTTP with a short-lived service token.

Services never read each other's databases; when one needs another's data it calls that
service's subgraph directly (not through the router) with :class:`ServiceClient`. The token
comes from the auth service (``POST /internal/service-token``), is cached until shortly before
it expires, and carries the calling service's own permissions.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from opsconductor_shared.logging import correlation_id, get_logger

log = get_logger("opsconductor.client")


class ServiceCallError(Exception):
    """Another service could not be reached or answered with errors."""


class ServiceTokenProvider:
    def __init__(self, *, auth_url: str, service: str, secret: str | None, timeout: float = 5.0) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.service = service
        self._secret = secret
        self.timeout = timeout
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token and time.time() < self._expires - 30:
                return self._token
            if not self._secret:
                raise ServiceCallError(
                    f"no service secret for {self.service}: set OPSC_SERVICE_SECRET_{self.service.upper()}"
                )
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                resp = await http.post(
                    f"{self.auth_url}/internal/service-token",
                    json={"service": self.service, "secret": self._secret},
                )
            if resp.status_code != 200:
                raise ServiceCallError(f"auth refused a service token for {self.service}: {resp.text[:200]}")
            body = resp.json()
            token = str(body["token"])
            self._token, self._expires = token, float(body["expiresAt"])
            return token


class ServiceClient:
    """GraphQL over HTTP to one subgraph, with timeouts and retries with jittered backoff.

    Only idempotent reads should be retried blindly; pass ``retries=0`` for mutations.
    """

    def __init__(
        self,
        url: str,
        tokens: ServiceTokenProvider | None,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        self.url = url
        self.tokens = tokens
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def execute(
        self, query: str, variables: dict[str, Any] | None = None, *, retries: int | None = None
    ) -> dict[str, Any]:
        attempts = (self.retries if retries is None else retries) + 1
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                headers = {"content-type": "application/json"}
                if self.tokens is not None:
                    headers["authorization"] = f"Bearer {await self.tokens.token()}"
                cid = correlation_id.get()
                if cid:
                    headers["x-correlation-id"] = cid
                resp = await self._http.post(
                    self.url, json={"query": query, "variables": variables or {}}, headers=headers
                )
                if resp.status_code >= 500:
                    raise ServiceCallError(f"{self.url} answered {resp.status_code}")
                try:
                    body = resp.json()
                except ValueError as exc:  # a proxy's or framework's error page, not GraphQL
                    raise ServiceCallError(f"{self.url} answered {resp.status_code} without JSON") from exc
                if body.get("errors"):
                    raise ServiceCallError("; ".join(e.get("message", "?") for e in body["errors"]))
                return body["data"]
            except (httpx.TransportError, ServiceCallError) as exc:
                last = exc
                retryable = isinstance(exc, httpx.TransportError) or "answered 5" in str(exc)
                if not retryable or attempt == attempts - 1:
                    break
                delay = self.backoff * (2**attempt) * (0.5 + random.random())  # noqa: S311 - jitter
                log.warning(
                    "service call failed; retrying", url=self.url, attempt=attempt + 1, error=str(exc)
                )
                await asyncio.sleep(delay)
        if isinstance(last, ServiceCallError):
            raise last
        raise ServiceCallError(f"{self.url} unreachable: {last}") from last

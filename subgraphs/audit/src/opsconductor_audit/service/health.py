"""System health (API.md ``systemHealth``): every service's ``/ready``, the router's
``/readiness``, this service's database, Redis and the Ray engine, each with its latency.

A component is OK (ready), DEGRADED (it answers but is not ready, or is slow) or DOWN (it does
not answer). The whole is OK when every component is, DOWN when this service's database or every
service is down, DEGRADED otherwise. :class:`HealthMonitor` checks periodically (all probes
concurrently, each bounded), publishes ``systemHealthChanged`` when a status changes, and reports
each component that leaves OK (``audit.health_degraded``) or returns to it
(``audit.health_recovered``) as an audit event, which the default "Service degraded" rule turns
into an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from opsconductor_shared.events import Broadcaster
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit.health")

OK, DEGRADED, DOWN = "OK", "DEGRADED", "DOWN"
HEALTH_CHANNEL = "audit.system_health"
HEALTH_DEGRADED = "audit.health_degraded"
HEALTH_RECOVERED = "audit.health_recovered"


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    kind: str  # service | router | database | redis | ray
    status: str
    latency_ms: float | None
    detail: str


@dataclass(frozen=True)
class RayActor:
    name: str
    kind: str  # pool | coordinator
    state: str  # ALIVE | DEAD | UNREACHABLE


@dataclass(frozen=True)
class RayHealth:
    status: str
    nodes: int
    alive_nodes: int
    actors: tuple[RayActor, ...]
    failed_actors: int
    latency_ms: float | None
    detail: str


@dataclass(frozen=True)
class SystemHealthReport:
    status: str
    checked_at: datetime
    services: tuple[ComponentHealth, ...]
    ray: RayHealth | None = None

    def statuses(self) -> dict[str, str]:
        out = {c.name: c.status for c in self.services}
        if self.ray is not None:
            out["ray"] = self.ray.status
        return out


Probe = Callable[[], Awaitable[ComponentHealth]]
RayProbe = Callable[[], Awaitable[RayHealth]]
Reporter = Callable[[Sequence[Mapping[str, Any]]], Awaitable[None]]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def ready_url(graphql_url: str) -> str:
    base = graphql_url.rsplit("/graphql", 1)[0] if graphql_url.endswith("/graphql") else graphql_url
    return base.rstrip("/") + "/ready"


def http_probe(
    client: httpx.AsyncClient,
    name: str,
    url: str,
    *,
    kind: str = "service",
    timeout: float = 3.0,
    slow_ms: float = 2000.0,
) -> Probe:
    """GET ``url``: 2xx OK (DEGRADED when slower than ``slow_ms``), another answer DEGRADED, none DOWN."""

    async def probe() -> ComponentHealth:
        started = time.perf_counter()
        try:
            response = await client.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return ComponentHealth(name, kind, DOWN, None, f"no answer: {type(exc).__name__}")
        latency = _ms(started)
        if response.status_code // 100 != 2:
            detail = f"HTTP {response.status_code}"
            with contextlib.suppress(ValueError):
                checks = response.json().get("checks")
                if isinstance(checks, dict):
                    bad = {k: v for k, v in checks.items() if v != "ok"}  # pyright: ignore[reportUnknownVariableType]
                    detail += f": {json.dumps(bad)[:200]}"
            return ComponentHealth(name, kind, DEGRADED, latency, detail)
        if latency > slow_ms:
            return ComponentHealth(name, kind, DEGRADED, latency, f"slow ({latency:.0f} ms)")
        return ComponentHealth(name, kind, OK, latency, "ready")

    return probe


def call_probe(name: str, kind: str, check: Callable[[], Awaitable[Any]], *, timeout: float = 3.0) -> Probe:
    """OK when ``check()`` returns within ``timeout``; DOWN when it raises or times out."""

    async def probe() -> ComponentHealth:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(), timeout)
        except Exception as exc:
            return ComponentHealth(name, kind, DOWN, None, f"error: {type(exc).__name__}")
        return ComponentHealth(name, kind, OK, _ms(started), "ok")

    return probe


def ray_http_probe(
    client: httpx.AsyncClient, url: str, token: Callable[[], Awaitable[str]], *, timeout: float = 10.0
) -> RayProbe:
    """The engine's health as the executions service reports it (``GET /engine`` with a service
    token: nodes, the pool and coordinator actors). Unreachable: DOWN with the reason."""

    async def probe() -> RayHealth:
        started = time.perf_counter()
        try:
            headers = {"authorization": f"Bearer {await token()}"}
            response = await client.get(url, timeout=timeout, headers=headers)
            body = response.json()
        except Exception as exc:  # no answer, no token (auth down), not JSON
            return RayHealth(DOWN, 0, 0, (), 0, None, f"no answer: {type(exc).__name__}")
        latency = _ms(started)
        if not isinstance(body, dict):
            return RayHealth(DOWN, 0, 0, (), 0, latency, f"HTTP {response.status_code}")
        actors = tuple(
            RayActor(str(a.get("name")), str(a.get("kind")), str(a.get("state")))
            for a in body.get("actors") or []  # pyright: ignore[reportUnknownVariableType]
            if isinstance(a, dict)
        )
        failed = sum(1 for a in actors if a.state != "ALIVE")
        nodes = int(body.get("nodes") or 0)  # pyright: ignore[reportUnknownArgumentType]
        alive = int(body.get("aliveNodes") or 0)  # pyright: ignore[reportUnknownArgumentType]
        if response.status_code // 100 != 2 or alive == 0:
            status = DOWN
        elif failed or alive < nodes:
            status = DEGRADED
        else:
            status = OK
        detail = str(body.get("detail") or ("ok" if status == OK else f"{failed} actor(s) not alive"))  # pyright: ignore[reportUnknownArgumentType]
        return RayHealth(status, nodes, alive, actors, failed, latency, detail[:300])

    return probe


def overall(services: Sequence[ComponentHealth], ray: RayHealth | None, *, own_database: str) -> str:
    statuses = [c.status for c in services] + ([ray.status] if ray else [])
    if all(s == OK for s in statuses):
        return OK
    own = next((c for c in services if c.name == own_database), None)
    kinds = [c for c in services if c.kind == "service"]
    if (own is not None and own.status == DOWN) or (kinds and all(c.status == DOWN for c in kinds)):
        return DOWN
    return DEGRADED


def report_to_json(report: SystemHealthReport) -> str:
    data = asdict(report)
    data["checked_at"] = report.checked_at.isoformat()
    return json.dumps(data)


@dataclass
class HealthMonitor:
    probes: Sequence[Probe]
    broadcaster: Broadcaster
    ray_probe: RayProbe | None = None
    reporter: Reporter | None = None
    interval_seconds: float = 30.0
    own_database: str = "database"
    last: SystemHealthReport | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def check(self) -> SystemHealthReport:
        """Check every component now (concurrently); publish and report what changed."""
        async with self._lock:
            results = await asyncio.gather(*(p() for p in self.probes))
            ray = await self.ray_probe() if self.ray_probe is not None else None
            report = SystemHealthReport(
                status=overall(results, ray, own_database=self.own_database),
                checked_at=datetime.now(UTC),
                services=tuple(results),
                ray=ray,
            )
            previous, self.last = self.last, report
        await self._changes(previous, report)
        return report

    async def _changes(self, previous: SystemHealthReport | None, report: SystemHealthReport) -> None:
        before = previous.statuses() if previous else {}
        after = report.statuses()
        if previous is not None and before == after and previous.status == report.status:
            return
        with contextlib.suppress(Exception):
            await self.broadcaster.publish(HEALTH_CHANNEL, report_to_json(report))
        events: list[dict[str, Any]] = []
        details = {c.name: c for c in report.services}
        for name, status in after.items():
            was = before.get(name, OK)
            if status == was:
                continue
            detail = details[name].detail if name in details else (report.ray.detail if report.ray else "")
            kind = details[name].kind if name in details else "ray"
            degraded = status != OK
            events.append(
                {
                    "type": HEALTH_DEGRADED if degraded else HEALTH_RECOVERED,
                    "action": "health_degraded" if degraded else "health_recovered",
                    "outcome": "FAILURE" if degraded else "SUCCESS",
                    "severity": ("CRITICAL" if status == DOWN else "ERROR") if degraded else "INFO",
                    "source": "audit",
                    "subjectType": "Component",
                    "subjectId": name,
                    "at": report.checked_at,
                    "data": {
                        "component": name,
                        "kind": kind,
                        "status": status,
                        "previous": was,
                        "detail": detail,
                    },
                }
            )
        if events and self.reporter is not None:
            try:
                await self.reporter(events)
            except Exception as exc:
                log.warning("reporting a health change failed", error=type(exc).__name__)

    def start(self) -> None:
        if self._task is None and self.interval_seconds > 0:
            self._task = asyncio.create_task(self._loop(), name="audit-health")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        # The first check waits one interval: at start-up this service's own /ready (and the
        # services started with it) cannot answer yet, so checking at once recorded a spurious
        # audit.health_degraded (and a "Service degraded" alert) on every start. Queries and
        # subscriptions that need a report before then check on demand.
        await asyncio.sleep(self.interval_seconds)
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("health check failed", error=type(exc).__name__)
            await asyncio.sleep(self.interval_seconds)


def report_from_json(text: str) -> SystemHealthReport:
    """The report as :func:`report_to_json` wrote it (another replica's, through the broadcaster)."""
    data = json.loads(text)
    ray = data.get("ray")
    return SystemHealthReport(
        status=str(data["status"]),
        checked_at=datetime.fromisoformat(data["checked_at"]),
        services=tuple(ComponentHealth(**c) for c in data.get("services") or []),
        ray=RayHealth(
            status=ray["status"],
            nodes=ray["nodes"],
            alive_nodes=ray["alive_nodes"],
            actors=tuple(RayActor(**a) for a in ray.get("actors") or []),
            failed_actors=ray["failed_actors"],
            latency_ms=ray.get("latency_ms"),
            detail=ray.get("detail") or "",
        )
        if ray
        else None,
    )

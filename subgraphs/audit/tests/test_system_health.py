"""System health: the platform's services, router, database, Redis and Ray through systemHealth; a
service that stops answering is DOWN (one not ready DEGRADED), reported as an audit event that the
default "Service degraded" rule turns into an alert."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import pytest

from opsconductor_audit.service import health
from opsconductor_audit.service.alerting.defaults import DEFAULT_RULES
from opsconductor_audit.service.alerting.rules import RuleEngine, RuleSpec
from opsconductor_shared.live import InProcessBroadcaster
from tests.support.net import free_port
from tests.support.platform import gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEALTH = """{ systemHealth { status checkedAt services { name kind status latencyMs detail }
  ray { status nodes aliveNodes failedActors detail actors { name kind state } } } }"""


async def _ready_server(status: list[int]) -> tuple[asyncio.Server, int]:
    port = free_port()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        code = status[0]
        body = b'{"status":"not ready","checks":{"database":"error: OSError"}}' if code != 200 else b"{}"
        writer.write(
            f"HTTP/1.1 {code} X\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", port), port


async def test_a_stopped_service_is_down_a_not_ready_one_degraded_and_an_alert_rule_catches_it() -> None:
    status = [200]
    server, port = await _ready_server(status)
    reported: list[Mapping[str, Any]] = []

    async def reporter(events: Sequence[Mapping[str, Any]]) -> None:
        reported.extend(events)

    broadcaster = InProcessBroadcaster()
    async with httpx.AsyncClient() as client:
        monitor = health.HealthMonitor(
            probes=[
                health.http_probe(client, "jobs", f"http://127.0.0.1:{port}/ready"),
                health.call_probe("database", "database", lambda: asyncio.sleep(0), timeout=1),
            ],
            broadcaster=broadcaster,
            reporter=reporter,
            interval_seconds=0,
        )
        first = await monitor.check()
        assert first.status == health.OK and reported == []
        status[0] = 503
        second = await monitor.check()
        jobs = next(c for c in second.services if c.name == "jobs")
        assert (second.status, jobs.status) == (
            health.DEGRADED,
            health.DEGRADED,
        ) and "database" in jobs.detail
        server.close()
        await server.wait_closed()
        third = await monitor.check()
        jobs = next(c for c in third.services if c.name == "jobs")
        assert jobs.status == health.DOWN and jobs.latency_ms is None
        assert third.status == health.DOWN  # every service (the only one) is down
    assert [(e["type"], e["data"]["status"]) for e in reported] == [
        (health.HEALTH_DEGRADED, "DEGRADED"),
        (health.HEALTH_DEGRADED, "DOWN"),
    ]
    default = next(r for r in DEFAULT_RULES if r.key == "service-degraded")
    engine = RuleEngine()
    engine.load(
        [
            RuleSpec(
                id="d",
                name=default.name,
                event_types=default.event_types,
                threshold=default.threshold,
                window_seconds=default.window_seconds,
                severity=default.severity,
                group_by=default.group_by,
            )
        ]
    )
    triggers = engine.observe_all(reported)
    assert triggers and triggers[0].group_key == "jobs"


async def test_system_health_reports_every_service_redis_database_and_ray(
    platform: Any, admin_token: str
) -> None:
    body = await gql(platform.url("audit"), HEALTH, token=admin_token)
    report = body["data"]["systemHealth"]
    names = {c["name"]: c for c in report["services"]}
    for service in ("auth", "users", "targets", "jobs", "executions", "schedules", "audit", "database"):
        assert service in names, report
        if service != "router":
            assert names[service]["status"] == "OK", report
    assert report["ray"] is not None, report
    assert report["ray"]["aliveNodes"] >= 1 and report["ray"]["actors"], str(report["ray"])

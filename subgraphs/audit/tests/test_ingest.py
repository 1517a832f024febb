"""Ingest against real Redis and PostgreSQL: every stream through one consumer group, each event
once (redelivery and duplicates deduplicated), malformed entries audited, nothing lost when the
audit service was down or a replica died before committing (its pending entries are claimed)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from redis.asyncio import Redis

from opsconductor_audit import service
from opsconductor_audit.models import AuditEvent
from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import EventEnvelope
from tests.support.platform import REDIS_BASE

SOURCES = ("auth", "users", "executions")


@pytest_asyncio.fixture(loop_scope="session")
async def redis() -> AsyncIterator[Redis]:
    import random

    client = Redis.from_url(f"{REDIS_BASE}/{random.randint(1, 15)}")  # noqa: S311 - not security
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


def _envelope(i: int, source: str = "auth") -> EventEnvelope:
    kind = {
        "auth": "auth.login_failed",
        "users": "users.user_roles_changed",
        "executions": "executions.execution_finished",
    }[source]
    data: dict[str, Any] = {
        "username": f"u{i}",
        "reason": "bad_password",
        "ip": "127.0.0.9",
        "userAgent": "pytest",
    }
    if source == "executions":
        data = {"executionId": f"e{i}", "status": "FAILED"}
    return EventEnvelope(type=kind, source=source, subject=f"s{i}", data=data, correlation_id=f"c{i}")


async def _publish(redis: Redis, envelope: EventEnvelope) -> None:
    await redis.xadd(envelope.stream, {"envelope": envelope.model_dump_json()})


async def _drain(ingestor: service.Ingestor, redis: Redis) -> None:
    await ingestor.consume_once(redis, pending=True)
    while await ingestor.consume_once(redis):
        pass


async def _pending(redis: Redis, group: str) -> int:
    total = 0
    for source in SOURCES:
        summary = await redis.xpending(f"opsc.events.{source}", group)
        total += int(summary["pending"])
    return total


async def test_each_event_once_with_duplicates_and_malformed_entries(
    db: ServiceDatabase, redis: Redis
) -> None:
    ingestor = service.Ingestor(sources=SOURCES, group="audit-t1", consumer="a", block_ms=50, claim_idle=30)
    await ingestor.ensure_groups(redis)
    envelopes = [_envelope(i, SOURCES[i % 3]) for i in range(60)]
    for envelope in envelopes:
        await _publish(redis, envelope)
    for envelope in envelopes[:10]:  # the relay published these twice (at-least-once)
        await _publish(redis, envelope)
    await redis.xadd("opsc.events.users", {"envelope": "{not json"})
    await redis.xadd("opsc.events.users", {"other": "field"})
    await _drain(ingestor, redis)
    ids = [e.id for e in envelopes]
    assert await AuditEvent.filter(id__in=ids).count() == 60
    unreadable = await AuditEvent.filter(type="audit.unreadable_event").count()
    assert unreadable >= 2
    assert await _pending(redis, "audit-t1") == 0
    row = await AuditEvent.get(id=envelopes[0].id)
    assert (row.type, row.outcome, row.severity, row.ip, row.user_agent, row.correlation_id) == (
        "auth.login_failed",
        "FAILURE",
        "WARNING",
        "127.0.0.9",
        "pytest",
        "c0",
    )
    finished = await AuditEvent.get(id=envelopes[2].id)
    assert (
        finished.outcome == "FAILURE"
        and finished.severity == "ERROR"
        and finished.subject_type == "Execution"
    )
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=None)
    assert result.ok, result.message


async def test_catch_up_after_audit_was_down(db: ServiceDatabase, redis: Redis) -> None:
    """Events published while no audit replica ran (the group exists: it was running before)."""
    first = service.Ingestor(sources=SOURCES, group="audit-t2", consumer="a", block_ms=50)
    await first.ensure_groups(redis)
    before = [_envelope(1000 + i) for i in range(20)]
    for envelope in before:
        await _publish(redis, envelope)
    await _drain(first, redis)
    # audit down: 200 more events arrive
    during = [_envelope(2000 + i, SOURCES[i % 3]) for i in range(200)]
    for envelope in during:
        await _publish(redis, envelope)
    restarted = service.Ingestor(sources=SOURCES, group="audit-t2", consumer="a2", block_ms=50)
    task = asyncio.create_task(restarted.run_redis(redis))
    try:
        for _ in range(100):
            if await AuditEvent.filter(id__in=[e.id for e in during]).count() == 200:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert await AuditEvent.filter(id__in=[e.id for e in during]).count() == 200
    assert await _pending(redis, "audit-t2") == 0


async def test_entries_read_but_not_committed_are_not_lost(db: ServiceDatabase, redis: Redis) -> None:
    """A replica read entries and died before its commit: they stay pending; the same replica
    re-reads them after a restart, or another claims them once idle."""
    group = "audit-t3"
    ingestor = service.Ingestor(sources=SOURCES, group=group, consumer="dead", block_ms=50, claim_idle=0.2)
    await ingestor.ensure_groups(redis)
    lost = [_envelope(3000 + i) for i in range(15)]
    for envelope in lost:
        await _publish(redis, envelope)
    # "dead" reads them (delivered, pending) and crashes before appending
    got = await redis.xreadgroup(group, "dead", {f"opsc.events.{s}": ">" for s in SOURCES}, count=100)
    assert sum(len(entries) for _, entries in got) == 15
    assert await _pending(redis, group) == 15
    # the same consumer restarting re-reads its own pending entries first
    again = service.Ingestor(sources=SOURCES, group=group, consumer="dead", block_ms=50, claim_idle=30)
    assert await again.consume_once(redis, pending=True) == 15
    assert await AuditEvent.filter(id__in=[e.id for e in lost]).count() == 15
    # another replica claims entries idle on a consumer that never came back
    more = [_envelope(4000 + i) for i in range(7)]
    for envelope in more:
        await _publish(redis, envelope)
    await redis.xreadgroup(group, "gone", {f"opsc.events.{s}": ">" for s in SOURCES}, count=100)
    await asyncio.sleep(0.3)
    other = service.Ingestor(sources=SOURCES, group=group, consumer="other", block_ms=50, claim_idle=0.2)
    await _drain(other, redis)
    assert await AuditEvent.filter(id__in=[e.id for e in more]).count() == 7
    assert await _pending(redis, group) == 0
    # redelivery of what is already chained changes nothing
    for envelope in more:
        await _publish(redis, envelope)
    seq_before = (await service.head()).last_seq
    await _drain(other, redis)
    assert (await service.head()).last_seq == seq_before


async def test_two_replicas_consume_concurrently_into_one_gapless_chain(
    db: ServiceDatabase, redis: Redis
) -> None:
    group = "audit-t4"
    a = service.Ingestor(sources=SOURCES, group=group, consumer="r1", block_ms=50, batch=25)
    b = service.Ingestor(sources=SOURCES, group=group, consumer="r2", block_ms=50, batch=25)
    await a.ensure_groups(redis)
    start = (await service.head()).last_seq
    envelopes = [_envelope(5000 + i, SOURCES[i % 3]) for i in range(300)]
    for envelope in envelopes:
        await _publish(redis, envelope)
    tasks = [asyncio.create_task(x.run_redis(redis)) for x in (a, b)]
    try:
        for _ in range(150):
            if await AuditEvent.filter(id__in=[e.id for e in envelopes]).count() == 300:
                break
            await asyncio.sleep(0.1)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert await AuditEvent.filter(id__in=[e.id for e in envelopes]).count() == 300
    assert a.appended + b.appended == 300
    seqs = await AuditEvent.filter(seq__gt=start).order_by("seq").values_list("seq", flat=True)
    assert seqs == list(range(start + 1, start + 1 + len(seqs)))
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=None)
    assert result.ok, result.message

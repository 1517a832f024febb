"""Audit benchmark (``bench/run.py --modes audit``): ingest into the hash chain and search on 1 M events.

Ingest: N envelopes published to six ``opsc.events.*`` streams in Redis, then one audit
``Ingestor`` (the service's own consumer: consumer group, batches of 500 appended in one
transaction under the chain lock, acknowledged after commit) drains them into PostgreSQL;
events/s = N / drain time. Also the append path alone (no Redis), batches of 500.

Search: the table is filled to ``--audit-rows`` (default 1 M) events of a realistic mix (a valid
chain, written with COPY), then ``auditEvents``' query (``service.page``: keyset page of 50,
newest first, the capped totalCount) runs 200 times per filter shape; p50/p99 per shape and
overall. A GraphQL request adds the router and the HTTP stack (a few ms) on top.

Writes a "## Audit" section into RESULTS.md between its markers (the other sections stay).
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BEGIN = "<!-- audit:begin -->"
END = "<!-- audit:end -->"
TYPES = (
    ("auth", "auth.login_succeeded", "login", "User"),
    ("auth", "auth.login_failed", "login", "User"),
    ("users", "users.user_roles_changed", "change_roles", "User"),
    ("targets", "targets.connection_granted", "grant_connection", "Target"),
    ("jobs", "jobs.job_updated", "update_job", "Job"),
    ("executions", "executions.execution_started", "start_run", "Execution"),
    ("executions", "executions.execution_finished", "finish_run", "Execution"),
    ("schedules", "schedules.fired", "fire", "Schedule"),
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _ingest(db_url: str, redis_url: str, n: int, log: Callable[[str], None]) -> dict[str, Any]:
    from redis.asyncio import Redis

    from opsconductor_audit import service
    from opsconductor_audit.models import AuditEvent
    from opsconductor_shared.db import ServiceDatabase
    from opsconductor_shared.events import EventEnvelope

    database = ServiceDatabase(
        service="audit",
        url=db_url,
        models_module="opsconductor_audit.models",
        migrations_module="opsconductor_audit.migrations",
    )
    await database.start()
    redis = Redis.from_url(redis_url)
    try:
        with database.bind():
            await service.ensure_head()
            await redis.flushdb()
            sources = sorted({s for s, *_ in TYPES})
            ingestor = service.Ingestor(
                sources=sources, group="audit-bench", consumer="bench", batch=500, block_ms=100
            )
            await ingestor.ensure_groups(redis)
            pipe = redis.pipeline(transaction=False)
            for i in range(n):
                source, kind, _, _ = TYPES[i % len(TYPES)]
                envelope = EventEnvelope(
                    type=kind,
                    source=source,
                    subject=str(uuid.uuid4()),
                    actor=f"user-{i % 50}",
                    data={"i": i, "ip": "127.0.0.1"},
                )
                pipe.xadd(envelope.stream, {"envelope": envelope.model_dump_json()})
                if i % 5000 == 4999:
                    await pipe.execute()
            await pipe.execute()
            log(f"audit: {n} events in the streams; draining")
            start_count = await AuditEvent.all().count()
            started = time.perf_counter()
            while await ingestor.consume_once(redis):
                pass
            ingest_s = time.perf_counter() - started
            got = await AuditEvent.all().count() - start_count
            drafts = [
                service.Draft(
                    id=str(uuid.uuid4()),
                    at=datetime.now(UTC),
                    type="jobs.job_updated",
                    action="update_job",
                    outcome="SUCCESS",
                    severity="INFO",
                    source="jobs",
                    data={"i": i},
                )
                for i in range(n)
            ]
            started = time.perf_counter()
            for k in range(0, n, 500):
                await service.append(drafts[k : k + 500])
            append_s = time.perf_counter() - started
            result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=None)
            if not result.ok:
                raise RuntimeError(f"chain does not verify after the bench: {result.message}")
            started = time.perf_counter()
            await service.verify_chain(from_seq=None, to_seq=None, signer=None)
            verify_s = time.perf_counter() - started
            verified = result.checked
    finally:
        await redis.flushdb()
        await redis.aclose()
        await database.stop()
    return {
        "events": n,
        "chained": got,
        "ingest_s": ingest_s,
        "ingest_per_s": got / ingest_s,
        "append_per_s": n / append_s,
        "verify_per_s": verified / verify_s,
    }


async def _fill(db_url: str, rows: int, log: Callable[[str], None]) -> None:
    """Fill the audit table to ``rows`` events (a valid chain) with COPY."""
    import asyncpg

    from opsconductor_audit.service.canonical import GENESIS, canonical_json, chain_hash, format_time

    conn = await asyncpg.connect(db_url)
    try:
        head = await conn.fetchrow("SELECT last_seq, last_hash FROM audit_chain_head WHERE id = 1")
        seq, prev = (int(head["last_seq"]), head["last_hash"]) if head else (0, GENESIS)
        missing = rows - seq
        at0 = datetime.now(UTC) - timedelta(days=365)
        rng = random.Random(7)  # noqa: S311 - test data
        columns = (
            *("seq", "id", "at", "type", "action", "outcome", "severity", "actor_id", "actor_name", "ip"),
            *("user_agent", "subject_type", "subject_id", "correlation_id", "source", "data"),
            *("prev_hash", "hash", "recorded_at"),
        )
        batch: list[tuple[Any, ...]] = []
        started = time.perf_counter()
        for _ in range(max(missing, 0)):
            seq += 1
            source, kind, action, subject_type = TYPES[rng.randrange(len(TYPES))]
            at = at0 + timedelta(seconds=seq * 31.5)
            outcome = "FAILURE" if kind == "auth.login_failed" or rng.random() < 0.05 else "SUCCESS"
            data = {"n": seq, "note": "bench"}
            rec = {
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "seq": seq,
                "at": format_time(at),
                "type": kind,
                "action": action,
                "outcome": outcome,
                "severity": "WARNING" if outcome == "FAILURE" else "INFO",
                "actorId": f"user-{rng.randrange(500)}",
                "actorName": None,
                "ip": "127.0.0.1",
                "userAgent": None,
                "subjectType": subject_type,
                "subjectId": f"{subject_type.lower()}-{rng.randrange(20_000)}",
                "correlationId": str(uuid.UUID(int=rng.getrandbits(128))),
                "source": source,
                "data": data,
            }
            digest = chain_hash(prev, rec)
            values = (
                seq,
                rec["id"],
                at,
                kind,
                action,
                outcome,
                rec["severity"],
                rec["actorId"],
                None,
                "127.0.0.1",
            )
            values += (
                None,
                subject_type,
                rec["subjectId"],
                rec["correlationId"],
                source,
                canonical_json(data),
            )
            batch.append((*values, prev, digest, at))
            prev = digest
            if len(batch) == 50_000:
                await conn.copy_records_to_table("audit_events", records=batch, columns=columns)
                batch = []
                log(f"audit: filled to {seq} events ({time.perf_counter() - started:.0f}s)")
        if batch:
            await conn.copy_records_to_table("audit_events", records=batch, columns=columns)
        await conn.execute(
            "UPDATE audit_chain_head SET last_seq = $1, last_hash = $2 WHERE id = 1", seq, prev
        )
        await conn.execute("ANALYZE audit_events")
    finally:
        await conn.close()


async def _search(db_url: str, log: Callable[[str], None], repeat: int = 200) -> dict[str, Any]:
    from opsconductor_audit import service
    from opsconductor_shared.db import ServiceDatabase

    database = ServiceDatabase(
        service="audit",
        url=db_url,
        models_module="opsconductor_audit.models",
        migrations_module="opsconductor_audit.migrations",
    )
    await database.start()
    shapes: dict[str, Callable[[random.Random], service.AuditQuery]] = {
        "no filter": lambda r: service.AuditQuery(),
        "type": lambda r: service.AuditQuery(types=[TYPES[r.randrange(len(TYPES))][1]]),
        "actor": lambda r: service.AuditQuery(actor_id=f"user-{r.randrange(500)}"),
        "subject": lambda r: service.AuditQuery(
            subject_type="Target", subject_id=f"target-{r.randrange(20_000)}"
        ),
        "outcome+type": lambda r: service.AuditQuery(outcomes=["FAILURE"], types=["auth.login_failed"]),
        "time range": lambda r: service.AuditQuery(
            from_=datetime.now(UTC) - timedelta(days=r.randrange(30, 360)),
            to=datetime.now(UTC) - timedelta(days=20),
        ),
    }
    results: dict[str, Any] = {}
    every: list[float] = []
    rng = random.Random(11)  # noqa: S311 - test data
    try:
        with database.bind():
            for name, make in shapes.items():
                times: list[float] = []
                after: str | None = None
                for i in range(repeat):
                    query = make(rng)
                    started = time.perf_counter()
                    page = await service.page(query, first=50, after=after if i % 4 else None)
                    times.append((time.perf_counter() - started) * 1000)
                    from opsconductor_shared.paging import encode_cursor

                    after = (
                        encode_cursor(str(page.rows[-1].seq), "s") if page.rows and page.has_next else None
                    )
                every.extend(times)
                results[name] = {"p50_ms": _percentile(times, 0.5), "p99_ms": _percentile(times, 0.99)}
                log(
                    f"audit search {name}: p50 {results[name]['p50_ms']:.1f} ms, p99 {results[name]['p99_ms']:.1f} ms"
                )
    finally:
        await database.stop()
    results["all"] = {
        "p50_ms": _percentile(every, 0.5),
        "p99_ms": _percentile(every, 0.99),
        "mean_ms": statistics.mean(every),
    }
    return results


async def bench_audit(*, rows: int, ingest_events: int, log: Callable[[str], None]) -> dict[str, Any]:
    from tests.support.platform import REDIS_BASE, create_database, drop_database

    url = await create_database("opsc_bench_audit")
    try:
        ingest = await _ingest(url, f"{REDIS_BASE}/{random.randint(1, 15)}", ingest_events, log)  # noqa: S311
        log(
            f"audit ingest: {ingest['ingest_per_s']:.0f} events/s through Redis, append alone {ingest['append_per_s']:.0f}/s"
        )
        started = time.perf_counter()
        await _fill(url, rows, log)
        fill_s = time.perf_counter() - started
        search = await _search(url, log)
    finally:
        await drop_database(url)
    return {"rows": rows, "fill_s": fill_s, "ingest": ingest, "search": search}


def section(result: dict[str, Any], machine: str) -> str:
    ingest, search = result["ingest"], result["search"]
    lines = [
        BEGIN,
        "## Audit: ingest into the hash chain, search on 1 M events",
        "",
        f"{machine}. `bench/run.py --modes audit` (bench/audit.py); PostgreSQL 127.0.0.1, Redis 127.0.0.1.",
        "",
        "| ingest | figure | target |",
        "|---|---|---|",
        f"| Redis streams -> chain (consumer group, batches of 500, {ingest['events']} events) | "
        f"**{ingest['ingest_per_s']:.0f} events/s** ({ingest['ingest_per_s'] / 5000:.2f}x the target) | ≥ 5,000/s |",
        f"| append alone (no Redis), batches of 500 | {ingest['append_per_s']:.0f} events/s | |",
        f"| verifyAuditChain | {ingest['verify_per_s']:.0f} events/s | |",
        "",
        f"Search: `auditEvents` query (`service.page`, first 50, newest first, totalCount capped at 10,000) on "
        f"{result['rows']:,} events; 200 queries per filter shape, every 4th a first page, the others the next page.",
        "",
        "| filter | p50 ms | p99 ms |",
        "|---|---|---|",
    ]
    for name, figures in search.items():
        if name == "all":
            continue
        lines.append(f"| {name} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} |")
    lines.append(
        f"| **all** | {search['all']['p50_ms']:.1f} | **{search['all']['p99_ms']:.1f}** "
        f"({search['all']['p99_ms'] / 100:.2f} of the 100 ms budget) |"
    )
    lines += [
        "",
        "The time-range shape asks ranges that end 20 days before now (the newest rows of the table); "
        "`text` (a substring scan over the data) is not in the table: combine it with another filter.",
        "",
        END,
        "",
    ]
    return "\n".join(lines)


def splice(path: Path, text: str) -> None:
    body = path.read_text() if path.exists() else "# OpsConductor benchmark results\n\n"
    if BEGIN in body and END in body:
        head, rest = body.split(BEGIN, 1)
        body = head + text + rest.split(END, 1)[1].lstrip("\n")
    else:
        body = body.rstrip("\n") + "\n\n" + text
    path.write_text(body)


def save(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2))


def run(
    *, out: Path, rows: int, ingest_events: int, work: Path, machine: str, log: Callable[[str], None]
) -> int:
    result = asyncio.run(bench_audit(rows=rows, ingest_events=ingest_events, log=log))
    work.mkdir(parents=True, exist_ok=True)
    save(result, work / "audit.json")
    splice(out, section(result, machine))
    log(f"wrote the audit section of {out}")
    return 0

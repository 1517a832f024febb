"""One process of the schedules benchmark (bench/schedules.py starts it; one database per process:
tortoise caches SQL per connection name process-wide, so SQLite and PostgreSQL never share one).

    schedules_worker.py populate URL --count N --interval S --base EPOCH
    schedules_worker.py run URL --until EPOCH --out FILE.json
    schedules_worker.py analyze URL --start EPOCH --end EPOCH --out FILE.json

``run`` is the production firing loop (:class:`Scheduler`, its claims and settling, on the real
database) with two in-process stand-ins for the other services: the owner check says yes and
``runJob`` records when it was called (wall clock) and returns a new id. The figures are the loop's
own cost and lateness; starting real runs through executions is what the e2e mode measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from opsconductor_schedules.models import Schedule, ScheduleFire
from opsconductor_schedules.service import Kind, OverlapPolicy, ScheduleDraft, Scheduler, SchedulerConfig
from opsconductor_schedules.service.clients import RunOutcome
from opsconductor_schedules.service.definitions import save_new_schedule
from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.live import InProcessBroadcaster


def database(url: str) -> ServiceDatabase:
    return ServiceDatabase(
        service="schedules",
        url=url,
        models_module="opsconductor_schedules.models",
        migrations_module="opsconductor_schedules.migrations",
    )


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def populate(url: str, count: int, interval: int, base: float) -> dict[str, Any]:
    """``count`` INTERVAL schedules, their first fires spread evenly over one interval from ``base``."""
    started = time.perf_counter()
    db = database(url)
    await db.start()
    try:
        with db.bind():
            now = datetime.now(UTC)
            first = datetime.fromtimestamp(base, UTC)
            for chunk in range(0, count, 500):
                async with in_transaction("schedules"):
                    for n in range(chunk, min(count, chunk + 500)):
                        draft = ScheduleDraft(
                            job_id=f"bench-job-{n}",
                            kind=Kind.INTERVAL,
                            timezone="UTC",
                            interval_seconds=interval,
                            start_at=first + timedelta(seconds=interval * n / count),
                            overlap_policy=OverlapPolicy.ALLOW,
                        )
                        await save_new_schedule(draft=draft, owner_id="bench-owner", now=now)
            active = await Schedule.filter(enabled=True, next_due_at__isnull=False).count()
    finally:
        await db.stop()
    return {"active": active, "populate_s": time.perf_counter() - started}


class Owners:
    async def problem(self, owner_id: str | None) -> str | None:
        return None


class Runs:
    def __init__(self) -> None:
        self.called: dict[str, float] = {}

    async def active_run(self, job_id: str) -> str | None:
        return None

    async def run_job(
        self, *, job_id: str, target_ids: list[str] | None, parameters: dict[str, Any] | None, key: str
    ) -> RunOutcome:
        self.called.setdefault(key.removeprefix("schedule-fire:"), time.time())
        return RunOutcome(str(uuid.uuid4()))


class Committer:
    """What the service gives the loop (app.py): its commits tell the relay (absent here) and do not
    wake the loop."""

    def events_committed(self) -> None:
        return None


async def run(url: str, start: float, end: float, until: float) -> dict[str, Any]:
    """Start-up (database open + migrations check + the first pass), then the loop until ``until``;
    CPU is counted from ``start`` to ``end`` (the measuring window)."""
    started = time.perf_counter()
    db = database(url)
    await db.start()
    runs = Runs()
    try:
        with db.bind():
            scheduler = Scheduler(
                committer=Committer(),
                owners=Owners(),  # type: ignore[arg-type]
                runs=runs,  # type: ignore[arg-type]
                broadcaster=InProcessBroadcaster(),
                config=SchedulerConfig(),
            )
            opened = time.perf_counter() - started
            await scheduler.tick()
            ready = time.perf_counter() - started
            scheduler.start()
            await asyncio.sleep(max(0.0, start - time.time()))
            cpu_start = cpu_seconds()
            await asyncio.sleep(max(0.0, end - time.time()))
            cpu = cpu_seconds() - cpu_start
            await asyncio.sleep(max(0.0, until - time.time()))
            await scheduler.stop()
    finally:
        await db.stop()
    return {"open_s": opened, "startup_s": ready, "cpu_s": cpu, "called": runs.called}


async def analyze(url: str, start: float, end: float) -> dict[str, Any]:
    db = database(url)
    await db.start()
    try:
        with db.bind():
            rows = await ScheduleFire.filter(
                scheduled_for__gte=datetime.fromtimestamp(start, UTC),
                scheduled_for__lt=datetime.fromtimestamp(end, UTC),
            ).values_list("id", "schedule_id", "scheduled_for", "outcome")
    finally:
        await db.stop()
    return {
        "fires": [
            {"id": i, "schedule": s, "at": at.timestamp(), "outcome": outcome} for i, s, at, outcome in rows
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["populate", "run", "analyze"])
    parser.add_argument("url")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=300)
    parser.add_argument("--base", type=float, default=0)
    parser.add_argument("--until", type=float, default=0)
    parser.add_argument("--start", type=float, default=0)
    parser.add_argument("--end", type=float, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "populate":
        result = asyncio.run(populate(args.url, args.count, args.interval, args.base))
    elif args.command == "run":
        result = asyncio.run(run(args.url, args.start, args.end, args.until))
    else:
        result = asyncio.run(analyze(args.url, args.start, args.end))
    if args.out:
        args.out.write_text(json.dumps(result))
    else:
        json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()

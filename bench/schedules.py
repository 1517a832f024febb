"""`--modes schedules`: 10,000 active schedules, the firing loop's lateness, CPU and start-up.

For each backend — the embedded default (SQLite, one replica: one process is its only writer) and
PostgreSQL (one replica, then two on the same database) — a fresh database gets ``count`` INTERVAL
schedules whose fires are spread evenly over the interval (a steady ``count / interval`` fires per
second). Worker processes (schedules_worker.py) then run the production firing loop for the
measuring window: lateness = when the loop called ``runJob`` (an in-process stand-in that records
the wall time) minus the nominal time; CPU = the worker processes' own user+system seconds over the
window (the PostgreSQL server's CPU is not in it) per 1,000 fires; start-up = opening the database
(migrations check) and the first pass with every schedule in place. Every nominal time in the window
must have exactly one history row and one run call (missing and duplicates are counted).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "schedules_worker.py"
PG_ADMIN_DSN = os.environ.get("OPSC_BENCH_PG", "postgres://postgres@127.0.0.1:5432/postgres")
BEGIN = "<!-- schedules: begin -->"
END = "<!-- schedules: end -->"


@dataclass
class Case:
    backend: str
    replicas: int
    schedules: int = 0
    interval_s: int = 0
    window_s: float = 0
    populate_s: float = 0
    startup_s: list[float] = field(default_factory=list)  # per replica
    fires: int = 0
    missing: int = 0
    duplicates: int = 0
    not_fired: int = 0
    late_p50_ms: float = 0
    late_p99_ms: float = 0
    late_max_ms: float = 0
    cpu_s: float = 0
    cpu_per_1000: float = 0


def _worker(*args: str, out: Path, wait: bool = True) -> subprocess.Popen[bytes]:
    """A worker process writing its result to ``out`` and its log next to it."""
    command = [sys.executable, str(WORKER), *args, "--out", str(out)]
    with out.with_suffix(".log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    if wait:
        _finish(process, out, timeout=600)
    return process


def _finish(process: subprocess.Popen[bytes], out: Path, timeout: float) -> None:
    if process.wait(timeout=timeout):
        raise RuntimeError(f"worker failed: {out.with_suffix('.log').read_text(errors='replace')[-2000:]}")


async def _pg_database() -> str:
    import asyncpg

    name = f"opsc_bench_schedules_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def _drop_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_case(
    case: Case, url: str, work: Path, *, count: int, interval: int, window: float, log: Callable[[str], None]
) -> Case:
    case.schedules, case.interval_s, case.window_s = count, interval, window
    lead = 15.0  # the workers are up and past their first pass before the window opens
    base = time.time() + 20 + count / 500  # populating takes a while; the window starts when it is done
    out = work / "populate.json"
    _worker("populate", url, "--count", str(count), "--interval", str(interval), "--base", str(base), out=out)
    populated = json.loads(out.read_text())
    case.populate_s = populated["populate_s"]
    assert populated["active"] == count, populated
    start = max(base, time.time() + lead)
    end = start + window
    log(
        f"schedules {case.backend} x{case.replicas}: {count} populated in {case.populate_s:.1f}s; window {window:.0f}s"
    )
    outs = [work / f"run-{k}.json" for k in range(case.replicas)]
    workers = [
        _worker(
            "run",
            url,
            "--start",
            str(start),
            "--end",
            str(end),
            "--until",
            str(end + 5),
            out=outs[k],
            wait=False,
        )
        for k in range(case.replicas)
    ]
    for process, result in zip(workers, outs, strict=True):
        _finish(process, result, timeout=window + lead + 180)
    runs = [json.loads(o.read_text()) for o in outs]
    out = work / "analyze.json"
    _worker("analyze", url, "--start", str(start), "--end", str(end), out=out)
    fires = json.loads(out.read_text())["fires"]
    called: dict[str, list[float]] = {}
    for result in runs:
        for fire_id, at in result["called"].items():
            called.setdefault(fire_id, []).append(at)
    # every nominal time in the window: schedule n fires at base + n*interval/count + k*interval
    expected = 0
    for n in range(count):
        first = base + interval * n / count
        k0 = max(0, int((start - first) // interval))
        t = first + k0 * interval
        while t < end:
            expected += t >= start
            t += interval
    lateness = []
    for fire in fires:
        times = called.get(fire["id"], [])
        if fire["outcome"] != "FIRED" or not times:
            case.not_fired += 1
            continue
        case.duplicates += len(times) - 1
        lateness.append((min(times) - fire["at"]) * 1000)
    case.fires = len(lateness)
    case.missing = expected - len({(f["schedule"], f["at"]) for f in fires})
    case.late_p50_ms = statistics.median(lateness) if lateness else 0
    case.late_p99_ms = _percentile(lateness, 0.99)
    case.late_max_ms = max(lateness, default=0)
    case.startup_s = [r["startup_s"] for r in runs]
    case.cpu_s = sum(r["cpu_s"] for r in runs)
    case.cpu_per_1000 = case.cpu_s / len(lateness) * 1000 if lateness else 0
    log(
        f"schedules {case.backend} x{case.replicas}: {case.fires} fires, lateness p50 {case.late_p50_ms:.0f} ms "
        f"p99 {case.late_p99_ms:.0f} ms, CPU {case.cpu_per_1000:.2f} s per 1,000 fires, "
        f"start-up {', '.join(f'{s:.2f}' for s in case.startup_s)} s, missing {case.missing}, "
        f"duplicates {case.duplicates}, not fired {case.not_fired}"
    )
    return case


def bench_schedules(
    log: Callable[[str], None], *, count: int = 10_000, interval: int = 300, window: float = 60
) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsc-bench-schedules-") as tmp:
        work = Path(tmp)
        sqlite = f"sqlite://{work / 'schedules.sqlite3'}"
        cases.append(asdict(run_case(Case("SQLite (embedded)", 1), sqlite, work, count=count,
                                     interval=interval, window=window, log=log)))  # fmt: skip
        for replicas in (1, 2):
            url = asyncio.run(_pg_database())
            try:
                case = run_case(Case("PostgreSQL", replicas), url, work, count=count, interval=interval,
                                window=window, log=log)  # fmt: skip
                cases.append(asdict(case))
            finally:
                asyncio.run(_drop_pg(url))
    return cases


def section(cases: list[dict[str, Any]], machine: str, when: str, commit: str, load: str) -> str:
    lines = [
        BEGIN,
        "## Schedules: 10,000 active schedules",
        "",
        "`bench/run.py --modes schedules` (bench/schedules.py). Each case: a fresh database with 10,000 INTERVAL "
        "schedules whose fires are spread evenly over the interval, then the production firing loop "
        "(`Scheduler`: claim rows, misfire plan, settle, outbox events) in worker processes for the window. "
        "The other services are in-process stand-ins (owner check: yes; `runJob`: records the call time), "
        "so these are the loop's own figures; starting real runs is the e2e mode's. *Lateness* = `runJob` "
        "called - nominal time (wall clock, one machine). *CPU* = the workers' user+system seconds over the "
        "window / fires x 1,000 (PostgreSQL's own server CPU is not included). *Start-up* = opening the "
        "database (migrations check) + the first pass, with the 10,000 schedules in place (per replica). "
        "*Missing* = nominal times in the window without a history row; *dup* = a second `runJob` for one fire.",
        "",
        f"- machine: {machine}",
        f"- date: {when}; git commit {commit}; load average {load}",
        "",
        "| backend | replicas | schedules | fires/s | fires | lateness p50 ms | p99 ms | max ms | CPU s / 1,000 fires "
        "| start-up s | missing / dup / not fired | p99 < 1 s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in cases:
        rate = c["schedules"] / c["interval_s"]
        lines.append(
            f"| {c['backend']} | {c['replicas']} | {c['schedules']:,} | {rate:.1f} | {c['fires']:,} | "
            f"{c['late_p50_ms']:.0f} | {c['late_p99_ms']:.0f} | {c['late_max_ms']:.0f} | {c['cpu_per_1000']:.2f} | "
            f"{' / '.join(f'{s:.2f}' for s in c['startup_s'])} | {c['missing']} / {c['duplicates']} / {c['not_fired']} | "
            f"{'met' if c['late_p99_ms'] < 1000 else '**missed**'} |"
        )
    lines.append(END)
    return "\n".join(lines) + "\n"


def splice(path: Path, text: str) -> None:
    """Put the schedules section into the report in place of the previous one, else at the end."""
    current = path.read_text() if path.exists() else "# OpsConductor benchmark results\n\n"
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        current = head + text + rest.split(END, 1)[1].lstrip("\n")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    path.write_text(current)


def existing(path: Path) -> str | None:
    """The schedules section of a report (kept when a run without this mode rewrites the report)."""
    current = path.read_text() if path.exists() else ""
    if BEGIN in current and END in current:
        return BEGIN + current.split(BEGIN, 1)[1].split(END, 1)[0] + END + "\n"
    return None

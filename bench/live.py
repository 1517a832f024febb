"""Live output latency, end to end through the router (`--modes live`).

Each target prints a timestamped line every 20 ms (`L <i> <time.time()>`); a subscriber on the
router (graphql-transport-ws) receives the STDOUT events, cuts the lines out of the chunks per
target and takes receive time - print time per line. Everything runs on this machine, so the
clocks agree. Cases: 10 and 100 targets (50 lines/s each), once on `executionEvents` (one
message per event) and once on `executionEventBatches`; and a chatty job, 20 targets printing
5,000 lines each as fast as they can (`seq`), which must arrive complete, in order, without
duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from e2e import EXECUTION, EndToEnd, embedded_platform
from infra import CPU_GROUPS, SshdFleet, cpu_snapshot
from modes import BenchError

PACE_S = 0.02
"""One line per target every 20 ms."""
LEAD_S = 1.0
"""Printing starts this long after the command does (the subscriber is live by then)."""
PACED_S = 3.0
PACED_TARGETS = (10, 100)
CHATTY_TARGETS = 20
CHATTY_LINES = 5000
TARGETS = max(*PACED_TARGETS, CHATTY_TARGETS)
SUBSCRIPTIONS = ("executionEvents", "executionEventBatches")
GOALS = {10: (15.0, 50.0), 100: (25.0, 100.0)}
"""Targets in ms, (p50, p99), from issue 15."""
CHATTY_GOAL = 100_000.0
"""Lines per second."""

PACED_COMMAND = (
    "python3 -u -c 'import sys, time\n"
    f"t = time.time() + {LEAD_S}\n"
    f"for i in range({round(PACED_S / PACE_S)}):\n"
    f"    d = t + i * {PACE_S} - time.time()\n"
    "    d > 0 and time.sleep(d)\n"
    '    sys.stdout.write("L %d %.6f\\n" % (i, time.time()))\n'
    "'"
)
CHATTY_COMMAND = f"seq 1 {CHATTY_LINES}"


@dataclass
class LiveCase:
    """One measured run."""

    case: str
    targets: int
    subscription: str
    lines: int
    wall_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    lines_per_s: float | None = None
    """Chatty: lines ÷ (last line received - first TARGET_STARTED)."""
    missing: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    messages: int = 0
    events: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds per process group (infra.cpu_snapshot) while the case ran (all of it: runJob,
    channel opens, the run's end)."""
    steady_us: dict[str, float] = field(default_factory=dict)
    """Paced: CPU µs per line per process group while every target printed (steady state:
    from 0.5 s after the first line was printed to 0.3 s before the last)."""
    steady_cores: float | None = None
    """...and all groups' CPU seconds per second then (2 = both cores busy)."""
    steady_lines_per_event: float | None = None
    """...and output lines per STDOUT event then (under load the pools merge a target's chunks,
    so CPU per line also depends on how much was merged)."""


@dataclass
class LiveResults:
    cases: list[LiveCase] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"cases": [asdict(c) for c in self.cases], "note": self.note}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveResults:
        return cls([LiveCase(**c) for c in data.get("cases", [])], data.get("note", ""))


# ------------------------------------------------------------------------------ measuring


async def stream(
    client: EndToEnd, job_id: str, n: int, subscription: str
) -> tuple[list[tuple[float, dict]], int, float]:
    """runJob, subscribe from seq 0, collect (receive time, event) until EXECUTION_FINISHED.
    Returns the events, the number of WebSocket messages and the wall time."""
    batches = subscription == "executionEventBatches"
    execution_id, _, received, messages, wall = await client.follow(job_id, batches=batches)
    final = (await client.gql(EXECUTION, {"id": execution_id}))["execution"]
    if final["status"] != "SUCCEEDED" or final["succeededTargets"] != n:
        reasons = sorted({str(r["message"]) for r in final["targetRuns"] if r["status"] != "SUCCEEDED"})
        raise BenchError(f"live run {execution_id}: {final['status']}; why: {'; '.join(reasons[:3])}")
    seqs = [e["seq"] for _, e in received]
    if seqs != list(range(1, len(seqs) + 1)):
        raise BenchError(f"{subscription}: the subscriber saw gaps or repeats in the event sequence")
    return received, messages, wall


def lines_of(received: list[tuple[float, dict[str, Any]]]) -> dict[str, list[tuple[float, str]]]:
    """Per target, each complete STDOUT line with the time its last chunk arrived."""
    partial: dict[str, str] = {}
    lines: dict[str, list[tuple[float, str]]] = {}
    for at, event in received:
        if event["type"] != "STDOUT" or not event["data"]:
            continue
        target = event["targetId"]
        *complete, partial[target] = (partial.get(target, "") + event["data"]).split("\n")
        lines.setdefault(target, []).extend((at, line) for line in complete)
    for target, rest in partial.items():
        if rest:
            lines.setdefault(target, []).append((received[-1][0], rest))
    return lines


def iso(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def _check(case: LiveCase, got: list[str], expected: list[str]) -> None:
    """Count missing, duplicated and out-of-order lines of one target into `case`."""
    seen: set[str] = set()
    for line in got:
        if line in seen:
            case.duplicates += 1
        seen.add(line)
    case.missing += len(set(expected) - seen)
    order = {line: i for i, line in enumerate(expected)}
    positions = [order[line] for line in got if line in order]
    case.out_of_order += sum(1 for a, b in itertools.pairwise(positions) if b <= a)


def _ms(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


Samples = list[tuple[float, dict[str, float]]]
"""(time.time(), infra.cpu_snapshot()) every SAMPLE_S while a case runs."""
SAMPLE_S = 0.4


def steady(case: LiveCase, samples: Samples, printed: list[float], outputs: list[float]) -> None:
    """CPU per line per group over the samples inside the steady window of the printing
    (`outputs`: when the pools read each STDOUT event)."""
    if not printed or not samples:
        return
    begin, end = min(printed) + 0.5, max(printed) - 0.3
    inside = [(at, cpu) for at, cpu in samples if begin <= at <= end]
    if len(inside) < 2:
        return
    (t0, first), (t1, last) = inside[0], inside[-1]
    lines = sum(1 for at in printed if t0 <= at < t1)
    if not lines:
        return
    case.steady_us = {g: round((last[g] - first[g]) / lines * 1e6, 1) for g in CPU_GROUPS}
    case.steady_cores = round(sum(last[g] - first[g] for g in CPU_GROUPS) / (t1 - t0), 2)
    events = sum(1 for at in outputs if t0 <= at < t1)
    case.steady_lines_per_event = round(lines / events, 2) if events else None


def paced(
    n: int,
    subscription: str,
    received: list[tuple[float, dict]],
    messages: int,
    wall: float,
    samples: Samples,
) -> LiveCase:
    per_target = lines_of(received)
    count = round(PACED_S / PACE_S)
    expected = [str(i) for i in range(count)]
    case = LiveCase("paced", n, subscription, 0, wall, messages=messages, events=len(received))
    latencies: list[float] = []
    printed: list[float] = []
    for target in {e["targetId"] for _, e in received if e["targetId"]}:
        got = []
        for at, line in per_target.get(target, []):
            parts = line.split()
            if len(parts) != 3 or parts[0] != "L":
                raise BenchError(f"unexpected output line {line!r}")
            got.append(parts[1])
            printed.append(float(parts[2]))
            latencies.append(at - printed[-1])
        _check(case, got, expected)
    outputs = [iso(e["at"]) for _, e in received if e["type"] == "STDOUT"]
    steady(case, samples, printed, outputs)
    if len({e["targetId"] for _, e in received if e["targetId"]}) != n:
        raise BenchError(f"paced run: output from fewer than {n} targets")
    case.lines = len(latencies)
    latencies.sort()
    case.p50_ms = statistics.median(latencies) * 1000
    case.p99_ms = _ms(latencies, 99)
    case.max_ms = latencies[-1] * 1000
    return case


def chatty(
    n: int,
    subscription: str,
    received: list[tuple[float, dict]],
    messages: int,
    wall: float,
    samples: Samples,
) -> LiveCase:
    per_target = lines_of(received)
    expected = [str(i) for i in range(1, CHATTY_LINES + 1)]
    case = LiveCase("chatty", n, subscription, 0, wall, messages=messages, events=len(received))
    targets = {e["targetId"] for _, e in received if e["targetId"]}
    if len(targets) != n:
        raise BenchError(f"chatty run: output from {len(targets)} of {n} targets")
    last = 0.0
    for target in targets:
        got = per_target.get(target, [])
        _check(case, [line for _, line in got], expected)
        last = max([last, *(at for at, _ in got)])
        case.lines += len(got)
    first = min(iso(e["at"]) for _, e in received if e["type"] == "TARGET_STARTED")
    case.lines_per_s = case.lines / max(1e-6, last - first)
    return case


Measure = Callable[[int, str, list[tuple[float, dict]], int, float, Samples], LiveCase]


async def sampled(client: EndToEnd, job_id: str, n: int, sub: str) -> tuple[Any, Samples]:
    """`stream`, with a CPU snapshot every SAMPLE_S (taken in a thread, counted under
    "platform threads") while it runs."""
    samples: Samples = []

    async def sample() -> None:
        while True:
            snapshot = await asyncio.to_thread(cpu_snapshot)
            samples.append((time.time(), snapshot))
            await asyncio.sleep(SAMPLE_S)

    sampler = asyncio.create_task(sample())
    try:
        return await stream(client, job_id, n, sub), samples
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler


CASES = ("10", "100", "chatty")


async def bench_live(
    fleet: SshdFleet, work: Path, log: Callable[[str], None], cases: tuple[str, ...] = CASES
) -> LiveResults:
    """Set up the platform and router, then run every case of `cases` ("10", "100": paced
    targets; "chatty") twice (after one untimed warm-up run that opens the pooled connections)."""
    results = LiveResults()
    async with embedded_platform(fleet, TARGETS, work, log) as platform:
        client, ids = platform.client, platform.target_ids

        async def job(name: str, n: int, command: str) -> str:
            return await client.create_job(ids[:n], name=name, command=command)

        warm = await job("live-warm", TARGETS, "true")
        jobs = {n: await job(f"live-paced-{n}", n, PACED_COMMAND) for n in PACED_TARGETS}
        loud = await job("live-chatty", CHATTY_TARGETS, CHATTY_COMMAND)
        await stream(client, warm, TARGETS, "executionEventBatches")
        # each case twice, the subscriptions in turn (A B B A), so neither always goes first
        turns = [*SUBSCRIPTIONS, *reversed(SUBSCRIPTIONS)]
        plan: list[tuple[str, int, str, Measure]] = [
            (jobs[n], n, sub, paced) for n in PACED_TARGETS if str(n) in cases for sub in turns
        ] + [(loud, CHATTY_TARGETS, sub, chatty) for sub in turns if "chatty" in cases]
        for job_id, n, sub, measure in plan:
            before = cpu_snapshot()
            (received, messages, wall), samples = await sampled(client, job_id, n, sub)
            after = cpu_snapshot()
            case = measure(n, sub, received, messages, wall, samples)
            case.cpu = {group: round(after[group] - before[group], 3) for group in CPU_GROUPS}
            results.cases.append(case)
            log(f"live {case.case:<6} N={n:<4} {sub:<22} {describe(case)}")
            await asyncio.sleep(1.0)  # let the previous run's persisting settle
    return results


def describe(case: LiveCase) -> str:
    text = f"{case.lines} lines, {case.events} events in {case.messages} messages"
    if case.p50_ms is not None:
        text += f", p50 {case.p50_ms:.1f} ms, p99 {case.p99_ms:.1f} ms, max {case.max_ms:.1f} ms"
    if case.lines_per_s is not None:
        text += f", {case.lines_per_s:,.0f} lines/s"
    text += f"; missing {case.missing}, duplicated {case.duplicates}, out of order {case.out_of_order}"
    if case.cpu and case.lines:
        text += "; CPU µs/line " + ", ".join(f"{g} {s / case.lines * 1e6:.0f}" for g, s in case.cpu.items())
    if case.steady_us:
        text += (
            f"; steady ({case.steady_cores} cores, {case.steady_lines_per_event} lines/event) µs/line "
            + ", ".join(f"{g} {v:.0f}" for g, v in case.steady_us.items())
        )
    return text


# ------------------------------------------------------------------------------ report

BEGIN = "<!-- live output: begin -->"
END = "<!-- live output: end -->"


def render(live: LiveResults, machine: dict[str, str], date: str) -> str:
    lines = [
        BEGIN,
        "## Live output latency",
        "",
        "`--modes live` (bench/live.py): each target prints `L <i> <time.time()>` every 20 ms for "
        f"{PACED_S:.0f} s (Python, absolute schedule); a subscriber through the router "
        "(graphql-transport-ws) cuts the lines out of the STDOUT chunks per target and takes "
        "receive time - print time per line, all on this machine's clock. The chatty job is "
        f"{CHATTY_TARGETS} targets x `{CHATTY_COMMAND}`: every line must arrive, in order, once; "
        "lines/s = lines ÷ (last line received - the first target's TARGET_STARTED). One run per row, each case "
        "twice with the subscriptions in turn (A B B A), after an untimed warm-up run (pooled "
        "connections).",
        "",
        f"- machine: {machine.get('cpu', '?')}; `{machine.get('uname', '?')}`",
        f"- date: {date}; git commit {machine.get('commit', '?')}",
    ]
    if live.note:
        lines.append(f"- {live.note}")
    lines += [
        "",
        "| case | targets | subscription | lines | p50 ms | p99 ms | max ms | lines/s | missing / dup / out of order | goal |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in live.cases:
        if c.case == "paced":
            p50, p99 = GOALS.get(c.targets, (None, None))
            ok = (
                p50 is not None and c.p50_ms is not None and c.p50_ms <= p50 and (c.p99_ms or 0) <= (p99 or 0)
            )
            goal = f"p50 ≤ {p50:.0f}, p99 ≤ {p99:.0f}: {'met' if ok else '**missed**'}"
        else:
            ok = (c.lines_per_s or 0) >= CHATTY_GOAL and not (c.missing or c.duplicates or c.out_of_order)
            goal = f"≥ {CHATTY_GOAL:,.0f} lines/s, complete: {'met' if ok else '**missed**'}"
        cells = [
            c.case,
            str(c.targets),
            f"`{c.subscription}`",
            f"{c.lines:,}",
            _f(c.p50_ms),
            _f(c.p99_ms),
            _f(c.max_ms),
            f"{c.lines_per_s:,.0f}" if c.lines_per_s is not None else "—",
            f"{c.missing} / {c.duplicates} / {c.out_of_order}",
            goal,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    steady_rows = [c for c in live.cases if c.steady_us]
    if steady_rows:
        lines += [
            "",
            "CPU per line, by process group, while every target printed (steady state: from 0.5 s "
            "after the first line to 0.3 s before the last; /proc times of this benchmark's own "
            "processes, sampled every 0.4 s): µs of CPU per line printed, and all groups' CPU "
            "seconds per second (2 = both cores). *platform*: the embedded subgraphs' event loop "
            "(the follower, the subscription resolvers, the WebSocket server) and the subscriber; "
            "*platform threads*: its SQLite and Ray client threads; *sshd + commands*: the targets' "
            "side (sshd and the printing loops).",
            "",
            "| targets | subscription | " + " | ".join(CPU_GROUPS) + " | total | cores | lines/event |",
            "|---:|---|" + "---:|" * (len(CPU_GROUPS) + 3),
        ]
        for c in steady_rows:
            cells = [f"{c.steady_us.get(g, 0):.0f}" for g in CPU_GROUPS]
            total = sum(c.steady_us.values())
            lines.append(
                f"| {c.targets} | `{c.subscription}` | "
                + " | ".join(cells)
                + f" | {total:.0f} | {c.steady_cores} | {c.steady_lines_per_event or '—'} |"
            )
    lines += ["", *HISTORY, "", END, ""]
    return "\n".join(lines)


HISTORY = (
    "Earlier runs of this mode, same machine, one run per case, p50 / p99 ms "
    "(executionEvents; executionEventBatches):",
    "- before issue 15 item 5 (main 7fef155, 2026-12-08 00:26 UTC, load 7-11): 10 targets 105 / 148; "
    "105 / 230. 100 targets 579 / 1,986; 720 / 1,558. Chatty: 100,000 lines, complete, in order, no "
    "duplicates (the rate was measured differently then).",
    "- coordinator answering at once (gather capped at 5 ms), pool still flushing every 50 ms "
    "(00:43 UTC, load 6-7): 10 targets 43 / 76; 46 / 80. 100 targets 113 / 272; 71 / 438.",
    "- the pool pushing at once when idle as well, with the executions follower publishing first "
    "(i15-executions merged on a scratch branch, 00:57 UTC, load 2.5-4): 10 targets 352 / 1,063 (the "
    "first case of that run); 16 / 59. 100 targets 216 / 1,174; 61 / 169.",
    "- gather capped at 5 ms instead of 1 ms (commit 899ced2, 01:25 UTC, load 4.6-11): 10 targets "
    "17-31 / 70-120; 19-20 / 56-80. 100 targets 361-378 / 984-1,277; 114-119 / 523-594.",
    "- the last run before the CPU work below (commit 7e76ac8, 01:45 UTC, load 1.2-3.7): 10 targets "
    "14-15 / 37-105; 13-15 / 31-38. 100 targets 103-168 / 368-498; 69-79 / 231-261.",
    "- The machine is shared with other sessions' test runs: the load average during a run moves "
    "these figures by 2-3x; 100 targets x 50 lines/s keep both cores busy on their own (100 Python "
    "loops, 100 sshd sessions, the pool, coordinator, platform, router and this subscriber).",
)


def _f(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "—"


def splice(path: Path, section: str) -> None:
    """Put the live section into an existing report: in place of the previous one, else just
    before "## Where the engine's time goes" (after the fan-out table), else at the end."""
    text = path.read_text() if path.exists() else "# OpsConductor benchmark results\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + "\n" + tail
    elif "## Where the engine's time goes" in text:
        head, tail = text.split("## Where the engine's time goes", 1)
        text = head + section + "\n## Where the engine's time goes" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)

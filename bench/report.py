"""Collects the samples of a benchmark run and renders bench/RESULTS.md."""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import live
from modes import COMMAND, NUM_SHARDS, Memory, Sample

LABELS = {
    "raw": "raw asyncssh",
    "engine": "engine direct (EngineClient)",
    "e2e": "end to end (router → runJob → executionEventBatches)",
    "e2e-events": "end to end, one message per event (executionEvents), warm only",
    "ansible": "Ansible ad-hoc (`-m raw -f 50`)",
}
TARGET_RATIO = {"warm": 1.5, "cold": 1.2}
DISPLAY = ("raw", "engine", "e2e", "e2e-events", "ansible")
"""Table order; e2e-events is measured within the e2e mode (its subscriber variant)."""
E2E = ("e2e", "e2e-events")


def pool_delta(before: tuple[int, int], after_cold: tuple[int, int], after: tuple[int, int]) -> Memory:
    """Pool RSS after the warm run (N connections open) against fresh pools (none open)."""
    return Memory(
        connections=after[0] - before[0],
        rss_before=before[1],
        rss_after=after[1],
        rss_after_cold=after_cold[1],
    )


@dataclass
class Results:
    ns: list[int]
    modes: list[str]
    repeat: int
    machine: dict[str, str]
    samples: dict[tuple[str, int, str], list[Sample]] = field(default_factory=dict)
    memory: dict[tuple[str, int], list[Memory]] = field(default_factory=dict)
    load: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    sshd_note: str = ""
    ray_note: str = ""
    ansible_note: str = ""
    mode_errors: dict[str, str] = field(default_factory=dict)
    probe: list[dict[str, float]] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)
    """`--modes live` (bench/live.py LiveResults.to_json)."""
    total_s: float = 0.0
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def add(self, mode: str, n: int, cold: Sample, warm: Sample, memory: Memory | None) -> None:
        self.samples.setdefault((mode, n, "cold"), []).append(cold)
        self.samples.setdefault((mode, n, "warm"), []).append(warm)
        if memory is not None:
            self.memory.setdefault((mode, n), []).append(memory)

    def add_warm(self, mode: str, n: int, warm: Sample) -> None:
        self.samples.setdefault((mode, n, "warm"), []).append(warm)

    def has(self, mode: str, n: int | None = None) -> bool:
        """Any sample of ``mode`` (at ``n``)."""
        return any(
            (mode, x, temp) in self.samples
            for x in ([n] if n is not None else self.ns)
            for temp in ("cold", "warm")
        )

    def to_json(self, path: Path) -> None:
        """The raw samples as JSON, so the report can be rendered again (`run.py --render`)."""
        data = dataclasses.asdict(self)
        data["samples"] = {
            "|".join(map(str, k)): [dataclasses.asdict(x) for x in v] for k, v in self.samples.items()
        }
        data["memory"] = {
            "|".join(map(str, k)): [dataclasses.asdict(x) for x in v] for k, v in self.memory.items()
        }
        path.write_text(json.dumps(data, indent=1))

    @classmethod
    def from_json(cls, path: Path) -> Results:
        data = json.loads(path.read_text())
        samples, memory = data.pop("samples"), data.pop("memory")
        results = cls(**data)
        for key, values in samples.items():
            mode, n, temp = key.split("|")
            results.samples[(mode, int(n), temp)] = [Sample(**v) for v in values]
        for key, values in memory.items():
            mode, n = key.split("|")
            results.memory[(mode, int(n))] = [Memory(**v) for v in values]
        return results

    def wall(self, mode: str, n: int, temp: str) -> float | None:
        samples = self.samples.get((mode, n, temp))
        return statistics.median(s.wall_s for s in samples) if samples else None

    def part(self, mode: str, n: int, temp: str, key: str) -> float | None:
        values = [s.parts[key] for s in self.samples.get((mode, n, temp), []) if key in s.parts]
        return statistics.median(values) if values else None

    def ratio(self, mode: str, n: int, temp: str) -> float | None:
        mine, raw = self.wall(mode, n, temp), self.wall("raw", n, temp)
        return mine / raw if mine is not None and raw else None


def _s(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _spread(results: Results, mode: str, n: int, temp: str) -> str:
    samples = results.samples.get((mode, n, temp))
    if not samples:
        return "—"
    walls = [s.wall_s for s in samples]
    text = f"{statistics.median(walls):.3f}"
    if len(walls) > 1:
        text += f" ({min(walls):.3f}-{max(walls):.3f})"
    return text


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f}"


def _busy(results: Results, machine: dict[str, str]) -> bool:
    try:
        cores = int(machine["cores"])
        loads = [float(part.split("/")[0]) for value in results.load.values() for part in value.split(" → ")]
    except (KeyError, ValueError):
        return False
    return bool(loads) and max(loads) > cores


def render(results: Results, *, error: str | None = None) -> str:
    m = results.machine
    lines = [
        "# OpsConductor benchmark results",
        "",
        f"`{COMMAND}` on N SSH targets, measured by `make bench` (`.venv/bin/python bench/run.py`); "
        "see bench/README.md for what each mode measures and how to run it. "
        "All numbers come from one run on the machine below.",
        "",
    ]
    if error:
        lines += [f"**The run did not complete:** `{error}`. The tables hold what was measured before.", ""]
    for mode, message in results.mode_errors.items():
        lines += [f"**Mode `{mode}` stopped early:** `{message}`. Its rows hold what it measured before.", ""]
    lines += [
        "## Machine",
        "",
        f"- `{m['uname']}`",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory']}",
        f"- Python {m['python']}; {m['openssh']}",
        f"- date: {results.date}; git commit {m['commit']}",
        f"- load average (1/5 min) at start {results.load.get('start', '?')}, at end {results.load.get('end', '?')}"
        + "; "
        + ", ".join(f"{key} {value}" for key, value in results.load.items() if key not in ("start", "end")),
        f"- targets: {results.sshd_note}",
    ]
    if _busy(results, m):
        lines.append(
            "- **load above the core count**: the load average exceeded the core count while this ran. "
            "The benchmark's own hundreds of concurrent sshd sessions count in it, and so does whatever "
            "ran in the minutes before (the averages decay slowly); if the start figure was high, other "
            "work may have shared the 2 cores. Absolute times vary between repetitions; raw asyncssh, "
            "engine and end to end ran interleaved (each N of each repetition runs all three in turn, "
            "the order rotating), so compare ratios, and the min-max spread."
        )
    if results.ray_note:
        lines.append(f"- engine: {results.ray_note}, {NUM_SHARDS} ConnectionPool shards, default PoolConfig")
    if "ansible" in results.modes:
        lines.append(f"- Ansible: {results.ansible_note}")
    lines += [
        f"- N = {', '.join(map(str, results.ns))}; {results.repeat} cold+warm pair(s) per mode and N; "
        f"whole run {results.total_s:.0f} s ("
        + ", ".join(
            f"{mode} {results.durations[mode]:.0f} s" for mode in results.modes if mode in results.durations
        )
        + ")",
        "",
        "## Wall time",
        "",
        f"Seconds, median of {results.repeat} (min-max). Ratio = median ÷ raw asyncssh's median at the same "
        "N and temperature. Cold: new SSH connections (fresh pools); warm: the same run again on the "
        "connections the first one left open. Raw asyncssh, engine direct and end to end ran "
        "interleaved: the platform and router were up throughout, and each repetition ran every N "
        "with the three modes in turn, the order rotated by one mode per repetition (raw, engine, "
        "e2e; then engine, e2e, raw; ...), so that no mode always runs first or last. Ansible ran "
        "after them, on its own.",
        "",
        "| N | mode | cold s | cold ÷ raw | warm s | warm ÷ raw |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in results.ns:
        for mode in DISPLAY:
            if not results.has(mode, n):
                continue
            lines.append(
                f"| {n} | {LABELS[mode]} | {_spread(results, mode, n, 'cold')} | "
                f"{_ratio(results.ratio(mode, n, 'cold'))} | {_spread(results, mode, n, 'warm')} | "
                f"{_ratio(results.ratio(mode, n, 'warm'))} |"
            )
    if results.live:
        lines += ["", live_section(results).rstrip("\n")]
    lines += _breakdown(results) + _events(results) + _memory(results) + _verdict(results)
    return "\n".join(lines) + "\n"


def live_section(results: Results) -> str:
    """The live output section (bench/live.py), with this run's machine, date and load."""
    data = live.LiveResults.from_json(results.live)
    if not data.note and "live" in results.load:
        data.note = f"load average (1/5 min) during the live runs {results.load['live']}; {results.ray_note}"
    machine = {
        **results.machine,
        "cpu": f"{results.machine.get('cpu', '?')}, {results.machine.get('cores', '?')} cores",
    }
    return live.render(data, machine, results.date)


def _breakdown(results: Results) -> list[str]:
    modes = [m for m in ("engine", *E2E) if results.has(m)]
    if not modes:
        return []
    lines = [
        "",
        "## Where the engine's time goes",
        "",
        "Medians in seconds, from the events' own timestamps (`at`, set by the coordinator and pool "
        "actors on this machine's clock). *Until EXECUTION_STARTED*: from the call (`EngineClient.start` "
        "or the runJob request) to the coordinator's first event; it includes handing the plan to a "
        "long-lived ExecutionCoordinator actor and, end to end, runJob's own work (job "
        "snapshot, connection grant, rows). *SSH phase*: EXECUTION_STARTED → EXECUTION_FINISHED. "
        "*Delivery*: EXECUTION_FINISHED → received by the client (long poll; end to end also "
        "persisting, publishing and the router). Within the SSH phase: *first credential request* "
        "(engine direct only: when the FakeCredentialVault got the pools' first lookup, i.e. when a "
        "pool began on the run's targets) and *first TARGET_STARTED* (first channel open), then when half "
        "and 90 % of the targets had opened their channel (p50, p90), all counted from EXECUTION_STARTED.",
        "",
        "| N | mode | temp | total | until EXECUTION_STARTED | SSH phase | ↳ first credential request "
        "| ↳ first TARGET_STARTED | ↳ TARGET_STARTED p50 / p90 | delivery | raw asyncssh total |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in results.ns:
        for mode in modes:
            for temp in ("cold", "warm"):
                if (mode, n, temp) not in results.samples:
                    continue
                lines.append(
                    f"| {n} | {mode} | {temp} | {_s(results.wall(mode, n, temp))} | "
                    f"{_s(results.part(mode, n, temp, 'to_started'))} | {_s(results.part(mode, n, temp, 'run'))} | "
                    f"{_s(results.part(mode, n, temp, 'to_first_credential'))} | "
                    f"{_s(results.part(mode, n, temp, 'to_first_target'))} | "
                    f"{_s(results.part(mode, n, temp, 'started_p50'))} / "
                    f"{_s(results.part(mode, n, temp, 'started_p90'))} | "
                    f"{_s(results.part(mode, n, temp, 'tail'))} | {_s(results.wall('raw', n, temp))} |"
                )
    return lines


def _events(results: Results) -> list[str]:
    modes = [m for m in E2E if results.has(m)]
    if not modes:
        return []
    lines = [
        "",
        "## End to end: events persisted and delivered",
        "",
        "Per run: events persisted by the executions service (`lastSeq`) and received by the subscriber "
        "through the router, divided by the run's wall time (runJob → EXECUTION_FINISHED received). "
        "These are the rates a run of this size produces, not the service's capacity. Latency: "
        "subscriber receive time - the event's engine timestamp (persisting in batches, in-process "
        "pub/sub, router). Messages: how many subscription messages carried them (executionEventBatches: "
        "one per persisted batch; executionEvents: one per event).",
        "",
        "| N | subscription | temp | events | messages | persisted/s | delivered/s | latency p50 s "
        "| latency max s | runJob reply s |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in results.ns:
        for mode in modes:
            for temp in ("cold", "warm"):
                samples = results.samples.get((mode, n, temp))
                if not samples:
                    continue
                persisted = statistics.median(s.parts["persisted"] / s.wall_s for s in samples)
                delivered = statistics.median(s.parts["events"] / s.wall_s for s in samples)
                messages = results.part(mode, n, temp, "messages")
                name = "executionEventBatches" if mode == "e2e" else "executionEvents"
                lines.append(
                    f"| {n} | {name} | {temp} | {results.part(mode, n, temp, 'events'):.0f} | "
                    f"{_s(messages, 0)} | {persisted:.0f} | "
                    f"{delivered:.0f} | {_s(results.part(mode, n, temp, 'latency_p50'))} | "
                    f"{_s(results.part(mode, n, temp, 'latency_max'))} | "
                    f"{_s(results.part(mode, n, temp, 'run_job'))} |"
                )
    return lines


def _memory(results: Results) -> list[str]:
    if not results.memory:
        return []
    lines = [
        "",
        "## Memory per open connection",
        "",
        "RSS growth divided by the connections open after the warm run. Engine and end to end: the sum "
        f"over the {NUM_SHARDS} ConnectionPool worker processes, freshly started and primed with one connection "
        "each (to hosts outside the measured set), against the same after the warm run (median over "
        "the repetitions). Raw asyncssh: the same measurement in a fresh Python process holding bare "
        "asyncssh connections (bench/raw_memory.py, once), plus the Python heap growth tracemalloc saw "
        "there. RSS deltas are coarse: a process reuses heap it freed earlier (which hides growth) and "
        "the pools' figure also holds what the runs allocated besides the connections (event buffers, "
        "Ray call state); the last column, the pools' growth during the warm run, which opens no "
        "connection, shows that per-run part. sshd's side is not counted.",
        "",
        "| N | mode | connections | RSS before MiB | RSS after MiB | RSS KiB per connection "
        "| Python heap KiB per connection | warm run's own RSS growth KiB |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n in results.ns:
        for mode in results.modes:
            memories = results.memory.get((mode, n))
            if not memories:
                continue
            per = [x.per_connection for x in memories if x.per_connection is not None]
            traced = [x.traced / x.connections for x in memories if x.traced is not None and x.connections]
            warm_growth = [x.rss_after - x.rss_after_cold for x in memories if x.rss_after_cold is not None]
            lines.append(
                f"| {n} | {mode} | {memories[0].connections} | "
                f"{_mib(statistics.median(x.rss_before for x in memories))} | "
                f"{_mib(statistics.median(x.rss_after for x in memories))} | "
                + (f"{statistics.median(per) / 1024:.0f}" if per else "-")
                + " | "
                + (f"{statistics.median(traced) / 1024:.0f}" if traced else "-")
                + " | "
                + (f"{statistics.median(warm_growth) / 1024:.0f}" if warm_growth else "-")
                + " |"
            )
    return lines + _marginal(results)


def _marginal(results: Results) -> list[str]:
    """Between the smallest and largest N, fixed per-run costs cancel out."""
    if len(results.ns) < 2:
        return []
    low, high = results.ns[0], results.ns[-1]
    out = []
    flat = True
    for mode in ("engine", "e2e"):
        a, b = results.memory.get((mode, low)), results.memory.get((mode, high))
        if not a or not b or b[0].connections == a[0].connections:
            continue
        grew_a = statistics.median(x.rss_after - x.rss_before for x in a)
        grew_b = statistics.median(x.rss_after - x.rss_before for x in b)
        marginal = (grew_b - grew_a) / (b[0].connections - a[0].connections)
        flat = flat and marginal < 0.25 * grew_b / b[0].connections
        out.append(
            f"- {mode}: the pools grew {grew_a / 2**20:.1f} MiB at N={low} and {grew_b / 2**20:.1f} MiB at "
            f"N={high}: {marginal / 1024:.0f} KiB per extra connection (the difference cancels the per-run part)."
        )
    if not out:
        return []
    raw = [
        x.traced / x.connections for n in results.ns for x in results.memory.get(("raw", n), []) if x.traced
    ]
    if flat:
        reading = (
            "The growth hardly changes with N: a pooled connection costs less than these RSS figures can "
            "resolve (the ~130 MiB pool processes reuse heap they had freed), and the per-connection column "
            "mostly spreads a fixed per-run growth over N."
        )
    else:
        reading = (
            "RSS deltas of a few MiB in ~130 MiB processes are noisy at these N; read the figures as upper "
            "bounds."
        )
    if raw:
        reading += (
            f" The Python heap of a bare asyncssh connection (tracemalloc, above: about "
            f"{statistics.median(raw) / 1024:.0f} KiB) is the floor for what a pooled connection holds (the pool "
            "adds small bookkeeping objects of its own)."
        )
    return ["", "Marginal cost, between the smallest and the largest N:", "", *out, "", reading]


def _verdict(results: Results) -> list[str]:
    lines = [
        "",
        "## Against the targets (warm ≤ 1.5x raw asyncssh, cold ≤ 1.2x)",
        "",
    ]
    any_line = False
    for mode in ("engine", *E2E):
        for n in results.ns:
            for temp in ("cold", "warm"):
                ratio = results.ratio(mode, n, temp)
                if ratio is None:
                    continue
                any_line = True
                total = results.wall(mode, n, temp) or 0
                before = results.part(mode, n, temp, "to_started") or 0
                ssh = results.part(mode, n, temp, "run") or 0
                tail = results.part(mode, n, temp, "tail") or 0
                raw = results.wall("raw", n, temp) or 0
                met = "met" if ratio <= TARGET_RATIO[temp] else "**not met**"
                lines.append(
                    f"- {mode}, N={n}, {temp}: {ratio:.2f}x raw — {met}. Of {total:.3f} s, "
                    f"{before:.3f} s ({before / total:.0%}) pass before EXECUTION_STARTED, the SSH phase takes "
                    f"{ssh:.3f} s ({ssh / raw:.2f}x raw asyncssh's whole {raw:.3f} s) and delivery {tail:.3f} s."
                    if total and raw
                    else f"- {mode}, N={n}, {temp}: {ratio:.2f}x raw — {met}."
                )
    if not any_line:
        lines.append("- (engine modes not run)")
    lines += ["", *_reading(results)]
    return lines


def _range(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    low, high = min(present), max(present)
    return f"{low:.2f} s" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f} s"


def _reading(results: Results) -> list[str]:
    """What the breakdown says about the gap, in numbers from this run."""
    engine_modes = [m for m in ("engine", *E2E) if results.has(m)]
    if not engine_modes:
        return []
    temps = ("cold", "warm")
    before = [results.part(m, n, t, "to_started") for m in engine_modes for n in results.ns for t in temps]
    dispatch = [results.part("engine", n, t, "to_first_credential") for n in results.ns for t in temps]
    ssh_work = [
        (results.part("engine", n, "warm", "run") or 0)
        - (results.part("engine", n, "warm", "to_first_credential") or 0)
        for n in results.ns
        if results.part("engine", n, "warm", "to_first_credential") is not None
    ]
    raw_warm = [results.wall("raw", n, "warm") for n in results.ns]
    out = ["Likely cause, from the breakdown above:", ""]
    probe = ""
    if results.probe:
        med = {key: statistics.median(p[key] for p in results.probe) for key in results.probe[0]}
        probe = (
            f" Ray alone, without OpsConductor code (median of {len(results.probe)} probes): creating an "
            f"actor that does nothing and calling it once took {med['actor']:.2f} s "
            "(" + ", ".join(f"{p['actor']:.2f}" for p in results.probe) + " s)"
        )
    out.append(
        f"1. **Hand-off to the run's coordinator**: {_range(before)} pass before EXECUTION_STARTED (end to "
        "end this includes runJob's own work). Runs no longer get an actor of their own: `EngineClient.start` "
        f"checks the {NUM_SHARDS} pools with one cheap call each and hands the plan to one of the long-lived "
        "`coordinator-<k>` actors created by `connect()`."
        + (
            probe + ", which is what every run paid before the coordinators became long-lived."
            if probe
            else ""
        )
    )
    if any(d is not None for d in dispatch):
        out.append(
            f"2. **Coordinator to pool dispatch**: {_range(dispatch)} from EXECUTION_STARTED to the pools' "
            "first credential request (the coordinator pings each pool once, then calls it with the batch)."
        )
    if ssh_work:
        out.append(
            f"3. **The SSH work itself, once a pool has its batch**: warm, from the first credential request "
            f"to EXECUTION_FINISHED took {_range(ssh_work)}, against {_range(raw_warm)} for raw asyncssh's "
            "whole warm run (the pools ask the credential resolver for a batch's targets 10, 25, then 50 at a "
            "time, two requests in flight, and flush "
            f"events to the coordinator every 50 ms; raw asyncssh runs in one process, the engine's {NUM_SHARDS} pools "
            "share the same 2 cores with the coordinator, Ray and this benchmark)."
        )
    e2e_run = [results.part("e2e", n, "warm", "run") for n in results.ns]
    e2e_tail = [results.part("e2e", n, "warm", "tail") for n in results.ns]
    engine_run = [results.part("engine", n, "warm", "run") for n in results.ns]
    if any(v is not None for v in e2e_run):
        out.append(
            f"4. **End to end adds the platform**: warm, its SSH phase took {_range(e2e_run)} against "
            f"{_range(engine_run)} engine direct, and delivery (EXECUTION_FINISHED at the coordinator to the "
            f"subscriber) {_range(e2e_tail)}. Every event is persisted by the executions service (one "
            "transaction per batch: event rows, step results and target runs in bulk statements) before it is "
            "published (one live message per persisted batch), then goes through the subscription and the "
            "router; the pools' credential requests are answered by the targets service, in the same process; "
            "all subgraphs, the subscriber and the router share the 2 cores with the pools and sshd, so the "
            "platform's CPU also slows the SSH phase. Before EXECUTION_STARTED, runJob reads the job plan "
            "from jobs (which checks the targets exist with targets), gets a connection grant from targets "
            "and writes the run's rows."
        )
    one_by_one = [results.wall("e2e-events", n, "warm") for n in results.ns]
    batched = [results.wall("e2e", n, "warm") for n in results.ns]
    if any(v is not None for v in one_by_one):
        pairs = [
            f"N={n}: {b:.2f} s in batches, {o:.2f} s one by one"
            for n, b, o in zip(results.ns, batched, one_by_one, strict=True)
            if b is not None and o is not None
        ]
        out.append(
            "5. **Batches or one message per event**: the same warm run, the subscriber taking "
            "executionEventBatches (one message per persisted batch) or executionEvents (a GraphQL result, "
            "a WebSocket frame from the subgraph and one from the router per event; at a few hundred "
            "events the difference is within the noise, at thousands it is CPU the SSH phase lacks): "
            + "; ".join(pairs)
            + "."
        )
    return out

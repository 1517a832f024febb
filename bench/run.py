"""OpsConductor benchmark: `echo hello; hostname` on N SSH targets, four ways, cold and warm.

    .venv/bin/python bench/run.py                    # N = 16 and 48, every mode, 3 repeats
    .venv/bin/python bench/run.py --n 16 --modes raw,engine --repeat 1

Writes bench/RESULTS.md (or --out). Everything it starts (sshd processes, Ray, the platform, the
router, Ansible's ssh masters) is stopped at the end, also on error, and dies with this process
if it is killed. See bench/README.md for what each mode measures.
"""

from __future__ import annotations

import os

# Ray reads this when it is first imported: with "0" it binds 127.0.0.1 only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.pop("RAY_ADDRESS", None)  # always our own local Ray, never someone else's cluster

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(BENCH), str(REPO)]


import report  # noqa: E402
from e2e import embedded_platform  # noqa: E402
from infra import (  # noqa: E402
    SshdFleet,
    load_average,
    machine_info,
    start_fleet,
)
from live import CASES as LIVE_CASES  # noqa: E402
from live import TARGETS as LIVE_TARGETS  # noqa: E402
from live import bench_live, splice  # noqa: E402
from modes import (  # noqa: E402
    NUM_SHARDS,
    Ansible,
    BenchError,
    engine_run,
    ensure_ansible,
    fresh_pools,
    pool_memory,
    primer_targets,
    raw_asyncssh,
    raw_memory,
    ray_probe,
    timed_vault,
)
from modes import _engine_targets as engine_targets  # noqa: E402
from report import Results  # noqa: E402
from schedules import bench_schedules  # noqa: E402
from schedules import existing as existing_schedules_section  # noqa: E402
from schedules import section as schedules_section  # noqa: E402
from schedules import splice as splice_schedules  # noqa: E402

MODES = ("raw", "engine", "e2e", "live", "ansible", "schedules", "audit")
WORK = BENCH / ".work"
ADMIN_PASSWORD = secrets.token_urlsafe(16)  # a throwaway platform in a temporary directory


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ------------------------------------------------------------------------------------- modes


# Raw asyncssh, engine direct and end to end are set up once (the platform and router stay up
# the whole time), then interleaved: every (repetition, N) runs each of them in turn, the order
# rotating between repetitions, so drift on the machine (page cache, sshd's forked children,
# the load the previous runs left) falls on all of them alike, not on whichever mode came last.
Round = Callable[[int, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_session(fleet: SshdFleet, ns: list[int], results: Results) -> AsyncIterator[Round]:
    async def one(n: int, rep: int) -> None:
        cold, warm = await raw_asyncssh(fleet, n)
        memory = await raw_memory(fleet, n, max(ns), WORK) if rep == 0 else None
        results.add("raw", n, cold, warm, memory)
        log(f"raw asyncssh   N={n:<4} rep {rep + 1}: cold {cold.wall_s:.3f}s  warm {warm.wall_s:.3f}s")

    yield one


@contextlib.asynccontextmanager
async def engine_session(fleet: SshdFleet, ns: list[int], results: Results) -> AsyncIterator[Round]:
    vault = timed_vault()
    await vault.start()
    try:
        credentials = vault.issue(
            username=fleet.username, private_key=fleet.private_key_pem, known_hosts=fleet.known_hosts
        )
        primers = primer_targets(fleet, max(ns))

        async def one(n: int, rep: int) -> None:
            client = await fresh_pools(primers, credentials)
            before = await pool_memory(client)
            targets = engine_targets(fleet, n)
            cold = await engine_run(client, targets, credentials, warm=False, vault=vault)
            after_cold = await pool_memory(client)
            warm = await engine_run(client, targets, credentials, warm=True, vault=vault)
            after = await pool_memory(client)
            results.add("engine", n, cold, warm, report.pool_delta(before, after_cold, after))
            log(f"engine direct  N={n:<4} rep {rep + 1}: cold {cold.wall_s:.3f}s  warm {warm.wall_s:.3f}s")

        yield one
        results.probe = await ray_probe()
        log(
            "Ray probe: " + "; ".join(", ".join(f"{k} {v:.3f}s" for k, v in p.items()) for p in results.probe)
        )
    finally:
        await vault.stop()


@contextlib.asynccontextmanager
async def e2e_session(fleet: SshdFleet, ns: list[int], results: Results) -> AsyncIterator[Round]:
    async with embedded_platform(fleet, max(ns), WORK, log) as platform:
        client = platform.client
        jobs = {n: await client.create_job(platform.target_ids[:n]) for n in ns}

        async def one(n: int, rep: int) -> None:
            pools = await fresh_pools(platform.primers, platform.primer_credentials)
            before = await pool_memory(pools)
            cold = await client.run(jobs[n], n, warm=False)
            after_cold = await pool_memory(pools)
            warm = await client.run(jobs[n], n, warm=True)
            after = await pool_memory(pools)
            results.add("e2e", n, cold, warm, report.pool_delta(before, after_cold, after))
            # The same warm run, the subscriber taking one message per event (executionEvents).
            one_by_one = await client.run(jobs[n], n, warm=True, batches=False)
            results.add_warm("e2e-events", n, one_by_one)
            log(
                f"end to end     N={n:<4} rep {rep + 1}: cold {cold.wall_s:.3f}s  warm {warm.wall_s:.3f}s"
                f"  (one message per event: warm {one_by_one.wall_s:.3f}s)"
            )

        yield one


async def bench_ansible(fleet: SshdFleet, ns: list[int], repeat: int, results: Results) -> None:
    started = time.perf_counter()
    binary, how = await ensure_ansible(WORK)
    version = ""
    if binary is not None:
        proc = await asyncio.create_subprocess_exec(
            str(binary), "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        version = out.decode().splitlines()[0] if out else "?"
    results.ansible_note = f"{version or 'not available'} ({how}, {time.perf_counter() - started:.0f} s)"
    log(f"ansible: {results.ansible_note}")
    if binary is None:
        return
    ansible = Ansible(binary, WORK, fleet)
    try:
        for rep in range(repeat):
            for n in ns:
                control_dir = ansible.new_control_dir()
                cold = await ansible.run(n, control_dir)
                warm = await ansible.run(n, control_dir)
                ansible.close_masters()
                results.add("ansible", n, cold, warm, None)
                log(
                    f"ansible        N={n:<4} rep {rep + 1}: cold {cold.wall_s:.3f}s  warm {warm.wall_s:.3f}s"
                )
    finally:
        ansible.cleanup()


async def warm_up(fleet: SshdFleet) -> None:
    """One untimed login per sshd (pages sshd, the shell and PAM into the cache), so the first
    mode measured is not penalised."""
    import asyncssh

    from infra import client_options
    from modes import COMMAND

    seen = set()
    for endpoint in fleet.endpoints:
        if endpoint.port in seen:
            continue
        seen.add(endpoint.port)
        async with asyncssh.connect(endpoint.host, endpoint.port, **client_options(fleet)) as conn:  # type: ignore[arg-type]
            await conn.run(COMMAND, check=False)


async def run_modes(args: argparse.Namespace, fleet: SshdFleet, results: Results) -> None:
    await warm_up(fleet)
    sessions = {"raw": raw_session, "engine": engine_session, "e2e": e2e_session}
    async with contextlib.AsyncExitStack() as stack:
        rounds: dict[str, Round] = {}
        for mode in MODES:
            if mode in args.modes and mode in sessions:
                started = time.perf_counter()
                try:
                    rounds[mode] = await stack.enter_async_context(sessions[mode](fleet, args.n, results))
                except BenchError as exc:  # recorded in RESULTS.md; the other modes still run
                    results.mode_errors[mode] = str(exc)
                    log(f"{mode} stopped: {exc}")
                results.durations[mode] = time.perf_counter() - started
        for rep in range(args.repeat):
            results.load[f"repetition {rep + 1}"] = load_average()
            order = list(rounds)
            order = order[rep % len(order) :] + order[: rep % len(order)] if order else []
            for n in args.n:
                for mode in order:
                    if mode not in rounds:  # stopped by an error in an earlier round
                        continue
                    started = time.perf_counter()
                    try:
                        await rounds[mode](n, rep)
                    except BenchError as exc:
                        results.mode_errors[mode] = str(exc)
                        log(f"{mode} stopped: {exc}")
                        del rounds[mode]
                    results.durations[mode] += time.perf_counter() - started
            results.load[f"repetition {rep + 1}"] += " → " + load_average()
    if "live" in args.modes:  # its own platform, after the fan-out rounds
        started = time.perf_counter()
        results.load["live"] = load_average()
        try:
            results.live = (await bench_live(fleet, WORK, log, args.live_cases)).to_json()
        except BenchError as exc:
            results.mode_errors["live"] = str(exc)
            log(f"live stopped: {exc}")
        results.durations["live"] = time.perf_counter() - started
        results.load["live"] += " → " + load_average()
    if "ansible" in args.modes:  # last and on its own: minutes of ssh processes, a reference only
        results.load["ansible"] = load_average()
        started = time.perf_counter()
        try:
            await bench_ansible(fleet, args.n, args.repeat, results)
        except BenchError as exc:
            results.mode_errors["ansible"] = str(exc)
            log(f"ansible stopped: {exc}")
        results.durations["ansible"] = time.perf_counter() - started
        results.load["ansible"] += " → " + load_average()


# -------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", default="50,200,500", help="comma-separated target counts (default 50,200,500)"
    )
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}"
    )
    parser.add_argument("--repeat", type=int, default=3, help="cold+warm pairs per mode and N (default 3)")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--timeout", type=float, default=1200, help="give up after this many seconds")
    parser.add_argument(
        "--live-cases",
        default=",".join(LIVE_CASES),
        help=f"live mode: comma-separated subset of {','.join(LIVE_CASES)} (paced target counts, chatty)",
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only render --out again from a saved results.json"
    )
    parser.add_argument(
        "--audit-rows",
        type=int,
        default=1_000_000,
        help="audit mode: events in the table searched (default 1 M)",
    )
    parser.add_argument(
        "--audit-ingest",
        type=int,
        default=50_000,
        help="audit mode: events ingested through Redis (default 50,000)",
    )
    args = parser.parse_args(argv)
    args.n = sorted({int(x) for x in args.n.split(",") if x.strip()})
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(args.modes) - set(MODES)
    if unknown or not args.modes:
        parser.error(f"unknown modes {sorted(unknown)}; choose from {','.join(MODES)}")
    if not args.n or min(args.n) < 1 or max(args.n) > 16 * 50:
        parser.error("--n takes target counts between 1 and 800")
    args.live_cases = tuple(c.strip() for c in args.live_cases.split(",") if c.strip())
    if not args.live_cases or set(args.live_cases) - set(LIVE_CASES):
        parser.error(f"--live-cases takes a subset of {','.join(LIVE_CASES)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop sshd, router, Ray


def run_schedules(out: Path) -> int:
    """`--modes schedules`: no targets, Ray or platform; only its section of the report changes."""
    load = load_average()
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    info = machine_info()
    machine = (
        f"{info['cpu']}, {info['cores']} cores, {info['memory']}; `{info['uname']}`; Python {info['python']}"
    )
    commit = info["commit"]
    try:
        cases = bench_schedules(log)
    except Exception:
        traceback.print_exc()
        log("schedules mode FAILED; RESULTS.md left alone")
        return 1
    splice_schedules(out, schedules_section(cases, machine, when, commit, f"{load} → {load_average()}"))
    log(f"wrote the schedules section of {out}")
    return 0


def _keep_audit_section(previous: str, out: Path) -> None:
    """A fan-out run keeps the audit section (between its markers) of the report it replaces."""
    import audit

    if audit.BEGIN in previous and audit.END in previous:
        kept = audit.BEGIN + previous.split(audit.BEGIN, 1)[1].split(audit.END, 1)[0] + audit.END
        audit.splice(out, kept)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    schedules_only = args.modes == ["schedules"]
    if "schedules" in args.modes:
        code = run_schedules(args.out)
        args.modes = [m for m in args.modes if m != "schedules"]
        if schedules_only or code:
            return code
    if args.render:
        args.out.write_text(report.render(Results.from_json(args.render)))
        log(f"rendered {args.out} from {args.render}")
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    logging.basicConfig(level=logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)
    if "audit" in args.modes:  # no SSH fleet, no Ray: PostgreSQL and Redis only; its own section
        import audit

        info = machine_info()
        machine = f"{info['cpu']}, {info['cores']} cores, {info['memory']}, Python {info['python']}, commit {info['commit']}, {time.strftime('%Y-%m-%d')}, load {load_average()}"
        code = audit.run(
            out=args.out,
            rows=args.audit_rows,
            ingest_events=args.audit_ingest,
            work=WORK,
            machine=machine,
            log=log,
        )
        args.modes = [m for m in args.modes if m != "audit"]
        if not args.modes or code:
            return code
    results = Results(ns=args.n, modes=args.modes, repeat=args.repeat, machine=machine_info())
    results.load["start"] = load_average()
    log(f"N={args.n} modes={args.modes} repeat={args.repeat}; machine load {results.load['start']}")
    started = time.perf_counter()
    fleet = None
    ray_up = False
    error: str | None = None
    try:
        fan_out = [n for n in args.n if set(args.modes) - {"live"}]
        hosts = max([*fan_out, LIVE_TARGETS if "live" in args.modes else 1])
        fleet = start_fleet(hosts + NUM_SHARDS)  # + one host per pool shard to prime it
        results.sshd_note = (
            f"{len(fleet.processes)} sshd processes x 16 loopback addresses (127.0.200+k.1-16), "
            f"UsePAM {'yes' if fleet.use_pam else 'no'}, MaxStartups 200:30:400, MaxSessions 64, ed25519 keys"
        )
        log(results.sshd_note)
        if {"engine", "e2e", "live"} & set(args.modes):
            import ray

            ray_started = time.perf_counter()
            # address="local": always a new local Ray, never one that `ray start` left on this machine.
            for attempt in range(1, 4):
                try:
                    ray.init(
                        address="local",
                        num_cpus=2,
                        include_dashboard=False,
                        namespace="opsconductor",
                        log_to_driver=False,
                    )
                    break
                except Exception as exc:  # a busy machine: Ray's raylet start-up wait is a fixed 30 s
                    log(f"Ray did not start (attempt {attempt}): {exc}")
                    with contextlib.suppress(Exception):
                        ray.shutdown()
                    if attempt == 3:
                        raise
            ray_up = True
            results.ray_note = f"local Ray {ray.__version__}, num_cpus=2, started in {time.perf_counter() - ray_started:.1f}s"
            log(results.ray_note)
        asyncio.run(asyncio.wait_for(run_modes(args, fleet, results), args.timeout))
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        traceback.print_exc()
    finally:
        if ray_up:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
        if fleet is not None:
            leftover = fleet.connection_count()
            if leftover:
                log(f"{leftover} SSH connections were still open at the end (closing them)")
            fleet.stop()
    results.load["end"] = load_average()
    results.total_s = time.perf_counter() - started
    out = args.out if error is None else WORK / "RESULTS.partial.md"
    if args.modes == ["live"] and error is None and "live" not in results.mode_errors:
        # only the live section changes: the fan-out tables of the last full run stay
        splice(out, report.live_section(results))
    else:
        kept = existing_schedules_section(args.out)  # a fan-out run keeps the schedules section
        previous = args.out.read_text() if args.out.exists() else ""
        out.write_text(report.render(results, error=error))
        if kept:
            splice_schedules(out, kept)
        _keep_audit_section(previous, out)
    results.to_json(WORK / ("results.json" if error is None else "results.partial.json"))
    log(f"{'wrote' if error is None else 'FAILED; partial results in'} {out} ({results.total_s:.0f}s in all)")
    return 0 if error is None else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything we started is stopped by now; don't wait for library threads (aiosqlite
    # workers of a platform that failed mid-way) that would keep the interpreter alive.
    os._exit(code)

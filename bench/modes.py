"""The four ways of running `echo hello; hostname` on N targets, each timed cold and warm.

- raw asyncssh: the floor, N concurrent asyncssh connections from this process.
- engine direct: `EngineClient.start(plan)` until EXECUTION_FINISHED arrives through `events()`.
- end to end: `runJob` through the router until the subscriber sees EXECUTION_FINISHED.
- Ansible ad-hoc: `ansible all -m raw -f 50`, OpenSSH with ControlPersist.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from infra import Endpoint, SshdFleet, client_options, die_with_parent, ray_worker_pids, rss_of
from opsconductor_ray.config import DEFAULT_NUM_SHARDS

COMMAND = "echo hello; hostname"
NUM_SHARDS = DEFAULT_NUM_SHARDS  # what the platform's EngineClient uses (the e2e mode's pools)
NAMESPACE = "opsconductor"


@dataclass
class Sample:
    """One timed run."""

    wall_s: float
    parts: dict[str, float] = field(default_factory=dict)
    """Breakdown (seconds) and counters, depending on the mode."""


@dataclass
class Memory:
    connections: int
    rss_before: int
    rss_after: int
    traced: int | None = None
    """Python heap growth (tracemalloc), where measured."""
    rss_after_cold: int | None = None
    """Pools: RSS after the cold run, so the warm run's growth (no new connection) shows per-run cost."""

    @property
    def per_connection(self) -> float | None:
        return (self.rss_after - self.rss_before) / self.connections if self.connections else None


class BenchError(RuntimeError):
    """A run did not do what it should have (a target failed, output missing...)."""


def _expect_output(outputs: Sequence[str], n: int, what: str) -> None:
    good = sum(1 for out in outputs if "hello" in out)
    if good != n:
        raise BenchError(f"{what}: {good} of {n} targets printed 'hello'")


# ------------------------------------------------------------------------------ raw asyncssh


async def raw_asyncssh(fleet: SshdFleet, n: int) -> tuple[Sample, Sample]:
    """Cold: connect to N hosts at once and run the command on each. Warm: run it again on the
    open connections."""
    endpoints = fleet.endpoints[:n]
    options = client_options(fleet)
    conns: list[asyncssh.SSHClientConnection] = []

    async def connect_and_run(endpoint: Endpoint) -> str:
        conn = await asyncssh.connect(endpoint.host, endpoint.port, **options)  # type: ignore[arg-type]
        conns.append(conn)
        result = await conn.run(COMMAND, check=False)
        return str(result.stdout)

    try:
        started = time.perf_counter()
        outputs = await asyncio.gather(*(connect_and_run(e) for e in endpoints))
        cold = Sample(time.perf_counter() - started)
        _expect_output(outputs, n, "raw asyncssh cold")

        started = time.perf_counter()
        results = await asyncio.gather(*(conn.run(COMMAND, check=False) for conn in conns))
        warm = Sample(time.perf_counter() - started)
        _expect_output([str(r.stdout) for r in results], n, "raw asyncssh warm")
    finally:
        for conn in conns:
            conn.close()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(conn.wait_closed() for conn in conns))
    return cold, warm


async def raw_memory(fleet: SshdFleet, n: int, n_max: int, work: Path) -> Memory:
    """RSS per bare asyncssh connection, in a fresh process (bench/raw_memory.py)."""
    key_file = work / f"raw-memory-key-{os.getpid()}"
    key_file.write_text(fleet.private_key_pem)
    key_file.chmod(0o600)
    primer = fleet.endpoints[n_max]
    argv = [
        sys.executable,
        str(Path(__file__).with_name("raw_memory.py")),
        str(key_file),
        fleet.username,
        f"{primer.host}:{primer.port}",
        *(f"{e.host}:{e.port}" for e in fleet.endpoints[:n]),
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *die_with_parent(argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        key_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise BenchError(f"raw_memory.py failed: {err.decode(errors='replace')[-1000:]}")
    result = json.loads(out)
    return Memory(result["connections"], result["rss_before"], result["rss_after"], result["traced"])


def _probe_once() -> dict[str, float]:
    """Ray's own costs behind a run, without OpsConductor code: create an actor that does nothing
    and call it once (a new worker process, or a prestarted one), then from inside that new
    process look the 4 pool actors up by name and call each one twice (`stats`), as a fresh
    coordinator does before its first batch reaches the pools."""
    import ray

    @ray.remote(num_cpus=0)
    class Probe:
        async def ping(self) -> int:
            return os.getpid()

        async def dispatch(self, namespace: str, shards: int) -> tuple[float, float, float, float]:
            started = time.perf_counter()
            handles = await asyncio.gather(
                *(asyncio.to_thread(ray.get_actor, f"pool-{s}", namespace=namespace) for s in range(shards))
            )
            looked_up = time.perf_counter()
            await asyncio.gather(*(h.stats.remote() for h in handles))
            first = time.perf_counter()
            await asyncio.gather(*(h.stats.remote() for h in handles))
            second = time.perf_counter()
            await asyncio.gather(
                *(asyncio.to_thread(ray.get_actor, f"pool-{s}", namespace=namespace) for s in range(shards))
            )
            return looked_up - started, first - looked_up, second - first, time.perf_counter() - second

    started = time.perf_counter()
    actor = Probe.remote()  # type: ignore[attr-defined]
    ray.get(actor.ping.remote())
    created = time.perf_counter() - started
    lookup, first_call, second_call, second_lookup = ray.get(actor.dispatch.remote(NAMESPACE, NUM_SHARDS))
    ray.kill(actor)
    return {
        "actor": created,
        "lookup": lookup,
        "first_call": first_call,
        "second_call": second_call,
        "second_lookup": second_lookup,
    }


async def ray_probe(times: int = 3) -> list[dict[str, float]]:
    return [await asyncio.to_thread(_probe_once) for _ in range(times)]


# ------------------------------------------------------------------------------ engine direct


def _kill_pools() -> None:
    import ray

    from opsconductor_ray.config import pool_name

    for shard in range(NUM_SHARDS):
        try:
            handle = ray.get_actor(pool_name(shard), namespace=NAMESPACE)
        except ValueError:
            continue
        ray.kill(handle, no_restart=True)
    deadline = time.monotonic() + 30
    for shard in range(NUM_SHARDS):
        while time.monotonic() < deadline:
            try:
                ray.get_actor(pool_name(shard), namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.05)


def primer_targets(fleet: SshdFleet, n_max: int) -> tuple[Any, ...]:
    """One target per pool shard on hosts beyond the first `n_max` (never measured)."""
    from opsconductor_ray.config import shard_of
    from opsconductor_ray.protocol import TargetSpec

    spare = fleet.endpoints[n_max:]
    if len(spare) < NUM_SHARDS:
        raise BenchError(f"the fleet needs {NUM_SHARDS} spare hosts to prime the pools")
    ids: dict[int, str] = {}
    i = 0
    while len(ids) < NUM_SHARDS:
        ids.setdefault(shard_of(f"bench-primer-{i}", NUM_SHARDS), f"bench-primer-{i}")
        i += 1
    return tuple(
        TargetSpec(
            target_id=ids[shard], name=f"primer-{shard}", host=spare[shard].host, port=spare[shard].port
        )
        for shard in range(NUM_SHARDS)
    )


async def fresh_pools(primers: tuple[Any, ...], credentials: Any) -> Any:
    """Kill the ConnectionPool actors (closing every pooled connection), start new ones and prime
    each with one connection to a host outside the measured set (`test_connection`, no
    coordinator), so that the next run opens only new connections but does not pay a new
    process's first-use costs (lazy imports, HTTP client, key parsing). Returns an EngineClient."""
    from opsconductor_ray.client import EngineClient

    await asyncio.to_thread(_kill_pools)
    client = EngineClient(num_shards=NUM_SHARDS, namespace=NAMESPACE)
    await client.connect()
    for _ in range(300):  # the killed workers may take a moment to exit
        if len(ray_worker_pids("ray::ConnectionPool")) <= NUM_SHARDS:
            break
        await asyncio.sleep(0.1)
    results = await asyncio.gather(*(client.test_connection(t, credentials) for t in primers))
    if not all(r.ok for r in results):
        raise BenchError(f"priming the pools failed: {[r.message for r in results if not r.ok]}")
    return client


async def pool_memory(client: Any) -> tuple[int, int]:
    """(open connections in all pools, RSS of all pool worker processes)."""
    stats = await client.pool_stats()
    return int(stats["open_connections"]), rss_of(ray_worker_pids("ray::ConnectionPool"))


def _engine_targets(fleet: SshdFleet, n: int) -> tuple[Any, ...]:
    from opsconductor_ray.protocol import TargetSpec

    return tuple(
        TargetSpec(target_id=f"bench-target-{i:04d}", name=f"bench-{i:04d}", host=e.host, port=e.port)
        for i, e in enumerate(fleet.endpoints[:n])
    )


def timed_vault() -> Any:
    """A FakeCredentialVault that also notes when each credential request arrives: the first
    one tells when the pools began on a run's targets."""
    from opsconductor_ray.testing import FakeCredentialVault

    class TimedVault(FakeCredentialVault):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def _answer(self, method: bytes, body: bytes) -> tuple[int, dict[str, Any]]:
            self.times.append(time.time())
            return super()._answer(method, body)

    return TimedVault()


def target_spread(start: float, started: list[float]) -> dict[str, float]:
    """When the run's targets opened their first channel, from EXECUTION_STARTED: half of them
    by ``started_p50``, 90 % by ``started_p90`` (seconds)."""
    if len(started) < 2:
        return {}
    deciles = statistics.quantiles([t - start for t in started], n=10)
    return {"started_p50": deciles[4], "started_p90": deciles[8]}


async def engine_run(
    client: Any, targets: tuple[Any, ...], credentials: Any, *, warm: bool, vault: Any = None
) -> Sample:
    """Start one run and long-poll its events until EXECUTION_FINISHED."""
    from opsconductor_ray.protocol import ExecutionPlan
    from opsconductor_shared.runplan import Policy, Step

    n = len(targets)
    plan = ExecutionPlan(
        execution_id=str(uuid.uuid4()),
        steps=(Step(name="greet", command=COMMAND, timeout_seconds=60),),
        targets=targets,
        credentials=credentials,
        policy=Policy(max_parallel=max(1, n)),
        connect_timeout_s=90,
    )
    if vault is not None:
        vault.times.clear()
    wall0 = time.time()
    started = time.perf_counter()
    await client.start(plan)
    events: list[Any] = []
    deadline = started + 120
    while not events or events[-1].type != "EXECUTION_FINISHED":
        if time.perf_counter() > deadline:
            raise BenchError(f"engine run {plan.execution_id} did not finish in 120 s")
        events.extend(await client.events(plan.execution_id, len(events), wait_s=1.0))
    wall = time.perf_counter() - started
    received = time.time()
    await client.release(plan.execution_id)

    final = events[-1]
    if final.status != "SUCCEEDED":
        failed = [e.data for e in events if e.type == "TARGET_FINISHED" and e.status != "SUCCEEDED"]
        raise BenchError(f"engine run {final.status}: {failed[:3]}")
    stdout: dict[str, str] = {}
    for e in events:
        if e.type == "STDOUT":
            stdout[e.target_id] = stdout.get(e.target_id, "") + (e.data or "")
    _expect_output(list(stdout.values()), n, "engine run")
    reused = sum(1 for e in events if e.type == "TARGET_STARTED" and e.reused_connection)
    if reused != (n if warm else 0):
        raise BenchError(f"engine run ({'warm' if warm else 'cold'}): {reused} of {n} connections reused")
    first = next(e for e in events if e.type == "EXECUTION_STARTED")
    first_target = min(e.at for e in events if e.type == "TARGET_STARTED")
    parts = {}
    if vault is not None and vault.times:
        parts["to_first_credential"] = min(vault.times) - first.at
    return Sample(
        wall,
        {
            **parts,
            "to_started": first.at - wall0,
            "to_first_target": first_target - first.at,
            **target_spread(first.at, [e.at for e in events if e.type == "TARGET_STARTED"]),
            "run": final.at - first.at,
            "tail": received - final.at,
            "events": len(events),
        },
    )


# ------------------------------------------------------------------------------ Ansible


ANSIBLE_SPEC = "ansible-core"


async def ensure_ansible(work: Path, timeout_s: float = 300) -> tuple[Path | None, str]:
    """`ansible` from PyPI in a venv of its own under bench/.work/ (never the project's venv).
    Returns (path to the `ansible` executable or None, how it went)."""
    venv = work / "ansible-venv"
    ansible = venv / "bin" / "ansible"
    if ansible.exists():
        return ansible, "already installed"
    python = shutil.which("python3") or sys.executable
    started = time.monotonic()
    for argv in (
        [python, "-m", "venv", str(venv)],
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            ANSIBLE_SPEC,
        ],
    ):
        remaining = timeout_s - (time.monotonic() - started)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), max(1.0, remaining))
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return None, f"`{' '.join(argv[-2:])}` did not finish within {timeout_s:.0f} s"
        if proc.returncode != 0:
            tail = out.decode(errors="replace").strip().splitlines()[-3:]
            return None, f"`{' '.join(argv[-2:])}` failed (exit {proc.returncode}): {' / '.join(tail)}"
    if not ansible.exists():
        return None, f"{ANSIBLE_SPEC} installed but has no `ansible` executable"
    return ansible, f"installed {ANSIBLE_SPEC} in {time.monotonic() - started:.0f} s"


def _kill_group(pid: int) -> None:
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@dataclass
class Ansible:
    binary: Path
    work: Path
    fleet: SshdFleet
    key_path: Path = field(init=False)
    _runs: int = 0

    def __post_init__(self) -> None:
        self.key_path = self.work / "ansible-key"
        self.key_path.write_text(self.fleet.private_key_pem)
        self.key_path.chmod(0o600)
        (self.work / "ansible.cfg").write_text("[defaults]\n")

    def inventory(self, n: int) -> Path:
        path = self.work / f"inventory-{n}.ini"
        lines = ["[bench]"]
        lines += [
            f"t{i:04d} ansible_host={e.host} ansible_port={e.port}"
            for i, e in enumerate(self.fleet.endpoints[:n])
        ]
        lines += [
            "",
            "[bench:vars]",
            f"ansible_user={self.fleet.username}",
            f"ansible_ssh_private_key_file={self.key_path}",
            "",
        ]
        path.write_text("\n".join(lines))
        return path

    def new_control_dir(self) -> Path:
        self._runs += 1
        path = self.work / f"cp{self._runs}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o700)
        return path

    async def run(self, n: int, control_dir: Path) -> Sample:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(self.work / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.work / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "ANSIBLE_SSH_COMMON_ARGS": "-o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
        }
        argv = [str(self.binary), "-m", "raw", "-f", "50", "all", "-i", str(self.inventory(n)), "-a", COMMAND]
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *die_with_parent(argv),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.work,
            start_new_session=True,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 300)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise BenchError(f"ansible on {n} hosts did not finish within 300 s") from None
        wall = time.perf_counter() - started
        text = out.decode(errors="replace")
        ok = text.count("| CHANGED | rc=0 >>")
        if proc.returncode != 0 or ok != n or text.count("hello") < n:
            raise BenchError(f"ansible exit {proc.returncode}, {ok}/{n} hosts ok:\n{text[-1500:]}")
        return Sample(wall)

    def close_masters(self) -> None:
        """End the ControlPersist master connections (they would linger for 60 s)."""
        ssh = shutil.which("ssh") or "ssh"
        for control_dir in self.work.glob("cp*"):
            for socket_path in control_dir.iterdir():
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    subprocess.run(
                        [ssh, "-o", f"ControlPath={socket_path}", "-O", "exit", "bench"],
                        capture_output=True,
                        timeout=10,
                        check=False,
                    )
            shutil.rmtree(control_dir, ignore_errors=True)

    def cleanup(self) -> None:
        self.close_masters()
        self.key_path.unlink(missing_ok=True)

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
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import httpx

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


# ------------------------------------------------------------------------------ end to end

CREATE_TARGET = """mutation($input: CreateTargetInput!) { createTarget(input: $input) {
  __typename ... on TargetCreated { target { id } } ... on Error { message } } }"""
CREATE_JOB = """mutation($input: CreateJobInput!) { createJob(input: $input) {
  __typename ... on JobCreated { job { id } } ... on Error { message } } }"""
RUN_JOB = """mutation($id: ID!) { runJob(jobId: $id) {
  __typename ... on ExecutionStarted { execution { id } } ... on Error { message } } }"""
EVENT_FIELDS = "seq type targetId data status at"
EVENTS = f"""subscription($id: ID!, $after: Int) {{ executionEvents(executionId: $id, afterSeq: $after) {{
  {EVENT_FIELDS} }} }}"""
BATCHES = f"""subscription($id: ID!, $after: Int) {{
  executionEventBatches(executionId: $id, afterSeq: $after) {{ lastSeq events {{ {EVENT_FIELDS} }} }} }}"""
EXECUTION = """query($id: ID!) { execution(id: $id) { status lastSeq totalTargets succeededTargets
  targetRuns { status message connectionReused steps { stdout } } } }"""
LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) {
  __typename ... on LoginSuccess { accessToken } ... on Error { message } } }"""


@dataclass
class EndToEnd:
    """A logged-in GraphQL client of the router, with one open graphql-transport-ws connection
    (opened before any timing, as a UI keeps one open)."""

    url: str
    ws_url: str
    http: httpx.AsyncClient
    token: str = ""
    ws: Any = None
    _ids: int = 0

    async def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        resp = await self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )
        body = resp.json()
        if body.get("errors"):
            raise BenchError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    async def login(self, username: str, password: str) -> None:
        result = (await self.gql(LOGIN, {"u": username, "p": password}))["login"]
        if result["__typename"] != "LoginSuccess":
            raise BenchError(f"login failed: {result}")
        self.token = result["accessToken"]

    async def open_ws(self) -> None:
        import websockets

        self.ws = await websockets.connect(
            self.ws_url,
            subprotocols=[websockets.Subprotocol("graphql-transport-ws")],
            open_timeout=15,
            max_size=2**24,
        )
        await self.ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {self.token}"}})
        )
        ack = json.loads(await asyncio.wait_for(self.ws.recv(), 15))
        if ack["type"] != "connection_ack":
            raise BenchError(f"subscription connection refused: {ack}")

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def create_targets(self, fleet: SshdFleet, n: int) -> list[str]:
        gate = asyncio.Semaphore(4)

        async def create(i: int, endpoint: Endpoint) -> str:
            variables = {
                "input": {
                    "name": f"bench-{i:04d}",
                    "osType": "linux",
                    "environment": "testing",
                    "methods": [
                        {
                            "type": "SSH",
                            "host": endpoint.host,
                            "port": endpoint.port,
                            "credential": {
                                "type": "SSH_KEY",
                                "username": fleet.username,
                                "privateKey": fleet.private_key_pem,
                            },
                        }
                    ],
                }
            }
            async with gate:
                result = (await self.gql(CREATE_TARGET, variables))["createTarget"]
            if result["__typename"] != "TargetCreated":
                raise BenchError(f"createTarget {endpoint.host}: {result}")
            return str(result["target"]["id"])

        ids = list(await asyncio.gather(*(create(i, e) for i, e in enumerate(fleet.endpoints[:n]))))
        await self.wait_host_keys(ids)
        return ids

    async def wait_host_keys(self, ids: list[str], timeout_s: float = 120) -> None:
        """Untimed: creating a target reads its host key in the background (trust on first use
        ahead of the first run); wait for all of them, so that a cold run measures new SSH
        connections, not the one-time first use (which a target pays once in its life)."""
        query = """query($ids: [ID!]!) { targetsByIds(ids: $ids) { communicationMethods { hostKey { fingerprint } } } }"""
        deadline = time.monotonic() + timeout_s
        while True:
            found = (await self.gql(query, {"ids": ids}))["targetsByIds"]
            missing = sum(1 for t in found for m in t["communicationMethods"] if m["hostKey"] is None)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{missing} host keys still unknown after {timeout_s:.0f}s")
            await asyncio.sleep(0.5)

    async def create_job(self, target_ids: list[str]) -> str:
        variables = {
            "input": {
                "name": f"bench-hello-{len(target_ids)}",
                "targetIds": target_ids,
                "steps": [{"name": "greet", "command": COMMAND}],
                "policy": {"maxParallel": max(1, len(target_ids))},
            }
        }
        result = (await self.gql(CREATE_JOB, variables))["createJob"]
        if result["__typename"] != "JobCreated":
            raise BenchError(f"createJob: {result}")
        return str(result["job"]["id"])

    async def run(self, job_id: str, n: int, *, warm: bool, batches: bool = True) -> Sample:
        """Time runJob -> the subscriber receiving EXECUTION_FINISHED, through executionEventBatches
        (one message per persisted batch) or, with ``batches=False``, executionEvents (one per event)."""
        self._ids += 1
        sub_id = str(self._ids)
        wall0 = time.time()
        started = time.perf_counter()
        result = (await self.gql(RUN_JOB, {"id": job_id}))["runJob"]
        if result["__typename"] != "ExecutionStarted":
            raise BenchError(f"runJob: {result}")
        run_job_s = time.perf_counter() - started
        execution_id = result["execution"]["id"]
        await self.ws.send(
            json.dumps(
                {
                    "id": sub_id,
                    "type": "subscribe",
                    "payload": {
                        "query": BATCHES if batches else EVENTS,
                        "variables": {"id": execution_id, "after": 0},
                    },
                }
            )
        )
        received: list[tuple[float, dict[str, Any]]] = []
        messages = 0
        deadline = started + 120
        while not received or received[-1][1]["type"] != "EXECUTION_FINISHED":
            raw = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.perf_counter()))
            at = time.time()
            msg = json.loads(raw)
            if msg["type"] == "ping":
                await self.ws.send(json.dumps({"type": "pong"}))
            elif msg.get("id") != sub_id:
                continue
            elif msg["type"] == "next":
                if msg["payload"].get("errors"):
                    raise BenchError(f"subscription errors: {msg['payload']['errors']}")
                data = msg["payload"]["data"]
                if batches:
                    received.extend((at, e) for e in data["executionEventBatches"]["events"])
                else:
                    received.append((at, data["executionEvents"]))
                messages += 1
            elif msg["type"] in ("error", "complete"):
                raise BenchError(f"subscription ended early: {msg}")
        wall = time.perf_counter() - started
        # The server completes the subscription after EXECUTION_FINISHED; drain that (untimed).
        with contextlib.suppress(TimeoutError):
            while True:
                msg = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
                if msg.get("id") == sub_id and msg["type"] in ("complete", "error"):
                    break

        final = (await self.gql(EXECUTION, {"id": execution_id}))["execution"]
        if final["status"] != "SUCCEEDED" or final["succeededTargets"] != n:
            reasons = sorted({str(r["message"]) for r in final["targetRuns"] if r["status"] != "SUCCEEDED"})
            raise BenchError(
                f"execution {execution_id}: {final['status']}, {final['succeededTargets']}/{n}; "
                f"why: {'; '.join(reasons[:3])}"
            )
        _expect_output([run["steps"][0]["stdout"] for run in final["targetRuns"]], n, "end-to-end run")
        reused = sum(1 for run in final["targetRuns"] if run["connectionReused"])
        if reused != (n if warm else 0):
            raise BenchError(f"end-to-end ({'warm' if warm else 'cold'}): {reused} of {n} connections reused")
        events = [e for _, e in received]
        if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
            raise BenchError("the subscriber saw gaps in the event sequence")

        def ts(event: dict[str, Any]) -> float:
            return datetime.fromisoformat(event["at"]).timestamp()

        first, last = events[0], events[-1]
        first_target = min(ts(e) for e in events if e["type"] == "TARGET_STARTED")
        latencies = [at - ts(e) for at, e in received]
        return Sample(
            wall,
            {
                "run_job": run_job_s,
                "to_started": ts(first) - wall0,
                "to_first_target": first_target - ts(first),
                **target_spread(ts(first), [ts(e) for e in events if e["type"] == "TARGET_STARTED"]),
                "run": ts(last) - ts(first),
                "tail": received[-1][0] - ts(last),
                "events": len(events),
                "messages": messages,
                "persisted": final["lastSeq"],
                "latency_p50": statistics.median(latencies),
                "latency_max": max(latencies),
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

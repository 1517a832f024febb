"""What the benchmark runs against: a fleet of OpenSSH servers on loopback addresses, the router,
process clean-up and a description of the machine.

Every process started here is started with `setpriv --pdeathsig TERM`, so it dies with the
benchmark even if the benchmark itself is killed (its `finally` blocks then never run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import httpx

from tests.support.net import free_port
from tests.support.router import (
    _SCRUBBED_ENV,
    GATEWAY_BIN,
    ROUTER_DIR,
    RouterProcess,
    ensure_router_installed,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SSHD_BINARY = "/usr/sbin/sshd"
HOSTS_PER_SSHD = 16  # sshd accepts at most 16 ListenAddress lines
FIRST_OCTET = 200  # sshd k listens on 127.0.(200+k).1 .. 127.0.(200+k).16


def die_with_parent(argv: list[str]) -> list[str]:
    """`argv` wrapped so the process gets SIGTERM when the benchmark process dies."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


# /proc helpers (the project's venv has no psutil, and the benchmark adds no dependency)


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every living descendant of `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def rss_of(pids: list[int]) -> int:
    """Summed resident set size (bytes) of `pids`."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def stop_process_tree(proc: subprocess.Popen[bytes], *, timeout: float = 5.0) -> None:
    """SIGTERM a process we started and every descendant of it (sshd's per-connection children
    outlive the listener otherwise), SIGKILL what is left after `timeout`."""
    tree = [proc.pid, *descendants(proc.pid)] if proc.poll() is None else descendants(proc.pid)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        if not any(_alive(pid) for pid in tree):
            break
        time.sleep(0.05)
    for pid in tree:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)


# ------------------------------------------------------------------------------------ sshd fleet


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


@dataclass
class SshdFleet:
    """`ceil(n / 16)` sshd processes, each on its own port and 16 loopback addresses of its own."""

    base: Path
    username: str
    client_key: asyncssh.SSHKey = field(repr=False)
    endpoints: list[Endpoint] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    use_pam: bool = True

    @property
    def private_key_pem(self) -> str:
        return self.client_key.export_private_key("openssh").decode()

    @property
    def known_hosts(self) -> str:
        """known_hosts text trusting the fleet's one host key on every endpoint: the engine
        refuses SSH without a trusted host key (review H3), and the raw baseline checks it too."""
        public = asyncssh.read_private_key(self.base / "ssh_host_ed25519_key").export_public_key("openssh")
        key = public.decode().strip()
        return "".join(f"[{e.host}]:{e.port} {key}\n" for e in self.endpoints)

    def connection_count(self) -> int:
        """Per-connection sshd children currently alive (for leak checks)."""
        return sum(len(descendants(proc.pid)) for proc in self.processes)

    def stop(self) -> None:
        for proc in self.processes:
            stop_process_tree(proc)
        self.processes.clear()
        shutil.rmtree(self.base, ignore_errors=True)


def _ensure_user() -> str:
    """The unprivileged login user the project's tests use (cancel needs a non-root login)."""
    from tests.support.sshd import PASSWORD_USER, _ensure_password_user

    _ensure_password_user()
    return PASSWORD_USER


def _write_config(base: Path, index: int, port: int, *, use_pam: bool) -> Path:
    hosts = [f"127.0.{FIRST_OCTET + index}.{i}" for i in range(1, HOSTS_PER_SSHD + 1)]
    config = base / f"sshd_config.{index}"
    config.write_text(
        "\n".join(
            [
                *(f"ListenAddress {host}:{port}" for host in hosts),
                f"HostKey {base / 'ssh_host_ed25519_key'}",
                f"PidFile {base / f'sshd.{index}.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "MaxStartups 200:30:400",
                "MaxSessions 64",
                "PermitRootLogin no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"UsePAM {'yes' if use_pam else 'no'}",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "X11Forwarding no",
                "LogLevel INFO",
                "",
            ]
        )
    )
    return config


def _wait_for_banner(
    host: str, port: int, proc: subprocess.Popen[bytes], log: Path, deadline_s: float
) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with code {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not answer on {host}:{port} within {deadline_s}s")


def _start_one(base: Path, index: int, *, use_pam: bool) -> tuple[subprocess.Popen[bytes], int]:
    log = base / f"sshd.{index}.log"
    for _ in range(5):
        port = free_port()
        config = _write_config(base, index, port, use_pam=use_pam)
        with log.open("ab") as out:
            proc = subprocess.Popen(
                die_with_parent([SSHD_BINARY, "-D", "-e", "-f", str(config)]), stdout=out, stderr=out
            )
        try:
            _wait_for_banner(f"127.0.{FIRST_OCTET + index}.1", port, proc, log, deadline_s=15)
        except RuntimeError:
            stop_process_tree(proc)
            if "Address already in use" in log.read_text():
                continue
            raise
        return proc, port
    raise RuntimeError("could not start sshd on a free port after 5 attempts")


async def _login_works(fleet: SshdFleet) -> bool:
    endpoint = fleet.endpoints[0]
    try:
        async with asyncssh.connect(
            endpoint.host,
            endpoint.port,
            **client_options(fleet),
        ) as conn:
            result = await conn.run("true", check=False)
            return result.exit_status == 0
    except (OSError, asyncssh.Error):
        return False


def client_options(fleet: SshdFleet) -> dict[str, object]:
    """asyncssh options equal to the engine's pool (no agent, config, GSS or default keys; its
    cipher order)."""
    from opsconductor_ray.pool.ssh_connections import ENCRYPTION_ALGS

    return {
        "encryption_algs": ENCRYPTION_ALGS,
        "username": fleet.username,
        "client_keys": [fleet.client_key],
        "known_hosts": asyncssh.import_known_hosts(fleet.known_hosts),
        "config": None,
        "agent_path": None,
        "gss_auth": False,
        "gss_kex": False,
        "host_based_auth": False,
        "x509_trusted_certs": None,
        "pkcs11_provider": None,
        "connect_timeout": 90,
    }


def start_fleet(targets: int) -> SshdFleet:
    """Start enough sshd processes for `targets` distinct loopback hosts. Call from the main
    thread (the processes' parent-death signal is tied to the thread that started them)."""
    if not Path(SSHD_BINARY).exists():
        raise RuntimeError(f"{SSHD_BINARY} is missing: apt-get install openssh-server")
    if os.geteuid() != 0:
        raise RuntimeError("the sshd fleet creates a local user and runs sshd: run the benchmark as root")
    username = _ensure_user()
    base = Path(tempfile.mkdtemp(prefix="opsc-bench-sshd-"))
    base.chmod(0o755)  # sshd reads AuthorizedKeysFile as the logging-in user
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    (base / "ssh_host_ed25519_key").write_bytes(host_key.export_private_key("openssh"))
    (base / "ssh_host_ed25519_key").chmod(0o600)
    client_key = asyncssh.generate_private_key("ssh-ed25519", comment="opsc-bench")
    (base / "authorized_keys").write_bytes(client_key.export_public_key("openssh"))
    (base / "authorized_keys").chmod(0o644)

    fleet = SshdFleet(base=base, username=username, client_key=client_key)
    servers = max(1, -(-targets // HOSTS_PER_SSHD))
    try:
        for use_pam in (True, False):
            fleet.use_pam = use_pam
            for index in range(servers):
                proc, port = _start_one(base, index, use_pam=use_pam)
                fleet.processes.append(proc)
                fleet.endpoints += [
                    Endpoint(f"127.0.{FIRST_OCTET + index}.{i}", port) for i in range(1, HOSTS_PER_SSHD + 1)
                ]
            if asyncio.run(_login_works(fleet)):
                break
            # Containers often lack a working PAM session stack: retry without PAM.
            for proc in fleet.processes:
                stop_process_tree(proc)
            fleet.processes.clear()
            fleet.endpoints.clear()
        else:
            raise RuntimeError(f"key login to the benchmark sshd fails; see {base}/sshd.*.log")
    except BaseException:
        fleet.stop()
        raise
    fleet.endpoints = fleet.endpoints[:targets]
    return fleet


# ---------------------------------------------------------------------------------------- router


def spawn_router(port: int, env: Mapping[str, str], log_dir: Path) -> RouterProcess:
    """Start the real Hive Gateway (router/) as tests/support/router.py does, but dying with us.

    Call from the main thread; then `await wait_router_ready(router)` (the subgraphs it talks to
    may be served by the caller's event loop, so the wait must not block it)."""
    ensure_router_installed()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not on PATH (Node 20+ needed)")
    full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    full_env.update(env)
    full_env["OPSC_ROUTER_PORT"] = str(port)
    full_env.setdefault("NO_COLOR", "1")
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"router-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            die_with_parent(
                [node, str(GATEWAY_BIN), "supergraph", "--host", "127.0.0.1", "--port", str(port)]
            ),
            cwd=ROUTER_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RouterProcess(port=port, proc=proc, log_path=log_path, env=full_env)


async def wait_router_ready(router: RouterProcess, limit_s: float = 90) -> None:
    deadline = time.monotonic() + limit_s
    last = "no answer yet"
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if router.proc.poll() is not None:
                raise RuntimeError(f"router exited with code {router.proc.returncode}:\n{router.log_tail()}")
            try:
                resp = await http.get(f"{router.base_url}/readiness")
                if resp.status_code == 200:
                    return
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            await asyncio.sleep(0.25)
    raise RuntimeError(f"router not ready after {limit_s:.0f}s (last: {last}):\n{router.log_tail()}")


def stop_router(router: RouterProcess) -> None:
    if router.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(router.proc.pid, signal.SIGTERM)
        try:
            router.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(router.proc.pid, signal.SIGKILL)
            router.proc.wait(timeout=10)


# --------------------------------------------------------------------------------------- machine


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine_info() -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = _run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "uname": _run(["uname", "-a"]),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "python": platform.python_version(),
        "openssh": _sshd_version(),
        "commit": commit + (" (working tree has uncommitted changes)" if dirty else ""),
    }


def _sshd_version() -> str:
    try:
        out = subprocess.run([SSHD_BINARY, "-V"], capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stderr or out.stdout).strip().splitlines()[0] if (out.stderr or out.stdout) else "?"


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def ray_worker_pids(title_prefix: str) -> list[int]:
    """Our own Ray cluster's workers whose process title starts with `title_prefix`
    (e.g. "ray::ConnectionPool"): descendants of this process only, never another session's."""
    return [pid for pid in descendants(os.getpid()) if (cmdline(pid) or [""])[0].startswith(title_prefix)]


def _memory_total() -> str:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "?"


CPU_GROUPS = ("pools", "coordinators", "platform", "platform threads", "router", "sshd + commands", "ray")
"""Where `cpu_snapshot` puts the CPU time of this benchmark's processes (see there)."""


_TITLES: dict[tuple[int, str], str] = {}
"""(pid, start time) -> process title, read once per process."""
_CPU_GROUP_OF: dict[int, str] = {}
"""Ray worker pid -> group: a worker's process title changes to the task it runs
(`ray::exec-<id>/pool-0`), so a worker is classified when its title names its actor."""


def _ray_group(pid: int, title: str) -> str:
    if "ConnectionPool" in title or "/pool-" in title:
        _CPU_GROUP_OF[pid] = "pools"
    elif "ExecutionCoordinator" in title or "coordinator-" in title:
        _CPU_GROUP_OF[pid] = "coordinators"
    return _CPU_GROUP_OF.get(pid, "ray")


def _title(pid: int, started: str) -> str:
    key = (pid, started)
    title = _TITLES.get(key)
    if title is None or title.startswith("ray::"):  # a Ray worker's title changes with its task
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().decode(errors="replace").replace("\0", " ")
        except OSError:
            title = ""
        _TITLES[key] = title
    return title


def cpu_snapshot() -> dict[str, float]:
    """CPU seconds so far per group of this benchmark's processes: the pool and coordinator
    actors, this process's main thread (the embedded platform, and the subscriber, which share
    its event loop) and its other threads (SQLite workers, Ray's client threads), the router
    (node), sshd with the commands it runs (live and reaped ones), and the rest of the local Ray.
    Differences of two snapshots give each group's share of what ran in between. One read of
    /proc/<pid>/stat per process (a few ms for the ~500 processes of a live run)."""
    totals = dict.fromkeys(CPU_GROUPS, 0.0)
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    # pid -> (ppid, own ticks, reaped children's ticks, start time)
    stats: dict[int, tuple[int, int, int, str]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            own, reaped = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
            stats[int(name)] = (int(fields[1]), own, reaped, fields[19])
    for task in os.listdir(f"/proc/{me}/task"):
        if int(task) != me:
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{me}/task/{task}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                totals["platform threads"] += (int(fields[11]) + int(fields[12])) / tick
    if me in stats:
        totals["platform"] = max(0.0, stats[me][1] / tick - totals["platform threads"])
    children: dict[int, list[int]] = {}
    for pid, (parent, *_) in stats.items():
        children.setdefault(parent, []).append(pid)
    todo: list[tuple[int, str | None]] = [(pid, None) for pid in children.get(me, [])]
    while todo:
        pid, group = todo.pop()
        _, own, reaped, started = stats[pid]
        if group is None:
            title = _title(pid, started)
            if "sshd" in title:
                group = "sshd + commands"  # and everything below it: the targets' commands
            elif "node" in title.split(" ", 1)[0] or "hive-gateway" in title:
                group = "router"
            elif title.startswith("ray::"):
                group = _ray_group(pid, title)
            elif "ray" in title or "raylet" in title or "gcs_server" in title:
                group = "ray"
        if group == "sshd + commands":
            # live processes' own time plus what their reaped children used: a command that
            # ends between two snapshots moves from the first term to its parent's second
            totals[group] += (own + reaped) / tick
        elif group is not None:
            totals[group] += own / tick
        inherited = group if group == "sshd + commands" else None
        todo.extend((child, inherited) for child in children.get(pid, []))
    return totals

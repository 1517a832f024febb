"""Run the real router (Hive Gateway in router/) from tests.

    from tests.support.router import start_router, subgraph_urls_env

    router = start_router(port, {
        **subgraph_urls_env(platform.ports),          # OPSC_<NAME>_URL for each subgraph
        "OPSC_JWKS_URL": f"{platform.base('auth')}/.well-known/jwks.json",
    })
    try:
        ...  # router.url == "http://127.0.0.1:<port>/graphql", router.ws_url for graphql-transport-ws
    finally:
        router.stop()

`npm ci` runs only when router/node_modules is missing (`make` normally installs it first).
The router serves router/supergraph.graphql unless env sets OPSC_SUPERGRAPH_PATH. Its log goes
to .test-artifacts/router-<port>.log; a start failure raises RouterStartError with the log tail.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTER_DIR = REPO_ROOT / "router"
GATEWAY_BIN = ROUTER_DIR / "node_modules" / ".bin" / "hive-gateway"
ARTIFACTS_DIR = REPO_ROOT / ".test-artifacts"
READY_TIMEOUT = 60.0
NPM_CI_TIMEOUT = 900.0

# Env vars that Hive Gateway's CLI reads and that would override the config (PORT/HOST beat
# gateway.config.ts), so they never leak in from the test process.
_SCRUBBED_ENV = ("PORT", "HOST", "CONFIG_PATH", "FORK", "POLLING", "HIVE_ROUTER_RUNTIME")


class RouterStartError(RuntimeError):
    """The router did not become ready; the message carries the router's log tail."""


@dataclass
class RouterProcess:
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base_url}/graphql"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no router log>"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the router (graceful), SIGKILL it after `timeout` seconds. Idempotent."""
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def __enter__(self) -> RouterProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def subgraph_urls_env(ports: Mapping[str, int]) -> dict[str, str]:
    """OPSC_<NAME>_URL=http://127.0.0.1:<port>/graphql for each subgraph name -> port."""
    return {f"OPSC_{name.upper()}_URL": f"http://127.0.0.1:{port}/graphql" for name, port in ports.items()}


def ensure_router_installed() -> None:
    """`npm ci` in router/ when node_modules is missing (serialized across processes)."""
    if GATEWAY_BIN.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RouterStartError("router/node_modules is missing and npm is not on PATH (Node 20+ needed)")
    lock_path = Path(tempfile.gettempdir()) / "opsconductor-router-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if GATEWAY_BIN.exists():  # another process installed it meanwhile
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=ROUTER_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
            check=False,
        )
        if done.returncode != 0 or not GATEWAY_BIN.exists():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
            raise RouterStartError(f"`npm ci` in {ROUTER_DIR} failed (exit {done.returncode}):\n{tail}")


def start_router(
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = READY_TIMEOUT,
    log_dir: Path | None = None,
) -> RouterProcess:
    """Start the router on 127.0.0.1:`port` with `env` on top of os.environ; wait for /readiness.

    Useful env keys: OPSC_<NAME>_URL (subgraph locations), OPSC_JWKS_URL, OPSC_JWT_ISSUER,
    OPSC_JWT_AUDIENCE, OPSC_SUPERGRAPH_PATH, OPSC_ROUTER_LOG_LEVEL, OPSC_ROUTER_MAX_COST,
    OPSC_ROUTER_MAX_SUBSCRIPTIONS_PER_USER (see router/README.md). OPSC_CLIENT_IP_SECRET comes from
    os.environ (the platform fixture sets it for auth too), so auth believes the IP this router forwards.
    """
    ensure_router_installed()
    node = shutil.which("node")
    if node is None:
        raise RouterStartError("node is not on PATH (Node 20+ needed)")
    full_env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    full_env.update(env or {})
    full_env["OPSC_ROUTER_PORT"] = str(port)
    full_env.setdefault("NO_COLOR", "1")

    supergraph = Path(full_env.get("OPSC_SUPERGRAPH_PATH") or ROUTER_DIR / "supergraph.graphql")
    if not supergraph.is_absolute():
        supergraph = ROUTER_DIR / supergraph
    if not supergraph.exists():
        raise RouterStartError(f"no supergraph at {supergraph}: run `npm run compose` in router/")
    if not _port_free(port):
        raise RouterStartError(f"127.0.0.1:{port} is already in use; the router needs a free port")

    log_dir = log_dir or ARTIFACTS_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"router-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [node, str(GATEWAY_BIN), "supergraph", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROUTER_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    router = RouterProcess(port=port, proc=proc, log_path=log_path, env=full_env)
    try:
        _wait_ready(router, timeout)
    except BaseException:
        router.stop(timeout=5)
        raise
    return router


def _wait_ready(router: RouterProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        code = router.proc.poll()
        if code is not None:
            raise RouterStartError(
                f"router exited with code {code} before it was ready; log {router.log_path}:\n"
                f"{router.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{router.base_url}/readiness", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as err:
            last = f"HTTP {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(0.25)
    raise RouterStartError(
        f"router on port {router.port} not ready after {timeout:.0f}s (last /readiness: {last}); "
        f"log {router.log_path}:\n{router.log_tail()}"
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as node sets it: TIME_WAIT leftovers don't count, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)

"""A real OpenSSH server for tests, plus addresses that refuse or never answer.

The `sshd` fixture starts `/usr/sbin/sshd` once per test session on a free 127.0.0.1 port,
configured from a temporary directory (host key, authorized keys, pid file, log). Tests
run as root; the fixture creates the local user `opsc-test` and logs in as that user, with
the generated key or with its password. Not as root: OpenSSH drops privilege separation
after a root login and then ignores the channel "signal" request that cancel relies on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from tests.support.net import free_port

SSHD_BINARY = "/usr/sbin/sshd"
PASSWORD_USER = "opsc-test"
PASSWORD = "opsc-test-Pa55word"
# sshd accepts at most 16 ListenAddress lines: 127.0.0.1 plus 15 more loopback addresses, so tests
# can create many targets on one sshd (no two active targets may share a host). Each test module
# that keeps targets uses its own indexes of `hosts`: e2e 0, bad_input 1-4, security_attacks 5,
# targets inventory 6, targets api 7, executions runs 8-10, plans 11-13, replicas 14.
EXTRA_HOSTS = tuple(f"127.0.10.{i}" for i in range(1, 16))


@dataclass(frozen=True)
class SshServer:
    """Where the test sshd listens and how to log in to it."""

    host: str
    port: int
    username: str
    private_key_pem: str = field(repr=False)
    password_username: str
    password: str = field(repr=False)
    wrong_private_key_pem: str = field(repr=False)
    log_path: Path
    pid: int
    """The listening sshd; each connection is served by a child of it."""
    hosts: tuple[str, ...] = EXTRA_HOSTS
    """Further addresses the same sshd listens on (never 127.0.0.1, where blackhole_address binds)."""
    host_public_key: str = ""
    """The sshd's host key, OpenSSH public-key format (`ssh-ed25519 AAAA...`)."""

    @property
    def known_hosts(self) -> str:
        """known_hosts text trusting this sshd's host key on every address it listens on."""
        names = ",".join(f"[{host}]:{self.port}" for host in (self.host, *self.hosts))
        return f"{names} {self.host_public_key}\n"


closed_port = free_port  # nothing listens there, so connects are refused


@contextlib.contextmanager
def blackhole_address() -> Iterator[tuple[str, int]]:
    """A 127.0.0.1 address whose TCP handshake never completes.

    A listening socket that never accepts, with its accept queue filled: Linux then drops
    further SYNs, so a client's connect hangs until its own timeout.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(4):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect_ex(address)
            fillers.append(filler)
        time.sleep(0.05)
        yield address[0], address[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def _ensure_password_user() -> None:
    if subprocess.run(["id", "-u", PASSWORD_USER], capture_output=True, check=False).returncode != 0:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", PASSWORD_USER],
            check=True,
            capture_output=True,
        )
    subprocess.run(["chpasswd"], input=f"{PASSWORD_USER}:{PASSWORD}\n", text=True, check=True)


def _write_config(base: Path, port: int, *, use_pam: bool) -> Path:
    config = base / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress 127.0.0.1:{port}",
                *(f"ListenAddress {host}:{port}" for host in EXTRA_HOSTS),
                f"HostKey {base / 'ssh_host_ed25519_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "MaxStartups 200:30:400",
                "MaxSessions 64",
                "Subsystem sftp internal-sftp",  # file_transfer steps
                "PermitRootLogin yes",
                "PasswordAuthentication yes",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                f"UsePAM {'yes' if use_pam else 'no'}",
                "StrictModes no",
                "UseDNS no",
                "PrintMotd no",
                "X11Forwarding no",
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    return config


def _wait_for_banner(port: int, process: subprocess.Popen[bytes], log_path: Path, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited with code {process.returncode}:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not accept connections on 127.0.0.1:{port} within {deadline_s}s")


def _password_login_works(port: int) -> bool:
    async def probe() -> bool:
        try:
            async with asyncssh.connect(
                "127.0.0.1",
                port,
                username=PASSWORD_USER,
                password=PASSWORD,
                client_keys=None,
                known_hosts=None,
                agent_path=None,
                config=None,
                connect_timeout=10,
            ) as conn:
                result = await conn.run("true", check=False)
                return result.exit_status == 0
        except (OSError, asyncssh.Error):
            return False

    # A thread of its own: the caller may sit inside pytest-asyncio's event loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, probe()).result()


def _start(base: Path, *, use_pam: bool) -> tuple[subprocess.Popen[bytes], int]:
    log_path = base / "sshd.log"
    for _ in range(5):
        port = free_port()
        config = _write_config(base, port, use_pam=use_pam)
        with log_path.open("ab") as log:
            process = subprocess.Popen([SSHD_BINARY, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
        try:
            _wait_for_banner(port, process, log_path, deadline_s=10)
        except pytest.fail.Exception:
            if process.poll() is None:
                raise
            if "Address already in use" not in log_path.read_text():
                raise
            continue  # lost the race for the port; pick another
        return process, port
    pytest.fail("could not start sshd on a free port after 5 attempts")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """A running OpenSSH server on 127.0.0.1 accepting key and password logins."""
    if not Path(SSHD_BINARY).exists():
        pytest.fail(f"{SSHD_BINARY} is missing: install openssh-server to run the SSH tests")
    if os.geteuid() != 0:
        pytest.fail("the sshd fixture runs sshd and creates a local user: run the tests as root")

    # Not under pytest's 0700 tmp root: sshd reads AuthorizedKeysFile as the logging-in user.
    base = Path(tempfile.mkdtemp(prefix="opsc-sshd-"))
    base.chmod(0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
    _ensure_password_user()

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key_path = base / "ssh_host_ed25519_key"
    host_key_path.write_bytes(host_key.export_private_key("openssh"))
    host_key_path.chmod(0o600)

    client_key = asyncssh.generate_private_key("ssh-ed25519", comment="opsc-test-client")
    wrong_key = asyncssh.generate_private_key("ssh-ed25519", comment="opsc-test-not-authorized")
    authorized = base / "authorized_keys"
    authorized.write_bytes(client_key.export_public_key("openssh"))
    authorized.chmod(0o644)

    process, port = _start(base, use_pam=True)
    if not _password_login_works(port):
        # Containers often lack a working PAM session stack (pam_loginuid); sshd then checks
        # /etc/shadow itself, where chpasswd has put the password.
        _stop(process)
        process, port = _start(base, use_pam=False)
        if not _password_login_works(port):
            _stop(process)
            pytest.fail(f"password login to the test sshd fails:\n{(base / 'sshd.log').read_text()}")

    try:
        yield SshServer(
            host="127.0.0.1",
            port=port,
            username=PASSWORD_USER,
            private_key_pem=client_key.export_private_key("openssh").decode(),
            password_username=PASSWORD_USER,
            password=PASSWORD,
            wrong_private_key_pem=wrong_key.export_private_key("openssh").decode(),
            log_path=base / "sshd.log",
            pid=process.pid,
            host_public_key=host_key.export_public_key("openssh").decode().strip(),
        )
    finally:
        _stop(process)
        shutil.rmtree(base, ignore_errors=True)


__all__ = ["SshServer", "blackhole_address", "closed_port", "sshd"]

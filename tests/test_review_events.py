"""Security-review fixes of the events area (security-review-2026-12.md) seen from outside: M4
`opsconductor serve` without Redis refuses to start, L3 the embedded data directory is private, L6 a
subscription through the router ends when its token expires."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port
from tests.support.platform import SubscriptionError, subscribe
from tests.support.tokens import claims_of, real_signer


def test_m4_serve_without_redis_refuses_to_start(tmp_path: Path) -> None:
    """M4: separate processes without Redis would each have their own in-process bus (events lost):
    `serve` says it needs OPSC_REDIS_URL and exits instead."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("OPSC_")}
    env |= {"OPSC_DATA_DIR": str(tmp_path), "OPSC_USERS_PORT": str(free_port())}
    proc = subprocess.run(
        [sys.executable, "-m", "opsconductor_launcher", "serve", "users"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "OPSC_REDIS_URL" in proc.stderr
    assert "opsconductor dev" in proc.stderr


def test_l3_embedded_data_dir_is_made_private(tmp_path: Path) -> None:
    """L3: the launcher makes .data 0700 and the files in it 0600, also when an older version
    left them world-readable."""
    from opsconductor_launcher.platform import secure_data_dir

    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ("users.sqlite3", "users.sqlite3-wal", "auth.keys"):
        (data / name).write_text("x")
        (data / name).chmod(0o644)
    secure_data_dir(data)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir()} == {
        "users.sqlite3": 0o600,
        "users.sqlite3-wal": 0o600,
        "auth.keys": 0o600,
    }
    fresh = tmp_path / "fresh" / ".data"
    secure_data_dir(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700


def _modes(data: Path) -> tuple[int, dict[str, int]]:
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in data.iterdir() if p.is_file()}
    return stat.S_IMODE(data.stat().st_mode), files


async def test_l3_running_platform_data_dir_is_private(platform: Any) -> None:
    directory, files = _modes(Path(os.environ["OPSC_DATA_DIR"]))
    assert directory == 0o700
    assert files  # the key files at least
    assert files == dict.fromkeys(files, 0o600)


async def test_l6_subscription_through_the_router_ends_when_its_token_expires(
    router: Any, platform: Any, admin_token: str
) -> None:
    """L6: a token valid at connection time, expiring a few seconds later: the subgraph ends the
    stream with an UNAUTHENTICATED error the client can act on (today it ran on forever)."""
    signer = await real_signer(platform)
    claims = claims_of(admin_token)
    now = int(time.time())
    claims |= {"iat": now, "exp": now + 4}
    short = signer.sign(claims)
    started = time.monotonic()
    with pytest.raises(SubscriptionError) as info:
        await subscribe(router.ws_url, "subscription { targetHealth { targetId } }", token=short, timeout=40)
    errors = info.value.errors
    assert any((e.get("extensions") or {}).get("code") == "UNAUTHENTICATED" for e in errors), errors
    assert any("expired" in e.get("message", "") for e in errors), errors
    assert time.monotonic() - started < 35

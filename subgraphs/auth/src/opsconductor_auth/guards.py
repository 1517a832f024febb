"""Auth's security plumbing around the core flows: per-service secrets, snapshot versions of the
users service's events, permission containment for API keys, the bootstrap password's one
showing, and retention of login attempts."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opsconductor_auth.models import LoginAttempt
from opsconductor_shared.logging import get_logger
from opsconductor_shared.settings import (
    KNOWN_DEFAULT_SECRETS,
    InsecureSettings,
    ServiceSettings,
    check_service_secret,
    secret_sha256,
)

log = get_logger("opsconductor.auth")


# ---- service secrets (H1) ---------------------------------------------------------------------


class ServiceSecrets:
    """The SHA-256 of each service's own secret: a secret is accepted only for its own service,
    so one service's secret cannot mint another service's token."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self._hashes = {name: bytes.fromhex(h) for name, h in hashes.items()}

    @classmethod
    def from_settings(cls, settings: ServiceSettings, services: Iterable[str]) -> ServiceSecrets:
        """Hashes of the known services' secrets (OPSC_SERVICE_SECRET_SHA256_<NAME>, else the
        hash of OPSC_SERVICE_SECRET_<NAME>). A published default or too short secret stops auth;
        a service without one simply gets no token (logged)."""
        hashes: dict[str, str] = {}
        for name in services:
            given = settings.service_secret_hashes.get(name)
            if given:
                h = given.strip().lower()
                if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
                    raise InsecureSettings(
                        f"OPSC_SERVICE_SECRET_SHA256_{name.upper()} is not a SHA-256 hex digest"
                    )
                if h in {secret_sha256(k) for k in KNOWN_DEFAULT_SECRETS}:
                    raise InsecureSettings(
                        f"OPSC_SERVICE_SECRET_SHA256_{name.upper()} hashes a published default"
                    )
                hashes[name] = h
                continue
            secret = settings.service_secrets.get(name)
            if secret is None:
                log.warning("no secret configured for a service: it cannot get service tokens", service=name)
                continue
            hashes[name] = secret_sha256(check_service_secret(name, secret.get_secret_value()))
        return cls(hashes)

    def accepts(self, service: str, secret: str) -> bool:
        expected = self._hashes.get(service)
        if expected is None or not secret or secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
            return False
        return hmac.compare_digest(bytes.fromhex(secret_sha256(secret)), expected)


# ---- users' snapshot versions (M6) ------------------------------------------------------------


def snapshot_version(data: Mapping[str, Any]) -> int | None:
    """The users service's ``version`` of a user snapshot as an integer that grows with each change:
    an integer as is, a timestamp (ISO 8601 string) as microseconds since the epoch; None if absent."""
    value = data.get("version")
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            return int(at.timestamp() * 1_000_000)
    return None


# ---- permission containment (H5) --------------------------------------------------------------


def not_held(wanted: Iterable[str], held: Iterable[str]) -> list[str]:
    """The permissions of ``wanted`` that ``held`` does not cover (``*`` and ``resource:*`` cover)."""
    held = set(held)
    if "*" in held:
        return []
    return [p for p in wanted if p not in held and f"{p.split(':')[0]}:*" not in held]


# ---- the bootstrap password (L4) --------------------------------------------------------------

BOOTSTRAP_PASSWORD_FILE = "bootstrap-admin-password"  # noqa: S105 - a file name


def announce_bootstrap_password(password: str, data_dir: Path) -> str:
    """Show a generated admin password once, on the terminal only, never in a log.

    Written to the controlling terminal (``/dev/tty``) when there is one, else to stderr if that
    is a terminal; stdout and redirected stderr are usually captured into log files (``make dev``
    tees them to .data/services.log). Without a terminal it goes to a file readable only by this
    user (``<data_dir>/bootstrap-admin-password``, 0600) and the log says where. Returns where.
    """
    message = f"\n  OpsConductor bootstrap admin: username 'admin', password '{password}'\n\n"
    with contextlib.suppress(OSError):
        with open("/dev/tty", "w") as tty:
            tty.write(message)
        return "tty"
    if sys.stderr is not None and sys.stderr.isatty():
        sys.stderr.write(message)
        sys.stderr.flush()
        return "stderr"
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / BOOTSTRAP_PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    os.chmod(path, 0o600)
    log.warning(
        "bootstrap admin password generated; no terminal to show it on: it is in a file only you can read",
        path=str(path.resolve()),
    )
    return str(path)


# ---- login attempts retention (L16) -----------------------------------------------------------


async def prune_login_attempts(retention_days: int) -> int:
    """Delete login attempts older than the retention (the lockout window is minutes: never needed)."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    return await LoginAttempt.filter(at__lt=cutoff).delete()


async def housekeeping(runtime: Any, *, interval: float, retention_days: int) -> None:
    """Runs for the service's lifetime: prunes login attempts every ``interval`` seconds."""
    while True:
        try:
            with runtime.db.bind():
                removed = await prune_login_attempts(retention_days)
            if removed:
                log.info("login attempts pruned", removed=removed, retention_days=retention_days)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database may be briefly unavailable: try next time
            log.warning("login attempts pruning failed", error=type(exc).__name__)
        await asyncio.sleep(interval)

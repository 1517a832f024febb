"""The embedded platform: every subgraph in one process, each on its own port and database.

Used by ``make dev`` and by the integration tests. Services still meet only through HTTP
(federation, service clients) and the event bus; sharing a process only shares the in-process
bus, broadcaster and revocation list (or their Redis versions when ``OPSC_REDIS_URL`` is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import AliasChoices, SecretStr

from opsconductor_shared.app import Platform
from opsconductor_shared.logging import get_logger
from opsconductor_shared.settings import InsecureSettings, ServiceSettings
from opsconductor_shared.settings import secure_data_dir as settings_secure_data_dir

log = get_logger("opsconductor.launcher")

# name -> needs the engine
SERVICES: dict[str, bool] = {
    "auth": False,
    "users": False,
    "targets": True,
    "jobs": False,
    "executions": True,
    "schedules": False,
    "audit": False,
}
DEFAULT_PORTS = {
    "auth": 3000,
    "users": 3002,
    "targets": 3001,
    "jobs": 8001,
    "executions": 8002,
    "schedules": 8003,
    "audit": 8004,
}


def service_url(name: str, port: int) -> str:
    return f"http://127.0.0.1:{port}/graphql"


def wiring_env(ports: dict[str, int]) -> dict[str, str]:
    """Where each service of this process listens, as the variables a deployment would set
    (``OPSC_<NAME>_URL``, ``OPSC_<NAME>_PORT``, auth's JWKS and internal URLs, targets' internal URL)."""
    env = {f"OPSC_{name.upper()}_URL": service_url(name, port) for name, port in ports.items()}
    env |= {f"OPSC_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    if "auth" in ports:
        env["OPSC_JWKS_URL"] = f"http://127.0.0.1:{ports['auth']}/.well-known/jwks.json"
        env["OPSC_AUTH_INTERNAL_URL"] = f"http://127.0.0.1:{ports['auth']}"
    if "targets" in ports:
        env["OPSC_TARGETS_INTERNAL_URL"] = f"http://127.0.0.1:{ports['targets']}"
    return env


def _env_names(settings_cls: type[ServiceSettings], field_name: str) -> set[str]:
    """The variables a settings field is read from: its prefixed name and its aliases."""
    info = settings_cls.model_fields[field_name]
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    names = {f"{prefix}{field_name}".upper()}
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    elif isinstance(alias, str):
        names.add(alias.upper())
    return names


def wired_settings(settings_cls: type[ServiceSettings], env: dict[str, str]) -> dict[str, str]:
    """The fields of ``settings_cls`` that ``env`` (from :func:`wiring_env`) sets, by field name:
    passed to the settings class directly, so the process environment is never changed."""
    return {
        field_name: env[name]
        for field_name in settings_cls.model_fields
        for name in _env_names(settings_cls, field_name)
        if name in env
    }


def service_secrets(services: tuple[str, ...], base: ServiceSettings) -> dict[str, str]:
    """Each service's own secret: OPSC_SERVICE_SECRET_<NAME> where set; when this process runs every
    service (`opsconductor dev`), a random one, kept in memory only, for each one not set (nothing
    outside the process needs them: the services meet auth here). ``serve NAME`` generates none."""
    if base.legacy_service_secret is not None:
        raise InsecureSettings(
            "OPSC_SERVICE_SECRET (one secret for every service) is no longer accepted: "
            "set OPSC_SERVICE_SECRET_<NAME> for each service, or leave them unset under `opsconductor dev`"
        )
    given = {name: secret.get_secret_value() for name, secret in base.service_secrets.items()}
    if set(SERVICES) <= set(services):
        for name in SERVICES:
            given.setdefault(name, secrets.token_urlsafe(32))
    return given


def build_app(
    name: str,
    platform: Platform,
    engine: Any | None,
    secrets_by_service: dict[str, str] | None = None,
    wiring: dict[str, str] | None = None,
) -> tuple[Any, ServiceSettings]:
    """The service's app; refuses (InsecureSettings) a service without a usable secret of its own.

    ``wiring`` (:func:`wiring_env` of the services in this process) wins over the environment for
    the fields it names; everything else comes from the environment as in any deployment."""
    module = importlib.import_module(f"opsconductor_{name}.app")
    settings_cls: type[ServiceSettings] = importlib.import_module(f"opsconductor_{name}.settings").Settings
    overrides: dict[str, Any] = wired_settings(settings_cls, wiring or {})
    if secrets_by_service:
        overrides["service_secrets"] = {k: SecretStr(v) for k, v in secrets_by_service.items()}
    settings = settings_cls(**overrides)
    settings.own_service_secret(name)
    kwargs: dict[str, Any] = {"engine": engine} if SERVICES[name] else {}
    return module.create_app(settings, platform, **kwargs), settings


GC_GEN0_THRESHOLD = 10_000


def settle_garbage_collector() -> None:
    """Once the services are up: move what start-up allocated (schemas, models, Ray, ~250k
    objects) out of the collector's sight with gc.freeze(), and collect the young generation
    less often. Otherwise every full collection walks that heap again: in a warm 500-target run
    the collector took 0.29 s of the process, 0.22 s of it in full collections, stalling every
    service in it (bench, gc.callbacks)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def secure_data_dir(path: Path) -> None:
    """L3: the data directory (SQLite files, keys, run output) is private: 0700, its files 0600."""
    settings_secure_data_dir(path)
    for file in path.iterdir():
        if file.is_file() and not file.is_symlink():
            file.chmod(0o600)


@dataclass
class EmbeddedPlatform:
    services: tuple[str, ...] = tuple(SERVICES)
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    engine: Any | None = None
    platform: Platform | None = None
    _secrets: dict[str, str] = field(default_factory=dict, repr=False)
    _servers: list[uvicorn.Server] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        # Where the services of this process listen, handed to their settings (never os.environ).
        wiring = wiring_env({name: self.ports[name] for name in self.services})
        base = ServiceSettings()
        secure_data_dir(base.data_dir)
        self._secrets = service_secrets(self.services, base)
        for name in self.services:  # refuse before anything starts
            ServiceSettings(
                service_secrets={k: SecretStr(v) for k, v in self._secrets.items()}
            ).own_service_secret(name)
        self.platform = Platform.from_settings(base, consumer="embedded")
        for name in self.services:
            app, settings = build_app(name, self.platform, self.engine, self._secrets, wiring)
            config = uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                lifespan="on",
                log_config=None,
                access_log=False,
                ws="websockets",
                # Live events are small JSON on loopback or a LAN: compressing every message
                # costs more CPU than it saves.
                ws_per_message_deflate=False,
                timeout_graceful_shutdown=3,
            )
            server = uvicorn.Server(config)
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            self._servers.append(server)
            self._tasks.append(asyncio.create_task(server.serve(), name=f"serve-{name}"))
            while not server.started:
                if self._tasks[-1].done():
                    self._tasks[-1].result()
                    raise RuntimeError(f"{name} did not start")
                await asyncio.sleep(0.05)
        await self.platform.bus.start()
        settle_garbage_collector()
        log.info("embedded platform started", services=list(self.services), ports=self.ports)

    async def stop(self) -> None:
        for server in reversed(self._servers):
            server.should_exit = True
        for task in self._tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        if self.platform is not None:
            await self.platform.close()

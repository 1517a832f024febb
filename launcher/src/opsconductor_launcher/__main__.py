"""``opsconductor dev`` runs everything in one process; ``opsconductor serve NAME`` one service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from pathlib import Path

from opsconductor_launcher.platform import SERVICES, EmbeddedPlatform, configured_ports
from opsconductor_ray.settings import EngineSettings
from opsconductor_shared.logging import configure_logging
from opsconductor_shared.settings import ServiceSettings


async def _run(services: tuple[str, ...], *, engine_settings: EngineSettings | None, dashboard: bool) -> None:
    """`engine_settings` None: no service here needs the engine."""
    engine = None
    if engine_settings is not None:
        from opsconductor_ray.client import EngineClient

        engine = EngineClient(settings=engine_settings)
        await engine.connect(dashboard=dashboard)
    platform = EmbeddedPlatform(services=services, ports=configured_ports(os.environ), engine=engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await platform.start()
    print("OPSCONDUCTOR_READY", flush=True)
    await stop.wait()
    await platform.stop()
    if engine is not None:
        engine.shutdown()


async def _reencrypt_credentials() -> dict[str, int]:
    """Key rotation step 2: re-encrypt every targets secret under the active (first) key."""
    from tortoise.transactions import in_transaction

    from opsconductor_shared.db import ServiceDatabase
    from opsconductor_targets.service.vault import load_keyring, reencrypt
    from opsconductor_targets.settings import Settings

    settings = Settings()
    keyring = load_keyring(settings)
    db = ServiceDatabase(
        service="targets",
        url=settings.resolved_database_url("targets"),
        models_module="opsconductor_targets.models",
        migrations_module="opsconductor_targets.migrations",
    )
    await db.start()
    try:
        with db.bind():
            async with in_transaction("targets"):
                return await reencrypt(keyring=keyring)
    finally:
        await db.stop()


def main() -> None:
    # Ray's own switch, not an OpsConductor setting: Ray reads it once when it is imported (so
    # it cannot be passed to ray.init), and without "0" a local Ray binds the machine's external
    # address. Set only if the operator did not (scripts/dev.sh exports it too).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    parser = argparse.ArgumentParser(prog="opsconductor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="every subgraph in this process, embedded defaults")
    serve = sub.add_parser("serve", help="one service in this process (distributed deployment)")
    serve.add_argument("service", choices=sorted(SERVICES))
    sub.add_parser(
        "reencrypt-credentials",
        help="re-encrypt targets credentials under the first key of OPSC_TARGETS_ENCRYPTION_KEYS",
    )
    sub.add_parser(
        "rotate-signing-key",
        help="new current token signing key in auth's database; retires keys no token can still need",
    )
    audit = sub.add_parser("audit", help="audit trail tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser(
        "verify", help="verify an audit export, compliance report or retention archive offline"
    )
    verify.add_argument("file", type=Path, help="the downloaded file (NDJSON, CSV, JSON or .ndjson.gz)")
    verify.add_argument(
        "--public-key",
        help="base64 Ed25519 public key to check the checkpoint with (default: the one in the file; "
        "pin the one auditPublicKey publishes to not trust the file)",
    )
    migrate = sub.add_parser(
        "migrate-legacy",
        help="import the legacy monolith's database and audit.log into the services' databases",
    )
    from opsconductor_migrate.cli import add_arguments as migrate_arguments

    migrate_arguments(migrate)
    args = parser.parse_args()
    if args.command == "audit":
        from opsconductor_audit.service.offline import verify_file

        report = verify_file(args.file, public_key=args.public_key)
        print(json.dumps(report.as_dict(), indent=2), flush=True)
        raise SystemExit(0 if report.ok else 1)
    if args.command == "migrate-legacy":
        from opsconductor_migrate.cli import execute

        configure_logging(os.environ.get("OPSC_LOG_LEVEL", "WARNING"), json=False)
        raise SystemExit(execute(args))
    if args.command == "rotate-signing-key":
        from opsconductor_auth.commands import rotate_signing_key

        configure_logging(os.environ.get("OPSC_LOG_LEVEL", "INFO"), json=False)
        result = asyncio.run(rotate_signing_key())
        print({"kid": result.kid, "jwks": result.listed, "retired": result.retired}, flush=True)
        return
    if args.command == "reencrypt-credentials":
        configure_logging(os.environ.get("OPSC_LOG_LEVEL", "INFO"), json=False)
        print(asyncio.run(_reencrypt_credentials()), flush=True)
        return
    configure_logging(
        os.environ.get("OPSC_LOG_LEVEL", "INFO"), json=os.environ.get("OPSC_LOG_JSON", "1") != "0"
    )
    if args.command == "serve" and not ServiceSettings().redis_url:
        # Services in separate processes meet only through Redis (events, revocations, live
        # updates): without it each would have its own in-process bus and events would be lost.
        parser.error(
            "serve runs one service of a distributed deployment and needs Redis: set OPSC_REDIS_URL "
            "(or run every service in one process with 'opsconductor dev')"
        )
    services = tuple(SERVICES) if args.command == "dev" else (args.service,)
    # OPSC_RAY_ADDRESS and the other OPSC_RAY_* settings, read once here and passed down
    engine_settings = EngineSettings() if any(SERVICES[s] for s in services) else None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(services, engine_settings=engine_settings, dashboard=args.command == "dev"))


if __name__ == "__main__":
    main()

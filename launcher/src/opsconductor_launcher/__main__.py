"""``opsconductor dev`` runs everything in one process; ``opsconductor serve NAME`` one service."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal

from opsconductor_launcher.platform import SERVICES, EmbeddedPlatform
from opsconductor_shared.logging import configure_logging


async def _run(services: tuple[str, ...], *, with_engine: bool, dashboard: bool) -> None:
    engine = None
    if with_engine:
        from opsconductor_ray.client import EngineClient

        engine = EngineClient(address=os.environ.get("OPSC_RAY_ADDRESS") or None)
        await engine.connect(dashboard=dashboard)
    platform = EmbeddedPlatform(services=services, engine=engine)
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


def main() -> None:
    # Must be set before ray is imported, or Ray binds the machine's external address.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    parser = argparse.ArgumentParser(prog="opsconductor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="every subgraph in this process, embedded defaults")
    serve = sub.add_parser("serve", help="one service in this process (distributed deployment)")
    serve.add_argument("service", choices=sorted(SERVICES))
    args = parser.parse_args()
    configure_logging(
        os.environ.get("OPSC_LOG_LEVEL", "INFO"), json=os.environ.get("OPSC_LOG_JSON", "1") != "0"
    )
    services = tuple(SERVICES) if args.command == "dev" else (args.service,)
    with_engine = any(SERVICES[s] for s in services)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(services, with_engine=with_engine, dashboard=args.command == "dev"))


if __name__ == "__main__":
    main()

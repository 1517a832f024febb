"""``opsconductor migrate-legacy --source DSN --secret-key KEY --audit-log PATH [--dry-run] [--report FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from opsconductor_migrate.importer import ARCHIVED, InjectedFailure, Migration
from opsconductor_migrate.report import Report
from opsconductor_migrate.source import Source

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, help="the legacy PostgreSQL DSN (read only)")
    parser.add_argument("--secret-key", required=True, help="the legacy SECRET_KEY (decrypts credentials)")
    parser.add_argument("--audit-log", required=True, type=Path, help="the legacy audit.log (JSON lines)")
    parser.add_argument(
        "--dry-run", action="store_true", help="read, decrypt and map everything; write nothing"
    )
    parser.add_argument("--report", type=Path, help="write the JSON report here")


async def run(*, source: str, secret_key: str, audit_log: Path, dry_run: bool, console: Console) -> Report:
    src = Source(source)
    await src.open()
    try:
        archived = {table: await src.rows(table) for table in ARCHIVED}
        progress = Progress(
            TextColumn("migrating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        with progress:
            mig = Migration(source=src, secret_key=secret_key, dry_run=dry_run)
            await mig.load()
            total = mig.total_rows() + sum(len(r or []) for r in archived.values())
            task = progress.add_task("rows", total=total)
            mig.progress = lambda n: progress.advance(task, n)
            report = await mig.run(archived, audit_log)
        return report
    finally:
        await src.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opsconductor migrate-legacy")
    add_arguments(parser)
    return execute(parser.parse_args(argv))


def execute(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    try:
        report = asyncio.run(
            run(
                source=args.source,
                secret_key=args.secret_key,
                audit_log=args.audit_log,
                dry_run=args.dry_run,
                console=console,
            )
        )
    except InjectedFailure as exc:
        console.print(f"migration stopped: {exc}; run the command again to resume", soft_wrap=True)
        return 3
    except OSError as exc:
        console.print(
            f"migration failed: cannot reach the legacy database or a service database: {exc}", soft_wrap=True
        )
        return 2
    for line in report.summary_lines():
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if args.report:
        args.report.write_text(json.dumps(report.as_json(), indent=2, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""``audit.log`` into the audit chain, through the audit subgraph's own import function.

When the audit subgraph (``opsconductor_audit``, issue 17) is installed, its
``import_legacy_audit_log(path, *, dry_run, user_ids)`` runs with the audit database bound: original
times kept, the legacy SHA-256 checksum verified (edited entries imported flagged), malformed lines
quarantined with their line numbers, re-runs import nothing twice. Until it is installed the report
says ``audit.log`` was skipped ("audit subgraph not present") and still counts its lines; running
the command again once it exists imports the log (everything else is then unchanged).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconductor_migrate.importer import Migration

__all__ = ["audit_present", "import_audit_log"]


def audit_present() -> bool:
    return importlib.util.find_spec("opsconductor_audit") is not None


def _lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for line in fh if line.strip())


async def import_audit_log(mig: Migration, path: Path) -> None:
    t = mig.report.table("audit.log", "skipped")
    try:
        read = _lines(path)
    except OSError as exc:
        t.note = f"cannot read {path}: {exc.strerror}"
        t.skip(str(path), "cannot read the file")
        return
    if not audit_present():
        t.note = "audit subgraph not present: audit.log not imported (run again once it exists)"
        t.read = read
        t.skipped["audit subgraph not present"] = read
        t.skipped_rows.append({"id": "every line", "reason": "audit subgraph not present"})
        return
    t.disposition = "imported"
    if mig.dry_run:  # the audit database is not opened in a dry run
        t.read = read
        t.created = read
        t.note = "dry run: lines counted; checksums are verified by the real run"
        return
    service: Any = importlib.import_module("opsconductor_audit.service")
    async with mig.dbs.read("audit"):
        result = await service.import_legacy_audit_log(
            path, dry_run=False, user_ids={str(k): v for k, v in mig.maps.users.items()}
        )
    summary: dict[str, Any] = result.as_dict()
    t.read = int(summary["read"])
    t.created = int(summary["imported"])
    t.unchanged = int(summary["alreadyPresent"])
    for line in summary["quarantined"]:
        t.skip(f"line {line['line']}", f"quarantined: {line['reason']}")
    t.note = (
        f"checksums verified {summary['verified']}; edited (imported flagged) at lines {summary['edited']}; "
        f"without checksum at lines {summary['unverifiable']}"
    )

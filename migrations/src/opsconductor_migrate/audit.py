"""``audit.log`` into the audit chain: the hook for the audit subgraph.

The audit subgraph (its own import function for legacy JSON lines: original times kept, the
legacy SHA-256 checksum verified so edited entries are flagged, malformed lines quarantined with
their line numbers) is not part of this tree yet, so the import reports ``audit.log`` as skipped
and still counts its lines. When ``opsconductor_audit`` exists, ``import_audit_log`` calls its
import function here instead.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from opsconductor_migrate.report import Report

__all__ = ["import_audit_log"]


def import_audit_log(report: Report, path: Path, *, dry_run: bool) -> None:
    t = report.table("audit.log", "skipped")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        t.note = f"cannot read {path}: {exc.strerror}"
        return
    t.read = sum(1 for line in lines if line.strip())
    if importlib.util.find_spec("opsconductor_audit") is None:
        t.note = "audit subgraph not present: audit.log not imported (re-run once it exists)"
        t.skip("*", "audit subgraph not present")
        t.skipped["audit subgraph not present"] = t.read
        t.skipped_rows = [{"id": "all lines", "reason": "audit subgraph not present"}]
        return
    t.note = "audit subgraph present but its legacy import is not wired here yet"  # pragma: no cover

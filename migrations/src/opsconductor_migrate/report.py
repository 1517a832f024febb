"""The verification report: per legacy table rows read / imported / unchanged / skipped (with
reasons), per-row checksums of the compared fields, relation checks; JSON and a terminal summary."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["Report", "TableReport", "canonical", "checksum"]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def canonical(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), default=str)


def checksum(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


@dataclass
class TableReport:
    table: str
    disposition: str  # imported | mapped | archived | skipped | absent
    note: str = ""
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter[str])
    skipped_rows: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    checksums: dict[str, str] = field(default_factory=dict[str, str])
    mismatches: list[str] = field(default_factory=list[str])

    @property
    def imported(self) -> int:
        return self.created + self.updated + self.unchanged

    def skip(self, legacy_id: object, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_rows.append({"id": str(legacy_id), "reason": reason})

    def as_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "disposition": self.disposition,
            "note": self.note,
            "read": self.read,
            "imported": self.imported,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": sum(self.skipped.values()),
            "skippedReasons": dict(self.skipped),
            "skippedRows": self.skipped_rows,
            "checksums": self.checksums,
            "mismatches": self.mismatches,
        }


@dataclass
class Report:
    dry_run: bool
    tables: dict[str, TableReport] = field(default_factory=dict[str, TableReport])
    relations: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    schedule_changes: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    notes: list[str] = field(default_factory=list[str])

    def table(self, name: str, disposition: str = "imported", note: str = "") -> TableReport:
        if name not in self.tables:
            self.tables[name] = TableReport(name, disposition, note)
        return self.tables[name]

    def relation(self, name: str, checked: int, missing: list[str]) -> None:
        self.relations[name] = {"checked": checked, "missing": len(missing), "missingRows": missing[:100]}

    @property
    def ok(self) -> bool:
        return not any(t.mismatches for t in self.tables.values()) and not any(
            r["missing"] for r in self.relations.values()
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "ok": self.ok,
            "tables": [t.as_json() for t in self.tables.values()],
            "relations": self.relations,
            "scheduleNextFireChanges": self.schedule_changes,
            "notes": self.notes,
        }

    def summary_lines(self) -> list[str]:
        lines = [f"{'table':32} {'disposition':10} {'read':>6} {'new':>6} {'upd':>6} {'same':>6} {'skip':>6}"]
        for t in self.tables.values():
            lines.append(
                f"{t.table:32} {t.disposition:10} {t.read:6} {t.created:6} {t.updated:6} "
                f"{t.unchanged:6} {sum(t.skipped.values()):6}"
            )
            lines.extend(f"    skipped {n}: {reason}" for reason, n in t.skipped.items())
            lines.extend(f"    MISMATCH {m}" for m in t.mismatches[:10])
            if t.note:
                lines.append(f"    note: {t.note}")
        for name, rel in self.relations.items():
            lines.append(f"relation {name}: {rel['checked']} checked, {rel['missing']} missing")
        if self.schedule_changes:
            lines.append(
                f"{len(self.schedule_changes)} schedule(s) fire at a different time than legacy did:"
            )
            lines.extend(
                f"    {c['legacyId']}: legacy next {c['legacyNextRun']} -> now {c['nextFireAt']} ({c['timezone']})"
                for c in self.schedule_changes
            )
        lines.extend(f"note: {n}" for n in self.notes)
        lines.append("verification: OK" if self.ok else "verification: FAILED (see mismatches / relations)")
        return lines

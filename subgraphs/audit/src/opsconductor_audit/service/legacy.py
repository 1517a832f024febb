"""Import the legacy ``audit.log`` (JSON lines, LEGACY.md 1.6) into the chain.

Each entry keeps its original time; its ``checksum`` (SHA-256 over the canonical JSON of the entry
without ``checksum``) is verified, and an entry whose checksum does not match is imported flagged
as edited (``data.legacy.edited``). A line that is not an entry (not JSON, not an object, no id,
type or time) is quarantined with its line number (``audit_legacy_quarantine``). Re-running
imports nothing twice (the chain skips ids it holds; ids are ``legacy:<legacy id>``).

The migration command (issue 19) calls :func:`import_legacy_audit_log` with the audit database
bound (``ServiceDatabase(service="audit", ...).bind()`` after ``start()``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from opsconductor_audit import events
from opsconductor_audit.models import LegacyQuarantine
from opsconductor_audit.service.chain import Draft, append, ensure_head
from opsconductor_audit.service.own import record

SEVERITY = {"info": "INFO", "low": "INFO", "medium": "WARNING", "high": "ERROR", "critical": "CRITICAL"}
SUBJECT = {
    "user": "User",
    "users": "User",
    "target": "Target",
    "targets": "Target",
    "job": "Job",
    "jobs": "Job",
    "execution": "Execution",
    "job_execution": "Execution",
    "schedule": "Schedule",
    "job_schedule": "Schedule",
    "role": "Role",
}
DENIED_WORDS = ("unauthorized", "violation", "locked", "denied", "suspicious")
FAILED_WORDS = ("failed", "failure", "error")
MAX_LINE = 1_000_000


@dataclass
class LegacyAuditImport:
    """What one run read and did (line numbers are 1-based)."""

    read: int = 0
    imported: int = 0
    already_present: int = 0
    verified: int = 0
    edited: list[int] = field(default_factory=list[int])
    unverifiable: list[int] = field(default_factory=list[int])
    quarantined: list[tuple[int, str]] = field(default_factory=list[tuple[int, str]])

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "imported": self.imported,
            "alreadyPresent": self.already_present,
            "verified": self.verified,
            "edited": self.edited,
            "unverifiable": self.unverifiable,
            "quarantined": [{"line": n, "reason": r} for n, r in self.quarantined],
        }


def checksum_candidates(entry: Mapping[str, Any]) -> set[str]:
    """SHA-256 of the entry without ``checksum`` in the JSON spellings the legacy service could
    have used (``json.dumps(..., sort_keys=True)`` with default or compact separators, ASCII-escaped
    or not, non-JSON values through ``str``)."""
    body = {k: v for k, v in entry.items() if k != "checksum"}
    out: set[str] = set()
    for separators in ((", ", ": "), (",", ":")):
        for ascii_only in (True, False):
            text = json.dumps(
                body, sort_keys=True, separators=separators, ensure_ascii=ascii_only, default=str
            )
            out.add(hashlib.sha256(text.encode("utf-8")).hexdigest())
    return out


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise ValueError("no timestamp")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _outcome(event_type: str) -> str:
    lowered = event_type.lower()
    if any(w in lowered for w in DENIED_WORDS):
        return "DENIED"
    if any(w in lowered for w in FAILED_WORDS):
        return "FAILURE"
    return "SUCCESS"


def _text(value: Any, limit: int) -> str | None:
    return None if value is None or value == "" else str(value)[:limit]


def entry_draft(
    entry: Mapping[str, Any], *, line_no: int, file_name: str, user_ids: Mapping[str, str] | None = None
) -> tuple[Draft, str]:
    """The chain draft of one legacy entry and its checksum state (verified, edited, unverifiable).
    ValueError: not an importable entry."""
    legacy_id = entry.get("id")
    event_type = entry.get("event_type")
    if not isinstance(legacy_id, str | int) or str(legacy_id) == "":
        raise ValueError("no id")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("no event_type")
    at = _parse_time(entry.get("timestamp"))
    stored = entry.get("checksum")
    if not isinstance(stored, str) or not stored:
        state = "unverifiable"
    elif stored.lower() in checksum_candidates(entry):
        state = "verified"
    else:
        state = "edited"
    legacy_user = _text(entry.get("user_id"), 64)
    severity = SEVERITY.get(str(entry.get("severity") or "").lower(), "INFO")
    if state == "edited" and severity in ("DEBUG", "INFO"):
        severity = "WARNING"  # an entry changed after it was written is worth a look
    resource_type = str(entry.get("resource_type") or "").lower()
    draft = Draft(
        id=f"legacy:{legacy_id}"[:64],
        at=at,
        type=f"legacy.{event_type}"[:100],
        action=str(entry.get("action") or event_type)[:100],
        outcome=_outcome(event_type),
        severity=severity,
        source="legacy",
        actor_id=(user_ids or {}).get(legacy_user or "") if legacy_user else None,
        actor_name=None,
        ip=_text(entry.get("ip_address"), 64),
        user_agent=_text(entry.get("user_agent"), 512),
        subject_type=SUBJECT.get(resource_type, resource_type.capitalize() or None),
        subject_id=_text(entry.get("resource_id"), 64),
        correlation_id=None,
        data={
            "details": entry.get("details"),
            "legacy": {
                "id": str(legacy_id),
                "userId": legacy_user,
                "resourceType": entry.get("resource_type"),
                "severity": entry.get("severity"),
                "checksum": stored,
                "checksumVerified": state == "verified",
                "edited": state == "edited",
                "file": file_name,
                "line": line_no,
            },
        },
    )
    return draft, state


def _read_lines(fh: IO[bytes], count: int) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(count):
        line = fh.readline(MAX_LINE + 1)
        if not line:
            break
        if len(line) > MAX_LINE and not line.endswith(b"\n"):
            while (rest := fh.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass  # skip the rest of an over-long line (quarantined as such)
        lines.append(line)
    return lines


def _entries(raw: list[bytes], first_line: int) -> Iterator[tuple[int, bytes]]:
    for offset, line in enumerate(raw):
        yield first_line + offset, line


async def _quarantine(path: Path, line_no: int, reason: str, line: bytes, *, dry_run: bool) -> None:
    if dry_run:
        return
    name = str(path)[:1024]
    if await LegacyQuarantine.exists(file=name, line_no=line_no):  # quarantined by an earlier run
        return
    await LegacyQuarantine.create(
        file=name, line_no=line_no, reason=reason[:255], line=line.decode("utf-8", "replace")[:10_000]
    )


async def import_legacy_audit_log(
    path: Path,
    *,
    dry_run: bool = False,
    user_ids: Mapping[str, str] | None = None,
    batch: int = 500,
) -> LegacyAuditImport:
    """Import ``path`` (the legacy ``audit.log``) into the chain, ``batch`` entries per transaction.

    ``user_ids`` maps legacy user ids to the new ones (the migration knows them), so imported
    entries have an actor; unmapped ones keep the legacy id in ``data.legacy.userId``.
    ``dry_run`` reads and checks everything and writes nothing. Returns the counts and line
    numbers; never raises for a bad line (OSError if the file cannot be read)."""
    result = LegacyAuditImport()
    if not dry_run:
        await ensure_head()
    fh = await asyncio.to_thread(path.open, "rb")
    line_no = 0
    try:
        while True:
            raw = await asyncio.to_thread(_read_lines, fh, batch)
            if not raw:
                break
            drafts: list[Draft] = []
            for number, line in _entries(raw, line_no + 1):
                if not line.strip():
                    continue
                result.read += 1
                if len(line) > MAX_LINE:
                    result.quarantined.append((number, "line too long"))
                    await _quarantine(path, number, "line too long", line[:10_000], dry_run=dry_run)
                    continue
                try:
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        raise ValueError("not a JSON object")
                    draft, state = entry_draft(entry, line_no=number, file_name=path.name, user_ids=user_ids)
                except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                    reason = f"malformed: {exc}"[:255]
                    result.quarantined.append((number, reason))
                    await _quarantine(path, number, reason, line, dry_run=dry_run)
                    continue
                if state == "verified":
                    result.verified += 1
                elif state == "edited":
                    result.edited.append(number)
                else:
                    result.unverifiable.append(number)
                drafts.append(draft)
            line_no += len(raw)
            if drafts and not dry_run:
                appended = await append(drafts)
                result.imported += len(appended)
                result.already_present += len(drafts) - len(appended)
    finally:
        await asyncio.to_thread(fh.close)
    if not dry_run and (result.imported or result.quarantined):
        await record(
            events.LEGACY_IMPORTED,
            actor_id=None,
            data={
                "file": path.name,
                "read": result.read,
                "imported": result.imported,
                "alreadyPresent": result.already_present,
                "edited": len(result.edited),
                "unverifiable": len(result.unverifiable),
                "quarantined": len(result.quarantined),
            },
        )
    return result

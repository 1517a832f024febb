"""Exports (NDJSON or CSV) streamed from the database to a file, page by page, never all in memory.

NDJSON file: a header line ``{"header": {...}}``, one line per event (its record with ``prevHash``
and ``hash``, oldest first), a trailer ``{"checkpoint": {...}}`` (signed, with the public key).
CSV file: ``# header {...}``, the column line, one row per event (``data`` as canonical JSON, null
as an empty cell), ``# checkpoint {...}``. Both verify offline (``opsconductor audit verify``).
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from opsconductor_audit import events
from opsconductor_audit.models import AuditCheckpoint, AuditEvent, AuditExport
from opsconductor_audit.service.canonical import RECORD_FIELDS, canonical_json, format_time
from opsconductor_audit.service.chain import checkpoint_record, record_of, take_checkpoint
from opsconductor_audit.service.own import record
from opsconductor_audit.service.search import AuditQuery, filtered
from opsconductor_audit.service.signing import Signer
from opsconductor_shared.errors import NotFoundError, ValidationError

PAGE = 2000
FORMAT_VERSION = 1
CSV_COLUMNS = (*RECORD_FIELDS, "prevHash", "hash")
FORMATS = ("NDJSON", "CSV")


def secure_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def open_private(path: Path) -> IO[bytes]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


class HashingWriter:
    """Writes bytes to a private file and hashes them (sha256) as they go."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self._fh = open_private(path)

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self._fh.write(data)

    def close(self) -> None:
        self._fh.close()

    async def awrite(self, data: bytes) -> None:
        await asyncio.to_thread(self.write, data)


def csv_line(values: Iterable[Any]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return canonical_json(value)
    return str(value)


def query_dict(query: AuditQuery) -> dict[str, Any]:
    return {
        "types": list(query.types),
        "actions": list(query.actions),
        "outcomes": list(query.outcomes),
        "severities": list(query.severities),
        "actorId": query.actor_id,
        "subjectType": query.subject_type,
        "subjectId": query.subject_id,
        "correlationId": query.correlation_id,
        "from": format_time(query.from_) if query.from_ else None,
        "to": format_time(query.to) if query.to else None,
        "text": query.text,
    }


def is_unfiltered(query: AuditQuery) -> bool:
    return not any(v for k, v in query_dict(query).items())


@dataclass
class Written:
    rows: int
    sha256: str


async def write_events(
    writer: HashingWriter, *, query: AuditQuery, fmt: str, upto_seq: int, header: dict[str, Any]
) -> int:
    """The matching events with seq <= upto_seq, oldest first, in pages (keyset on seq)."""
    if fmt == "NDJSON":
        await writer.awrite((canonical_json({"header": header}) + "\n").encode())
    else:
        await writer.awrite(("# header " + canonical_json(header) + "\n").encode())
        await writer.awrite(csv_line(CSV_COLUMNS))
    rows, after = 0, 0
    base = filtered(query).filter(seq__lte=upto_seq)
    while True:
        page: list[AuditEvent] = list(await base.filter(seq__gt=after).order_by("seq").limit(PAGE))
        if not page:
            break
        chunk = bytearray()
        for row in page:
            rec = record_of(row)
            if fmt == "NDJSON":
                chunk += (canonical_json(rec) + "\n").encode()
            else:
                chunk += csv_line(csv_cell(rec[c]) for c in CSV_COLUMNS)
        await writer.awrite(bytes(chunk))
        rows += len(page)
        after = int(page[-1].seq)
    return rows


async def write_trailer(writer: HashingWriter, fmt: str, checkpoint: dict[str, Any]) -> None:
    if fmt == "NDJSON":
        await writer.awrite((canonical_json({"checkpoint": checkpoint}) + "\n").encode())
    else:
        await writer.awrite(("# checkpoint " + canonical_json(checkpoint) + "\n").encode())


async def export_events(
    *, query: AuditQuery, fmt: str, owner_id: str, signer: Signer, files_dir: Path
) -> AuditExport:
    """Write the export file (a fresh signed checkpoint first; the export stops at it)."""
    if fmt not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}", field="format")
    cp = await take_checkpoint(signer, reason="export")
    export_id = str(uuid.uuid4())
    path = secure_dir(files_dir / "exports") / f"{export_id}.{'ndjson' if fmt == 'NDJSON' else 'csv'}"
    first = await filtered(query).filter(seq__lte=cp.seq).order_by("seq").only("seq", "prev_hash").first()
    header = {
        "format": "opsconductor-audit-export",
        "version": FORMAT_VERSION,
        "exportId": export_id,
        "createdAt": format_time(datetime.now(UTC)),
        "filter": query_dict(query),
        "contiguous": is_unfiltered(query),
        "startPrevHash": first.prev_hash if first is not None else None,
        "uptoSeq": int(cp.seq),
        "keyId": signer.key_id,
        "publicKey": signer.public_key_b64,
        "hash": "sha256(prevHash + canonical), canonical = record without hash/prevHash, keys sorted, no spaces, UTF-8",
    }
    writer = HashingWriter(path)
    try:
        rows = await write_events(writer, query=query, fmt=fmt, upto_seq=int(cp.seq), header=header)
        await write_trailer(writer, fmt, checkpoint_record(cp, signer))
    finally:
        writer.close()
    row = await AuditExport.create(
        id=export_id,
        kind="EXPORT",
        format=fmt,
        owner_id=owner_id,
        path=str(path),
        rows=rows,
        sha256=writer.digest.hexdigest(),
        checkpoint=cp,
    )
    await record(
        events.EXPORTED,
        actor_id=owner_id,
        subject_id=export_id,
        data={
            "format": fmt,
            "rows": rows,
            "sha256": row.sha256,
            "filter": query_dict(query),
            "uptoSeq": int(cp.seq),
        },
    )
    return row


async def get_export(*, export_id: str, owner_id: str | None) -> AuditExport:
    """An export (or report) file of ``owner_id`` (None: anyone's, for audit admins) that still exists."""
    try:
        uuid.UUID(export_id)
    except ValueError:
        raise NotFoundError(f"export {export_id} not found", id=export_id) from None
    row = await AuditExport.get_or_none(id=export_id)
    if (
        row is None
        or (owner_id is not None and row.owner_id != owner_id)
        or not await asyncio.to_thread(Path(row.path).exists)
    ):
        raise NotFoundError(f"export {export_id} not found", id=export_id)
    return row


async def checkpoint_of(row: AuditExport) -> AuditCheckpoint | None:
    return await AuditCheckpoint.get_or_none(id=row.checkpoint_id) if row.checkpoint_id else None


async def prune_exports(*, older_than: timedelta) -> int:
    """Delete export and report files (and their rows) older than the retention."""
    cutoff = datetime.now(UTC) - older_than
    old = await AuditExport.filter(created_at__lt=cutoff)
    for row in old:
        await asyncio.to_thread(Path(row.path).unlink, True)
    return await AuditExport.filter(id__in=[r.id for r in old]).delete() if old else 0


def read_json_line(line: str) -> dict[str, Any]:
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value

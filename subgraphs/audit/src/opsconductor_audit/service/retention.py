"""Retention: events past the policy (age and/or count) are archived to gzip NDJSON with a signed
checkpoint at the cut, then deleted; the chain's base moves to the cut, so what remains verifies
from that checkpoint (its first event's prevHash is the archived last event's hash).

The archive is the export format (header, events, checkpoint), gzip-compressed, written before
anything is deleted: ``opsconductor audit verify`` checks it offline.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from opsconductor_audit import events
from opsconductor_audit.models import AuditArchive, AuditCheckpoint, AuditEvent, ChainHead
from opsconductor_audit.service.canonical import canonical_json, checkpoint_statement, format_time
from opsconductor_audit.service.chain import HEAD_ID, checkpoint_record, head, record_of, writer_lock
from opsconductor_audit.service.exports import secure_dir
from opsconductor_audit.service.own import record
from opsconductor_audit.service.signing import Signer

PAGE = 2000


@dataclass
class Policy:
    max_age: timedelta | None = None
    max_events: int | None = None


@dataclass
class RetentionResult:
    archived: int
    from_seq: int | None
    to_seq: int | None
    path: str | None


async def cut_point(policy: Policy) -> int:
    """The highest seq to archive: every event up to it is past the policy (0: nothing)."""
    current = await head()
    last, base = int(current.last_seq), int(current.base_seq)
    cut = base
    if policy.max_events is not None:
        cut = max(cut, last - max(policy.max_events, 0))
    if policy.max_age is not None:
        cutoff = datetime.now(UTC) - policy.max_age
        first_young = (
            await AuditEvent.filter(seq__gt=base, at__gte=cutoff).order_by("seq").only("seq").first()
        )
        cut = max(cut, (int(first_young.seq) - 1) if first_young is not None else last)
    return min(cut, last)


class _GzipWriter:
    """A private (0600) gzip file, written from a worker thread."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._raw = os.fdopen(fd, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb")

    def write(self, data: bytes) -> None:
        self._gz.write(data)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


async def apply_retention(
    *, policy: Policy, signer: Signer, files_dir: Path, actor_id: str | None = None
) -> RetentionResult:
    cut = await cut_point(policy)
    current = await head()
    base = int(current.base_seq)
    if cut <= base:
        return RetentionResult(0, None, None, None)
    last_row = await AuditEvent.get(seq=cut)
    at = datetime.now(UTC)
    stamp = format_time(at)
    checkpoint = await AuditCheckpoint.create(
        id=str(uuid.uuid4()),
        seq=cut,
        hash=last_row.hash,
        at=at,
        key_id=signer.key_id,
        signature=signer.sign(checkpoint_statement(cut, last_row.hash, stamp)),
        reason="retention",
    )
    archive_id = str(uuid.uuid4())
    path = secure_dir(files_dir / "archives") / f"audit-{base + 1}-{cut}-{archive_id[:8]}.ndjson.gz"
    header: dict[str, Any] = {
        "format": "opsconductor-audit-archive",
        "version": 1,
        "archiveId": archive_id,
        "createdAt": stamp,
        "contiguous": True,
        "startPrevHash": current.base_hash,
        "fromSeq": base + 1,
        "uptoSeq": cut,
        "keyId": signer.key_id,
        "publicKey": signer.public_key_b64,
    }
    writer = await asyncio.to_thread(_GzipWriter, path)
    rows = 0
    try:
        await asyncio.to_thread(writer.write, (canonical_json({"header": header}) + "\n").encode())
        after = base
        while after < cut:
            page = list(await AuditEvent.filter(seq__gt=after, seq__lte=cut).order_by("seq").limit(PAGE))
            if not page:
                break
            chunk = b"".join((canonical_json(record_of(r)) + "\n").encode() for r in page)
            await asyncio.to_thread(writer.write, chunk)
            rows += len(page)
            after = int(page[-1].seq)
        await asyncio.to_thread(
            writer.write,
            (canonical_json({"checkpoint": checkpoint_record(checkpoint, signer)}) + "\n").encode(),
        )
    finally:
        await asyncio.to_thread(writer.close)
    digest = await asyncio.to_thread(_sha256_file, path)
    async with writer_lock(), in_transaction():
        locked = await ChainHead.select_for_update().get(id=HEAD_ID)
        if int(locked.base_seq) != base:  # another replica cut meanwhile: its archive stands
            await asyncio.to_thread(path.unlink, True)
            return RetentionResult(0, None, None, None)
        await AuditEvent.filter(seq__gt=base, seq__lte=cut).delete()
        locked.base_seq, locked.base_hash = cut, last_row.hash
        await locked.save(update_fields=["base_seq", "base_hash", "updated_at"])
        await AuditArchive.create(
            id=archive_id,
            from_seq=base + 1,
            to_seq=cut,
            rows=rows,
            path=str(path),
            sha256=digest,
            checkpoint_id=checkpoint.id,
        )
    await record(
        events.RETENTION_ARCHIVED,
        actor_id=actor_id,
        subject_id=archive_id,
        data={
            "fromSeq": base + 1,
            "toSeq": cut,
            "rows": rows,
            "sha256": digest,
            "file": path.name,
            "checkpointId": checkpoint.id,
        },
    )
    return RetentionResult(rows, base + 1, cut, str(path))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

"""The chain in the database: append in commit order (one writer), verify, checkpoint.

Appending locks the one ``audit_chain_head`` row (``SELECT ... FOR UPDATE``) for the whole
transaction: seqs are handed out under the lock and the head moves in the same commit, so the
chain order is the commit order and seq is gapless whatever the number of replicas. Duplicates
(an event id already appended: redelivery) are skipped under the same lock; the unique index on
``id`` backs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from opsconductor_audit.models import AuditCheckpoint, AuditEvent, ChainHead
from opsconductor_audit.service.canonical import (
    GENESIS,
    Verification,
    canonical_json,
    chain_hash,
    checkpoint_statement,
    format_time,
    verify_records,
)
from opsconductor_audit.service.signing import Signer

HEAD_ID = 1
VERIFY_PAGE = 2000


@dataclass
class Draft:
    """An event ready to be chained (everything but seq and the hashes)."""

    id: str
    at: datetime
    type: str
    action: str
    outcome: str
    severity: str
    source: str
    actor_id: str | None = None
    actor_name: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    correlation_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict[str, Any])


def record_of(row: AuditEvent) -> dict[str, Any]:
    """The row as its API record (what is hashed), plus prevHash and hash."""
    import json

    return {
        "id": row.id,
        "seq": int(row.seq),
        "at": format_time(row.at),
        "type": row.type,
        "action": row.action,
        "outcome": row.outcome,
        "severity": row.severity,
        "actorId": row.actor_id,
        "actorName": row.actor_name,
        "ip": row.ip,
        "userAgent": row.user_agent,
        "subjectType": row.subject_type,
        "subjectId": row.subject_id,
        "correlationId": row.correlation_id,
        "source": row.source,
        "data": json.loads(row.data) if row.data else None,
        "prevHash": row.prev_hash,
        "hash": row.hash,
    }


def _clean(value: str | None, limit: int) -> str | None:
    """PostgreSQL text cannot hold NUL; columns have a length: both fixed before hashing."""
    if value is None:
        return None
    return value.replace("\x00", "")[:limit]


def _row(draft: Draft, seq: int, prev_hash: str) -> AuditEvent:
    data_text = canonical_json(draft.data)
    row = AuditEvent(
        seq=seq,
        id=_clean(draft.id, 64),
        at=draft.at.astimezone(UTC),
        type=_clean(draft.type, 100),
        action=_clean(draft.action, 100),
        outcome=draft.outcome,
        severity=draft.severity,
        actor_id=_clean(draft.actor_id, 64),
        actor_name=_clean(draft.actor_name, 255),
        ip=_clean(draft.ip, 64),
        user_agent=_clean(draft.user_agent, 512),
        subject_type=_clean(draft.subject_type, 50),
        subject_id=_clean(draft.subject_id, 64),
        correlation_id=_clean(draft.correlation_id, 64),
        source=_clean(draft.source, 50),
        data=data_text,
        prev_hash=prev_hash,
        hash="",
    )
    row.hash = chain_hash(prev_hash, record_of(row))
    return row


async def ensure_head() -> None:
    """The head row exists (idempotent, safe with replicas racing at start-up)."""
    if await ChainHead.exists(id=HEAD_ID):
        return
    with contextlib.suppress(IntegrityError):
        await ChainHead.create(id=HEAD_ID, last_seq=0, last_hash=GENESIS, base_seq=0, base_hash=GENESIS)


_local_lock: dict[int, asyncio.Lock] = {}


def writer_lock() -> asyncio.Lock:
    """Writers of this process queue here first (the row lock serialises replicas)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _local_lock:
        _local_lock[loop_id] = asyncio.Lock()
    return _local_lock[loop_id]


async def append(drafts: Sequence[Draft]) -> list[AuditEvent]:
    """Append the drafts not yet in the chain, in order, in one transaction; returns the new rows."""
    if not drafts:
        return []
    async with writer_lock(), in_transaction():
        head = await ChainHead.select_for_update().get(id=HEAD_ID)
        ids = list(dict.fromkeys(d.id for d in drafts))
        seen: set[str] = {str(i) for i in await AuditEvent.filter(id__in=ids).values_list("id", flat=True)}
        rows: list[AuditEvent] = []
        seq, prev = int(head.last_seq), head.last_hash
        for draft in drafts:
            if draft.id in seen:
                continue
            seen.add(draft.id)
            seq += 1
            row = _row(draft, seq, prev)
            prev = row.hash
            rows.append(row)
        if rows:
            await AuditEvent.bulk_create(rows, batch_size=500)
            head.last_seq, head.last_hash = seq, prev
            await head.save(update_fields=["last_seq", "last_hash", "updated_at"])
        return rows


async def head() -> ChainHead:
    await ensure_head()
    return await ChainHead.get(id=HEAD_ID)


async def take_checkpoint(signer: Signer, *, reason: str) -> AuditCheckpoint:
    """Sign the current head (a consistent seq/hash pair) and store the checkpoint."""
    current = await head()
    at = datetime.now(UTC)
    stamp = format_time(at)
    return await AuditCheckpoint.create(
        id=str(uuid.uuid4()),
        seq=int(current.last_seq),
        hash=current.last_hash,
        at=at,
        key_id=signer.key_id,
        signature=signer.sign(checkpoint_statement(int(current.last_seq), current.last_hash, stamp)),
        reason=reason,
    )


async def last_checkpoint() -> AuditCheckpoint | None:
    return await AuditCheckpoint.all().order_by("-seq", "-at").first()


def checkpoint_record(cp: AuditCheckpoint, signer: Signer | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": cp.id,
        "seq": int(cp.seq),
        "hash": cp.hash,
        "at": format_time(cp.at),
        "keyId": cp.key_id,
        "signature": cp.signature,
        "statement": checkpoint_statement(int(cp.seq), cp.hash, format_time(cp.at)).decode(),
    }
    if signer is not None:
        record["publicKey"] = signer.public_key_b64
    return record


async def verify_chain(
    *, from_seq: int | None, to_seq: int | None, signer: Signer | None = None
) -> tuple[Verification, AuditCheckpoint | None]:
    """Walk the stored chain (pages, hashing in a worker thread); also checks the head row and
    every checkpoint inside the range (a rewritten chain no longer matches what was signed)."""
    current = await head()
    base_seq = int(current.base_seq)
    lo = max(from_seq or base_seq + 1, base_seq + 1)
    hi = int(current.last_seq) if to_seq is None else min(to_seq, int(current.last_seq))
    if lo == base_seq + 1:
        prev: str | None = current.base_hash
    else:
        before = await AuditEvent.filter(seq=lo - 1).only("seq", "hash").first()
        prev = before.hash if before is not None else None
    checked = 0
    expected_seq = lo
    result = Verification(True, 0, None, "no events in range")
    while expected_seq <= hi:
        rows = await AuditEvent.filter(seq__gte=expected_seq, seq__lte=hi).order_by("seq").limit(VERIFY_PAGE)
        if not rows:
            return Verification(
                False, checked, expected_seq, f"event {expected_seq}: missing (deleted)"
            ), None
        records = [record_of(r) for r in rows]
        page = await asyncio.to_thread(verify_records, records, start_prev_hash=prev, start_seq=expected_seq)
        if not page.ok:
            page.checked += checked
            return page, None
        checked += page.checked
        prev, expected_seq = page.last_hash, int(page.last_seq or expected_seq) + 1
    if hi >= lo:
        result = Verification(True, checked, None, f"{checked} event(s) verified", hi, prev)
    if (to_seq is None or to_seq >= int(current.last_seq)) and checked and prev != current.last_hash:
        return Verification(False, checked, hi, "the chain head does not match the last event"), None
    checkpoints = await AuditCheckpoint.filter(seq__gte=lo, seq__lte=hi).order_by("seq")
    by_seq: Mapping[int, str] = {
        int(s): h
        for s, h in await AuditEvent.filter(seq__in=[c.seq for c in checkpoints]).values_list("seq", "hash")
    }
    for cp in checkpoints:
        if signer is not None and cp.key_id == signer.key_id:
            statement = checkpoint_statement(int(cp.seq), cp.hash, format_time(cp.at))
            if not signer.verify(statement, cp.signature):
                return Verification(False, checked, int(cp.seq), f"checkpoint at {cp.seq}: bad signature"), cp
        if by_seq.get(int(cp.seq)) != cp.hash:
            return (
                Verification(
                    False,
                    checked,
                    int(cp.seq),
                    f"event {cp.seq}: differs from the signed checkpoint (rewritten)",
                ),
                cp,
            )
    latest = checkpoints[-1] if checkpoints else await last_checkpoint()
    return result, latest

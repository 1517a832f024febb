"""The chain's canonical form and its verification, pure (no database): the server, the exports and
the offline ``opsconductor audit verify`` use this one module.

An event's record is its API fields (``id seq at type action outcome severity actorId actorName ip
userAgent subjectType subjectId correlationId source data``); ``canonical`` is that record as JSON
with keys sorted at every level, no spaces, UTF-8 (non-ASCII kept as is); ``at`` is UTC ISO-8601
with microseconds and ``Z``. ``hash = sha256(prevHash + canonical)`` in lowercase hex; the first
event's ``prevHash`` is 64 zeros (after a retention cut: the hash of the last archived event,
which a signed checkpoint carries).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
RECORD_FIELDS = (
    "id",
    "seq",
    "at",
    "type",
    "action",
    "outcome",
    "severity",
    "actorId",
    "actorName",
    "ip",
    "userAgent",
    "subjectType",
    "subjectId",
    "correlationId",
    "source",
    "data",
)
CHECKPOINT_STATEMENT = "opsconductor-audit-checkpoint:v1:{seq}:{hash}:{at}"
"""What a checkpoint signs (UTF-8): the seq, the hash of that event and the checkpoint's time."""


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical(record: Mapping[str, Any]) -> str:
    """The event without ``hash``/``prevHash`` (and any field not in the record), canonical JSON."""
    return canonical_json({k: record.get(k) for k in RECORD_FIELDS})


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(record)).encode("utf-8")).hexdigest()


def checkpoint_statement(seq: int, hash_: str, at: str) -> bytes:
    return CHECKPOINT_STATEMENT.format(seq=seq, hash=hash_, at=at).encode()


def key_id(public_key_raw: bytes) -> str:
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def verify_signature(public_key_b64: str, statement: bytes, signature_b64: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
        key.verify(base64.b64decode(signature_b64), statement)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None
    message: str
    last_seq: int | None = None
    last_hash: str | None = None


def verify_records(
    records: Iterable[Mapping[str, Any]],
    *,
    start_prev_hash: str | None,
    start_seq: int | None,
    contiguous: bool = True,
) -> Verification:
    """Walk records in seq order. Each row's hash must be ``sha256(prevHash + canonical)``; with
    ``contiguous`` (a whole range of the chain) the seqs must follow each other without a gap and
    each ``prevHash`` must be the previous row's hash (the first: ``start_prev_hash``, when given).

    Finds: an edited row (its hash no longer matches), a deleted one (a seq gap, or a prevHash
    that no longer links), an inserted or reordered one (a seq out of order or a broken link).
    The first bad seq is named."""
    expected_prev = start_prev_hash
    expected_seq = start_seq
    checked = 0
    last_seq: int | None = None
    last_hash: str | None = None
    for record in records:
        seq = int(record["seq"])
        if contiguous and expected_seq is not None and seq != expected_seq:
            bad = min(seq, expected_seq)
            what = "missing (deleted)" if seq > expected_seq else "out of order (inserted or reordered)"
            return Verification(False, checked, bad, f"event {bad}: {what}", last_seq, last_hash)
        prev = str(record.get("prevHash") or "")
        if contiguous and expected_prev is not None and prev != expected_prev:
            return Verification(
                False,
                checked,
                seq,
                f"event {seq}: prevHash does not link to the event before it (one was deleted, "
                "inserted or reordered)",
                last_seq,
                last_hash,
            )
        try:
            recomputed = chain_hash(prev, record)
        except (TypeError, ValueError):
            recomputed = ""
        if recomputed != record.get("hash"):
            return Verification(
                False,
                checked,
                seq,
                f"event {seq}: hash does not match its content (edited)",
                last_seq,
                last_hash,
            )
        checked += 1
        expected_prev = str(record["hash"])
        expected_seq = seq + 1
        last_seq, last_hash = seq, str(record["hash"])
    return Verification(True, checked, None, f"{checked} event(s) verified", last_seq, last_hash)

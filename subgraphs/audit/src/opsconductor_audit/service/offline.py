"""Verify an export, report or retention archive offline (``opsconductor audit verify FILE``).

Reads NDJSON (``.ndjson``; gzip when the file starts with the gzip magic) or CSV exports line by
line (never the whole file in memory). Checks: every event's hash is ``sha256(prevHash +
canonical)``; consecutive seqs link (an unfiltered export or an archive must be gapless from its
``startPrevHash``); the trailing checkpoint's Ed25519 signature, by the key in the file or the one
given (pin it: a forger can sign with their own key); the event at the checkpoint's seq, when in
the file, has the signed hash.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opsconductor_audit.service.canonical import chain_hash, checkpoint_statement, verify_signature

CSV_INT = {"seq"}


@dataclass
class FileReport:
    ok: bool = True
    events: int = 0
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list[str])
    checkpoint_seq: int | None = None
    signature_ok: bool | None = None
    key_id: str | None = None

    def fail(self, message: str, seq: int | None = None) -> None:
        self.ok = False
        if seq is not None and self.first_bad_seq is None:
            self.first_bad_seq = seq
        if len(self.problems) < 20:
            self.problems.append(message)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "firstBadSeq": self.first_bad_seq,
            "checkpointSeq": self.checkpoint_seq,
            "signatureOk": self.signature_ok,
            "keyId": self.key_id,
            "problems": self.problems,
        }


def _open(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8", newline="")


def _csv_record(columns: list[str], values: list[str]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for name, value in zip(columns, values, strict=True):
        if value == "":
            rec[name] = None
        elif name in CSV_INT:
            rec[name] = int(value)
        elif name == "data":
            rec[name] = json.loads(value)
        else:
            rec[name] = value
    return rec


def _items(fh: IO[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """("header" | "event" | "checkpoint", object) for each line of an NDJSON or CSV file."""
    first = fh.readline()
    if first.startswith("# header "):
        yield "header", json.loads(first[len("# header ") :])
        columns = next(csv.reader([fh.readline()]))
        pending: list[str] = []
        for line in fh:
            if line.startswith("# checkpoint "):
                yield "checkpoint", json.loads(line[len("# checkpoint ") :])
                continue
            pending.append(line)
            rows = list(csv.reader(["".join(pending)]))
            if rows and len(rows[0]) > len(columns):
                raise ValueError(f"a row with {len(rows[0])} columns, the header has {len(columns)}")
            if rows and len(rows[0]) == len(columns):
                yield "event", _csv_record(columns, rows[0])
                pending = []
        return
    for line in [first, *fh]:
        if not line.strip():
            continue
        obj = json.loads(line)
        if "header" in obj and "rows" in obj and "checkpoint" in obj:  # a JSON compliance report
            yield "header", obj["header"]
            yield "checkpoint", obj["checkpoint"]
        elif "header" in obj and len(obj) == 1:
            yield "header", obj["header"]
        elif "checkpoint" in obj and len(obj) == 1:
            yield "checkpoint", obj["checkpoint"]
        else:
            yield "event", obj


def verify_file(path: Path, *, public_key: str | None = None) -> FileReport:
    report = FileReport()
    header: dict[str, Any] = {}
    prev_seq: int | None = None
    prev_hash: str | None = None
    checkpoint: dict[str, Any] | None = None
    try:
        with _open(path) as fh:
            for kind, obj in _items(fh):
                if kind == "header":
                    header = obj
                    continue
                if kind == "checkpoint":
                    checkpoint = obj
                    continue
                if header.get("format") == "opsconductor-audit-report":
                    report.events += 1  # a report's rows are derived: its checkpoint is what verifies
                    continue
                seq = int(obj["seq"])
                contiguous = bool(header.get("contiguous"))
                start = header.get("startPrevHash")
                if prev_seq is None and contiguous and start is not None and obj.get("prevHash") != start:
                    report.fail(f"event {seq}: does not start where the header says", seq)
                if prev_seq is not None:
                    if seq <= prev_seq:
                        report.fail(f"event {seq}: out of order (after {prev_seq})", seq)
                    elif seq == prev_seq + 1 and obj.get("prevHash") != prev_hash:
                        report.fail(f"event {seq}: prevHash does not link to event {prev_seq}", seq)
                    elif seq > prev_seq + 1 and contiguous:
                        report.fail(f"event {prev_seq + 1}: missing (deleted)", prev_seq + 1)
                if chain_hash(str(obj.get("prevHash") or ""), obj) != obj.get("hash"):
                    report.fail(f"event {seq}: hash does not match its content (edited)", seq)
                report.events += 1
                prev_seq, prev_hash = seq, str(obj.get("hash"))
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as exc:
        report.fail(f"unreadable file: {type(exc).__name__}: {exc}")
        return report
    if checkpoint is None:
        report.fail("no checkpoint in the file")
        return report
    report.checkpoint_seq = int(checkpoint["seq"])
    report.key_id = checkpoint.get("keyId")
    key = public_key or checkpoint.get("publicKey") or header.get("publicKey")
    statement = checkpoint_statement(int(checkpoint["seq"]), str(checkpoint["hash"]), str(checkpoint["at"]))
    report.signature_ok = bool(key) and verify_signature(
        str(key), statement, str(checkpoint.get("signature"))
    )
    if not report.signature_ok:
        report.fail(
            "the checkpoint's signature does not verify" + (" with the given key" if public_key else "")
        )
    if prev_seq is not None and prev_seq == report.checkpoint_seq and prev_hash != checkpoint["hash"]:
        report.fail(f"event {prev_seq}: differs from the signed checkpoint", prev_seq)
    if header.get("contiguous") and prev_seq is not None and prev_seq < report.checkpoint_seq:
        report.fail(f"event {prev_seq + 1}: missing (the file ends before its checkpoint)", prev_seq + 1)
    return report

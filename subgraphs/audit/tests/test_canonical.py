"""The canonical form and the chain, pure: tamper cases (edit, delete, insert, reorder)."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from opsconductor_audit.service.canonical import GENESIS, canonical, chain_hash, verify_records


def _chain(n: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        rec: dict[str, Any] = {
            "id": f"e{seq}",
            "seq": seq,
            "at": f"2026-12-08T00:00:{seq:02d}.000000Z",
            "type": "auth.login_failed",
            "action": "login",
            "outcome": "FAILURE",
            "severity": "WARNING",
            "actorId": None,
            "actorName": "älice",
            "ip": "127.0.0.1",
            "userAgent": "curl/8",
            "subjectType": "User",
            "subjectId": "u1",
            "correlationId": f"c{seq}",
            "source": "auth",
            "data": {"b": 1, "a": {"z": [1, 2], "y": "é"}},
            "prevHash": prev,
        }
        rec["hash"] = chain_hash(prev, rec)
        prev = rec["hash"]
        records.append(rec)
    return records


def test_canonical_is_sorted_compact_utf8_without_hashes() -> None:
    rec = _chain(1)[0]
    text = canonical(rec)
    assert '"hash"' not in text and '"prevHash"' not in text
    assert " " not in text.replace("curl/8", "")
    assert text.index('"action"') < text.index('"actorId"') < text.index('"at"')
    assert '"a":{"y":"é","z":[1,2]},"b":1' in text
    # anyone's short script gets the same hash
    mine = {k: v for k, v in rec.items() if k not in ("hash", "prevHash")}
    theirs = hashlib.sha256(
        (GENESIS + json.dumps(mine, sort_keys=True, separators=(",", ":"), ensure_ascii=False)).encode()
    ).hexdigest()
    assert theirs == rec["hash"]


def test_untouched_chain_verifies() -> None:
    result = verify_records(_chain(10), start_prev_hash=GENESIS, start_seq=1)
    assert result.ok and result.checked == 10 and result.first_bad_seq is None


def test_edited_row_fails_at_itself() -> None:
    records = _chain(10)
    records[4]["data"]["b"] = 2
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 5 and "edited" in result.message


def test_edited_and_rehashed_row_fails_at_the_next_link() -> None:
    records = _chain(10)
    records[4]["ip"] = "10.0.0.1"
    records[4]["hash"] = chain_hash(records[4]["prevHash"], records[4])
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 6


def test_deleted_row_is_named() -> None:
    records = _chain(10)
    del records[3]
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 4 and "missing" in result.message


def test_deleted_and_renumbered_row_breaks_the_link() -> None:
    records = _chain(10)
    del records[3]
    for rec in records[3:]:
        rec["seq"] -= 1
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 4


def test_inserted_row_is_named() -> None:
    records = _chain(10)
    forged = copy.deepcopy(records[2])
    forged["id"] = "forged"
    forged["prevHash"] = records[2]["hash"]
    forged["seq"] = 4
    forged["hash"] = chain_hash(forged["prevHash"], forged)
    for rec in records[3:]:
        rec["seq"] += 1
    records.insert(3, forged)
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    # the forged row links and hashes, but the next one no longer links to it
    assert not result.ok and result.first_bad_seq == 5


def test_reordered_rows_are_named() -> None:
    records = _chain(10)
    records[5], records[6] = records[6], records[5]
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 6


def test_swapped_contents_with_seqs_kept_fail() -> None:
    records = _chain(10)
    a, b = records[5], records[6]
    a["seq"], b["seq"] = 7, 6
    records[5], records[6] = b, a
    result = verify_records(records, start_prev_hash=GENESIS, start_seq=1)
    assert not result.ok and result.first_bad_seq == 6


def test_wrong_start_is_named() -> None:
    result = verify_records(_chain(3), start_prev_hash="f" * 64, start_seq=1)
    assert not result.ok and result.first_bad_seq == 1

"""The chain in PostgreSQL: gapless appends, dedup, concurrent writers, tampering found by row."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tortoise import connections

from opsconductor_audit import service
from opsconductor_audit.models import AuditCheckpoint, AuditEvent, ChainHead
from opsconductor_shared.db import ServiceDatabase
from opsconductor_shared.events import new_uuid7


def draft(i: int, **over: object) -> service.Draft:
    values: dict[str, object] = {
        "id": str(new_uuid7()),
        "at": datetime.now(UTC),
        "type": "jobs.job_created",
        "action": "create_job",
        "outcome": "SUCCESS",
        "severity": "INFO",
        "source": "jobs",
        "actor_id": "u1",
        "subject_type": "Job",
        "subject_id": f"job-{i}",
        "data": {"i": i, "name": f"job \u00e9 {i}", "nested": {"b": [1.5, None], "a": True}},
    }
    values.update(over)
    return service.Draft(**values)  # type: ignore[arg-type]


async def _sql(sql: str, *args: object) -> None:
    await connections.get("audit").execute_query(sql, list(args))


@pytest.fixture
def signer(tmp_path: Path) -> service.Signer:
    return service.Signer.load_or_create(None, tmp_path)


async def test_appends_are_gapless_deduplicated_and_verify(
    db: ServiceDatabase, signer: service.Signer
) -> None:
    start = (await service.head()).last_seq
    drafts = [draft(i) for i in range(20)]
    rows = await service.append(drafts)
    assert [r.seq for r in rows] == list(range(start + 1, start + 21))
    assert await service.append([*drafts[:5], drafts[5], drafts[5]]) == []  # redelivery: nothing new
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result.ok, result.message


async def test_concurrent_writers_keep_chain_order_equal_to_commit_order(
    db: ServiceDatabase, signer: service.Signer
) -> None:
    start = (await service.head()).last_seq
    await asyncio.gather(*(service.append([draft(i * 10 + j) for j in range(10)]) for i in range(10)))
    head = await service.head()
    assert head.last_seq == start + 100
    seqs = await AuditEvent.filter(seq__gt=start).order_by("seq").values_list("seq", flat=True)
    assert seqs == list(range(start + 1, start + 101))
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result.ok, result.message


async def test_checkpoint_signature_verifies_offline(db: ServiceDatabase, signer: service.Signer) -> None:
    await service.append([draft(1)])
    cp = await service.take_checkpoint(signer, reason="manual")
    record = service.checkpoint_record(cp, signer)
    from opsconductor_audit.service.canonical import verify_signature

    assert verify_signature(record["publicKey"], record["statement"].encode(), record["signature"])
    assert not verify_signature(
        record["publicKey"], record["statement"].replace(":v1:", ":v2:").encode(), record["signature"]
    )


async def test_editing_one_row_fails_verification_at_that_row(
    db: ServiceDatabase, signer: service.Signer
) -> None:
    rows = await service.append([draft(i) for i in range(10)])
    target = rows[4].seq
    await _sql("UPDATE audit_events SET ip = '10.9.9.9' WHERE seq = $1", target)
    try:
        result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
        assert not result.ok and result.first_bad_seq == target, result
    finally:
        await _sql("UPDATE audit_events SET ip = NULL WHERE seq = $1", target)
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result.ok, result.message


async def test_deleting_a_row_names_it(db: ServiceDatabase, signer: service.Signer) -> None:
    rows = await service.append([draft(i) for i in range(5)])
    gone = rows[2]
    await _sql("DELETE FROM audit_events WHERE seq = $1", gone.seq)
    try:
        result, _ = await service.verify_chain(from_seq=rows[0].seq, to_seq=rows[-1].seq, signer=signer)
        assert not result.ok and result.first_bad_seq == gone.seq, result
    finally:
        await AuditEvent.bulk_create([gone])
    assert (await service.verify_chain(from_seq=None, to_seq=None, signer=signer))[0].ok


async def test_rewriting_the_chain_after_a_checkpoint_is_caught(
    db: ServiceDatabase, signer: service.Signer
) -> None:
    rows = await service.append([draft(i) for i in range(3)])
    await service.take_checkpoint(signer, reason="manual")
    last = rows[-1]
    saved = (last.data, last.hash)
    # an insider edits the last event and recomputes its hash and the head: only the checkpoint knows
    last.data = '{"i":999}'
    last.hash = service.chain_hash(last.prev_hash, service.record_of(last))
    await last.save(update_fields=["data", "hash"])
    await ChainHead.filter(id=1).update(last_hash=last.hash)
    try:
        result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
        assert not result.ok and result.first_bad_seq == last.seq and "checkpoint" in result.message
    finally:
        last.data, last.hash = saved
        await last.save(update_fields=["data", "hash"])
        await ChainHead.filter(id=1).update(last_hash=last.hash)
    assert await AuditCheckpoint.filter(reason="manual").count() >= 1

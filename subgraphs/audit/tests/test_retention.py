"""Retention on PostgreSQL: old events go to a gzip NDJSON archive with a signed checkpoint and are
deleted; the remaining chain verifies from that checkpoint; the archive verifies offline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsconductor_audit import service
from opsconductor_audit.models import AuditArchive, AuditEvent
from opsconductor_audit.service.offline import verify_file
from opsconductor_shared.db import ServiceDatabase
from subgraphs.audit.tests.test_chain_db import draft


async def test_retention_by_count_and_age(db: ServiceDatabase, tmp_path: Path) -> None:
    signer = service.Signer.load_or_create(None, tmp_path)
    old = datetime.now(UTC) - timedelta(days=100)
    await service.append([draft(i, at=old + timedelta(seconds=i)) for i in range(30)])
    await service.append([draft(100 + i) for i in range(10)])
    before = await service.head()

    by_age = await service.apply_retention(
        policy=service.Policy(max_age=timedelta(days=90)), signer=signer, files_dir=tmp_path
    )
    assert by_age.archived >= 30 and by_age.to_seq is not None
    head = await service.head()
    assert (
        head.base_seq == by_age.to_seq and head.last_seq == before.last_seq + 1
    )  # + audit.retention_archived
    assert not await AuditEvent.filter(seq__lte=by_age.to_seq).exists()
    assert await AuditEvent.filter(seq__gt=by_age.to_seq).count() == head.last_seq - by_age.to_seq
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result.ok, result.message
    assert by_age.path is not None
    report = verify_file(Path(by_age.path), public_key=signer.public_key_b64)
    assert report.ok and report.events == by_age.archived and report.checkpoint_seq == by_age.to_seq, report
    archive = await AuditArchive.get(to_seq=by_age.to_seq)
    assert archive.rows == by_age.archived and (Path(archive.path).stat().st_mode & 0o777) == 0o600  # noqa: ASYNC240

    by_count = await service.apply_retention(
        policy=service.Policy(max_events=5), signer=signer, files_dir=tmp_path
    )
    head = await service.head()
    assert by_count.archived > 0 and head.last_seq - head.base_seq == 6  # 5 kept + the new audit event
    result, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result.ok, result.message
    nothing = await service.apply_retention(
        policy=service.Policy(max_events=1000), signer=signer, files_dir=tmp_path
    )
    assert nothing.archived == 0


async def test_a_tampered_archive_fails_offline(db: ServiceDatabase, tmp_path: Path) -> None:
    import gzip

    signer = service.Signer.load_or_create(None, tmp_path)
    await service.append([draft(i) for i in range(5)])
    cut = await service.apply_retention(
        policy=service.Policy(max_events=2), signer=signer, files_dir=tmp_path
    )
    assert cut.path is not None
    with gzip.open(cut.path, "rt") as fh:
        lines = fh.read().splitlines(keepends=True)
    lines[2] = lines[2].replace('"SUCCESS"', '"FAILURE"')
    forged = tmp_path / "forged.ndjson.gz"
    with gzip.open(forged, "wt") as out:
        out.write("".join(lines))
    report = verify_file(forged)
    assert not report.ok and report.first_bad_seq is not None

"""The legacy audit.log import: original times, checksums verified, edited entries flagged,
malformed lines quarantined with their numbers, re-running imports nothing twice."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from opsconductor_audit import service
from opsconductor_audit.models import AuditEvent, LegacyQuarantine
from opsconductor_shared.db import ServiceDatabase


def _entry(i: int, **over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"audit_17000000000000{i:02d}",
        "timestamp": f"2024-03-0{1 + i % 9}T10:00:0{i % 10}.123456",
        "event_type": "login_failed" if i % 2 else "target_created",
        "user_id": 7,
        "resource_type": "target",
        "resource_id": str(100 + i),
        "action": "login" if i % 2 else "create",
        "details": {"note": f"entry {i}", "ünïcode": "é"},
        "severity": "medium" if i % 2 else "info",
        "ip_address": "10.0.0.5",
        "user_agent": "Mozilla/5.0",
    }
    entry.update(over)
    # the legacy service: json.dumps(entry, sort_keys=True) then sha256
    entry["checksum"] = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
    return entry


async def test_import_verifies_flags_and_quarantines(db: ServiceDatabase, tmp_path: Path) -> None:
    good = [_entry(i) for i in range(6)]
    edited = dict(good[3])
    edited["details"] = {"note": "changed later"}
    lines = [json.dumps(e) for e in (good[0], good[1], good[2])]
    lines.append(json.dumps(edited))
    lines.append("{not json")
    lines.append(json.dumps([1, 2, 3]))
    lines.append("")
    lines.append(json.dumps({"id": "audit_x", "event_type": "user_created"}))  # no timestamp
    lines.append(json.dumps({k: v for k, v in good[4].items() if k != "checksum"}))  # no checksum
    lines.append(json.dumps(good[5], separators=(",", ":")))
    path = tmp_path / "audit.log"
    path.write_text("\n".join(lines) + "\n")

    dry = await service.import_legacy_audit_log(path, dry_run=True)
    assert dry.imported == 0 and not await AuditEvent.filter(id__startswith="legacy:").exists()

    result = await service.import_legacy_audit_log(path, user_ids={"7": "new-user-7"})
    assert result.read == 9
    assert result.imported == 6 and result.verified == 4
    assert result.edited == [4] and result.unverifiable == [9]
    assert [n for n, _ in result.quarantined] == [5, 6, 8]
    quarantined = await LegacyQuarantine.filter(file=str(path)).order_by("line_no")
    assert [q.line_no for q in quarantined] == [5, 6, 8] and quarantined[0].line == "{not json\n"

    first = await AuditEvent.get(id=f"legacy:{good[0]['id']}")
    assert first.at.isoformat().startswith("2024-03-01T10:00:00.123456")
    assert (
        first.type == "legacy.target_created"
        and first.subject_type == "Target"
        and first.actor_id == "new-user-7"
    )
    assert first.ip == "10.0.0.5" and first.user_agent == "Mozilla/5.0"
    data = json.loads(first.data)
    assert (
        data["legacy"]["checksumVerified"]
        and not data["legacy"]["edited"]
        and data["details"]["ünïcode"] == "é"
    )
    changed = await AuditEvent.get(id=f"legacy:{good[3]['id']}")
    assert json.loads(changed.data)["legacy"]["edited"] and changed.severity == "WARNING"
    failed = await AuditEvent.get(id=f"legacy:{good[1]['id']}")
    assert failed.outcome == "FAILURE" and failed.severity == "WARNING"

    again = await service.import_legacy_audit_log(path)
    assert again.imported == 0 and again.already_present == 6
    assert await LegacyQuarantine.filter(file=str(path)).count() == 3
    signer = service.Signer.load_or_create(None, tmp_path)
    result_chain, _ = await service.verify_chain(from_seq=None, to_seq=None, signer=signer)
    assert result_chain.ok, result_chain.message

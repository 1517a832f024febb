"""Compliance reports (API.md kinds), computed from the chain, written as CSV or JSON with the
signed checkpoint they were made from (the events they read all have seq <= its seq)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsconductor_audit import events
from opsconductor_audit.models import AuditEvent, AuditExport
from opsconductor_audit.service.canonical import canonical_json, format_time
from opsconductor_audit.service.chain import checkpoint_record, take_checkpoint
from opsconductor_audit.service.exports import HashingWriter, csv_cell, csv_line, secure_dir
from opsconductor_audit.service.own import record
from opsconductor_audit.service.signing import Signer
from opsconductor_shared.errors import ValidationError

PAGE = 2000
REPORT_FORMATS = ("CSV", "JSON")

EVENT_COLUMNS = (
    "seq",
    "at",
    "type",
    "action",
    "outcome",
    "severity",
    "actorId",
    "actorName",
    "ip",
    "subjectType",
    "subjectId",
    "details",
)

KIND_TYPES: dict[str, tuple[str, ...]] = {
    "PRIVILEGE_CHANGES": (
        "users.user_roles_changed",
        "users.role_created",
        "users.role_updated",
        "users.role_deleted",
        "users.user_created",
        "users.user_deactivated",
        "auth.api_key_created",
        "auth.api_key_revoked",
    ),
    "LOGINS": (
        "auth.login_succeeded",
        "auth.login_failed",
        "auth.account_locked",
        "auth.session_revoked",
        "auth.refresh_failed",
    ),
    "CREDENTIAL_USE": (
        "targets.connection_granted",
        "targets.credential_used",
        "auth.api_key_used",
        "targets.host_key_trusted",
        "targets.host_key_rejected",
    ),
    "CONFIGURATION_CHANGES": (
        "targets.target_created",
        "targets.target_updated",
        "targets.target_deleted",
        "jobs.job_created",
        "jobs.job_updated",
        "jobs.job_deleted",
        "schedules.schedule_created",
        "schedules.schedule_updated",
        "schedules.schedule_deleted",
        "schedules.schedule_paused",
        "schedules.schedule_resumed",
        "users.role_updated",
    ),
    "DANGEROUS_COMMANDS": ("executions.dangerous_command_decision",),
}
KINDS = (*KIND_TYPES, "RUNS_BY_TARGET", "STALE_ACCESS")


async def _events(
    types: tuple[str, ...], from_: datetime, to: datetime, upto: int
) -> AsyncIterator[AuditEvent]:
    after = 0
    base = AuditEvent.filter(type__in=list(types), at__gte=from_, at__lt=to, seq__lte=upto)
    while True:
        page = list(await base.filter(seq__gt=after).order_by("seq").limit(PAGE))
        if not page:
            return
        for row in page:
            yield row
        after = int(page[-1].seq)


def _event_row(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": int(row.seq),
        "at": format_time(row.at),
        "type": row.type,
        "action": row.action,
        "outcome": row.outcome,
        "severity": row.severity,
        "actorId": row.actor_id,
        "actorName": row.actor_name,
        "ip": row.ip,
        "subjectType": row.subject_type,
        "subjectId": row.subject_id,
        "details": row.data,
    }


async def _runs_by_target(
    from_: datetime, to: datetime, upto: int
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Per target: runs started, and of those finished in range, how they ended."""
    per: dict[str, dict[str, Any]] = {}
    targets_of: dict[str, list[str]] = {}
    import json

    async for row in _events(
        ("executions.execution_started", "executions.execution_finished"), from_, to, upto
    ):
        data = json.loads(row.data or "{}")
        execution = str(data.get("executionId") or row.subject_id)
        if row.type == "executions.execution_started":
            ids = [str(t) for t in data.get("targetIds") or []]
            targets_of[execution] = ids
            for target in ids:
                entry = per.setdefault(
                    target,
                    {
                        "targetId": target,
                        "runs": 0,
                        "succeeded": 0,
                        "failed": 0,
                        "other": 0,
                        "firstRunAt": format_time(row.at),
                        "lastRunAt": None,
                    },
                )
                entry["runs"] += 1
                entry["lastRunAt"] = format_time(row.at)
        else:
            status = str(data.get("status") or "").upper()
            for target in targets_of.get(execution, []):
                entry = per.get(target)
                if entry is None:
                    continue
                key = (
                    "succeeded"
                    if status == "SUCCEEDED"
                    else "failed"
                    if status in ("FAILED", "TIMED_OUT")
                    else "other"
                )
                entry[key] += 1
    columns = ("targetId", "runs", "succeeded", "failed", "other", "firstRunAt", "lastRunAt")
    return columns, sorted(per.values(), key=lambda e: (-e["runs"], e["targetId"]))


async def _stale_access(
    from_: datetime, to: datetime, upto: int
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Users known to the trail (created, roles changed) with no successful login in the range."""
    import json

    users: dict[str, dict[str, Any]] = {}
    async for row in _events(
        ("users.user_created", "users.user_updated", "users.user_roles_changed", "users.user_deactivated"),
        datetime.min.replace(tzinfo=UTC),
        to,
        upto,
    ):
        data = json.loads(row.data or "{}")
        uid = str(row.subject_id)
        users[uid] = {
            "userId": uid,
            "username": data.get("username"),
            "roles": ",".join(data.get("roles") or []),
            "active": bool(data.get("isActive", True)) and row.type != "users.user_deactivated",
            "lastLoginAt": None,
        }
    async for row in _events(("auth.login_succeeded",), datetime.min.replace(tzinfo=UTC), to, upto):
        entry = users.get(str(row.subject_id))
        if entry is not None:
            entry["lastLoginAt"] = format_time(row.at)
    stale = [
        u
        for u in users.values()
        if u["active"] and (u["lastLoginAt"] is None or u["lastLoginAt"] < format_time(from_))
    ]
    columns = ("userId", "username", "roles", "active", "lastLoginAt")
    return columns, sorted(stale, key=lambda u: (u["lastLoginAt"] or "", u["userId"]))


Builder = Callable[[datetime, datetime, int], Any]


async def create_report(
    *, kind: str, from_: datetime, to: datetime, fmt: str, owner_id: str, signer: Signer, files_dir: Path
) -> AuditExport:
    if kind not in KINDS:
        raise ValidationError(f"unknown report kind {kind}", field="kind")
    if fmt not in REPORT_FORMATS:
        raise ValidationError("format must be CSV or JSON", field="format")
    if to <= from_:
        raise ValidationError("to must be after from", field="to")
    cp = await take_checkpoint(signer, reason="report")
    upto = int(cp.seq)
    report_id = str(uuid.uuid4())
    path = secure_dir(files_dir / "reports") / f"{report_id}.{fmt.lower()}"
    header = {
        "format": "opsconductor-audit-report",
        "version": 1,
        "reportId": report_id,
        "kind": kind,
        "from": format_time(from_),
        "to": format_time(to),
        "createdAt": format_time(datetime.now(UTC)),
        "uptoSeq": upto,
        "publicKey": signer.public_key_b64,
    }
    checkpoint = checkpoint_record(cp, signer)
    writer = HashingWriter(path)
    rows = 0
    try:
        if kind in KIND_TYPES:
            columns: tuple[str, ...] = EVENT_COLUMNS
            source: Any = (_event_row(r) async for r in _events(KIND_TYPES[kind], from_, to, upto))
        else:
            columns, listed = await (_runs_by_target if kind == "RUNS_BY_TARGET" else _stale_access)(
                from_, to, upto
            )

            async def iterate() -> AsyncIterator[dict[str, Any]]:
                for item in listed:
                    yield item

            source = iterate()
        if fmt == "JSON":
            await writer.awrite(('{"header":' + canonical_json(header) + ',"rows":[').encode())
        else:
            await writer.awrite(("# header " + canonical_json(header) + "\n").encode())
            await writer.awrite(csv_line(columns))
        chunk = bytearray()
        async for item in source:
            if fmt == "JSON":
                chunk += (("," if rows else "") + canonical_json({c: item.get(c) for c in columns})).encode()
            else:
                chunk += csv_line(csv_cell(item.get(c)) for c in columns)
            rows += 1
            if len(chunk) > 256_000:
                await writer.awrite(bytes(chunk))
                chunk = bytearray()
        await writer.awrite(bytes(chunk))
        if fmt == "JSON":
            await writer.awrite(('],"checkpoint":' + canonical_json(checkpoint) + "}\n").encode())
        else:
            await writer.awrite(("# checkpoint " + canonical_json(checkpoint) + "\n").encode())
    finally:
        writer.close()
    row = await AuditExport.create(
        id=report_id,
        kind=kind,
        format=fmt,
        owner_id=owner_id,
        path=str(path),
        rows=rows,
        sha256=writer.digest.hexdigest(),
        checkpoint=cp,
    )
    await record(
        events.REPORT_CREATED,
        actor_id=owner_id,
        subject_id=report_id,
        data={
            "kind": kind,
            "format": fmt,
            "rows": rows,
            "from": header["from"],
            "to": header["to"],
            "sha256": row.sha256,
        },
    )
    return row

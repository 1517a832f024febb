"""Audit subgraph: resolvers only (API.md "Audit, alerts, health")."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import strawberry

from opsconductor_audit import service
from opsconductor_audit.types import (
    ADMIN,
    ERRORS,
    EXPORT,
    READ,
    AuditChainVerification,
    AuditCheckpoint,
    AuditEvent,
    AuditExport,
    AuditExportFormat,
    AuditFilter,
    AuditPublicKey,
    AuditStatistics,
    ComplianceReport,
    ComplianceReportKind,
    Execution,
    Info,
    Job,
    ReportFormat,
    Schedule,
    Target,
    User,
    events_connection,
    export_of,
    report_of,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import Authenticated, requires
from opsconductor_shared.errors import ValidationError, ValidationFailed
from opsconductor_shared.paging import Connection
from opsconductor_shared.unit_of_work import maps_errors


@strawberry.type(description="What one retention pass archived (and deleted).")
class AuditRetentionResult:
    archived: int
    from_seq: int | None
    to_seq: int | None
    archive_file: str | None = strawberry.field(
        description="The archive's file name in the audit data directory."
    )


ExportAuditResult = Annotated[AuditExport | ValidationFailed, strawberry.union("ExportAuditResult")]
ComplianceReportResult = Annotated[
    ComplianceReport | ValidationFailed, strawberry.union("ComplianceReportResult")
]
ApplyRetentionResult = Annotated[
    AuditRetentionResult | ValidationFailed, strawberry.union("ApplyRetentionResult")
]


def _caller(info: Info) -> str:
    identity = info.context.identity
    assert identity is not None  # the permission class ran first
    return identity.subject


@strawberry.type
class Query:
    @strawberry.field(
        description="Audit events, newest first (Relay paging on seq).",
        permission_classes=[requires(READ)],
    )
    async def audit_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: AuditFilter | None = None,
    ) -> Connection[AuditEvent]:
        query = filter.to_query() if filter else service.AuditQuery()
        return await events_connection(query, first, after)

    @strawberry.field(description="One audit event by id.", permission_classes=[requires(READ)])
    async def audit_event(self, info: Info, id: strawberry.ID) -> AuditEvent | None:
        row = await service.get_event(str(id))
        return AuditEvent.from_row(row) if row else None

    @strawberry.field(
        description="Counts by type, outcome, severity and actor in a time range.",
        permission_classes=[requires(READ)],
    )
    async def audit_statistics(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> AuditStatistics:
        return AuditStatistics.from_dict(await service.statistics(from_=from_, to=to))

    @strawberry.field(
        description="Recompute and link the chain's hashes (and check the signed checkpoints) from "
        "fromSeq to toSeq (default: all); names the first event that does not verify.",
        permission_classes=[requires(READ)],
    )
    async def verify_audit_chain(
        self, info: Info, from_seq: int | None = None, to_seq: int | None = None
    ) -> AuditChainVerification:
        deps = info.context.deps
        result, checkpoint = await service.verify_chain(from_seq=from_seq, to_seq=to_seq, signer=deps.signer)
        if not result.ok:
            await service.record_chain_broken(
                result, actor_id=info.context.identity.subject if info.context.identity else None
            )
        return AuditChainVerification(
            ok=result.ok,
            checked=result.checked,
            first_bad_seq=result.first_bad_seq,
            message=result.message,
            checkpoint=AuditCheckpoint.from_row(checkpoint, deps.signer.public_key_b64)
            if checkpoint
            else None,
        )

    @strawberry.field(
        description="The key that signs checkpoints (anyone signed in may read it).",
        permission_classes=[Authenticated],
    )
    def audit_public_key(self, info: Info) -> AuditPublicKey:
        signer = info.context.deps.signer
        return AuditPublicKey(algorithm="Ed25519", key_id=signer.key_id, public_key=signer.public_key_b64)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Sign the chain's head now (checkpoints are also taken periodically).",
        permission_classes=[requires(ADMIN)],
    )
    async def create_audit_checkpoint(self, info: Info) -> AuditCheckpoint:
        deps = info.context.deps
        row = await service.take_checkpoint(deps.signer, reason="manual")
        return AuditCheckpoint.from_row(row, deps.signer.public_key_b64)

    @strawberry.mutation(
        description="Write the matching events (oldest first, up to a fresh signed checkpoint) to an "
        "NDJSON or CSV file; fetch `url` with the same bearer token.",
        permission_classes=[requires(EXPORT)],
    )
    @maps_errors(ERRORS)
    async def export_audit(
        self,
        info: Info,
        filter: AuditFilter | None = None,
        format: AuditExportFormat = AuditExportFormat.NDJSON,
    ) -> ExportAuditResult:
        deps = info.context.deps
        row = await service.export_events(
            query=filter.to_query() if filter else service.AuditQuery(),
            fmt=format.value,
            owner_id=_caller(info),
            signer=deps.signer,
            files_dir=deps.files_dir,
        )
        return await export_of(info, row)

    @strawberry.mutation(
        description="A compliance report over [from, to) as a CSV or JSON file, with the signed "
        "checkpoint it was made from; fetch `url` with the same bearer token.",
        permission_classes=[requires(EXPORT)],
    )
    @maps_errors(ERRORS)
    async def create_compliance_report(
        self,
        info: Info,
        kind: ComplianceReportKind,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        format: ReportFormat = ReportFormat.CSV,
    ) -> ComplianceReportResult:
        deps = info.context.deps
        row = await service.create_report(
            kind=kind.value,
            from_=from_,
            to=to,
            fmt=format.value,
            owner_id=_caller(info),
            signer=deps.signer,
            files_dir=deps.files_dir,
        )
        return await report_of(info, row)

    @strawberry.mutation(
        description="Archive (gzip NDJSON with a signed checkpoint) and delete events older than "
        "`olderThanDays` and/or beyond the newest `keepEvents`; the rest verifies from the checkpoint.",
        permission_classes=[requires(ADMIN)],
    )
    @maps_errors(ERRORS)
    async def apply_audit_retention(
        self, info: Info, older_than_days: float | None = None, keep_events: int | None = None
    ) -> ApplyRetentionResult:
        if older_than_days is None and keep_events is None:
            raise ValidationError("give olderThanDays and/or keepEvents", field="olderThanDays")
        if (older_than_days is not None and not 0 <= older_than_days <= 100_000) or (
            keep_events is not None and keep_events < 0
        ):
            raise ValidationError("olderThanDays and keepEvents must not be negative", field="olderThanDays")
        deps = info.context.deps
        policy = service.Policy(
            max_age=timedelta(days=older_than_days) if older_than_days is not None else None,
            max_events=keep_events,
        )
        result = await service.apply_retention(
            policy=policy, signer=deps.signer, files_dir=deps.files_dir, actor_id=_caller(info)
        )
        return AuditRetentionResult(
            archived=result.archived,
            from_seq=result.from_seq,
            to_seq=result.to_seq,
            archive_file=Path(result.path).name if result.path else None,
        )


schema = build_schema(query=Query, mutation=Mutation, types=[User, Target, Job, Execution, Schedule])

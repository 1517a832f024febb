"""GraphQL types of the audit subgraph, its error types and its one error table (API.md "Audit")."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from opsconductor_audit import service
from opsconductor_audit.loaders import load_event
from opsconductor_audit.models import AuditCheckpoint as CheckpointRow
from opsconductor_audit.models import AuditEvent as EventRow
from opsconductor_audit.models import AuditExport as ExportRow
from opsconductor_audit.service.canonical import checkpoint_statement, format_time
from opsconductor_audit.settings import Settings
from opsconductor_shared.app import RequestContext
from opsconductor_shared.auth import AUTHENTICATED, check_permission, entity_permission, require_identity
from opsconductor_shared.paging import Connection, build_connection
from opsconductor_shared.unit_of_work import ErrorTable

Info = strawberry.Info[RequestContext[Settings, service.Deps], None]

READ = "audit:read"
EXPORT = "audit:export"
ADMIN = "audit:admin"


@strawberry.enum(description="What came of an audited action.")
class AuditOutcome(enum.Enum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DENIED = "DENIED"


@strawberry.enum(description="How much an audited event matters.")
class AuditSeverity(enum.Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@strawberry.type(description="A signed statement that the chain's event `seq` has hash `hash` (Ed25519).")
class AuditCheckpoint:
    id: strawberry.ID
    seq: int
    hash: str
    at: datetime
    key_id: str = strawberry.field(description="First 16 hex digits of sha256 of the raw public key.")
    signature: str = strawberry.field(description="Base64 Ed25519 signature of `statement`.")
    statement: str = strawberry.field(
        description="What was signed (UTF-8): `opsconductor-audit-checkpoint:v1:<seq>:<hash>:<at>`."
    )
    public_key: str = strawberry.field(
        description="Base64 of the raw 32-byte Ed25519 public key that signed it."
    )

    @classmethod
    def from_row(cls, row: CheckpointRow, public_key: str) -> AuditCheckpoint:
        return cls(
            id=strawberry.ID(row.id),
            seq=int(row.seq),
            hash=row.hash,
            at=row.at,
            key_id=row.key_id,
            signature=row.signature,
            statement=checkpoint_statement(int(row.seq), row.hash, format_time(row.at)).decode(),
            public_key=public_key,
        )


@strawberry.federation.type(keys=["id"], description="One audited action, link `seq` of the hash chain.")
class AuditEvent:
    id: strawberry.ID
    seq: int = strawberry.field(description="Position in the chain: gapless, in commit order.")
    at: datetime = strawberry.field(description="When it happened (the publishing service's clock).")
    type: str = strawberry.field(description="`<service>.<what>`, e.g. `auth.login_failed`.")
    action: str
    outcome: AuditOutcome
    severity: AuditSeverity
    actor_name: str | None
    ip: str | None
    user_agent: str | None
    subject_type: str | None
    subject_id: strawberry.ID | None
    correlation_id: str | None
    source: str
    data: JSON | None
    prev_hash: str
    hash: str
    actor_id: strawberry.Private[str | None]

    @strawberry.field(description="Who acted (null for the system or an unknown user).")
    def actor(self) -> User | None:
        return User(id=strawberry.ID(self.actor_id)) if self.actor_id else None

    @classmethod
    def from_row(cls, row: EventRow) -> AuditEvent:
        return cls(
            id=strawberry.ID(row.id),
            seq=int(row.seq),
            at=row.at,
            type=row.type,
            action=row.action,
            outcome=AuditOutcome(row.outcome),
            severity=AuditSeverity(row.severity),
            actor_name=row.actor_name,
            ip=row.ip,
            user_agent=row.user_agent,
            subject_type=row.subject_type,
            subject_id=strawberry.ID(row.subject_id) if row.subject_id else None,
            correlation_id=row.correlation_id,
            source=row.source,
            data=json.loads(row.data) if row.data else None,
            prev_hash=row.prev_hash,
            hash=row.hash,
            actor_id=row.actor_id,
        )

    @classmethod
    @entity_permission(READ)
    async def resolve_reference(cls, info: Info, id: strawberry.ID) -> AuditEvent | None:
        row = await load_event(info.context, str(id))
        return cls.from_row(row) if row else None


@strawberry.input(description="Every field narrows the search (AND); lists match any of their values.")
class AuditFilter:
    types: list[str] | None = None
    actions: list[str] | None = None
    outcomes: list[AuditOutcome] | None = None
    severities: list[AuditSeverity] | None = None
    actor_id: strawberry.ID | None = None
    subject_type: str | None = None
    subject_id: strawberry.ID | None = None
    correlation_id: str | None = None
    from_: datetime | None = strawberry.field(
        default=None, name="from", description="At or after (inclusive)."
    )
    to: datetime | None = strawberry.field(default=None, description="Before (exclusive).")
    text: str | None = strawberry.field(
        default=None,
        description="Substring of type, action, actor name, subject id or data (case-insensitive).",
    )

    def to_query(self) -> service.AuditQuery:
        return service.AuditQuery(
            types=self.types or (),
            actions=self.actions or (),
            outcomes=[o.value for o in self.outcomes or ()],
            severities=[s.value for s in self.severities or ()],
            actor_id=str(self.actor_id) if self.actor_id else None,
            subject_type=self.subject_type,
            subject_id=str(self.subject_id) if self.subject_id else None,
            correlation_id=self.correlation_id,
            from_=self.from_,
            to=self.to,
            text=self.text,
        )


async def events_connection(
    query: service.AuditQuery, first: int | None, after: str | None
) -> Connection[AuditEvent]:
    return _page_of(await service.page(query, first=first, after=after), after)


@strawberry.type(description="How many events share one value (a type, outcome, severity or actor).")
class AuditCount:
    key: str | None
    count: int


@strawberry.type(description="Counts of the audit events in a time range.")
class AuditStatistics:
    total: int
    by_type: list[AuditCount]
    by_outcome: list[AuditCount]
    by_severity: list[AuditCount]
    by_actor: list[AuditCount] = strawberry.field(description="The 50 most active actors (null: the system).")

    @classmethod
    def from_dict(cls, stats: dict[str, Any]) -> AuditStatistics:
        def counts(pairs: list[tuple[str | None, int]]) -> list[AuditCount]:
            return [AuditCount(key=k, count=n) for k, n in pairs]

        return cls(
            total=stats["total"],
            by_type=counts(stats["by_type"]),
            by_outcome=counts(stats["by_outcome"]),
            by_severity=counts(stats["by_severity"]),
            by_actor=counts(stats["by_actor"]),
        )


@strawberry.type(description="The result of walking the chain.")
class AuditChainVerification:
    ok: bool
    checked: int = strawberry.field(description="Events whose hash was recomputed and linked.")
    first_bad_seq: int | None = strawberry.field(description="The first event that does not verify.")
    message: str
    checkpoint: AuditCheckpoint | None = strawberry.field(
        description="The latest signed checkpoint in (or before) the range."
    )


@strawberry.type(
    description="The audit service's checkpoint signing key (publish it; verify exports offline)."
)
class AuditPublicKey:
    algorithm: str
    key_id: str
    public_key: str = strawberry.field(description="Base64 of the raw 32-byte Ed25519 public key.")


@strawberry.enum(description="The file format of an export.")
class AuditExportFormat(enum.Enum):
    NDJSON = "NDJSON"
    CSV = "CSV"


@strawberry.enum(description="The file format of a compliance report.")
class ReportFormat(enum.Enum):
    CSV = "CSV"
    JSON = "JSON"


@strawberry.enum(description="What a compliance report lists.")
class ComplianceReportKind(enum.Enum):
    RUNS_BY_TARGET = "RUNS_BY_TARGET"
    PRIVILEGE_CHANGES = "PRIVILEGE_CHANGES"
    LOGINS = "LOGINS"
    CREDENTIAL_USE = "CREDENTIAL_USE"
    CONFIGURATION_CHANGES = "CONFIGURATION_CHANGES"
    DANGEROUS_COMMANDS = "DANGEROUS_COMMANDS"
    STALE_ACCESS = "STALE_ACCESS"


@strawberry.type(
    description="An export file: GET `url` with the same bearer token (audit:export). It ends with the "
    "signed checkpoint it was made from; verify it offline with `opsconductor audit verify FILE`."
)
class AuditExport:
    id: strawberry.ID
    url: str
    format: str
    rows: int
    sha256: str = strawberry.field(description="sha256 of the whole file, lowercase hex.")
    created_at: datetime
    checkpoint: AuditCheckpoint | None


@strawberry.type(description="A compliance report file (CSV or JSON) with the checkpoint it was made from.")
class ComplianceReport:
    id: strawberry.ID
    kind: ComplianceReportKind
    url: str
    format: str
    rows: int
    sha256: str
    created_at: datetime
    checkpoint: AuditCheckpoint | None


async def export_of(info: Info, row: ExportRow) -> AuditExport:
    from opsconductor_audit.routes import download_url

    cp = await service.checkpoint_of(row)
    return AuditExport(
        id=strawberry.ID(row.id),
        url=download_url(info.context.settings, row.id),
        format=row.format,
        rows=row.rows,
        sha256=row.sha256,
        created_at=row.created_at,
        checkpoint=AuditCheckpoint.from_row(cp, info.context.deps.signer.public_key_b64) if cp else None,
    )


async def report_of(info: Info, row: ExportRow) -> ComplianceReport:
    export = await export_of(info, row)
    return ComplianceReport(
        id=export.id,
        kind=ComplianceReportKind(row.kind),
        url=export.url,
        format=export.format,
        rows=export.rows,
        sha256=export.sha256,
        created_at=export.created_at,
        checkpoint=export.checkpoint,
    )


# ---- federation: auditTrail on other subgraphs' entities ----------------------------------------


def _page_of(result: service.Page, after: str | None) -> Connection[AuditEvent]:
    return build_connection(
        result.rows,
        node=AuditEvent.from_row,
        key=lambda r: str(r.seq),
        has_next=result.has_next,
        total=result.total,
        after=after,
        kind="s",
    )


async def _trail(
    info: Info, subject_type: str, subject_id: str, first: int | None, after: str | None
) -> Connection[AuditEvent]:
    check_permission(info.context, READ)
    query = service.AuditQuery(subject_type=subject_type, subject_id=subject_id)
    return _page_of(await service.page(query, first=first, after=after), after)


TRAIL = "Events about it, newest first (audit:read)."


@strawberry.federation.type(keys=["id"], description="A user (the users subgraph); adds its audit trail.")
class User:
    id: strawberry.ID

    @strawberry.field(
        description="Events this user did or that were done to them, newest first. Needs audit:read, "
        "except for one's own trail."
    )
    async def audit_trail(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        identity = require_identity(info.context)
        if identity.subject != str(self.id):
            check_permission(info.context, READ)
        return _page_of(await service.user_trail(user_id=str(self.id), first=first, after=after), after)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> User:
        return cls(id=id)


@strawberry.federation.type(keys=["id"], description="A target (the targets subgraph); adds its audit trail.")
class Target:
    id: strawberry.ID

    @strawberry.field(description=TRAIL)
    async def audit_trail(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        return await _trail(info, "Target", str(self.id), first, after)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Target:
        return cls(id=id)


@strawberry.federation.type(keys=["id"], description="A job (the jobs subgraph); adds its audit trail.")
class Job:
    id: strawberry.ID

    @strawberry.field(description=TRAIL)
    async def audit_trail(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        return await _trail(info, "Job", str(self.id), first, after)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Job:
        return cls(id=id)


@strawberry.federation.type(keys=["id"], description="A run (the executions subgraph); adds its audit trail.")
class Execution:
    id: strawberry.ID

    @strawberry.field(description=TRAIL)
    async def audit_trail(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        return await _trail(info, "Execution", str(self.id), first, after)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Execution:
        return cls(id=id)


@strawberry.federation.type(
    keys=["id"], description="A schedule (the schedules subgraph); adds its audit trail."
)
class Schedule:
    id: strawberry.ID

    @strawberry.field(description=TRAIL)
    async def audit_trail(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[AuditEvent]:
        return await _trail(info, "Schedule", str(self.id), first, after)

    @classmethod
    @entity_permission(AUTHENTICATED)
    def resolve_reference(cls, id: strawberry.ID) -> Schedule:
        return cls(id=id)


ERRORS = ErrorTable()

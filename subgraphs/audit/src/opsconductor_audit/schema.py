"""Audit subgraph: resolvers only (API.md "Audit, alerts, health")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from opsconductor_audit import service
from opsconductor_audit.types import (
    ADMIN,
    READ,
    AuditChainVerification,
    AuditCheckpoint,
    AuditEvent,
    AuditFilter,
    AuditPublicKey,
    AuditStatistics,
    Execution,
    Info,
    Job,
    Schedule,
    Target,
    User,
    events_connection,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import Authenticated, requires
from opsconductor_shared.paging import Connection


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


schema = build_schema(query=Query, mutation=Mutation, types=[User, Target, Job, Execution, Schedule])

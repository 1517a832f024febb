"""Targets subgraph: targets, target, targetsByIds, createTarget, testConnection, issueConnectionGrant."""

from __future__ import annotations

from typing import Any

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import (
    NotFound,
    NotFoundError,
    ValidationError,
    ValidationFailed,
    to_graphql_error,
)
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor
from opsconductor_targets import service
from opsconductor_targets.types import (
    ConnectionGrant,
    ConnectionGrantResult,
    ConnectionTestResult,
    CreateTargetInput,
    CreateTargetResult,
    GrantTarget,
    HostAlreadyInUse,
    MethodType,
    Target,
    TargetCreated,
    TargetFilter,
)

Info = strawberry.Info[RequestContext, None]

MAX_IDS = 1000


def _svc(info: Info) -> service.TargetService:
    return info.context.deps.targets


def _to_new_target(data: CreateTargetInput) -> service.NewTarget:
    methods = []
    for m in data.methods:
        cred = None
        if m.credential is not None:
            c = m.credential
            cred = service.NewCredential(
                type=c.type.value,
                username=c.username,
                password=c.password,
                private_key=c.private_key,
                passphrase=c.passphrase,
            )
        config: Any = m.config
        methods.append(
            service.NewMethod(
                type=m.type.value,
                host=m.host,
                port=m.port,
                is_primary=m.is_primary,
                priority=m.priority,
                config=config,
                credential=cred,
            )
        )
    return service.NewTarget(
        name=data.name,
        os_type=data.os_type,
        environment=data.environment,
        description=data.description,
        tags=data.tags,
        methods=methods,
        status=data.status.value if data.status else None,
    )


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Active targets, oldest first, with an optional filter (Relay connection).",
    )
    async def targets(
        self, info: Info, first: int | None = 50, after: str | None = None, filter: TargetFilter | None = None
    ) -> Connection[Target]:
        size = check_first(first)
        after_id = decode_cursor(after)
        f = filter or TargetFilter()
        query = service.TargetQuery(
            search=f.search,
            os_type=f.os_type,
            environment=f.environment,
            status=f.status.value if f.status else None,
            tags=f.tags,
        )
        rows, has_next, total = await _svc(info).list_targets(query, first=size, after=after_id)
        return build_connection(
            rows, has_next=has_next, total=total, after=after_id, key=lambda r: r.id, node=Target.from_row
        )

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="One active target by id; null when unknown or deleted.",
    )
    async def target(self, info: Info, id: strawberry.ID) -> Target | None:
        rows = await _svc(info).get_targets([str(id)])
        return Target.from_row(rows[0]) if rows else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="The active targets among these ids, in the order given; unknown ids are "
        "left out (compare lengths to validate a selection).",
    )
    async def targets_by_ids(self, info: Info, ids: list[strawberry.ID]) -> list[Target]:
        if len(ids) > MAX_IDS:
            raise ValidationError(f"at most {MAX_IDS} ids", field="ids")
        return [Target.from_row(r) for r in await _svc(info).get_targets([str(i) for i in ids])]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Create a target with its communication methods and credentials "
        "(stored encrypted, never returned).",
    )
    async def create_target(self, info: Info, input: CreateTargetInput) -> CreateTargetResult:
        identity = info.context.identity
        try:
            async with in_transaction():
                row = await _svc(info).create_target(
                    _to_new_target(input), actor=identity.subject if identity else None
                )
        except ValidationError as exc:
            return to_graphql_error(exc)  # type: ignore[return-value]
        except service.HostAlreadyInUse as exc:
            return HostAlreadyInUse(message=exc.message, target_id=strawberry.ID(exc.target_id))
        info.context.runtime.events_committed()
        return TargetCreated(target=Target.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Connect to the target (its primary method, or `methodId`) from the "
        "execution engine and report the outcome; updates healthStatus.",
    )
    async def test_connection(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID | None = None
    ) -> ConnectionTestResult:
        outcome = await _svc(info).test_connection(
            info.context.deps.engine, str(target_id), str(method_id) if method_id else None
        )
        info.context.runtime.events_committed()
        return ConnectionTestResult(
            ok=outcome.ok,
            latency_ms=outcome.latency_ms,
            message=outcome.message,
            method=MethodType(outcome.method_type or "ssh"),
            method_id=strawberry.ID(outcome.method_id) if outcome.method_id else None,
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:connect")],
        description="Service-only (executions): a short-lived grant with which the engine "
        "fetches these targets' credentials at connect time.",
    )
    async def issue_connection_grant(
        self, info: Info, target_ids: list[strawberry.ID]
    ) -> ConnectionGrantResult:
        try:
            issued = await _svc(info).issue_grant([str(i) for i in target_ids], "execution")
        except NotFoundError as exc:
            return NotFound(message=exc.message, id=strawberry.ID(exc.id) if exc.id else None)
        except ValidationError as exc:
            return ValidationFailed(message=exc.message, field=exc.field)
        return ConnectionGrant(
            grant=issued.grant,
            resolver_url=issued.resolver_url,
            expires_at=issued.expires_at,
            targets=[
                GrantTarget(
                    id=strawberry.ID(t.id),
                    name=t.name,
                    host=m.host,
                    port=m.port,
                    method=MethodType(m.type),
                    method_id=strawberry.ID(m.id),
                )
                for t, m in issued.targets
            ],
        )


schema = build_schema(query=Query, mutation=Mutation, types=[Target])

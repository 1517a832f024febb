"""Targets subgraph: targets, target, targetsByIds, createTarget, testConnection, issueConnectionGrant."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import strawberry
from tortoise.transactions import in_transaction

from opsconductor_shared.app import RequestContext, build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import (
    NotFound,
    NotFoundError,
    PublicGraphQLError,
    ValidationError,
    ValidationFailed,
    to_graphql_error,
)
from opsconductor_shared.logging import get_logger
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor
from opsconductor_targets import connectivity, service
from opsconductor_targets.health import CHANNEL as health_channel
from opsconductor_targets.health import HealthMonitor
from opsconductor_targets.lookups import storable_only
from opsconductor_targets.models import HealthCheck
from opsconductor_targets.models import Target as TargetRow
from opsconductor_targets.types import (
    AcceptHostKeyResult,
    AddMethodResult,
    BulkUpdateResult,
    CommunicationMethodAdded,
    CommunicationMethodInput,
    CommunicationMethodRemoved,
    ConnectionGrant,
    ConnectionGrantResult,
    ConnectionTestResult,
    CountBy,
    CreateTargetInput,
    CreateTargetResult,
    DeleteDeviceTypeResult,
    DeleteTargetResult,
    DeviceType,
    DeviceTypeCategory,
    DeviceTypeDeleted,
    DeviceTypeInput,
    DeviceTypeResult,
    DeviceTypeSaved,
    GrantTarget,
    HealthCheckEntry,
    HealthStatus,
    HostAlreadyInUse,
    HostKey,
    HostKeyAccepted,
    HostKeyRejected,
    LastCommunicationMethod,
    MethodType,
    RemoveMethodResult,
    Target,
    TargetConnectionTest,
    TargetCreated,
    TargetDeleted,
    TargetFilter,
    TargetHealthChange,
    TargetHealthChecked,
    TargetsBulkUpdated,
    TargetSort,
    TargetStatistics,
    TargetUpdated,
    UpdateCommunicationMethodInput,
    UpdateDeviceTypeInput,
    UpdateTargetInput,
    UpdateTargetResult,
)

Info = strawberry.Info[RequestContext, None]

MAX_IDS = 1000
log = get_logger("opsconductor.targets")


def _connection_tests(done: list[Any]) -> list[TargetConnectionTest]:
    """GraphQL rows for health-checked targets (bulk tests and checker rounds)."""
    return [
        TargetConnectionTest(
            target_id=strawberry.ID(d.target_id),
            result=_test_result(d.outcome),
            health_status=HealthStatus(d.health_status),
        )
        for d in done
    ]


def _svc(info: Info) -> service.TargetService:
    return info.context.deps.targets


def _health(info: Info) -> HealthMonitor:
    monitor = info.context.deps.health
    monitor.engine = info.context.deps.engine
    return monitor


def _test_result(outcome: service.ConnectionTestOutcome) -> ConnectionTestResult:
    return ConnectionTestResult(
        ok=outcome.ok,
        latency_ms=outcome.latency_ms,
        message=outcome.message,
        method=MethodType(outcome.method_type or "ssh"),
        method_id=strawberry.ID(outcome.method_id) if outcome.method_id else None,
    )


def _to_credential(c: Any) -> service.NewCredential | None:
    if c is None:
        return None
    return service.NewCredential(
        type=c.type.value,
        username=c.username,
        password=c.password,
        private_key=c.private_key,
        passphrase=c.passphrase,
    )


def _to_new_method(m: CommunicationMethodInput) -> service.NewMethod:
    config: Any = m.config
    return service.NewMethod(
        type=m.type.value,
        host=m.host,
        port=m.port,
        is_primary=m.is_primary,
        priority=m.priority,
        config=config,
        credential=_to_credential(m.credential),
    )


def _to_new_target(data: CreateTargetInput) -> service.NewTarget:
    return service.NewTarget(
        name=data.name,
        os_type=data.os_type,
        environment=data.environment,
        description=data.description,
        tags=data.tags,
        methods=[_to_new_method(m) for m in data.methods],
        status=data.status.value if data.status else None,
        location=data.location,
        data_center=data.data_center,
        region=data.region,
        serial=data.serial,
        uuid=data.uuid,
    )


def _to_patch(data: UpdateTargetInput) -> service.TargetPatch:
    return service.TargetPatch(
        name=data.name,
        os_type=data.os_type,
        environment=data.environment,
        status=data.status.value if data.status else None,
        description=data.description,
        location=data.location,
        data_center=data.data_center,
        region=data.region,
        tags=data.tags,
        add_tags=data.add_tags,
        remove_tags=data.remove_tags,
    )


def _to_query(f: TargetFilter | None, sort: TargetSort | None = None) -> service.TargetQuery:
    f = f or TargetFilter()
    return service.TargetQuery(
        search=f.search,
        os_type=f.os_type,
        environment=f.environment,
        status=f.status.value if f.status else None,
        tags=f.tags,
        health=f.health.value if f.health else None,
        method_type=f.method_type.value if f.method_type else None,
        location=f.location,
        sort_field=sort.field.value if sort else "id",
        descending=bool(sort and sort.descending),
    )


def _actor(info: Info) -> str | None:
    identity = info.context.identity
    return identity.subject if identity else None


def _error(exc: Exception) -> Any:
    """Map a domain exception to its GraphQL error type (unknown ones propagate)."""
    if isinstance(exc, service.HostAlreadyInUse):
        return HostAlreadyInUse(message=exc.message, target_id=strawberry.ID(exc.target_id))
    if isinstance(exc, service.LastMethod):
        return LastCommunicationMethod(message=exc.message)
    if isinstance(exc, service.HostKeyProblem):
        return HostKeyRejected(message=exc.message)
    if isinstance(exc, ValidationError):
        return ValidationFailed(message=exc.message, field=exc.field)
    if isinstance(exc, NotFoundError):
        return NotFound(message=exc.message, id=strawberry.ID(exc.id) if exc.id else None)
    raise exc


_EXPECTED = (
    ValidationError,
    NotFoundError,
    service.HostAlreadyInUse,
    service.LastMethod,
    service.HostKeyProblem,
)


def _counts(d: dict[str, int]) -> list[CountBy]:
    return [CountBy(key=k, count=v) for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))]


@strawberry.type
class Query:
    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Active targets, oldest first, with an optional filter (Relay connection).",
    )
    async def targets(
        self,
        info: Info,
        first: int | None = 50,
        after: str | None = None,
        filter: TargetFilter | None = None,
        sort: TargetSort | None = None,
    ) -> Connection[Target]:
        size = check_first(first)
        query = _to_query(filter, sort)
        kind = "k" if query.sort_field == "id" else "s"
        after_key = decode_cursor(after, kind)
        rows, has_next, total = await _svc(info).list_targets(query, first=size, after=after_key)
        return build_connection(
            rows,
            has_next=has_next,
            total=total,
            after=after_key,
            key=lambda r: service.TargetService.cursor_key(r, query.sort_field),
            node=Target.from_row,
            kind=kind,
        )

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="An active target by its serial (e.g. TGT-000001 or a kept legacy serial).",
    )
    async def target_by_serial(self, info: Info, serial: str) -> Target | None:
        row = await _svc(info).get_by(serial=serial)
        return Target.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="An active target by its UUID (legacy target_uuid).",
    )
    async def target_by_uuid(self, info: Info, uuid: str) -> Target | None:
        row = await _svc(info).get_by(uuid_text=uuid)
        return Target.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Counts of active targets by OS, method type, environment, health and status.",
    )
    async def target_statistics(self, info: Info, filter: TargetFilter | None = None) -> TargetStatistics:
        stats = await _svc(info).statistics(_to_query(filter))
        return TargetStatistics(
            total=stats["total"],
            deleted=stats["deleted"],
            by_os_type=_counts(stats["by_os_type"]),
            by_method_type=_counts(stats["by_method_type"]),
            by_environment=_counts(stats["by_environment"]),
            by_health=_counts(stats["by_health"]),
            by_status=_counts(stats["by_status"]),
        )

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="The device/OS type catalogue (seeded system types plus custom ones).",
    )
    async def device_types(self, info: Info, category: str | None = None) -> list[DeviceType]:
        return [DeviceType.from_row(r) for r in await _svc(info).device_types(category)]

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Device type categories, in display order.",
    )
    async def device_type_categories(self, info: Info) -> list[DeviceTypeCategory]:
        return [DeviceTypeCategory.from_row(r) for r in await _svc(info).device_type_categories()]

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

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Which of these ids are active targets, in the order given: the cheap existence "
        "check (one query, nothing else loaded) for validating a selection of many targets.",
    )
    async def active_target_ids(self, info: Info, ids: list[strawberry.ID]) -> list[strawberry.ID]:
        if len(ids) > MAX_IDS:
            raise ValidationError(f"at most {MAX_IDS} ids", field="ids")
        return [strawberry.ID(i) for i in await _svc(info).active_target_ids([str(i) for i in ids])]


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
        _svc(info).learn_host_keys_soon([row.id])
        return TargetCreated(target=Target.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a target's basic fields (name, osType, environment, status, places, tags).",
    )
    async def update_target(
        self, info: Info, id: strawberry.ID, input: UpdateTargetInput
    ) -> UpdateTargetResult:
        try:
            async with in_transaction():
                row = await _svc(info).update_target(str(id), _to_patch(input), actor=_actor(info))
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return TargetUpdated(target=Target.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Apply the same basic changes to many targets (not the name).",
    )
    async def bulk_update_targets(
        self, info: Info, target_ids: list[strawberry.ID], input: UpdateTargetInput
    ) -> BulkUpdateResult:
        try:
            async with in_transaction():
                rows, missing = await _svc(info).bulk_update(
                    [str(i) for i in target_ids], _to_patch(input), actor=_actor(info)
                )
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return TargetsBulkUpdated(
            targets=[Target.from_row(r) for r in rows], not_found=[strawberry.ID(i) for i in missing]
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Soft-delete a target: it leaves lists and frees its hosts; history stays.",
    )
    async def delete_target(self, info: Info, id: strawberry.ID) -> DeleteTargetResult:
        try:
            async with in_transaction():
                row = await _svc(info).delete_target(str(id), actor=_actor(info))
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return TargetDeleted(id=strawberry.ID(row.id))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Add a communication method (primary if asked, or if the target has none).",
    )
    async def add_communication_method(
        self, info: Info, target_id: strawberry.ID, input: CommunicationMethodInput
    ) -> AddMethodResult:
        try:
            async with in_transaction():
                row, method_id = await _svc(info).add_method(
                    str(target_id), _to_new_method(input), actor=_actor(info)
                )
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        _svc(info).learn_host_keys_soon([row.id])
        return CommunicationMethodAdded(target=Target.from_row(row), method_id=strawberry.ID(method_id))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a method; a credential without a secret keeps the stored secret.",
    )
    async def update_communication_method(
        self,
        info: Info,
        target_id: strawberry.ID,
        method_id: strawberry.ID,
        input: UpdateCommunicationMethodInput,
    ) -> UpdateTargetResult:
        config: Any = input.config
        patch = service.MethodPatch(
            host=input.host,
            port=input.port,
            config=config,
            priority=input.priority,
            is_active=input.is_active,
            credential=_to_credential(input.credential),
        )
        try:
            async with in_transaction():
                row = await _svc(info).update_method(
                    str(target_id), str(method_id), patch, actor=_actor(info)
                )
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        _svc(info).learn_host_keys_soon([row.id])
        return TargetUpdated(target=Target.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Remove a method. The last one is refused; removing the primary promotes the next by priority.",
    )
    async def remove_communication_method(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID
    ) -> RemoveMethodResult:
        try:
            async with in_transaction():
                row, promoted = await _svc(info).remove_method(
                    str(target_id), str(method_id), actor=_actor(info)
                )
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return CommunicationMethodRemoved(
            target=Target.from_row(row), promoted_method_id=strawberry.ID(promoted) if promoted else None
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Make this (active) method the target's primary one.",
    )
    async def set_primary_method(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID
    ) -> UpdateTargetResult:
        try:
            async with in_transaction():
                row = await _svc(info).set_primary(str(target_id), str(method_id), actor=_actor(info))
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return TargetUpdated(target=Target.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Trust the SSH host key the server presents now (after a change, or in strict "
        "environments before first use). Pass `fingerprint` (SHA256:...) to accept only the key you verified.",
    )
    async def accept_host_key(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID, fingerprint: str | None = None
    ) -> AcceptHostKeyResult:
        try:
            async with in_transaction():
                row, previous = await _svc(info).accept_host_key(
                    str(target_id), str(method_id), fingerprint, actor=_actor(info)
                )
        except _EXPECTED as exc:
            return _error(exc)
        info.context.runtime.events_committed()
        return HostKeyAccepted(
            target_id=target_id,
            method_id=method_id,
            host_key=HostKey.from_row(row),
            previous_fingerprint=previous,
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")], description="Add a custom device type."
    )
    async def create_device_type(self, info: Info, input: DeviceTypeInput) -> DeviceTypeResult:
        data = service.DeviceTypeData(
            value=input.value,
            label=input.label,
            category=input.category,
            description=input.description,
            communication_methods=[m.value for m in input.communication_methods or []],
        )
        try:
            async with in_transaction():
                row = await _svc(info).create_device_type(data, actor=_actor(info))
        except _EXPECTED as exc:
            return _error(exc)
        return DeviceTypeSaved(device_type=DeviceType.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a custom device type (system ones are fixed).",
    )
    async def update_device_type(
        self, info: Info, value: str, input: UpdateDeviceTypeInput
    ) -> DeviceTypeResult:
        data = service.DeviceTypeData(
            label=input.label,
            category=input.category,
            description=input.description,
            communication_methods=(
                [m.value for m in input.communication_methods]
                if input.communication_methods is not None
                else None
            ),
        )
        try:
            async with in_transaction():
                row = await _svc(info).update_device_type(value, data)
        except _EXPECTED as exc:
            return _error(exc)
        return DeviceTypeSaved(device_type=DeviceType.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Delete a custom device type no active target uses.",
    )
    async def delete_device_type(self, info: Info, value: str) -> DeleteDeviceTypeResult:
        try:
            async with in_transaction():
                await _svc(info).delete_device_type(value)
        except _EXPECTED as exc:
            return _error(exc)
        return DeviceTypeDeleted(value=value)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Connect to the target (its primary method, or `methodId`) from the "
        "execution engine and report the outcome; updates healthStatus.",
    )
    async def test_connection(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID | None = None
    ) -> ConnectionTestResult:
        found = await _svc(info).get_targets([str(target_id)])
        if not found:
            outcome = service.ConnectionTestOutcome(False, None, f"target {target_id} not found", None)
        else:
            # connectivity.py: SSH/WinRM on the engine, other types by a local probe; health.py
            # records the check (healthHistory, healthStatus, event, targetHealth).
            checked = await _health(info).check(
                found[0], "connection_test", str(method_id) if method_id else None
            )
            outcome = checked.outcome
        info.context.runtime.events_committed()
        return _test_result(outcome)

    @strawberry.federation.mutation(
        permission_classes=[requires("targets:connect")],
        description="Service-only (executions): a short-lived grant with which the engine "
        "fetches these targets' credentials at connect time. @inaccessible: not in the public API; "
        "the executions service calls this subgraph directly.",
        inaccessible=True,
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


# -- probes and health (connectivity.py, health.py) ----------------------------------------------

TestMethodConfigResult = Annotated[
    ConnectionTestResult | ValidationFailed, strawberry.union("TestMethodConfigResult")
]
CheckTargetHealthResult = Annotated[
    TargetHealthChecked | NotFound, strawberry.union("CheckTargetHealthResult")
]
MAX_BULK_TESTS = 500


@strawberry.type
class HealthQuery:
    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Recorded health and connection checks of a target, newest first (Relay).",
    )
    async def health_history(
        self, info: Info, target_id: strawberry.ID, first: int | None = 50, after: str | None = None
    ) -> Connection[HealthCheckEntry]:
        size = check_first(first)
        after_key = decode_cursor(after, "h")
        known = storable_only(TargetRow, "id", [target_id])  # no target has a longer id (FUZZ-2)
        query = HealthCheck.filter(target_id__in=known)
        total = await query.count()
        if after_key is not None:
            try:
                before = int(after_key)
            except ValueError:
                raise ValidationError("malformed cursor", field="after") from None
            if not 0 < before < 2**63:  # a BIGINT id (a larger one would fail in the driver)
                raise ValidationError("malformed cursor", field="after")
            query = query.filter(id__lt=before)
        rows = await query.order_by("-id").limit(size + 1)
        return build_connection(
            rows[:size],
            has_next=len(rows) > size,
            total=total,
            after=after_key,
            key=lambda r: str(r.id),
            node=HealthCheckEntry.from_row,
            kind="h",
        )


@strawberry.type
class HealthMutation:
    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Test an unsaved communication method (inline credential, never stored). "
        "SSH/WinRM get a port and banner check; other types a real client login.",
    )
    async def test_method_config(self, info: Info, input: CommunicationMethodInput) -> TestMethodConfigResult:
        try:
            planned = await _svc(info).plan_method(_to_new_method(input), "input", 1)
        except ValidationError as exc:
            return ValidationFailed(message=exc.message, field=exc.field)
        return _test_result(await connectivity.test_planned_method(_svc(info), planned))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Test the primary method of several targets (unknown ids are skipped); "
        "updates each target's health like testConnection.",
    )
    async def bulk_test_connections(
        self, info: Info, target_ids: list[strawberry.ID]
    ) -> list[TargetConnectionTest]:
        if len(target_ids) > MAX_BULK_TESTS:
            raise PublicGraphQLError(
                f"at most {MAX_BULK_TESTS} targets per bulk test", extensions={"field": "targetIds"}
            )
        done = await _health(info).check_ids([str(i) for i in target_ids], "bulk")
        info.context.runtime.events_committed()
        return _connection_tests(done)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Run one round of the periodic health checker now (batch health check): every "
        "active target whose next check is due (or never checked), optionally only among `targetIds`.",
    )
    async def run_due_health_checks(
        self, info: Info, target_ids: list[strawberry.ID] | None = None, limit: int = 50
    ) -> list[TargetConnectionTest]:
        if not 1 <= limit <= MAX_BULK_TESTS:
            raise PublicGraphQLError(f"limit must be 1..{MAX_BULK_TESTS}", extensions={"field": "limit"})
        among = None if target_ids is None else [str(i) for i in target_ids]
        done = await _health(info).run_due(limit, among)
        info.context.runtime.events_committed()
        return _connection_tests(done)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Check a target's health now (its primary method) and record it in healthHistory.",
    )
    async def check_target_health(self, info: Info, target_id: strawberry.ID) -> CheckTargetHealthResult:
        found = await _svc(info).get_targets([str(target_id)])
        if not found:
            return NotFound(message=f"target {target_id} not found", id=target_id)
        done = await _health(info).check(found[0], "manual")
        info.context.runtime.events_committed()
        return TargetHealthChecked(
            target_id=strawberry.ID(done.target_id),
            health_status=HealthStatus(done.health_status),
            previous=HealthStatus(done.previous),
            check=HealthCheckEntry.from_row(done.check),
        )


@strawberry.type
class Subscription:
    @strawberry.subscription(
        permission_classes=[requires("targets:read")],
        description="Live health changes of these targets (all targets when omitted).",
    )
    async def target_health(
        self, info: Info, target_ids: list[strawberry.ID] | None = None
    ) -> AsyncGenerator[TargetHealthChange, None]:
        wanted = {str(i) for i in target_ids} if target_ids else None
        async with info.context.runtime.platform.broadcaster.listen(health_channel) as live:
            async for message in live:
                change = _health_change(message)
                if change is not None and (wanted is None or str(change.target_id) in wanted):
                    yield change


def _health_change(message: str | bytes) -> TargetHealthChange | None:
    """A health-channel message as a change, or None (one log line) when it is malformed: one bad
    payload must not end every subscriber's stream with a traceback (review FUZZ findings)."""
    try:
        payload = json.loads(message)
        return TargetHealthChange.from_payload(payload)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("health_payload_skipped", error=type(exc).__name__, detail=str(exc)[:200])
        return None


@strawberry.type
class RootQuery(Query, HealthQuery):
    pass


@strawberry.type
class RootMutation(Mutation, HealthMutation):
    pass


schema = build_schema(query=RootQuery, mutation=RootMutation, subscription=Subscription, types=[Target])

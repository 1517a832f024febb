"""Targets subgraph resolvers: targets, target, targetsByIds, createTarget, testConnection,
issueConnectionGrant, health checks and the targetHealth subscription.

Every mutation is ``@transactional(ERRORS)`` (one transaction, events announced after the commit,
domain errors become the union's members) except where noted: those that learn host keys after the
commit use ``unit_of_work`` themselves, and connection tests/health checks record each check in a
unit of work of its own (service/health.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import strawberry

from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import requires
from opsconductor_shared.errors import PublicGraphQLError, ValidationError
from opsconductor_shared.logging import get_logger
from opsconductor_shared.paging import Connection, build_connection, check_first, decode_cursor
from opsconductor_shared.unit_of_work import maps_errors, transactional, unit_of_work
from opsconductor_targets import service
from opsconductor_targets.models import HealthCheck
from opsconductor_targets.models import Target as TargetRow
from opsconductor_targets.service.health import CHANNEL as HEALTH_CHANNEL
from opsconductor_targets.service.lookups import storable_only
from opsconductor_targets.types import (
    ERRORS,
    AcceptHostKeyResult,
    AddMethodResult,
    BulkUpdateResult,
    CheckTargetHealthResult,
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
    HostKey,
    HostKeyAccepted,
    Info,
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
    TestMethodConfigResult,
    UpdateCommunicationMethodInput,
    UpdateDeviceTypeInput,
    UpdateTargetInput,
    UpdateTargetResult,
    connection_test_result,
    connection_tests,
    to_query,
)

MAX_IDS = 1000
MAX_BULK_TESTS = 500
log = get_logger("opsconductor.targets")


def _actor(info: Info) -> str | None:
    identity = info.context.identity
    return identity.subject if identity else None


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
        query = to_query(filter, sort)
        kind = "k" if query.sort_field == "id" else "s"
        after_key = decode_cursor(after, kind)
        rows, has_next, total = await service.list_targets(query=query, first=size, after=after_key)
        return build_connection(
            rows,
            has_next=has_next,
            total=total,
            after=after_key,
            key=lambda r: service.cursor_key(r, query.sort_field),
            node=Target.from_record,
            kind=kind,
        )

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="An active target by its serial (e.g. TGT-000001 or a kept legacy serial).",
    )
    async def target_by_serial(self, info: Info, serial: str) -> Target | None:
        row = await service.get_by(serial=serial)
        return Target.from_record(row) if row else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="An active target by its UUID (legacy target_uuid).",
    )
    async def target_by_uuid(self, info: Info, uuid: str) -> Target | None:
        row = await service.get_by(uuid_text=uuid)
        return Target.from_record(row) if row else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Counts of active targets by OS, method type, environment, health and status.",
    )
    async def target_statistics(self, info: Info, filter: TargetFilter | None = None) -> TargetStatistics:
        stats = await service.statistics(query=to_query(filter))
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
        return [DeviceType.from_record(r) for r in await service.device_types(category=category)]

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Device type categories, in display order.",
    )
    async def device_type_categories(self, info: Info) -> list[DeviceTypeCategory]:
        return [DeviceTypeCategory.from_record(r) for r in await service.device_type_categories()]

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="One active target by id; null when unknown or deleted.",
    )
    async def target(self, info: Info, id: strawberry.ID) -> Target | None:
        rows = await service.get_targets([str(id)])
        return Target.from_record(rows[0]) if rows else None

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="The active targets among these ids, in the order given; unknown ids are "
        "left out (compare lengths to validate a selection).",
    )
    async def targets_by_ids(self, info: Info, ids: list[strawberry.ID]) -> list[Target]:
        if len(ids) > MAX_IDS:
            raise ValidationError(f"at most {MAX_IDS} ids", field="ids")
        return [Target.from_record(r) for r in await service.get_targets([str(i) for i in ids])]

    @strawberry.field(
        permission_classes=[requires("targets:read")],
        description="Which of these ids are active targets, in the order given: the cheap existence "
        "check (one query, nothing else loaded) for validating a selection of many targets.",
    )
    async def active_target_ids(self, info: Info, ids: list[strawberry.ID]) -> list[strawberry.ID]:
        if len(ids) > MAX_IDS:
            raise ValidationError(f"at most {MAX_IDS} ids", field="ids")
        return [strawberry.ID(i) for i in await service.active_target_ids([str(i) for i in ids])]


@strawberry.type
class Mutation:
    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Create a target with its communication methods and credentials "
        "(stored encrypted, never returned).",
    )
    @maps_errors(ERRORS)
    async def create_target(self, info: Info, input: CreateTargetInput) -> CreateTargetResult:
        deps = info.context.deps
        async with unit_of_work(info.context.runtime):  # committed before its host keys are learned
            row = await service.create_target(deps=deps, new=input.to_service(), actor=_actor(info))
        deps.host_keys.learn_soon([row.id])
        return TargetCreated(target=Target.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a target's basic fields (name, osType, environment, status, places, tags).",
    )
    @transactional(ERRORS)
    async def update_target(
        self, info: Info, id: strawberry.ID, input: UpdateTargetInput
    ) -> UpdateTargetResult:
        row = await service.update_target(target_id=str(id), patch=input.to_service(), actor=_actor(info))
        return TargetUpdated(target=Target.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Apply the same basic changes to many targets (not the name).",
    )
    @transactional(ERRORS)
    async def bulk_update_targets(
        self, info: Info, target_ids: list[strawberry.ID], input: UpdateTargetInput
    ) -> BulkUpdateResult:
        rows, missing = await service.bulk_update(
            target_ids=[str(i) for i in target_ids], patch=input.to_service(), actor=_actor(info)
        )
        return TargetsBulkUpdated(
            targets=[Target.from_record(r) for r in rows], not_found=[strawberry.ID(i) for i in missing]
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Soft-delete a target: it leaves lists and frees its hosts; history stays.",
    )
    @transactional(ERRORS)
    async def delete_target(self, info: Info, id: strawberry.ID) -> DeleteTargetResult:
        row = await service.delete_target(target_id=str(id), actor=_actor(info))
        return TargetDeleted(id=strawberry.ID(row.id))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Add a communication method (primary if asked, or if the target has none).",
    )
    @maps_errors(ERRORS)
    async def add_communication_method(
        self, info: Info, target_id: strawberry.ID, input: CommunicationMethodInput
    ) -> AddMethodResult:
        deps = info.context.deps
        async with unit_of_work(info.context.runtime):  # committed before its host key is learned
            row, method_id = await service.add_method(
                deps=deps, target_id=str(target_id), new=input.to_service(), actor=_actor(info)
            )
        deps.host_keys.learn_soon([row.id])
        return CommunicationMethodAdded(target=Target.from_record(row), method_id=strawberry.ID(method_id))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a method; a credential without a secret keeps the stored secret.",
    )
    @maps_errors(ERRORS)
    async def update_communication_method(
        self,
        info: Info,
        target_id: strawberry.ID,
        method_id: strawberry.ID,
        input: UpdateCommunicationMethodInput,
    ) -> UpdateTargetResult:
        deps = info.context.deps
        async with unit_of_work(info.context.runtime):  # committed before its host key is learned
            row = await service.update_method(
                deps=deps,
                target_id=str(target_id),
                method_id=str(method_id),
                patch=input.to_service(),
                actor=_actor(info),
            )
        deps.host_keys.learn_soon([row.id])
        return TargetUpdated(target=Target.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Remove a method. The last one is refused; removing the primary promotes the next by priority.",
    )
    @transactional(ERRORS)
    async def remove_communication_method(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID
    ) -> RemoveMethodResult:
        row, promoted = await service.remove_method(
            target_id=str(target_id), method_id=str(method_id), actor=_actor(info)
        )
        return CommunicationMethodRemoved(
            target=Target.from_record(row), promoted_method_id=strawberry.ID(promoted) if promoted else None
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Make this (active) method the target's primary one.",
    )
    @transactional(ERRORS)
    async def set_primary_method(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID
    ) -> UpdateTargetResult:
        row = await service.set_primary(
            target_id=str(target_id), method_id=str(method_id), actor=_actor(info)
        )
        return TargetUpdated(target=Target.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Trust the SSH host key the server presents now (after a change, or in strict "
        "environments before first use). Pass `fingerprint` (SHA256:...) to accept only the key you verified.",
    )
    @transactional(ERRORS)
    async def accept_host_key(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID, fingerprint: str | None = None
    ) -> AcceptHostKeyResult:
        row, previous = await service.accept_host_key(
            host_keys=info.context.deps.host_keys,
            target_id=str(target_id),
            method_id=str(method_id),
            fingerprint=fingerprint,
            actor=_actor(info),
        )
        return HostKeyAccepted(
            target_id=target_id,
            method_id=method_id,
            host_key=HostKey.from_record(row),
            previous_fingerprint=previous,
        )

    @strawberry.mutation(
        permission_classes=[requires("targets:write")], description="Add a custom device type."
    )
    @transactional(ERRORS)
    async def create_device_type(self, info: Info, input: DeviceTypeInput) -> DeviceTypeResult:
        row = await service.create_device_type(data=input.to_service(), actor=_actor(info))
        return DeviceTypeSaved(device_type=DeviceType.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Change a custom device type (system ones are fixed).",
    )
    @transactional(ERRORS)
    async def update_device_type(
        self, info: Info, value: str, input: UpdateDeviceTypeInput
    ) -> DeviceTypeResult:
        row = await service.update_device_type(value=value, data=input.to_service())
        return DeviceTypeSaved(device_type=DeviceType.from_record(row))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Delete a custom device type no active target uses.",
    )
    @transactional(ERRORS)
    async def delete_device_type(self, info: Info, value: str) -> DeleteDeviceTypeResult:
        await service.delete_device_type(value=value)
        return DeviceTypeDeleted(value=value)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Connect to the target (its primary method, or `methodId`) from the "
        "execution engine and report the outcome; updates healthStatus.",
    )
    @maps_errors(ERRORS)
    async def test_connection(
        self, info: Info, target_id: strawberry.ID, method_id: strawberry.ID | None = None
    ) -> ConnectionTestResult:
        outcome = await service.test_connection(
            health=info.context.deps.health,
            target_id=str(target_id),
            method_id=str(method_id) if method_id else None,
        )
        return connection_test_result(outcome)

    @strawberry.federation.mutation(
        permission_classes=[requires("targets:connect")],
        description="Service-only (executions): a short-lived grant with which the engine "
        "fetches these targets' credentials at connect time. @inaccessible: not in the public API; "
        "the executions service calls this subgraph directly.",
        inaccessible=True,
    )
    @maps_errors(ERRORS)
    async def issue_connection_grant(
        self, info: Info, target_ids: list[strawberry.ID]
    ) -> ConnectionGrantResult:
        issued = await service.issue_grant(
            grants=info.context.deps.grants,
            settings=info.context.settings,
            target_ids=[str(i) for i in target_ids],
            purpose="execution",
            actor=info.context.identity.subject if info.context.identity else None,
        )
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


# -- probes and health (service/connectivity.py, service/health.py) ----------------------------


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
            node=HealthCheckEntry.from_record,
            kind="h",
        )


@strawberry.type
class HealthMutation:
    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Test an unsaved communication method (inline credential, never stored). "
        "SSH/WinRM get a port and banner check; other types a real client login.",
    )
    @maps_errors(ERRORS)
    async def test_method_config(self, info: Info, input: CommunicationMethodInput) -> TestMethodConfigResult:
        deps = info.context.deps
        planned = await service.plan_method(
            new=input.to_service(), prefix="input", default_priority=1, settings=deps.settings
        )
        return connection_test_result(await deps.tester.test_planned_method(planned))

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Test the primary method of several targets (unknown ids are skipped); "
        "updates each target's health like testConnection.",
    )
    @maps_errors(ERRORS)
    async def bulk_test_connections(
        self, info: Info, target_ids: list[strawberry.ID]
    ) -> list[TargetConnectionTest]:
        if len(target_ids) > MAX_BULK_TESTS:
            raise PublicGraphQLError(
                f"at most {MAX_BULK_TESTS} targets per bulk test", extensions={"field": "targetIds"}
            )
        done = await info.context.deps.health.check_ids([str(i) for i in target_ids], "bulk")
        return connection_tests(done)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Run one round of the periodic health checker now (batch health check): every "
        "active target whose next check is due (or never checked), optionally only among `targetIds`.",
    )
    @maps_errors(ERRORS)
    async def run_due_health_checks(
        self, info: Info, target_ids: list[strawberry.ID] | None = None, limit: int = 50
    ) -> list[TargetConnectionTest]:
        if not 1 <= limit <= MAX_BULK_TESTS:
            raise PublicGraphQLError(f"limit must be 1..{MAX_BULK_TESTS}", extensions={"field": "limit"})
        among = None if target_ids is None else [str(i) for i in target_ids]
        done = await info.context.deps.health.run_due(limit, among)
        return connection_tests(done)

    @strawberry.mutation(
        permission_classes=[requires("targets:write")],
        description="Check a target's health now (its primary method) and record it in healthHistory.",
    )
    @maps_errors(ERRORS)
    async def check_target_health(self, info: Info, target_id: strawberry.ID) -> CheckTargetHealthResult:
        done = await service.check_target_health(health=info.context.deps.health, target_id=str(target_id))
        return TargetHealthChecked(
            target_id=strawberry.ID(done.target_id),
            health_status=HealthStatus(done.health_status),
            previous=HealthStatus(done.previous),
            check=HealthCheckEntry.from_record(done.check),
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
        async with info.context.runtime.platform.broadcaster.listen(HEALTH_CHANNEL) as live:
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

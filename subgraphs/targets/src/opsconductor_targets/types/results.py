"""GraphQL result types of targets: mutation results and their unions, the error types, read
types (device types, statistics, grants, health), and the ONE error mapping table ``ERRORS``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from opsconductor_shared.errors import Error, NotFound, ValidationFailed
from opsconductor_shared.unit_of_work import ErrorTable
from opsconductor_targets import errors, models, service
from opsconductor_targets.types.objects import HealthStatus, HostKey, MethodType, Target


@strawberry.type(description="The target was created.")
class TargetCreated:
    target: Target


@strawberry.type(description="Another active target already uses this host.")
class HostAlreadyInUse(Error):
    target_id: strawberry.ID = strawberry.field(description="The active target that has the host.")


CreateTargetResult = Annotated[
    TargetCreated | ValidationFailed | HostAlreadyInUse, strawberry.union("CreateTargetResult")
]


@strawberry.type(description="The target was updated.")
class TargetUpdated:
    target: Target


UpdateTargetResult = Annotated[
    TargetUpdated | ValidationFailed | NotFound | HostAlreadyInUse, strawberry.union("UpdateTargetResult")
]


@strawberry.type(description="The target was soft-deleted; its host is free again.")
class TargetDeleted:
    id: strawberry.ID


DeleteTargetResult = Annotated[TargetDeleted | NotFound, strawberry.union("DeleteTargetResult")]


@strawberry.type(description="The method was added.")
class CommunicationMethodAdded:
    target: Target
    method_id: strawberry.ID


AddMethodResult = Annotated[
    CommunicationMethodAdded | ValidationFailed | NotFound | HostAlreadyInUse,
    strawberry.union("AddCommunicationMethodResult"),
]


@strawberry.type(description="The method was removed.")
class CommunicationMethodRemoved:
    target: Target
    promoted_method_id: strawberry.ID | None = strawberry.field(
        description="The method that became primary, when the removed one was."
    )


@strawberry.type(description="A target keeps at least one (active) communication method.")
class LastCommunicationMethod(Error):
    pass


RemoveMethodResult = Annotated[
    CommunicationMethodRemoved | LastCommunicationMethod | NotFound,
    strawberry.union("RemoveCommunicationMethodResult"),
]


@strawberry.type(description="Targets changed by a bulk update.")
class TargetsBulkUpdated:
    targets: list[Target]
    not_found: list[strawberry.ID] = strawberry.field(description="Ids that are unknown or deleted.")


BulkUpdateResult = Annotated[
    TargetsBulkUpdated | ValidationFailed, strawberry.union("BulkUpdateTargetsResult")
]


@strawberry.type(description="The host key is trusted from now on.")
class HostKeyAccepted:
    target_id: strawberry.ID
    method_id: strawberry.ID
    host_key: HostKey
    previous_fingerprint: str | None


@strawberry.type(description="The host key could not be read, or is not the one confirmed.")
class HostKeyRejected(Error):
    pass


AcceptHostKeyResult = Annotated[
    HostKeyAccepted | HostKeyRejected | NotFound | ValidationFailed, strawberry.union("AcceptHostKeyResult")
]


@strawberry.type(description="A device type category.")
class DeviceTypeCategory:
    value: str
    label: str
    description: str | None
    icon: str | None
    color: str | None
    sort_order: int
    is_system: bool

    @classmethod
    def from_record(cls, row: models.DeviceTypeCategory) -> DeviceTypeCategory:
        return cls(
            value=row.value,
            label=row.label,
            description=row.description,
            icon=row.icon,
            color=row.color,
            sort_order=row.sort_order,
            is_system=row.is_system,
        )


@strawberry.type(description="A device/OS type targets can have (osType).")
class DeviceType:
    value: str
    label: str
    category: str
    description: str | None
    communication_methods: list[MethodType] = strawberry.field(description="Suggested method types.")
    is_system: bool = strawberry.field(description="Seeded; cannot be changed or deleted.")

    @classmethod
    def from_record(cls, row: models.DeviceType) -> DeviceType:
        return cls(
            value=row.value,
            label=row.label,
            category=row.category,
            description=row.description,
            communication_methods=[MethodType(m) for m in row.communication_methods or []],
            is_system=row.is_system,
        )


@strawberry.type(description="The device type was saved.")
class DeviceTypeSaved:
    device_type: DeviceType


@strawberry.type(description="The device type was deleted.")
class DeviceTypeDeleted:
    value: str


DeviceTypeResult = Annotated[
    DeviceTypeSaved | ValidationFailed | NotFound, strawberry.union("DeviceTypeResult")
]
DeleteDeviceTypeResult = Annotated[
    DeviceTypeDeleted | ValidationFailed | NotFound, strawberry.union("DeleteDeviceTypeResult")
]


@strawberry.type(description="One bucket of a statistic.")
class CountBy:
    key: str
    count: int


@strawberry.type(description="Counts of active targets (after the filter).")
class TargetStatistics:
    total: int
    deleted: int = strawberry.field(description="Soft-deleted targets (not filtered).")
    by_os_type: list[CountBy]
    by_method_type: list[CountBy] = strawberry.field(description="Active methods per type.")
    by_environment: list[CountBy]
    by_health: list[CountBy]
    by_status: list[CountBy]


@strawberry.type(description="Outcome of a connection test run by the execution engine.")
class ConnectionTestResult:
    ok: bool
    latency_ms: float | None = strawberry.field(description="Connect and authenticate time, when it worked.")
    message: str = strawberry.field(description="What happened, readable (e.g. 'connection refused').")
    method: MethodType = strawberry.field(
        description="The method tested (SSH when the target was not found)."
    )
    method_id: strawberry.ID | None = strawberry.field(default=None, description="The method tested, if any.")


@strawberry.type(description="A target as listed in a connection grant.")
class GrantTarget:
    id: strawberry.ID
    name: str
    host: str
    port: int
    method: MethodType
    method_id: strawberry.ID


@strawberry.type(
    description="Lets the execution engine fetch these targets' credentials at connect time: "
    "POST {grant, targetId} to resolverUrl before expiresAt."
)
class ConnectionGrant:
    grant: str = strawberry.field(description="Opaque signed token; treat as a secret.")
    resolver_url: str
    expires_at: datetime
    targets: list[GrantTarget]


ConnectionGrantResult = Annotated[
    ConnectionGrant | NotFound | ValidationFailed, strawberry.union("ConnectionGrantResult")
]


# -- connection probes and health (health.py / connectivity.py) ---------------------------------


@strawberry.type(description="The connection test of one target in a bulk test.")
class TargetConnectionTest:
    target_id: strawberry.ID
    result: ConnectionTestResult
    health_status: HealthStatus = strawberry.field(description="The target's health after this test.")


@strawberry.type(description="One recorded health or connection check of a target (healthHistory).")
class HealthCheckEntry:
    id: strawberry.ID
    target_id: strawberry.ID
    method_id: strawberry.ID | None
    method: MethodType | None
    ok: bool
    latency_ms: float | None
    message: str = strawberry.field(description="Readable outcome (refused, timeout, auth failed, ...).")
    health_status: HealthStatus = strawberry.field(description="Health after this check.")
    previous: HealthStatus = strawberry.field(description="Health before this check.")
    trigger: str = strawberry.field(description="periodic | manual | connection_test | bulk")
    checked_at: datetime

    @classmethod
    def from_record(cls, row: models.HealthCheck) -> HealthCheckEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            target_id=strawberry.ID(str(row.target_id)),  # type: ignore[attr-defined]
            method_id=strawberry.ID(row.method_id) if row.method_id else None,
            method=MethodType(row.method_type) if row.method_type else None,
            ok=row.ok,
            latency_ms=row.latency_ms,
            message=row.message,
            health_status=HealthStatus(row.health_status),
            previous=HealthStatus(row.previous_status),
            trigger=row.trigger,
            checked_at=row.checked_at,
        )


@strawberry.type(description="A change of a target's health (targetHealth subscription).")
class TargetHealthChange:
    target_id: strawberry.ID
    health_status: HealthStatus
    previous: HealthStatus
    ok: bool | None
    latency_ms: float | None
    message: str
    method_id: strawberry.ID | None
    checked_at: datetime | None

    @classmethod
    def from_payload(cls, p: dict[str, Any]) -> TargetHealthChange:
        return cls(
            target_id=strawberry.ID(p["targetId"]),
            health_status=HealthStatus(p["healthStatus"]),
            previous=HealthStatus(p["previous"]),
            ok=p.get("ok"),
            latency_ms=p.get("latencyMs"),
            message=p.get("message") or "",
            method_id=strawberry.ID(p["methodId"]) if p.get("methodId") else None,
            checked_at=datetime.fromisoformat(p["checkedAt"]) if p.get("checkedAt") else None,
        )


@strawberry.type(description="The health check of one target.")
class TargetHealthChecked:
    target_id: strawberry.ID
    health_status: HealthStatus
    previous: HealthStatus
    check: HealthCheckEntry


TestMethodConfigResult = Annotated[
    ConnectionTestResult | ValidationFailed, strawberry.union("TestMethodConfigResult")
]
CheckTargetHealthResult = Annotated[
    TargetHealthChecked | NotFound, strawberry.union("CheckTargetHealthResult")
]


def connection_test_result(outcome: service.ConnectionTestOutcome) -> ConnectionTestResult:
    """A service ``ConnectionTestOutcome`` as GraphQL."""
    return ConnectionTestResult(
        ok=outcome.ok,
        latency_ms=outcome.latency_ms,
        message=outcome.message,
        method=MethodType(outcome.method_type or "ssh"),
        method_id=strawberry.ID(outcome.method_id) if outcome.method_id else None,
    )


def connection_tests(done: list[service.HealthOutcome]) -> list[TargetConnectionTest]:
    """GraphQL rows for health-checked targets (bulk tests and checker rounds)."""
    return [
        TargetConnectionTest(
            target_id=strawberry.ID(d.target_id),
            result=connection_test_result(d.outcome),
            health_status=HealthStatus(d.health_status),
        )
        for d in done
    ]


ERRORS = ErrorTable(
    {
        errors.HostAlreadyInUse: lambda e: HostAlreadyInUse(
            message=e.message, target_id=strawberry.ID(e.target_id)
        ),
        errors.LastMethod: lambda e: LastCommunicationMethod(message=e.message),
        errors.HostKeyProblem: lambda e: HostKeyRejected(message=e.message),
    }
)
"""Domain error -> its GraphQL type (the shared errors are in every table)."""

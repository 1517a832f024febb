"""GraphQL types of the targets subgraph (separate from ORM rows). No type here has a secret field."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from opsconductor_shared.auth import entity_permission
from opsconductor_shared.errors import Error, NotFound, ValidationFailed
from opsconductor_targets import models
from opsconductor_targets.queries import active_credential, get_targets, sorted_methods


@strawberry.enum(description="How the platform talks to a target.")
class MethodType(Enum):
    SSH = "ssh"
    WINRM = "winrm"
    SNMP = "snmp"
    TELNET = "telnet"
    REST_API = "rest_api"
    SMTP = "smtp"
    MYSQL = "mysql"
    POSTGRESQL = "postgresql"
    MSSQL = "mssql"
    ORACLE = "oracle"
    SQLITE = "sqlite"
    MONGODB = "mongodb"
    REDIS = "redis"
    ELASTICSEARCH = "elasticsearch"


@strawberry.enum(description="Kind of secret a credential holds (the secret itself is never returned).")
class CredentialType(Enum):
    PASSWORD = "password"  # noqa: S105 - a type name, not a secret
    SSH_KEY = "ssh_key"
    SNMP_COMMUNITY = "snmp_community"
    API_KEY = "api_key"
    API_TOKEN = "api_token"  # noqa: S105 - a type name, not a secret


@strawberry.enum(description="Operational status set by operators.")
class TargetStatus(Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    MAINTENANCE = "maintenance"


@strawberry.enum(description="Last known reachability (updated by connection tests and health checks).")
class HealthStatus(Enum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"


@strawberry.type(description="Metadata of a method's credential; the secret never leaves the vault.")
class TargetCredential:
    id: strawberry.ID
    type: CredentialType
    username: str

    @classmethod
    def from_row(cls, row: models.Credential) -> TargetCredential:
        return cls(id=strawberry.ID(row.id), type=CredentialType(row.type), username=row.username)


@strawberry.type(description="One way to reach a target (protocol, address, non-secret settings).")
class CommunicationMethod:
    id: strawberry.ID
    type: MethodType
    host: str = strawberry.field(description="Hostname or IP address (for sqlite: the database file path).")
    port: int
    is_primary: bool = strawberry.field(description="Exactly one method per target is primary; jobs use it.")
    priority: int
    is_active: bool
    config: JSON = strawberry.field(
        description="Method-specific non-secret settings (timeouts, transport, ...)."
    )
    credential: TargetCredential | None = strawberry.field(description="Credential metadata; null when none.")

    @strawberry.field(
        description="SSH only: the trusted host key (recorded on first use or accepted); null when none yet."
    )
    async def host_key(self, info: strawberry.Info) -> HostKey | None:
        if self.type != MethodType.SSH:
            return None
        loaders: dict[str, Any] = info.context.loaders
        loader = loaders.get("targets.host_key")
        if loader is None:
            loader = loaders["targets.host_key"] = DataLoader(load_fn=_load_host_keys)
        row = await loader.load(str(self.id))
        if row is None or row.host != self.host or row.port != self.port:
            return None
        return HostKey.from_row(row)

    @classmethod
    def from_row(cls, row: models.CommunicationMethod) -> CommunicationMethod:
        cred = active_credential(row)
        return cls(
            id=strawberry.ID(row.id),
            type=MethodType(row.type),
            host=row.host,
            port=row.port,
            is_primary=row.is_primary,
            priority=row.priority,
            is_active=row.is_active,
            config=dict(row.config or {}),
            credential=TargetCredential.from_row(cred) if cred is not None else None,
        )


@strawberry.type(description="A trusted SSH host key (public: safe to show).")
class HostKey:
    fingerprint: str = strawberry.field(description="SHA256 fingerprint, as ssh-keygen -l prints it.")
    key: str = strawberry.field(description="The public key in OpenSSH format.")
    trusted_by: str = strawberry.field(description="tofu (first use) or accepted (acceptHostKey).")
    updated_at: datetime

    @classmethod
    def from_row(cls, row: models.KnownHostKey) -> HostKey:
        return cls(
            fingerprint=row.fingerprint, key=row.key, trusted_by=row.trusted_by, updated_at=row.updated_at
        )


async def _load_host_keys(ids: list[str]) -> list[models.KnownHostKey | None]:
    rows = {r.method_id: r for r in await models.KnownHostKey.filter(method_id__in=ids)}
    return [rows.get(i) for i in ids]


async def _load_targets(ids: list[str]) -> list[models.Target | None]:
    rows = {t.id: t for t in await get_targets(ids, include_inactive=True)}
    return [rows.get(i) for i in ids]


@strawberry.federation.type(keys=["id"], description="A managed machine or device.")
class Target:
    id: strawberry.ID
    serial: str = strawberry.field(
        description="Human-readable number, e.g. TGT-000001 (legacy formats kept)."
    )
    name: str = strawberry.field(description="Display name; not unique.")
    description: str | None
    os_type: str = strawberry.field(description="Device/OS type, e.g. linux, windows, cisco_switch.")
    environment: str = strawberry.field(description="production, staging, development or testing.")
    status: TargetStatus
    health_status: HealthStatus
    tags: list[str]
    uuid: strawberry.ID = strawberry.field(description="Stable UUID (legacy target_uuid kept on import).")
    location: str | None
    data_center: str | None
    region: str | None
    is_deleted: bool = strawberry.field(description="Soft-deleted (only visible through references).")
    created_at: datetime
    updated_at: datetime
    communication_methods: list[CommunicationMethod] = strawberry.field(
        description="Primary first, then by priority. Credentials appear as metadata only."
    )

    @classmethod
    def from_row(cls, row: models.Target) -> Target:
        return cls(
            id=strawberry.ID(row.id),
            serial=row.serial,
            name=row.name,
            description=row.description,
            os_type=row.os_type,
            environment=row.environment,
            status=TargetStatus(row.status),
            health_status=HealthStatus(row.health_status),
            tags=list(row.tags or []),
            uuid=strawberry.ID(str(row.uuid)),
            location=row.location,
            data_center=row.data_center,
            region=row.region,
            is_deleted=not row.is_active,
            created_at=row.created_at,
            updated_at=row.updated_at,
            communication_methods=[CommunicationMethod.from_row(m) for m in sorted_methods(row)],
        )

    @classmethod
    @entity_permission("targets:read")
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID) -> Target | None:
        loaders: dict[str, Any] = info.context.loaders
        loader = loaders.get("targets.target")
        if loader is None:
            loader = loaders["targets.target"] = DataLoader(load_fn=_load_targets)
        row = await loader.load(str(id))
        return cls.from_row(row) if row is not None else None


# ---- inputs -----------------------------------------------------------------------------------


@strawberry.input(
    description="A credential for a method. Only the fields of its type are stored (encrypted)."
)
class CredentialInput:
    type: CredentialType
    username: str
    password: str | None = strawberry.field(
        default=None, description="PASSWORD: the password. SNMP_COMMUNITY / API_KEY / API_TOKEN: the secret."
    )
    private_key: str | None = strawberry.field(
        default=None, description="SSH_KEY: the private key (PEM/OpenSSH)."
    )
    passphrase: str | None = strawberry.field(
        default=None, description="SSH_KEY: the key's passphrase, if any."
    )


@strawberry.input(description="A communication method of a new target.")
class CommunicationMethodInput:
    type: MethodType
    host: str
    port: int | None = strawberry.field(default=None, description="Default: the method's standard port.")
    is_primary: bool | None = strawberry.field(
        default=None, description="Default: the first method is primary."
    )
    priority: int | None = None
    config: JSON | None = None
    credential: CredentialInput | None = None


@strawberry.input(description="A new target with one or more communication methods.")
class CreateTargetInput:
    name: str
    os_type: str = strawberry.field(description="A device type value (see deviceTypes).")
    environment: str | None = strawberry.field(default=None, description="Default: development.")
    description: str | None = None
    tags: list[str] | None = None
    status: TargetStatus | None = strawberry.field(default=None, description="Default: ACTIVE.")
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    serial: str | None = strawberry.field(
        default=None, description="Importers: keep a legacy serial. Default: the next TGT-NNNNNN."
    )
    uuid: str | None = strawberry.field(default=None, description="Importers: keep a legacy target_uuid.")
    methods: list[CommunicationMethodInput]


@strawberry.input(description="Basic fields to change; omitted fields stay, an empty string clears a text.")
class UpdateTargetInput:
    name: str | None = None
    os_type: str | None = None
    environment: str | None = None
    status: TargetStatus | None = None
    description: str | None = None
    location: str | None = None
    data_center: str | None = None
    region: str | None = None
    tags: list[str] | None = strawberry.field(default=None, description="Replaces all tags.")
    add_tags: list[str] | None = None
    remove_tags: list[str] | None = None


@strawberry.input(
    description="Changes to a method. A credential without password/privateKey keeps the stored secret "
    "(only the username changes); legacy's '[Current Password - Hidden for Security]' means the same."
)
class UpdateCommunicationMethodInput:
    host: str | None = None
    port: int | None = None
    config: JSON | None = strawberry.field(
        default=None, description="Replaces the config (defaults re-applied)."
    )
    priority: int | None = None
    is_active: bool | None = None
    credential: CredentialInput | None = None


@strawberry.enum(description="Columns `targets` can be sorted by.")
class TargetSortField(Enum):
    CREATED_AT = "id"
    NAME = "name"
    SERIAL = "serial"
    UPDATED_AT = "updated_at"
    OS_TYPE = "os_type"
    ENVIRONMENT = "environment"
    STATUS = "status"
    HEALTH = "health_status"


@strawberry.input(description="Sort order of `targets` (ties broken by creation order).")
class TargetSort:
    field: TargetSortField = TargetSortField.CREATED_AT
    descending: bool = False


@strawberry.input(description="A custom device type.")
class DeviceTypeInput:
    value: str = strawberry.field(description="Identifier used as osType (a-z, 0-9, _ - .).")
    label: str
    category: str
    description: str | None = None
    communication_methods: list[MethodType] | None = None


@strawberry.input(description="Changes to a custom device type.")
class UpdateDeviceTypeInput:
    label: str | None = None
    category: str | None = None
    description: str | None = None
    communication_methods: list[MethodType] | None = None


@strawberry.input(description="Narrows `targets`; every given condition must hold.")
class TargetFilter:
    search: str | None = strawberry.field(
        default=None, description="Substring of name, serial, description or host."
    )
    os_type: str | None = None
    environment: str | None = None
    status: TargetStatus | None = None
    tags: list[str] | None = strawberry.field(default=None, description="Targets carrying all of these tags.")
    health: HealthStatus | None = None
    method_type: MethodType | None = strawberry.field(
        default=None, description="Targets with an active method of this type."
    )
    location: str | None = None


# ---- results ----------------------------------------------------------------------------------


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
    def from_row(cls, row: models.DeviceTypeCategory) -> DeviceTypeCategory:
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
    def from_row(cls, row: models.DeviceType) -> DeviceType:
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
    def from_row(cls, row: Any) -> HealthCheckEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            target_id=strawberry.ID(str(row.target_id)),
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

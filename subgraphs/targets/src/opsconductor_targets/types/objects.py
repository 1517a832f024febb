"""GraphQL object types of targets: enums, Target, CommunicationMethod, HostKey (no secret field)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry
from strawberry.scalars import JSON

from opsconductor_shared.auth import entity_permission
from opsconductor_targets import loaders, models
from opsconductor_targets.service.reads import active_credential, sorted_methods


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
    def from_record(cls, row: models.Credential) -> TargetCredential:
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
        row = await loaders.host_keys(info.context).load(str(self.id))
        if row is None or row.host != self.host or row.port != self.port:
            return None
        return HostKey.from_record(row)

    @classmethod
    def from_record(cls, row: models.CommunicationMethod) -> CommunicationMethod:
        cred = active_credential(row)
        return cls(
            id=strawberry.ID(row.id),
            type=MethodType(row.type),
            host=row.host,
            port=row.port,
            is_primary=row.is_primary,
            priority=row.priority,
            is_active=row.is_active,
            config=JSON(dict(row.config or {})),
            credential=TargetCredential.from_record(cred) if cred is not None else None,
        )


@strawberry.type(description="A trusted SSH host key (public: safe to show).")
class HostKey:
    fingerprint: str = strawberry.field(description="SHA256 fingerprint, as ssh-keygen -l prints it.")
    key: str = strawberry.field(description="The public key in OpenSSH format.")
    trusted_by: str = strawberry.field(description="tofu (first use) or accepted (acceptHostKey).")
    updated_at: datetime

    @classmethod
    def from_record(cls, row: models.KnownHostKey) -> HostKey:
        return cls(
            fingerprint=row.fingerprint, key=row.key, trusted_by=row.trusted_by, updated_at=row.updated_at
        )


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
    def from_record(cls, row: models.Target) -> Target:
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
            communication_methods=[CommunicationMethod.from_record(m) for m in sorted_methods(row)],
        )

    @classmethod
    @entity_permission("targets:read")
    async def resolve_reference(cls, info: strawberry.Info, id: strawberry.ID) -> Target | None:
        row = await loaders.targets(info.context).load(str(id))
        return cls.from_record(row) if row is not None else None

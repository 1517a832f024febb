"""GraphQL input types of targets, and what each becomes in the service (``to_service``)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from strawberry.scalars import JSON

from opsconductor_targets import service
from opsconductor_targets.types.objects import CredentialType, HealthStatus, MethodType, TargetStatus


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

    def to_service(self) -> service.NewCredential:
        return service.NewCredential(
            type=self.type.value,
            username=self.username,
            password=self.password,
            private_key=self.private_key,
            passphrase=self.passphrase,
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

    def to_service(self) -> service.NewMethod:
        config: Any = self.config
        return service.NewMethod(
            type=self.type.value,
            host=self.host,
            port=self.port,
            is_primary=self.is_primary,
            priority=self.priority,
            config=config,
            credential=self.credential.to_service() if self.credential else None,
        )


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

    def to_service(self) -> service.NewTarget:
        return service.NewTarget(
            name=self.name,
            os_type=self.os_type,
            environment=self.environment,
            description=self.description,
            tags=self.tags,
            methods=[m.to_service() for m in self.methods],
            status=self.status.value if self.status else None,
            location=self.location,
            data_center=self.data_center,
            region=self.region,
            serial=self.serial,
            uuid=self.uuid,
        )


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

    def to_service(self) -> service.TargetPatch:
        return service.TargetPatch(
            name=self.name,
            os_type=self.os_type,
            environment=self.environment,
            status=self.status.value if self.status else None,
            description=self.description,
            location=self.location,
            data_center=self.data_center,
            region=self.region,
            tags=self.tags,
            add_tags=self.add_tags,
            remove_tags=self.remove_tags,
        )


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

    def to_service(self) -> service.MethodPatch:
        config: Any = self.config
        return service.MethodPatch(
            host=self.host,
            port=self.port,
            config=config,
            priority=self.priority,
            is_active=self.is_active,
            credential=self.credential.to_service() if self.credential else None,
        )


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

    def to_service(self) -> service.DeviceTypeData:
        return service.DeviceTypeData(
            value=self.value,
            label=self.label,
            category=self.category,
            description=self.description,
            communication_methods=[m.value for m in self.communication_methods or []],
        )


@strawberry.input(description="Changes to a custom device type.")
class UpdateDeviceTypeInput:
    label: str | None = None
    category: str | None = None
    description: str | None = None
    communication_methods: list[MethodType] | None = None

    def to_service(self) -> service.DeviceTypeData:
        return service.DeviceTypeData(
            label=self.label,
            category=self.category,
            description=self.description,
            communication_methods=(
                [m.value for m in self.communication_methods]
                if self.communication_methods is not None
                else None
            ),
        )


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


def to_query(f: TargetFilter | None, sort: TargetSort | None = None) -> service.TargetQuery:
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

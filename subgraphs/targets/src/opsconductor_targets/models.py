"""Targets' own tables: targets, communication methods, encrypted credentials, tags, counters.

Secrets live only in ``credentials.secret_encrypted`` (AES-GCM via the key ring, associated data
= the credential id, so a ciphertext copied to another row does not decrypt).
"""

from __future__ import annotations

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class Target(models.Model):
    """A managed machine or device (legacy ``universal_targets``)."""

    id = fields.CharField(max_length=36, primary_key=True)  # UUIDv7 string: sorts by creation time
    serial = fields.CharField(max_length=32, unique=True)  # TGT-000001 (legacy formats kept on import)
    uuid = fields.UUIDField(unique=True)  # legacy target_uuid; equals id for new targets
    name = fields.CharField(max_length=100, db_index=True)  # not unique, by design
    description = fields.TextField(null=True)
    os_type = fields.CharField(max_length=50)  # a DeviceType.value
    environment = fields.CharField(max_length=20, default="development")
    location = fields.CharField(max_length=100, null=True)
    data_center = fields.CharField(max_length=100, null=True)
    region = fields.CharField(max_length=100, null=True)
    status = fields.CharField(max_length=20, default="active")  # active | inactive | maintenance
    health_status = fields.CharField(max_length=20, default="unknown")  # unknown|healthy|warning|critical
    tags = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True, db_index=True)  # soft delete
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    methods: fields.ReverseRelation[CommunicationMethod]

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "targets"


class TargetTag(models.Model):
    """One row per (target, tag), lower-cased: the filterable copy of ``Target.tags``."""

    id = fields.BigIntField(primary_key=True)
    target = fields.ForeignKeyField("targets.Target", related_name="tag_rows", on_delete=fields.CASCADE)
    tag = fields.CharField(max_length=50, db_index=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_tags"
        unique_together = (("target", "tag"),)


class CommunicationMethod(models.Model):
    """How to reach a target: protocol, host, port, non-secret settings."""

    id = fields.CharField(max_length=36, primary_key=True)
    target = fields.ForeignKeyField("targets.Target", related_name="methods", on_delete=fields.CASCADE)
    type = fields.CharField(max_length=30)  # ssh, winrm, snmp, ... (see service.METHOD_TYPES)
    host = fields.CharField(max_length=255, db_index=True)  # lower-cased hostname or normalized IP
    port = fields.IntField()
    config = fields.JSONField(default=dict)  # never secrets (validated on write)
    is_primary = fields.BooleanField(default=False)
    priority = fields.IntField(default=1)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    credentials: fields.ReverseRelation[Credential]

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_communication_methods"


class Credential(models.Model):
    """A method's login. The secret is an AES-GCM ciphertext of JSON {password, privateKey, passphrase}."""

    id = fields.CharField(max_length=36, primary_key=True)
    method = fields.ForeignKeyField(
        "targets.CommunicationMethod", related_name="credentials", on_delete=fields.CASCADE
    )
    type = fields.CharField(max_length=30)  # password | ssh_key | snmp_community | api_key | api_token
    username = fields.CharField(max_length=255)
    secret_encrypted = fields.TextField()  # v1:<kid>:<base64url(nonce||ct)>, aad = credential id
    is_primary = fields.BooleanField(default=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_credentials"


class GrantKey(models.Model):
    """HMAC keys that sign connection grants, encrypted with the key ring (shared by replicas)."""

    kid = fields.CharField(max_length=32, primary_key=True)
    key_encrypted = fields.TextField()
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_grant_keys"


class Counter(models.Model):
    """Per-table counters for human-readable serials (``TGT-000001``)."""

    name = fields.CharField(max_length=50, primary_key=True)
    value = fields.BigIntField(default=0)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_counters"


class DeviceTypeCategory(models.Model):
    """A group of device types (legacy ``device_type_categories``). System rows are seeded."""

    value = fields.CharField(max_length=50, primary_key=True)
    label = fields.CharField(max_length=100)
    description = fields.TextField(null=True)
    icon = fields.CharField(max_length=50, null=True)
    color = fields.CharField(max_length=7, null=True)  # #rrggbb
    sort_order = fields.IntField(default=100)
    is_system = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_device_type_categories"


class DeviceType(models.Model):
    """A device/OS type a target can have (legacy ``device_types``). System rows are seeded."""

    value = fields.CharField(max_length=50, primary_key=True)
    label = fields.CharField(max_length=100)
    category = fields.CharField(max_length=50, db_index=True)  # DeviceTypeCategory.value
    description = fields.TextField(null=True)
    communication_methods = fields.JSONField(default=list)  # suggested method types
    is_system = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    created_by = fields.CharField(max_length=36, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_device_types"


class KnownHostKey(models.Model):
    """The SSH host key trusted for one method of a target (trust on first use or accepted)."""

    id = fields.BigIntField(primary_key=True)
    target = fields.ForeignKeyField("targets.Target", related_name="host_keys", on_delete=fields.CASCADE)
    method_id = fields.CharField(max_length=36, db_index=True)
    host = fields.CharField(max_length=255)
    port = fields.IntField()
    key = fields.TextField()  # OpenSSH public key line (algorithm + base64)
    fingerprint = fields.CharField(max_length=100)  # SHA256:...
    trusted_by = fields.CharField(max_length=20)  # tofu | accepted
    actor = fields.CharField(max_length=100, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_known_host_keys"
        unique_together = (("method_id", "host", "port"),)


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"


class HealthCheck(models.Model):
    """One health or connection check of a target (``healthHistory``). Never holds a secret."""

    id = fields.BigIntField(primary_key=True)
    target = fields.ForeignKeyField("targets.Target", related_name="health_checks", on_delete=fields.CASCADE)
    method_id = fields.CharField(max_length=36, null=True)  # null: no method could be checked
    method_type = fields.CharField(max_length=30, null=True)
    ok = fields.BooleanField()
    latency_ms = fields.FloatField(null=True)
    message = fields.TextField()  # readable outcome (refused, timeout, auth failed, ...)
    health_status = fields.CharField(max_length=20)  # health after this check
    previous_status = fields.CharField(max_length=20)  # health before this check
    trigger = fields.CharField(max_length=20)  # periodic | manual | connection_test | bulk
    checked_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_health_checks"


class HealthState(models.Model):
    """Per-target checker state: consecutive failures and when the periodic checker is due next."""

    target_id = fields.CharField(max_length=36, primary_key=True)  # Target.id (targets are soft-deleted)
    consecutive_failures = fields.IntField(default=0)
    last_checked_at = fields.DatetimeField(null=True)
    next_check_at = fields.DatetimeField(null=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "target_health_states"

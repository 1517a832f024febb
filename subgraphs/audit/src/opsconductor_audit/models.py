"""The audit service's own tables: the chained events, the chain head, checkpoints, exports,
retention archives, legacy quarantine, outbox and processed events.

Extending (alerts, notifications, health): add your models here and generate a migration with
``python scripts/makemigrations.py audit <name>``.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class AuditEvent(models.Model):
    """One audited action, appended to the hash chain. ``seq`` is gapless and in commit order."""

    seq = fields.BigIntField(primary_key=True, generated=False)
    id = fields.CharField(max_length=64, unique=True, description="The source event's id (deduplication).")
    at = fields.DatetimeField(db_index=True, description="When it happened (the source event's time).")
    type = fields.CharField(max_length=100)
    action = fields.CharField(max_length=100)
    outcome = fields.CharField(max_length=10)
    severity = fields.CharField(max_length=10)
    actor_id = fields.CharField(max_length=64, null=True)
    actor_name = fields.CharField(max_length=255, null=True)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    subject_type = fields.CharField(max_length=50, null=True)
    subject_id = fields.CharField(max_length=64, null=True)
    correlation_id = fields.CharField(max_length=64, null=True)
    source = fields.CharField(max_length=50)
    data = fields.TextField(description="The event's data as canonical JSON text (hashed byte for byte).")
    prev_hash = fields.CharField(max_length=64)
    hash = fields.CharField(max_length=64)
    recorded_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_events"
        # keyset paging is on seq (newest first); each filter column leads an index ending in seq
        indexes = (
            ("type", "seq"),
            ("action", "seq"),
            ("actor_id", "seq"),
            ("subject_type", "subject_id", "seq"),
            ("correlation_id", "seq"),
            ("outcome", "seq"),
            ("severity", "seq"),
        )


class ChainHead(models.Model):
    """The one row every append locks (SELECT ... FOR UPDATE): one writer at a time, so the chain
    order is the commit order even with several replicas. ``base_*`` is where the stored chain
    starts (genesis, or the checkpoint of the last retention cut)."""

    id = fields.IntField(primary_key=True)
    last_seq = fields.BigIntField(default=0)
    last_hash = fields.CharField(max_length=64)
    base_seq = fields.BigIntField(default=0, description="Events up to this seq were archived and deleted.")
    base_hash = fields.CharField(max_length=64, description="The hash of event base_seq (genesis: 64 zeros).")
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_chain_head"


class AuditCheckpoint(models.Model):
    """A signed statement "the chain's event ``seq`` has hash ``hash``" (Ed25519, the service's key)."""

    id = fields.CharField(max_length=36, primary_key=True)
    seq = fields.BigIntField(db_index=True)
    hash = fields.CharField(max_length=64)
    at = fields.DatetimeField()
    key_id = fields.CharField(max_length=64, description="sha256 of the raw public key, hex, first 16.")
    signature = fields.CharField(max_length=128, description="base64 Ed25519 signature of the statement.")
    reason = fields.CharField(max_length=20, description="periodic, export, retention, report, manual.")

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_checkpoints"


class AuditExport(models.Model):
    """An export file (NDJSON or CSV) or a compliance report, written to the data directory."""

    id = fields.CharField(max_length=36, primary_key=True)
    kind = fields.CharField(max_length=40, description="EXPORT or a ComplianceReportKind.")
    format = fields.CharField(max_length=10)
    owner_id = fields.CharField(max_length=64)
    path = fields.CharField(max_length=1024)
    rows = fields.IntField(default=0)
    sha256 = fields.CharField(max_length=64)
    checkpoint: fields.ForeignKeyNullableRelation[AuditCheckpoint] = fields.ForeignKeyField(
        "audit.AuditCheckpoint", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    checkpoint_id: str | None

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_exports"


class AuditArchive(models.Model):
    """Events archived by retention (gzip NDJSON with their checkpoint), then deleted."""

    id = fields.CharField(max_length=36, primary_key=True)
    from_seq = fields.BigIntField()
    to_seq = fields.BigIntField()
    rows = fields.IntField()
    path = fields.CharField(max_length=1024)
    sha256 = fields.CharField(max_length=64)
    checkpoint_id = fields.CharField(max_length=36)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_archives"


class LegacyQuarantine(models.Model):
    """A line of a legacy ``audit.log`` that could not be imported (with its number and why)."""

    id = fields.IntField(primary_key=True)
    file = fields.CharField(max_length=1024)
    line_no = fields.IntField()
    reason = fields.CharField(max_length=255)
    line = fields.TextField(description="The line as read (truncated to 10,000 characters).")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "audit_legacy_quarantine"
        unique_together = (("file", "line_no"),)


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"


# ---- alerting (service/alerting): rules, alerts and their history, templates, notification log ----


# A model docstring becomes the table comment in the migration; tortoise's SQLite editor splits DDL on ";",
# so a comment must not contain one (`make dev` runs on SQLite).
class AlertRule(models.Model):
    """Alert rule over audit event types (API.md AlertRuleInput), with a sliding window per group key."""

    id = fields.CharField(max_length=36, primary_key=True)
    key = fields.CharField(max_length=64, null=True, unique=True, description="A seeded default's key.")
    name = fields.CharField(max_length=200)
    description: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    event_types: fields.Field[list[str]] = fields.JSONField(default=list)
    outcome = fields.CharField(max_length=16, null=True)
    threshold = fields.IntField()
    window_seconds = fields.IntField()
    severity = fields.CharField(max_length=16)
    group_by = fields.CharField(max_length=200, null=True)
    data_match: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    channels: fields.Field[list[dict[str, Any]]] = fields.JSONField(
        default=list, description="[{type, target, secret (encrypted, webhooks)}]"
    )
    email_template = fields.CharField(max_length=100, null=True)
    webhook_template = fields.CharField(max_length=100, null=True)
    enabled = fields.BooleanField(default=True)
    version = fields.IntField(default=1)
    is_deleted = fields.BooleanField(default=False, db_index=True)
    created_by = fields.CharField(max_length=64, null=True)
    last_triggered_at = fields.DatetimeField(null=True)
    trigger_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "alert_rules"


class Alert(models.Model):
    """One alert: a rule's window reached its threshold. Repeats while open add to ``count``."""

    id = fields.CharField(max_length=36, primary_key=True)
    rule_id = fields.CharField(max_length=36, null=True, db_index=True)
    rule_name = fields.CharField(max_length=200)
    group_key = fields.CharField(max_length=255, null=True)
    open_key = fields.CharField(
        max_length=300, null=True, unique=True, description="rule:group while not resolved (one open alert)."
    )
    severity = fields.CharField(max_length=16, db_index=True)
    status = fields.CharField(max_length=16, db_index=True)  # ACTIVE | ACKNOWLEDGED | RESOLVED
    title = fields.CharField(max_length=300)
    message: fields.Field[str] = fields.TextField()  # type: ignore[assignment]
    count = fields.IntField(default=0, description="Matching events over all triggers while open.")
    triggers = fields.IntField(default=1)
    first_event_at = fields.DatetimeField()
    last_event_at = fields.DatetimeField()
    event_ids: fields.Field[list[str]] = fields.JSONField(default=list)
    context: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    raised_at = fields.DatetimeField(db_index=True)
    acknowledged_at = fields.DatetimeField(null=True)
    acknowledged_by = fields.CharField(max_length=64, null=True)
    resolved_at = fields.DatetimeField(null=True)
    resolved_by = fields.CharField(max_length=64, null=True)
    resolution_note: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "alerts"


class AlertHistory(models.Model):
    """A state change of an alert, with who and when (RAISED, REPEATED, ACKNOWLEDGED, RESOLVED)."""

    id = fields.CharField(max_length=36, primary_key=True)
    alert: fields.ForeignKeyRelation[Alert] = fields.ForeignKeyField(
        "audit.Alert", related_name="history", on_delete=fields.CASCADE
    )
    action = fields.CharField(max_length=16)
    status = fields.CharField(max_length=16)
    actor_id = fields.CharField(max_length=64, null=True)
    actor_name = fields.CharField(max_length=150, null=True)
    note: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    at = fields.DatetimeField()

    alert_id: str

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "alert_history"


class NotificationTemplate(models.Model):
    """Legacy ``notification_templates``: subject and body with ``$placeholders``."""

    id = fields.CharField(max_length=36, primary_key=True)
    name = fields.CharField(max_length=100, unique=True)
    kind = fields.CharField(max_length=16)  # EMAIL | WEBHOOK
    subject = fields.CharField(max_length=200)
    body: fields.Field[str] = fields.TextField()  # type: ignore[assignment]
    description: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "notification_templates"


class NotificationLog(models.Model):
    """Every delivery attempt: channel, destination, status and error (never a secret)."""

    id = fields.CharField(max_length=36, primary_key=True)
    delivery_id = fields.CharField(max_length=36, db_index=True)
    alert_id = fields.CharField(max_length=36, null=True, db_index=True)
    channel = fields.CharField(max_length=16)  # EMAIL | WEBHOOK
    destination = fields.CharField(max_length=500)
    subject = fields.CharField(max_length=200, null=True)
    attempt = fields.IntField()
    status = fields.CharField(max_length=16)  # SENT | FAILED | RETRYING
    error: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    response = fields.CharField(max_length=300, null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "notification_log"


class EmailSettings(models.Model):
    """The system email sender (one row, id 1): an SMTP server an admin chose. The password is
    encrypted at rest (AES-GCM, bound to this row) and never returned."""

    id = fields.IntField(primary_key=True)
    host = fields.CharField(max_length=255)
    port = fields.IntField()
    security = fields.CharField(max_length=16, default="STARTTLS")  # NONE | STARTTLS | TLS
    username = fields.CharField(max_length=255, null=True)
    password_encrypted: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    from_address = fields.CharField(max_length=254)
    validate_certs = fields.BooleanField(default=True)
    updated_by = fields.CharField(max_length=64, null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "email_settings"

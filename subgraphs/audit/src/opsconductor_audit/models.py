"""The audit service's own tables: the chained events, the chain head, checkpoints, exports,
retention archives, legacy quarantine, outbox and processed events.

Extending (alerts, notifications, health): add your models here and generate a migration with
``python scripts/makemigrations.py audit <name>``.
"""

from __future__ import annotations

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

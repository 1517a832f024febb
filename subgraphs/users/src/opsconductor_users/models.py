"""The users service's own tables: users, roles, their assignment, outbox and processed events."""

from __future__ import annotations

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class User(models.Model):
    """A person who can log in. The password lives in auth, never here."""

    id = fields.CharField(max_length=36, primary_key=True)  # UUIDv7 string: sorts by creation time
    username = fields.CharField(max_length=50, unique=True)
    email = fields.CharField(max_length=254, unique=True)  # stored lower-cased
    display_name = fields.CharField(max_length=100)
    department = fields.CharField(max_length=100, null=True)
    timezone = fields.CharField(
        max_length=64, default="UTC", db_default="UTC"
    )  # IANA name, checked with zoneinfo
    is_active = fields.BooleanField(default=True)
    deleted_at = fields.DatetimeField(null=True)  # soft delete: hidden from lists and lookups
    last_login_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # Bumped in the same transaction as every change that emits a users.* snapshot event (the
    # event carries it as ``version``), so a consumer can drop a snapshot older than one applied.
    version = fields.IntField(default=0, db_default=0)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "users"


class Role(models.Model):
    """A named set of `resource:action` permissions (`*` means all)."""

    name = fields.CharField(max_length=50, primary_key=True)
    description = fields.CharField(max_length=255, default="")
    permissions = fields.JSONField(default=list)
    is_system = fields.BooleanField(default=False)  # seeded from code at start-up; not editable

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "roles"


class UserRole(models.Model):
    id = fields.BigIntField(primary_key=True)
    user = fields.ForeignKeyField("users.User", related_name="role_links", on_delete=fields.CASCADE)
    role = fields.ForeignKeyField("users.Role", related_name="user_links", on_delete=fields.RESTRICT)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "user_roles"
        unique_together = (("user", "role"),)


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"

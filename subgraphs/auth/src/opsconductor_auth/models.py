"""Auth's own tables: credentials, sessions, refresh tokens, signing keys, login attempts."""

from __future__ import annotations

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class Credential(models.Model):
    """A user's password hash plus the claims auth keeps from the users service's events."""

    user_id = fields.CharField(max_length=36, primary_key=True)
    username = fields.CharField(max_length=100, unique=True)
    password_hash = fields.CharField(max_length=255, null=True)
    roles = fields.JSONField(default=list)
    permissions = fields.JSONField(default=list)
    is_active = fields.BooleanField(default=True)
    failed_logins = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    last_login_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)
    # The users service's version of the snapshot the claims came from (users.* events' `version`):
    # an older snapshot arriving later (redelivery, a race between two changes) is ignored.
    claims_version = fields.BigIntField(null=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "credentials"


class PasswordHistory(models.Model):
    """Earlier password hashes of a user, so the policy can refuse a recent one."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=36, db_index=True)
    password_hash = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "password_history"


class ApiKey(models.Model):
    """A long-lived token for automation: a subset of its owner's permissions, an expiry, revocable."""

    id = fields.UUIDField(primary_key=True)
    user_id = fields.CharField(max_length=36, db_index=True)
    name = fields.CharField(max_length=100)
    permissions = fields.JSONField(default=list)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "api_keys"


class Session(models.Model):
    id = fields.UUIDField(primary_key=True)
    user_id = fields.CharField(max_length=36, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_activity_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=100, null=True)
    ip_address = fields.CharField(max_length=45, null=True)
    user_agent = fields.TextField(null=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "sessions"


class RefreshToken(models.Model):
    id = fields.UUIDField(primary_key=True)
    session = fields.ForeignKeyField("auth.Session", related_name="refresh_tokens")
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    used_at = fields.DatetimeField(null=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "refresh_tokens"


class SigningKey(models.Model):
    kid = fields.CharField(max_length=40, primary_key=True)
    private_key_encrypted = fields.TextField()
    public_jwk = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)
    active = fields.BooleanField(default=True)  # False: retired (out of JWKS, private key erased)
    superseded_at = fields.DatetimeField(null=True)  # null: the current key

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "signing_keys"


class LoginAttempt(models.Model):
    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=100, db_index=True)
    user_id = fields.CharField(max_length=36, null=True)
    success = fields.BooleanField()
    reason = fields.CharField(max_length=50)
    ip_address = fields.CharField(max_length=45, null=True)
    user_agent = fields.TextField(null=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "login_attempts"


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"

"""Auth service settings (env prefix ``OPSC_AUTH_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_AUTH_", extra="ignore", populate_by_name=True)

    port: int = Field(default=3000, description="HTTP port of the auth service.")
    access_token_minutes: int = Field(default=15, description="Lifetime of access tokens.")
    refresh_token_days: int = Field(default=7, description="Absolute lifetime of a refresh token chain.")
    idle_timeout_minutes: int = Field(
        default=60,
        description="A session with no activity (refresh or extendSession) for this long has ended.",
    )
    idle_warning_minutes: int = Field(
        default=2, description="sessionStatus raises its warning this long before the end."
    )
    password_min_length: int = Field(default=8, description="Password policy: minimum length.")
    password_min_classes: int = Field(
        default=2,
        description="Password policy: how many of lower case, upper case, digits and symbols it must mix.",
    )
    password_history: int = Field(
        default=5, description="Password policy: a new password may not repeat the last N."
    )
    lockout_threshold: int = Field(default=5, description="Failed logins before the account locks.")
    lockout_minutes: int = Field(default=15, description="How long a lockout lasts.")
    login_attempts_retention_days: int = Field(
        default=90, ge=1, description="Login attempts older than this are deleted (pruned periodically)."
    )
    housekeeping_seconds: float = Field(
        default=3600, gt=0, description="How often auth prunes expired records (login attempts)."
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Key ring for signing keys at rest: 'kid:base64key,...' (first is active). "
        "Unset: a generated key file under OPSC_DATA_DIR.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPSC_ADMIN_PASSWORD", "admin_password"),
        description="Bootstrap admin's password (must meet the password policy); unset: one is generated "
        "and shown once on the terminal (no terminal: written to <OPSC_DATA_DIR>/bootstrap-admin-password, 0600).",
    )
    # trusted_proxies (OPSC_AUTH_TRUSTED_PROXIES) and client_ip_secret (OPSC_CLIENT_IP_SECRET): ServiceSettings

"""Targets service settings (env prefix ``OPSC_TARGETS_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_TARGETS_", extra="ignore", populate_by_name=True)

    port: int = 3001
    encryption_keys: str | None = Field(
        None,
        description="Key ring for credentials at rest: 'kid:base64key,...' (first is active). "
        "Unset: a generated key file under OPSC_DATA_DIR (targets.keys). Losing it loses every credential.",
    )
    internal_url: str = Field(
        "http://127.0.0.1:3001",
        validation_alias=AliasChoices("OPSC_TARGETS_INTERNAL_URL", "internal_url"),
        description="Base URL the execution engine uses to reach this service's credential resolver "
        "(<internal_url>/internal/credentials). Not routed through the gateway.",
    )
    grant_ttl_seconds: int = Field(900, description="Lifetime of connection grants issued to executions.")
    test_grant_ttl_seconds: int = Field(60, description="Lifetime of the grant made for one connection test.")
    test_timeout_seconds: float = Field(
        45.0, description="Upper bound on one connection test via the engine."
    )
    max_grant_targets: int = Field(5000, description="Most targets one connection grant may list.")
    strict_host_key_environments: str = Field(
        "production",
        description="Comma-separated environments where an unknown SSH host key is refused (no trust on "
        "first use): an operator must run acceptHostKey first. Elsewhere the first key seen is recorded.",
    )
    host_key_timeout_seconds: float = Field(3.0, description="Bound on reading a server's SSH host key.")

    @property
    def strict_environments(self) -> set[str]:
        return {e.strip().lower() for e in self.strict_host_key_environments.split(",") if e.strip()}

    @property
    def resolver_url(self) -> str:
        return f"{self.internal_url.rstrip('/')}/internal/credentials"

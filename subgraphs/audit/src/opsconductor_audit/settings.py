"""Audit service settings (env prefix ``OPSC_AUDIT_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings

EVENT_SOURCES = ("auth", "users", "targets", "jobs", "executions", "schedules")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_AUDIT_", extra="ignore", populate_by_name=True)

    port: int = Field(8004, description="Port the audit subgraph listens on.")
    users_url: str = Field(
        "http://127.0.0.1:3002/graphql",
        validation_alias=AliasChoices("OPSC_USERS_URL", "users_url"),
        description="The users subgraph's GraphQL endpoint (reserved for name lookups; unused by ingest).",
    )
    sources: list[str] = Field(
        default_factory=lambda: list(EVENT_SOURCES),
        description="The services whose event streams (opsc.events.<source>) are audited.",
    )
    consumer_group: str = Field("audit", description="The Redis consumer group of every audit replica.")
    ingest_batch: int = Field(
        500, description="Events appended to the chain in one transaction at most (one lock, one commit)."
    )
    ingest_claim_idle_seconds: float = Field(
        30,
        description="Stream entries delivered to a replica that did not acknowledge them for this long "
        "(it died) are claimed by another (XAUTOCLAIM).",
    )
    signing_key: SecretStr | None = Field(
        None,
        description="The Ed25519 private key that signs checkpoints: base64 of its 32 raw bytes. Unset: "
        "generated once into <OPSC_DATA_DIR>/audit-signing.key (mode 0600).",
    )
    checkpoint_interval_seconds: float = Field(
        300, description="How often a signed checkpoint of the chain head is taken (when it moved). 0: never."
    )
    export_dir: Path | None = Field(
        None,
        description="Where exports, reports and retention archives are written. Unset: <OPSC_DATA_DIR>/audit.",
    )
    export_retention_hours: float = Field(24, description="Export and report files are deleted after this.")
    retention_days: float | None = Field(
        None, description="Events older than this are archived and deleted. Unset: kept by age."
    )
    retention_max_events: int | None = Field(
        None, description="At most this many events are kept; older ones are archived. Unset: no cap."
    )
    retention_interval_seconds: float = Field(
        3600, description="How often the retention policy runs (when one is set). 0: never."
    )

    def files_dir(self) -> Path:
        return self.export_dir if self.export_dir is not None else self.data_dir / "audit"

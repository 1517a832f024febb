"""Audit service settings (env prefix ``OPSC_AUDIT_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings

EVENT_SOURCES = ("auth", "users", "targets", "jobs", "executions", "schedules", "audit")


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
    consumer_name: str | None = Field(
        None,
        description="This replica's consumer name in the group; unset: audit-<hostname>-<port> (stable across "
        "restarts, so a restarted replica re-reads the entries it had read but not committed).",
    )
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
    public_url: str | None = Field(
        None,
        description="Base URL clients reach this service at (export download links). Unset: http://host:port.",
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
    # -- alerting and notifications (service/alerting) --
    encryption_keys: SecretStr | None = Field(
        None,
        description="Key ring for the alerting secrets at rest (webhook signing secrets, the SMTP password): "
        "'kid:base64key,...' (first is active). Unset: a generated key file under OPSC_DATA_DIR (audit.keys).",
    )
    notify_deny_networks: str = Field(
        "",
        description="Comma-separated CIDRs webhooks and the SMTP sender may not reach, on top of the always "
        "refused link-local (169.254.0.0/16, fe80::/10), cloud metadata, multicast and unspecified addresses "
        "and the platform's own endpoints. E.g. '127.0.0.0/8,10.0.0.0/8'. Empty: only those.",
    )
    notify_attempts: int = Field(5, description="Attempts per notification (the first and its retries).")
    notify_backoff_seconds: float = Field(
        1.0, description="Delay before the first retry; each further one doubles (at most 60 s)."
    )
    webhook_timeout_seconds: float = Field(10.0, description="Bound on one webhook request.")
    alert_rules_reload_seconds: float = Field(
        60, description="How often the rules are re-read (rules changed by another replica). 0: never."
    )
    # -- system health (service/health.py) --
    auth_url: str = Field(
        "http://127.0.0.1:3000/graphql",
        validation_alias=AliasChoices("OPSC_AUTH_URL", "auth_url"),
        description="The auth subgraph (its /ready is checked).",
    )
    targets_url: str = Field(
        "http://127.0.0.1:3001/graphql",
        validation_alias=AliasChoices("OPSC_TARGETS_URL", "targets_url"),
        description="The targets subgraph (its /ready is checked).",
    )
    jobs_url: str = Field(
        "http://127.0.0.1:8001/graphql",
        validation_alias=AliasChoices("OPSC_JOBS_URL", "jobs_url"),
        description="The jobs subgraph (its /ready is checked).",
    )
    executions_url: str = Field(
        "http://127.0.0.1:8002/graphql",
        validation_alias=AliasChoices("OPSC_EXECUTIONS_URL", "executions_url"),
        description="The executions subgraph (its /ready, and the engine's health at /engine).",
    )
    schedules_url: str = Field(
        "http://127.0.0.1:8003/graphql",
        validation_alias=AliasChoices("OPSC_SCHEDULES_URL", "schedules_url"),
        description="The schedules subgraph (its /ready is checked).",
    )
    router_url: str = Field(
        "http://127.0.0.1:4000/graphql",
        validation_alias=AliasChoices("OPSC_ROUTER_URL", "router_url"),
        description="The router (its /readiness is checked). Empty: not checked.",
    )
    health_interval_seconds: float = Field(
        30,
        description="How often system health is checked in the background (changes are published). 0: never.",
    )
    health_timeout_seconds: float = Field(3.0, description="Bound on one component's check.")

    def files_dir(self) -> Path:
        return self.export_dir if self.export_dir is not None else self.data_dir / "audit"

"""Settings every service shares.

Nothing is read at import time: a service builds its settings object once in its entry point
(`Settings()`) and passes it down. Each subgraph subclasses :class:`ServiceSettings` with its own
``env_prefix`` (``OPSC_TARGETS_`` ...); the platform-wide values below keep their ``OPSC_`` names
through explicit aliases so one environment configures every service the same way.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, cast

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


SERVICE_SECRET_ENV = "OPSC_SERVICE_SECRET_"  # noqa: S105 - a variable name
"""Each service's own secret: ``OPSC_SERVICE_SECRET_<NAME>`` (``OPSC_SERVICE_SECRET_USERS`` ...)."""
SERVICE_SECRET_HASH_ENV = "OPSC_SERVICE_SECRET_SHA256_"  # noqa: S105 - a variable name
"""What auth may hold instead of a service's secret: its SHA-256, hex (``OPSC_SERVICE_SECRET_SHA256_<NAME>``)."""
KNOWN_DEFAULT_SECRETS = frozenset({"dev-service-secret-change-me", "change-me", "changeme", "secret"})
"""Secrets published in code or docs: refused wherever a service secret is configured."""
MIN_SERVICE_SECRET_LENGTH = 16


class InsecureSettings(RuntimeError):
    """A setting that must not be used to start a service (missing or well-known secret ...)."""


def secret_sha256(secret: str) -> str:
    """How auth stores and compares service secrets (random, long: a plain hash is enough)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_service_secret(service: str, secret: str | None) -> str:
    """The secret, if a service may start with it; else :class:`InsecureSettings` saying why."""
    var = f"{SERVICE_SECRET_ENV}{service.upper()}"
    if not secret:
        raise InsecureSettings(f"{var} is not set: every service needs its own secret")
    if secret.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise InsecureSettings(f"{var} is a published default secret; generate a random one")
    if len(secret) < MIN_SERVICE_SECRET_LENGTH:
        raise InsecureSettings(f"{var} is shorter than {MIN_SERVICE_SECRET_LENGTH} characters")
    return secret


def _prefixed_env(prefix: str) -> dict[str, str]:
    return {k[len(prefix) :].lower(): v for k, v in os.environ.items() if k.startswith(prefix) and v}


SQLITE_PRAGMAS = "synchronous=NORMAL"
"""Extra PRAGMAs for the embedded SQLite default (tortoise adds journal_mode=WAL, foreign_keys=ON)."""


def secure_data_dir(path: Path) -> None:
    """Create the embedded data directory private to its owner (0700), or make it so."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


class ServiceSettings(BaseSettings):
    """Base settings: the service's own (prefixed) fields and the platform-wide (``OPSC_*``) ones."""

    model_config = SettingsConfigDict(env_prefix="OPSC_SERVICE_", extra="ignore", populate_by_name=True)

    # -- this service (prefixed: OPSC_<SERVICE>_...) ------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the service binds (loopback by default).")
    port: int = Field(default=0, description="Port the service listens on; each subgraph sets its default.")
    database_url: str | None = Field(
        default=None,
        description="Tortoise URL of this service's own database (postgres://... for asyncpg). "
        "Unset means the embedded default: a SQLite file under OPSC_DATA_DIR.",
    )

    trusted_proxies: str = Field(
        default="127.0.0.0/8,::1",
        description="Addresses or networks (comma-separated) whose x-opsc-client-ip header is believed for "
        "the client's address recorded with a login or an audited mutation (the router); anyone else is "
        "recorded as the socket peer.",
    )

    # -- platform-wide (OPSC_...) ---------------------------------------------------------------
    client_ip_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("OPSC_CLIENT_IP_SECRET"),
        description="Shared with the router: x-opsc-client-ip is believed only with a valid "
        "x-opsc-client-ip-signature (HMAC-SHA256 of the address). Unset: the trusted address alone.",
    )
    data_dir: Path = Field(
        default=Path(".data"),
        validation_alias=_alias("OPSC_DATA_DIR"),
        description="Where embedded SQLite files and generated keys live.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=_alias("OPSC_REDIS_URL"),
        description="Redis for events (Streams), pub/sub and revocations. Unset: in-process bus.",
    )
    jwks_url: str = Field(
        default="http://127.0.0.1:3000/.well-known/jwks.json",
        validation_alias=_alias("OPSC_JWKS_URL"),
        description="Auth's JWKS endpoint; every service verifies tokens against it (cached).",
    )
    auth_internal_url: str = Field(
        default="http://127.0.0.1:3000",
        validation_alias=_alias("OPSC_AUTH_INTERNAL_URL"),
        description="Base URL of the auth service for service-token requests.",
    )
    jwt_issuer: str = Field(default="opsconductor-auth", validation_alias=_alias("OPSC_JWT_ISSUER"))
    jwt_audience: str = Field(default="opsconductor", validation_alias=_alias("OPSC_JWT_AUDIENCE"))
    service_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Each service's own secret, by service name, from OPSC_SERVICE_SECRET_<NAME>: a "
        "service presents its own to auth (POST /internal/service-token) for a short-lived token "
        "carrying only that service's permissions; auth accepts a secret only for its own service. "
        "`opsconductor dev` generates random ones in memory for the variables not set.",
    )
    service_secret_hashes: dict[str, str] = Field(
        default_factory=dict,
        description="For auth in a distributed deployment: the SHA-256 (hex) of each service's secret, "
        "from OPSC_SERVICE_SECRET_SHA256_<NAME>, so auth need not hold the secrets themselves.",
    )
    legacy_service_secret: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("OPSC_SERVICE_SECRET"),
        description="Removed: one secret shared by every service. A service refuses to start while it is set.",
    )
    api_key_check_seconds: float = Field(
        default=5.0,
        validation_alias=_alias("OPSC_API_KEY_CHECK_SECONDS"),
        description="How long a service trusts auth's answer that an API key is still valid (not "
        "revoked or expired, owner active) before asking again.",
    )
    log_level: str = Field(default="INFO", validation_alias=_alias("OPSC_LOG_LEVEL"))
    log_json: bool = Field(default=True, validation_alias=_alias("OPSC_LOG_JSON"))
    max_request_bytes: int = Field(
        default=1_000_000,
        validation_alias=_alias("OPSC_MAX_REQUEST_BYTES"),
        description="Requests with a larger body are refused with 413 before parsing.",
    )

    subscription_revocation_check_seconds: float = Field(
        default=1.0,
        validation_alias=_alias("OPSC_SUBSCRIPTION_REVOCATION_CHECK_SECONDS"),
        description="How often a running subscription re-checks that its caller's session is not "
        "revoked (ended with an UNAUTHENTICATED error when it is). 0 turns the check off.",
    )

    max_subscriptions_per_user: int = Field(
        default=100,
        validation_alias=_alias("OPSC_MAX_SUBSCRIPTIONS_PER_USER"),
        description="Open subscriptions (WebSocket operations) one caller may hold in one service "
        "process; more are refused with a RATE_LIMITED error. 0 turns the cap off.",
    )
    subscription_queue_size: int = Field(
        default=1000,
        validation_alias=_alias("OPSC_SUBSCRIPTION_QUEUE_SIZE"),
        description="Live messages queued for one subscription; a reader that falls further behind "
        "is ended with a SLOW_READER error instead of growing memory.",
    )
    outbox_retention_hours: float = Field(
        default=168,
        validation_alias=_alias("OPSC_OUTBOX_RETENTION_HOURS"),
        description="Published outbox rows older than this are deleted (pending ones never are).",
    )
    processed_events_retention_hours: float = Field(
        default=168,
        validation_alias=_alias("OPSC_PROCESSED_EVENTS_RETENTION_HOURS"),
        description="Ids of handled events (deduplication) are kept this long.",
    )
    event_prune_interval_seconds: float = Field(
        default=3600,
        validation_alias=_alias("OPSC_EVENT_PRUNE_INTERVAL_SECONDS"),
        description="How often a service prunes its outbox and processed events. 0 turns it off.",
    )

    @model_validator(mode="before")
    @classmethod
    def _service_secrets_from_env(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        hashes = _prefixed_env(SERVICE_SECRET_HASH_ENV)
        secrets = {k: v for k, v in _prefixed_env(SERVICE_SECRET_ENV).items() if not k.startswith("sha256_")}
        data = dict[str, Any](cast(dict[str, Any], data))
        data["service_secrets"] = {**secrets, **(data.get("service_secrets") or {})}
        data["service_secret_hashes"] = {**hashes, **(data.get("service_secret_hashes") or {})}
        return data

    def own_service_secret(self, service: str) -> str:
        """This service's secret, checked (:func:`check_service_secret`); the launcher calls it
        before starting a service, so none starts without a secret of its own."""
        if self.legacy_service_secret is not None:
            raise InsecureSettings(
                "OPSC_SERVICE_SECRET (one secret for every service) is no longer accepted: "
                "set OPSC_SERVICE_SECRET_<NAME> for each service instead"
            )
        secret = self.service_secrets.get(service.lower())
        return check_service_secret(service, secret.get_secret_value() if secret else None)

    def sqlite_path(self, service: str) -> Path:
        return self.data_dir / f"{service}.sqlite3"

    def resolved_database_url(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        secure_data_dir(self.data_dir)
        # tortoise opens SQLite in WAL mode; with synchronous=NORMAL a commit appends to the WAL
        # without an fsync each time (fsyncs at checkpoints). A crashed or restarted service loses
        # nothing and the file never corrupts; only a power cut can drop the last commits. The
        # production setting is PostgreSQL.
        return f"sqlite://{self.sqlite_path(service).resolve()}?{SQLITE_PRAGMAS}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

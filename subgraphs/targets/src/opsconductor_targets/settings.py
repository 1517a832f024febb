"""Targets service settings (env prefix ``OPSC_TARGETS_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_TARGETS_", extra="ignore", populate_by_name=True)

    port: int = Field(default=3001, description="Port the targets service listens on.")
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Key ring for credentials at rest: 'kid:base64key,...' (first is active). "
        "Unset: a generated key file under OPSC_DATA_DIR (targets.keys). Losing it loses every credential.",
    )
    internal_url: str = Field(
        default="http://127.0.0.1:3001",
        validation_alias=AliasChoices("OPSC_TARGETS_INTERNAL_URL", "internal_url"),
        description="Base URL the execution engine uses to reach this service's credential resolver "
        "(<internal_url>/internal/credentials). Not routed through the gateway.",
    )
    grant_ttl_seconds: int = Field(
        default=900, description="Lifetime of connection grants issued to executions."
    )
    test_grant_ttl_seconds: int = Field(
        default=60, description="Lifetime of the grant made for one connection test."
    )
    test_timeout_seconds: float = Field(
        default=45.0, description="Upper bound on one connection test via the engine."
    )
    max_grant_targets: int = Field(default=5000, description="Most targets one connection grant may list.")
    strict_host_key_environments: str = Field(
        default="production",
        description="Comma-separated environments where an unknown SSH host key is refused (no trust on "
        "first use): an operator must run acceptHostKey first. Elsewhere the first key seen is recorded.",
    )
    host_key_timeout_seconds: float = Field(
        default=3.0, description="Bound on reading a server's SSH host key."
    )
    learn_host_keys_on_create: bool = Field(
        default=True,
        description="Trust on first use ahead of the first run: read and record the host key of a new or "
        "re-pointed SSH method in the background (not in strict environments), so a first run does not "
        "pay an extra handshake per target and the fingerprint shows at once.",
    )
    # -- private keys (keyparse.py) --
    ssh_key_max_kdf_rounds: int = Field(
        default=1024,
        description="Most bcrypt KDF rounds an encrypted OpenSSH private key may ask for (ssh-keygen -a; "
        "OpenSSH's default is 16). Read from the key's header and refused before any KDF work: the "
        "rounds are the key author's choice and cost ~10 ms of CPU each.",
    )
    ssh_key_max_pbkdf2_iterations: int = Field(
        default=1_000_000,
        description="Most PBKDF2 iterations an encrypted PKCS#8 private key may ask for (refused before "
        "any KDF work, like ssh_key_max_kdf_rounds).",
    )
    ssh_key_check_timeout_seconds: float = Field(
        default=20.0,
        description="Bound on importing (checking) one private key; it runs in a small thread pool, "
        "never on the event loop.",
    )
    # -- network policy for probes, connection tests and credential release (netpolicy.py) --
    allow_networks: str = Field(
        default="",
        validation_alias=AliasChoices(
            "OPSC_TARGETS_ALLOW_NETWORKS", "OPSC_TARGETS_PROBE_ALLOW_NETWORKS", "allow_networks"
        ),
        description="Comma-separated CIDRs (or single addresses) that probes, connection tests and runs "
        "may reach although they are denied by default: loopback, link-local (169.254.0.0/16, "
        "fe80::/10), cloud metadata, unspecified/multicast addresses, and the platform's own endpoints "
        "(service ports, database, Redis, Ray). Empty (default): all of those are denied. The platform's "
        "own endpoints stay denied inside an allowed network (see allow_platform_endpoints).",
    )
    allow_platform_endpoints: str = Field(
        default="",
        description="Comma-separated 'host:port' platform endpoints that may be probed all the same "
        "(e.g. the local PostgreSQL in a lab that monitors it as a target). Empty (default): none.",
    )
    platform_endpoints: str = Field(
        default="",
        description="Extra 'host:port' endpoints of the platform itself (comma-separated) that targets "
        "may never be, on top of those this service knows (its database, Redis, JWKS/auth, the "
        "OPSC_<SERVICE>_URL / OPSC_RAY_ADDRESS wiring).",
    )
    sqlite_probe_directory: str = Field(
        default="",
        description="The sqlite method's file check may only look at files under this directory (on the "
        "targets service's host). Empty (default): sqlite checks are refused.",
    )
    # -- probes and health monitoring (health.py) --
    probe_default_timeout_seconds: float = Field(
        default=10.0,
        description="Probe timeout when a method's config has no 'timeout' (capped by test_timeout_seconds).",
    )
    health_check_enabled: bool = Field(
        default=False,
        description="Run the periodic health checker in this replica (off by default, and in tests).",
    )
    health_tick_seconds: float = Field(
        default=15.0, description="How often the checker looks for due targets."
    )
    health_batch_size: int = Field(default=50, description="Most targets one checker tick tests.")
    health_concurrency: int = Field(
        default=10, description="Most health checks running at once (checker and bulk)."
    )
    health_healthy_ms: float = Field(
        default=5000.0, description="A successful check this fast or faster is healthy."
    )
    health_warning_ms: float = Field(
        default=10000.0, description="Slower than healthy, up to this: warning; slower: critical."
    )
    health_failures_for_critical: int = Field(
        default=1, description="Consecutive failures that make a target critical (fewer: warning). Legacy: 1."
    )
    health_history_retention_days: float = Field(
        default=30.0,
        description="Health-check rows (healthHistory) older than this are deleted. 0: keep by age.",
    )
    health_history_max_per_target: int = Field(
        default=1000, description="Most health-check rows kept per target (the newest). 0: no per-target cap."
    )
    health_prune_interval_seconds: float = Field(
        default=600.0, description="How often the periodic checker prunes the health history."
    )
    health_intervals: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "production": {"healthy": 300, "warning": 120, "critical": 60, "unknown": 60},
            "staging": {"healthy": 600, "warning": 300, "critical": 120, "unknown": 120},
            "testing": {"healthy": 900, "warning": 600, "critical": 300, "unknown": 300},
            "development": {"healthy": 1800, "warning": 900, "critical": 600, "unknown": 600},
            "default": {"healthy": 900, "warning": 600, "critical": 300, "unknown": 300},
        },
        description="Seconds between periodic checks per environment x current health (JSON; "
        "'default' covers other environments).",
    )

    @property
    def strict_environments(self) -> set[str]:
        return {e.strip().lower() for e in self.strict_host_key_environments.split(",") if e.strip()}

    @property
    def resolver_url(self) -> str:
        return f"{self.internal_url.rstrip('/')}/internal/credentials"

"""The engine's settings, from the environment through pydantic-settings.

Nothing here is read at import time: an entry point builds `EngineSettings()` once (the
launcher, a test, bench) and hands it to `EngineClient(settings=...)`; a coordinator actor
builds `EventRetentionSettings()` once when it starts (its limits apply in its own process).
The variable names are the ones documented in README (`OPSC_RAY_ADDRESS`, ...).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsconductor_ray.config import DEFAULT_NUM_SHARDS
from opsconductor_ray.retention import RetentionLimits

DEFAULT_CALL_TIMEOUT_S = 30.0
SLOW_CALL_TIMEOUT_S = 120.0
_LIMITS = RetentionLimits()


class EngineSettings(BaseSettings):
    """How a process reaches the engine (`OPSC_RAY_*`)."""

    model_config = SettingsConfigDict(env_prefix="OPSC_RAY_", env_ignore_empty=True, extra="ignore")

    address: str | None = Field(
        default=None,
        description="Ray cluster address (`127.0.0.1:6390`, `ray://head:10001`); unset: a local Ray of "
        "this process's own, never a stray cluster.",
    )
    pool_shards: int = Field(
        default=DEFAULT_NUM_SHARDS,
        description="Pool actors targets are spread over; every client of a cluster must use the same value.",
    )
    pool_resource: str | None = Field(
        default=None,
        description="A custom Ray resource pools need one unit of (pins them to chosen workers, deploy/).",
    )
    coordinator_resource: str | None = Field(
        default=None, description="The same for coordinators (`opsc_coordinator`, deploy/)."
    )
    call_timeout_seconds: float = Field(
        default=DEFAULT_CALL_TIMEOUT_S,
        gt=0,
        description="Bound of one Ray call; past it the call raises EngineTimeout (what it did is unknown).",
    )
    slow_call_timeout_seconds: float = Field(
        default=SLOW_CALL_TIMEOUT_S,
        gt=0,
        description="Bound of calls that create actors or test a connection.",
    )

    @field_validator("pool_shards", mode="before")
    @classmethod
    def _whole_positive(cls, value: object) -> object:
        """The error names the variable, as an operator set it."""
        if isinstance(value, str):
            raw = value.strip()
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"OPSC_RAY_POOL_SHARDS must be a whole number, not {raw!r}") from None
        if isinstance(value, int) and value < 1:
            raise ValueError(f"OPSC_RAY_POOL_SHARDS must be at least 1, not {value}")
        return value


class EventRetentionSettings(BaseSettings):
    """How many events (and bytes of them) a coordinator keeps (`OPSC_RAY_EVENTS_*`, read in the
    coordinators' environment)."""

    model_config = SettingsConfigDict(env_prefix="OPSC_RAY_EVENTS_", env_ignore_empty=True, extra="ignore")

    max_run_bytes: int = Field(default=_LIMITS.run_bytes, ge=1, description="Bytes of events kept per run.")
    max_run_events: int = Field(default=_LIMITS.run_events, ge=1, description="Events kept per run.")
    max_total_bytes: int = Field(
        default=_LIMITS.total_bytes, ge=1, description="Bytes of events kept by one coordinator in total."
    )
    max_total_events: int = Field(
        default=_LIMITS.total_events, ge=1, description="Events kept by one coordinator in total."
    )

"""Executions service settings (env prefix ``OPSC_EXECUTIONS_``)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_EXECUTIONS_", extra="ignore", populate_by_name=True)

    port: int = 8002
    jobs_url: str = Field(
        default="http://127.0.0.1:8001/graphql", validation_alias=AliasChoices("OPSC_JOBS_URL", "jobs_url")
    )
    targets_url: str = Field(
        default="http://127.0.0.1:3001/graphql",
        validation_alias=AliasChoices("OPSC_TARGETS_URL", "targets_url"),
    )
    connect_timeout_seconds: float = Field(default=10, description="SSH connect timeout per target.")
    event_batch_wait_seconds: float = Field(
        default=0.05,
        description="After a run's first new event, how long the coordinator collects more into the "
        "follower's batch (not past the run's end).",
    )
    max_output_bytes_per_step: int = Field(
        default=1_000_000,
        description="Output per target and step (stdout and stderr together) beyond this is dropped: "
        "the engine cuts it with its marker line and flags the step `truncated`.",
    )
    lease_seconds: float = Field(
        default=15, description="How long a replica's claim on following a run lasts without renewal."
    )
    stale_after_seconds: float = Field(
        default=60,
        description="An active run with no live coordinator and no follower for this long ends FAILED (stale).",
    )
    sweep_interval_seconds: float = Field(
        default=10, description="How often to adopt orphaned runs, end stale ones and start queued ones."
    )
    engine_call_timeout_seconds: float = Field(
        default=30,
        description="Longest wait for one answer of the execution engine (Ray); then the caller gets a "
        "typed error and nothing is assumed about what the call did.",
    )
    engine_start_timeout_seconds: float = Field(
        default=60,
        description="Longest wait for the engine to take a run; a start that did not answer is settled "
        "with the engine (started or never will), never guessed.",
    )
    grant_renew_fraction: float = Field(
        default=0.5,
        description="A multi-batch run's connection grant is renewed (and handed to its coordinator) "
        "after this fraction of its lifetime.",
    )
    idempotency_key_hours: float = Field(
        default=24, description="How long runJob remembers an idempotencyKey (then a retry runs again)."
    )
    subscription_queue_messages: int = Field(
        default=256,
        description="Live messages an event subscription buffers for a slow reader; beyond, it drops "
        "them and reads the database instead (nothing is lost, memory stays bounded).",
    )

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def idempotency_retention(self) -> timedelta:
        return timedelta(hours=self.idempotency_key_hours)

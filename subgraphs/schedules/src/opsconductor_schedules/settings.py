"""Schedules service settings (env prefix ``OPSC_SCHEDULES_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_SCHEDULES_", extra="ignore", populate_by_name=True)

    port: int = Field(8003, description="Port the schedules subgraph listens on.")
    jobs_url: str = Field(
        "http://127.0.0.1:8001/graphql",
        validation_alias=AliasChoices("OPSC_JOBS_URL", "jobs_url"),
        description="The jobs subgraph's GraphQL endpoint (does a schedule's job exist).",
    )
    executions_url: str = Field(
        "http://127.0.0.1:8002/graphql",
        validation_alias=AliasChoices("OPSC_EXECUTIONS_URL", "executions_url"),
        description="The executions subgraph's GraphQL endpoint: runJob for each fire, and the job's "
        "active runs for the overlap policy.",
    )
    users_url: str = Field(
        "http://127.0.0.1:3002/graphql",
        validation_alias=AliasChoices("OPSC_USERS_URL", "users_url"),
        description="The users subgraph's GraphQL endpoint: is a schedule's owner active and allowed "
        "jobs:execute, checked at every fire.",
    )
    scheduler_enabled: bool = Field(
        True, description="Run the firing loop in this replica (every replica may; claims keep fires single)."
    )
    misfire_grace_seconds: float = Field(
        30,
        description="A fire started at most this long after its time is on time; later, it was missed "
        "and the schedule's misfire policy decides whether it still runs.",
    )
    claim_timeout_seconds: float = Field(
        60,
        description="A claimed fire whose run was not confirmed for this long (its replica died) is "
        "started again by any replica, with the same idempotency key (the same run, never a second).",
    )
    queue_recheck_seconds: float = Field(
        5, description="How often QUEUED fires (overlap policy QUEUE) look whether the job is free."
    )
    max_sleep_seconds: float = Field(
        60,
        description="Longest sleep of the firing loop with nothing due (it wakes at the next due fire "
        "and on every schedule change before that).",
    )

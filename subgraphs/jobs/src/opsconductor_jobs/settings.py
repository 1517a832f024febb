"""Jobs service settings (env prefix ``OPSC_JOBS_``)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_JOBS_", extra="ignore", populate_by_name=True)

    port: int = 8001
    targets_url: str = Field(
        "http://127.0.0.1:3001/graphql",
        validation_alias=AliasChoices("OPSC_TARGETS_URL", "targets_url"),
        description="GraphQL endpoint of the targets subgraph (called directly with a service token "
        "to check that a job's target ids exist).",
    )
    targets_timeout_seconds: float = Field(
        3.0,
        description="Per-request timeout of calls to the targets subgraph; past it createJob answers "
        "DependencyUnavailable instead of hanging.",
    )

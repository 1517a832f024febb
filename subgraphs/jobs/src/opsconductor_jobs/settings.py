"""Jobs service settings (env prefix ``OPSC_JOBS_``)."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from opsconductor_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPSC_JOBS_", extra="ignore", populate_by_name=True)

    port: int = 8001
    targets_url: str = Field(
        default="http://127.0.0.1:3001/graphql",
        validation_alias=AliasChoices("OPSC_TARGETS_URL", "targets_url"),
        description="GraphQL endpoint of the targets subgraph (called directly with a service token "
        "to check that a job's target ids exist).",
    )
    targets_timeout_seconds: float = Field(
        default=3.0,
        description="Per-request timeout of calls to the targets subgraph; past it createJob answers "
        "DependencyUnavailable instead of hanging.",
    )
    danger_scan_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="Bound of one request's dangerous-command scan (validateJob, createJob, updateJob, "
        "jobPlan); it runs in a worker thread, and past this the request answers ValidationFailed.",
    )
    danger_disabled_rules: list[str] = Field(
        default_factory=list,
        description="Ids of dangerous-command rules to switch off (JSON list), e.g. "
        '["power.shutdown"] for a fleet where reboot jobs are routine.',
    )
    danger_extra_rules: dict[str, str] = Field(
        default_factory=dict,
        description="Site rules: JSON object of rule id -> Python regular expression, matched "
        "against the whole rendered command/script text of every step.",
    )

    @field_validator("danger_extra_rules")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        """A broken site pattern fails at start-up, not at the first run."""
        for rule_id, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"danger rule {rule_id}: invalid regular expression: {exc}") from exc
        return value

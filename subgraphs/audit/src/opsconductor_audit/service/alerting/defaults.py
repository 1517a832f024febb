"""The rules every installation starts with (seeded once; an admin may change or delete them, and
a deleted default is not seeded again). Event types are those of API.md ``<service>.<what>``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HEALTH_DEGRADED = "audit.health_degraded"
HEALTH_RECOVERED = "audit.health_recovered"
CHAIN_FAILED = "audit.chain_broken"


@dataclass(frozen=True)
class DefaultRule:
    key: str
    name: str
    description: str
    event_types: tuple[str, ...]
    threshold: int
    window_seconds: int
    severity: str
    outcome: str | None = None
    group_by: str | None = None
    data_match: dict[str, Any] = field(default_factory=dict[str, Any])


DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        key="job-failures",
        name="Repeated job failures",
        description="The same job's runs failed 3 times within 30 minutes.",
        event_types=("executions.execution_finished",),
        outcome="FAILURE",
        threshold=3,
        window_seconds=1800,
        group_by="data.jobId",
        severity="ERROR",
    ),
    DefaultRule(
        key="target-critical",
        name="Target went critical",
        description="A target's health check reports it critical.",
        event_types=("targets.target_health_changed",),
        data_match={"healthStatus": "critical"},
        threshold=1,
        window_seconds=60,
        group_by="subjectId",
        severity="CRITICAL",
    ),
    DefaultRule(
        key="schedule-missed",
        name="Missed schedule",
        description="A schedule missed a fire (no scheduler ran at its time).",
        event_types=("schedules.fire_missed",),
        threshold=1,
        window_seconds=60,
        group_by="subjectId",
        severity="WARNING",
    ),
    DefaultRule(
        key="failed-logins",
        name="Repeated failed logins",
        description="5 failed logins for one user name (or IP) within 10 minutes.",
        event_types=("auth.login_failed",),
        threshold=5,
        window_seconds=600,
        group_by="actorName",
        severity="WARNING",
    ),
    DefaultRule(
        key="chain-failure",
        name="Audit chain verification failed",
        description="verifyAuditChain found an edited, deleted, inserted or reordered event.",
        event_types=(CHAIN_FAILED,),
        threshold=1,
        window_seconds=60,
        severity="CRITICAL",
    ),
    DefaultRule(
        key="service-degraded",
        name="Service degraded",
        description="systemHealth found a service, the router, the database, Redis or Ray not ready.",
        event_types=(HEALTH_DEGRADED,),
        threshold=1,
        window_seconds=60,
        group_by="subjectId",
        severity="ERROR",
    ),
)

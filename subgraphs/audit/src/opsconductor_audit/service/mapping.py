"""Every event type the services publish -> action, outcome, severity and subject type.

An event type not listed is still audited (action = its name, SUCCESS, INFO, subject type = its
source): nothing a service publishes is dropped. Per-line job output never reaches the bus (it
goes through the broadcaster), so it is not audited; a run's per-target digest is
(``executions.execution_finished``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opsconductor_audit.service.chain import Draft
from opsconductor_shared.events import EventEnvelope

SUCCESS, FAILURE, DENIED = "SUCCESS", "FAILURE", "DENIED"
DEBUG, INFO, WARNING, ERROR, CRITICAL = "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"
OUTCOMES = (SUCCESS, FAILURE, DENIED)
SEVERITIES = (DEBUG, INFO, WARNING, ERROR, CRITICAL)

Judge = Callable[[dict[str, Any]], tuple[str, str]]
"""data -> (outcome, severity), for types whose outcome depends on the event."""


@dataclass(frozen=True)
class Rule:
    action: str
    subject_type: str | None
    outcome: str = SUCCESS
    severity: str = INFO
    judge: Judge | None = None


def _execution_finished(data: dict[str, Any]) -> tuple[str, str]:
    status = str(data.get("status") or "").upper()
    if status in ("SUCCEEDED", "SUCCESS", "COMPLETED"):
        return SUCCESS, INFO
    if status == "CANCELLED":
        return FAILURE, WARNING
    return FAILURE, ERROR


def _dangerous(data: dict[str, Any]) -> tuple[str, str]:
    return (SUCCESS, WARNING) if data.get("decision") == "allowed" else (DENIED, WARNING)


def _health(data: dict[str, Any]) -> tuple[str, str]:
    health = str(data.get("healthStatus") or "").lower()
    if health in ("critical", "down", "unreachable"):
        return FAILURE, ERROR
    if health in ("warning", "degraded"):
        return FAILURE, WARNING
    return SUCCESS, INFO


def _host_key(data: dict[str, Any]) -> tuple[str, str]:
    how = str(data.get("how") or data.get("decision") or "").lower()
    if how in ("rejected", "mismatch", "refused"):
        return DENIED, ERROR
    return SUCCESS, WARNING if data.get("previous") else INFO


def _grant(data: dict[str, Any]) -> tuple[str, str]:
    return (SUCCESS, INFO) if data.get("granted", True) else (DENIED, WARNING)


def _api_key_used(data: dict[str, Any]) -> tuple[str, str]:
    return (SUCCESS, INFO) if data.get("ok", True) else (DENIED, WARNING)


RULES: dict[str, Rule] = {
    # auth
    "auth.login_succeeded": Rule("login", "User"),
    "auth.login_failed": Rule("login", "User", FAILURE, WARNING),
    "auth.account_locked": Rule("lock_account", "User", DENIED, ERROR),
    "auth.session_refreshed": Rule("refresh_session", "User"),
    "auth.refresh_failed": Rule("refresh_session", "User", FAILURE, WARNING),
    "auth.session_revoked": Rule("revoke_session", "User"),
    "auth.logout": Rule("logout", "User"),
    "auth.api_key_created": Rule("create_api_key", "User", SUCCESS, WARNING),
    "auth.api_key_revoked": Rule("revoke_api_key", "User"),
    "auth.api_key_used": Rule("use_api_key", "User", judge=_api_key_used),
    "auth.password_changed": Rule("change_password", "User", SUCCESS, WARNING),
    # users
    "users.user_created": Rule("create_user", "User"),
    "users.user_updated": Rule("update_user", "User"),
    "users.user_deactivated": Rule("deactivate_user", "User", SUCCESS, WARNING),
    "users.user_roles_changed": Rule("change_roles", "User", SUCCESS, WARNING),
    "users.role_created": Rule("create_role", "Role", SUCCESS, WARNING),
    "users.role_updated": Rule("update_role", "Role", SUCCESS, WARNING),
    "users.role_deleted": Rule("delete_role", "Role", SUCCESS, WARNING),
    # targets
    "targets.target_created": Rule("create_target", "Target"),
    "targets.target_updated": Rule("update_target", "Target"),
    "targets.target_deleted": Rule("delete_target", "Target", SUCCESS, WARNING),
    "targets.target_health_changed": Rule("health_changed", "Target", judge=_health),
    "targets.host_key_trusted": Rule("trust_host_key", "Target", judge=_host_key),
    "targets.host_key_rejected": Rule("reject_host_key", "Target", DENIED, ERROR),
    "targets.connection_granted": Rule("grant_connection", "Target", judge=_grant),
    "targets.credential_used": Rule("use_credential", "Target"),
    # jobs
    "jobs.job_created": Rule("create_job", "Job"),
    "jobs.job_updated": Rule("update_job", "Job"),
    "jobs.job_deleted": Rule("delete_job", "Job", SUCCESS, WARNING),
    # executions
    "executions.execution_started": Rule("start_run", "Execution"),
    "executions.execution_finished": Rule("finish_run", "Execution", judge=_execution_finished),
    "executions.execution_cancelled": Rule("cancel_run", "Execution", SUCCESS, WARNING),
    "executions.dangerous_command_decision": Rule("dangerous_command", "Job", judge=_dangerous),
    # schedules
    "schedules.schedule_created": Rule("create_schedule", "Schedule"),
    "schedules.schedule_updated": Rule("update_schedule", "Schedule"),
    "schedules.schedule_deleted": Rule("delete_schedule", "Schedule", SUCCESS, WARNING),
    "schedules.schedule_paused": Rule("pause_schedule", "Schedule"),
    "schedules.schedule_resumed": Rule("resume_schedule", "Schedule"),
    "schedules.fired": Rule("fire", "Schedule"),
    "schedules.fire_missed": Rule("fire", "Schedule", FAILURE, WARNING),
    "schedules.fire_skipped": Rule("fire", "Schedule", SUCCESS, INFO),
    "schedules.fire_queued": Rule("fire", "Schedule", SUCCESS, INFO),
    "schedules.fire_failed": Rule("fire", "Schedule", FAILURE, ERROR),
    # audit's own
    "audit.exported": Rule("export", "AuditExport", SUCCESS, WARNING),
    "audit.report_created": Rule("create_report", "AuditExport", SUCCESS, INFO),
    "audit.chain_verified": Rule("verify_chain", None),
    "audit.chain_broken": Rule("verify_chain", None, FAILURE, CRITICAL),
    "audit.retention_archived": Rule("archive", None, SUCCESS, WARNING),
    "audit.legacy_imported": Rule("import_legacy", None, SUCCESS, WARNING),
    "audit.unreadable_event": Rule("unreadable_event", None, FAILURE, ERROR),
    # system health (service/health.py): a component left OK / came back
    "audit.health_degraded": Rule("health_changed", "Component", FAILURE, ERROR),
    "audit.health_recovered": Rule("health_changed", "Component", SUCCESS, INFO),
}

SUBJECT_TYPES = ("User", "Role", "Target", "Job", "Execution", "Schedule", "AuditExport")

_MUTATION_SUFFIX = ".mutation"


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def draft_of(envelope: EventEnvelope) -> Draft:
    """The audit draft of one service event."""
    data = dict(envelope.data or {})
    rule = RULES.get(envelope.type)
    if rule is None and envelope.type.endswith(_MUTATION_SUFFIX):
        # generic "<service>.mutation" records (operation, outcome) if a service publishes them
        outcome = str(data.get("outcome") or SUCCESS).upper()
        outcome = outcome if outcome in OUTCOMES else SUCCESS
        rule = Rule(
            str(data.get("operation") or "mutation"),
            "",
            outcome,
            INFO if outcome == SUCCESS else WARNING,
        )
    if rule is None:
        rule = Rule(envelope.type.split(".", 1)[-1], None)
    outcome, severity = rule.judge(data) if rule.judge else (rule.outcome, rule.severity)
    # an unknown type's subject is its source service; a mutation record has no subject ("")
    subject_type = rule.subject_type if rule.subject_type is not None else (envelope.source or None)
    subject_type = subject_type or None
    return Draft(
        id=envelope.id,
        at=envelope.time,
        type=envelope.type,
        action=rule.action,
        outcome=outcome,
        severity=severity,
        source=envelope.source,
        actor_id=_text(envelope.actor) or _text(data.get("actorId")),
        actor_name=_text(
            data.get("actorName") or data.get("username")
            if envelope.type.startswith("auth.")
            else data.get("actorName")
        ),
        ip=_text(data.get("ip")),
        user_agent=_text(data.get("userAgent")),
        subject_type=subject_type,
        subject_id=_text(envelope.subject),
        correlation_id=_text(envelope.correlation_id),
        data=data,
    )

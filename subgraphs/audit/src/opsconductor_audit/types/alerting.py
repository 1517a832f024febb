"""GraphQL types of alerting (rules, alerts, notifications, the system email sender) and system health."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from opsconductor_audit.models import Alert as AlertRow
from opsconductor_audit.models import AlertHistory as HistoryRow
from opsconductor_audit.models import AlertRule as RuleRow
from opsconductor_audit.models import EmailSettings as EmailRow
from opsconductor_audit.models import NotificationLog as LogRow
from opsconductor_audit.models import NotificationTemplate as TemplateRow
from opsconductor_audit.service import health
from opsconductor_audit.service.alerting import alerts as alert_service
from opsconductor_audit.service.alerting import store, templates
from opsconductor_audit.types import AuditOutcome, User

ALERTS_READ = "alerts:read"
ALERTS_MANAGE = "alerts:manage"
SYSTEM_ADMIN = "system:admin"


@strawberry.enum(description="How urgent an alert is.")
class AlertSeverity(enum.Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@strawberry.enum(description="Where an alert stands: raised, seen by someone, or over.")
class AlertStatus(enum.Enum):
    ACTIVE = "ACTIVE"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"


@strawberry.enum(description="How an alert is delivered.")
class AlertChannelType(enum.Enum):
    EMAIL = "EMAIL"
    WEBHOOK = "WEBHOOK"


@strawberry.enum(description="How the system email sender talks to its SMTP server.")
class EmailSecurity(enum.Enum):
    NONE = "NONE"
    STARTTLS = "STARTTLS"
    TLS = "TLS"


@strawberry.enum(description="A component's (or the whole system's) health.")
class SystemHealthStatus(enum.Enum):
    OK = "OK"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


# ---- inputs -------------------------------------------------------------------------------------


@strawberry.input(description="Where an alert goes: an email address, or an http(s) URL (signed webhook).")
class AlertChannelInput:
    type: AlertChannelType
    target: str
    secret: str | None = strawberry.field(
        default=None,
        description="WEBHOOK: the HMAC-SHA256 key deliveries are signed with (>= 16 characters; write-only, "
        "stored encrypted). Omitted on update: the channel keeps its secret.",
    )


@strawberry.input(
    description="An alert rule: `threshold` matching events within `windowSeconds`, per `groupBy` value."
)
class AlertRuleInput:
    name: str
    event_types: list[str] = strawberry.field(
        description="Audit event types (`executions.execution_finished`), or globs (`auth.*`)."
    )
    threshold: int = strawberry.field(
        description="Matching events within the window that raise an alert (>= 1)."
    )
    window_seconds: int = strawberry.field(description="The sliding window (1 s .. 7 days).")
    outcome: AuditOutcome | None = strawberry.field(
        default=None, description="Only events with this outcome."
    )
    severity: AlertSeverity | None = AlertSeverity.WARNING
    group_by: str | None = strawberry.field(
        default=None,
        description="One window per value of this event field: type, source, actorId, actorName, ip, "
        "subjectType, subjectId, correlationId, outcome, severity or data.<key>. None: one window.",
    )
    data_match: JSON | None = strawberry.field(
        default=None, description='Only events whose data has these values ({"healthStatus": "critical"}).'
    )
    channels: list[AlertChannelInput] | None = None
    enabled: bool | None = True
    description: str | None = None
    email_template: str | None = strawberry.field(default=None, description="Template name (default-email).")
    webhook_template: str | None = strawberry.field(
        default=None, description="Template name (default-webhook)."
    )

    def to_service(self) -> store.RuleDraft:
        return store.RuleDraft(
            name=self.name,
            event_types=list(self.event_types),
            threshold=self.threshold,
            window_seconds=self.window_seconds,
            severity=(self.severity or AlertSeverity.WARNING).value,
            outcome=self.outcome.value if self.outcome else None,
            group_by=self.group_by or None,
            data_match=cast(Any, self.data_match) if self.data_match is not None else {},
            channels=[store.ChannelDraft(c.type.value, c.target, c.secret) for c in self.channels or []],
            enabled=self.enabled is not False,
            description=self.description,
            email_template=self.email_template,
            webhook_template=self.webhook_template,
        )


@strawberry.input(description="Narrow the alert list.")
class AlertFilter:
    statuses: list[AlertStatus] | None = None
    severities: list[AlertSeverity] | None = None
    rule_id: strawberry.ID | None = None
    group_key: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from", description="Raised at or after.")
    to: datetime | None = strawberry.field(default=None, description="Raised before.")

    def to_service(self) -> alert_service.AlertFilterSpec:
        return alert_service.AlertFilterSpec(
            statuses=tuple(s.value for s in self.statuses or ()),
            severities=tuple(s.value for s in self.severities or ()),
            rule_id=str(self.rule_id) if self.rule_id else None,
            group_key=self.group_key,
            start=self.from_,
            end=self.to,
        )


@strawberry.input(description="A notification template; `$placeholder`s are replaced (safe: no expressions).")
class NotificationTemplateInput:
    name: str
    kind: AlertChannelType
    subject: str
    body: str
    description: str | None = None
    is_active: bool | None = True


@strawberry.input(description="The system email sender: the SMTP server alerts and test emails go through.")
class EmailSettingsInput:
    host: str
    port: int
    from_address: str
    security: EmailSecurity | None = EmailSecurity.STARTTLS
    username: str | None = None
    password: str | None = strawberry.field(
        default=None, description="Write-only, stored encrypted. Omitted: unchanged; empty: removed."
    )
    validate_certs: bool | None = True

    def to_service(self) -> store.EmailSettingsDraft:
        return store.EmailSettingsDraft(
            host=self.host,
            port=self.port,
            from_address=self.from_address,
            security=(self.security or EmailSecurity.STARTTLS).value,
            username=self.username,
            password=self.password,
            validate_certs=self.validate_certs is not False,
        )


# ---- objects ------------------------------------------------------------------------------------


@strawberry.type(description="One channel of a rule (a webhook's secret is never shown).")
class AlertChannel:
    type: AlertChannelType
    target: str
    has_secret: bool


@strawberry.type(description="An alert rule over audit event types.")
class AlertRule:
    id: strawberry.ID
    name: str
    description: str | None
    event_types: list[str]
    outcome: AuditOutcome | None
    threshold: int
    window_seconds: int
    severity: AlertSeverity
    group_by: str | None
    data_match: JSON
    channels: list[AlertChannel]
    email_template: str | None
    webhook_template: str | None
    enabled: bool
    is_default: bool = strawberry.field(description="Seeded at installation (it may be changed or deleted).")
    last_triggered_at: datetime | None
    trigger_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RuleRow) -> AlertRule:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            description=row.description,
            event_types=list(row.event_types),
            outcome=AuditOutcome(row.outcome) if row.outcome else None,
            threshold=row.threshold,
            window_seconds=row.window_seconds,
            severity=AlertSeverity(row.severity),
            group_by=row.group_by,
            data_match=cast(JSON, dict(row.data_match or {})),
            channels=[
                AlertChannel(
                    type=AlertChannelType(str(c["type"])),
                    target=str(c["target"]),
                    has_secret=bool(c.get("secret")),
                )
                for c in row.channels or []
            ],
            email_template=row.email_template,
            webhook_template=row.webhook_template,
            enabled=row.enabled,
            is_default=row.key is not None,
            last_triggered_at=row.last_triggered_at,
            trigger_count=row.trigger_count,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A state change of an alert: who, when, and the note.")
class AlertHistoryEntry:
    action: str = strawberry.field(description="RAISED, REPEATED, ACKNOWLEDGED or RESOLVED.")
    status: AlertStatus
    actor_name: str | None = strawberry.field(description="'system' for the rules engine.")
    note: str | None
    at: datetime
    actor_id: strawberry.Private[str | None]

    @strawberry.field(description="The user who did it (none for the rules engine).")
    def actor(self) -> User | None:
        return User(id=strawberry.ID(self.actor_id)) if self.actor_id else None

    @classmethod
    def from_row(cls, row: HistoryRow) -> AlertHistoryEntry:
        return cls(
            action=row.action,
            status=AlertStatus(row.status),
            actor_name=row.actor_name,
            note=row.note,
            at=row.at,
            actor_id=row.actor_id,
        )


@strawberry.type(description="One delivery attempt of a notification.")
class NotificationLogEntry:
    id: strawberry.ID
    delivery_id: str = strawberry.field(
        description="The same on every attempt of one delivery (webhook header)."
    )
    alert_id: strawberry.ID | None
    channel: AlertChannelType
    destination: str
    subject: str | None
    attempt: int
    status: str = strawberry.field(description="SENT, RETRYING or FAILED.")
    error: str | None
    response: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: LogRow) -> NotificationLogEntry:
        return cls(
            id=strawberry.ID(row.id),
            delivery_id=row.delivery_id,
            alert_id=strawberry.ID(row.alert_id) if row.alert_id else None,
            channel=AlertChannelType(row.channel),
            destination=row.destination,
            subject=row.subject,
            attempt=row.attempt,
            status=row.status,
            error=row.error,
            response=row.response,
            created_at=row.created_at,
        )


@strawberry.type(description="An alert: a rule's window reached its threshold.")
class Alert:
    id: strawberry.ID
    rule_id: strawberry.ID | None
    rule_name: str
    severity: AlertSeverity
    status: AlertStatus
    title: str
    message: str
    group_key: str | None
    count: int = strawberry.field(description="Matching events so far (repeats while open add to it).")
    first_event_at: datetime
    last_event_at: datetime
    raised_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    resolution_note: str | None
    event_ids: list[str] = strawberry.field(description="Ids of the latest matching audit events.")
    acknowledged_by_id: strawberry.Private[str | None]
    resolved_by_id: strawberry.Private[str | None]

    @strawberry.field(description="Who acknowledged it.")
    def acknowledged_by(self) -> User | None:
        return User(id=strawberry.ID(self.acknowledged_by_id)) if self.acknowledged_by_id else None

    @strawberry.field(description="Who resolved it.")
    def resolved_by(self) -> User | None:
        return User(id=strawberry.ID(self.resolved_by_id)) if self.resolved_by_id else None

    @strawberry.field(description="Its state changes, oldest first.")
    async def history(self) -> list[AlertHistoryEntry]:
        return [AlertHistoryEntry.from_row(r) for r in await alert_service.history_of(str(self.id))]

    @strawberry.field(description="Its notification attempts, oldest first.")
    async def notifications(self) -> list[NotificationLogEntry]:
        rows = await LogRow.filter(alert_id=str(self.id)).order_by("created_at", "attempt")
        return [NotificationLogEntry.from_row(r) for r in rows]

    @classmethod
    def from_row(cls, row: AlertRow) -> Alert:
        return cls(
            id=strawberry.ID(row.id),
            rule_id=strawberry.ID(row.rule_id) if row.rule_id else None,
            rule_name=row.rule_name,
            severity=AlertSeverity(row.severity),
            status=AlertStatus(row.status),
            title=row.title,
            message=row.message,
            group_key=row.group_key,
            count=row.count,
            first_event_at=row.first_event_at,
            last_event_at=row.last_event_at,
            raised_at=row.raised_at,
            acknowledged_at=row.acknowledged_at,
            resolved_at=row.resolved_at,
            resolution_note=row.resolution_note,
            event_ids=list(row.event_ids),
            acknowledged_by_id=row.acknowledged_by,
            resolved_by_id=row.resolved_by,
        )


@strawberry.type(description="A notification template.")
class NotificationTemplate:
    id: strawberry.ID
    name: str
    kind: AlertChannelType
    subject: str
    body: str
    description: str | None
    is_active: bool
    updated_at: datetime

    @strawberry.field(description="The placeholders a template may use ($name).")
    def placeholders(self) -> list[str]:
        return list(templates.PLACEHOLDERS)

    @classmethod
    def from_row(cls, row: TemplateRow) -> NotificationTemplate:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            kind=AlertChannelType(row.kind),
            subject=row.subject,
            body=row.body,
            description=row.description,
            is_active=row.is_active,
            updated_at=row.updated_at,
        )


@strawberry.type(description="The system email sender (the password is never shown).")
class EmailSettings:
    host: str
    port: int
    security: EmailSecurity
    username: str | None
    has_password: bool
    from_address: str
    validate_certs: bool
    updated_at: datetime

    @classmethod
    def from_row(cls, row: EmailRow) -> EmailSettings:
        return cls(
            host=row.host,
            port=row.port,
            security=EmailSecurity(row.security),
            username=row.username,
            has_password=bool(row.password_encrypted),
            from_address=row.from_address,
            validate_certs=row.validate_certs,
            updated_at=row.updated_at,
        )


@strawberry.type(description="One component's health.")
class ComponentHealth:
    name: str
    kind: str = strawberry.field(description="service, router, database or redis.")
    status: SystemHealthStatus
    latency_ms: float | None
    detail: str


@strawberry.type(description="One engine actor.")
class RayActorHealth:
    name: str
    kind: str = strawberry.field(description="pool or coordinator.")
    state: str = strawberry.field(description="ALIVE, DEAD or UNREACHABLE.")


@strawberry.type(description="The Ray engine: nodes and the pool and coordinator actors.")
class RayHealth:
    status: SystemHealthStatus
    nodes: int
    alive_nodes: int
    actors: list[RayActorHealth]
    failed_actors: int
    latency_ms: float | None
    detail: str


@strawberry.type(description="The platform's health: every service, the router, the database, Redis and Ray.")
class SystemHealth:
    status: SystemHealthStatus
    checked_at: datetime
    services: list[ComponentHealth]
    ray: RayHealth | None

    @classmethod
    def from_report(cls, report: health.SystemHealthReport) -> SystemHealth:
        ray = report.ray
        return cls(
            status=SystemHealthStatus(report.status),
            checked_at=report.checked_at,
            services=[
                ComponentHealth(
                    name=c.name,
                    kind=c.kind,
                    status=SystemHealthStatus(c.status),
                    latency_ms=c.latency_ms,
                    detail=c.detail,
                )
                for c in report.services
            ],
            ray=RayHealth(
                status=SystemHealthStatus(ray.status),
                nodes=ray.nodes,
                alive_nodes=ray.alive_nodes,
                actors=[RayActorHealth(name=a.name, kind=a.kind, state=a.state) for a in ray.actors],
                failed_actors=ray.failed_actors,
                latency_ms=ray.latency_ms,
                detail=ray.detail,
            )
            if ray
            else None,
        )


# ---- results ------------------------------------------------------------------------------------


@strawberry.type
class AlertRuleSaved:
    rule: AlertRule


@strawberry.type
class AlertRuleDeleted:
    id: strawberry.ID


@strawberry.type
class AlertUpdated:
    alert: Alert


@strawberry.type
class NotificationTemplateSaved:
    template: NotificationTemplate


@strawberry.type
class NotificationTemplateDeleted:
    name: str


@strawberry.type
class EmailSettingsSaved:
    settings: EmailSettings


@strawberry.type(description="The test email was accepted by the SMTP server.")
class TestEmailSent:
    entry: NotificationLogEntry

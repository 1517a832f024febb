"""Audit subgraph: resolvers only (API.md "Audit, alerts, health")."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import strawberry
from strawberry.tools import merge_types

from opsconductor_audit import service
from opsconductor_audit.models import Alert as AlertRow
from opsconductor_audit.models import NotificationLog as LogRow
from opsconductor_audit.service import alerting, health
from opsconductor_audit.service.alerting import alerts as alert_service
from opsconductor_audit.service.alerting import store
from opsconductor_audit.types import (
    ADMIN,
    ERRORS,
    EXPORT,
    READ,
    AuditChainVerification,
    AuditCheckpoint,
    AuditEvent,
    AuditExport,
    AuditExportFormat,
    AuditFilter,
    AuditPublicKey,
    AuditStatistics,
    ComplianceReport,
    ComplianceReportKind,
    Execution,
    Info,
    Job,
    ReportFormat,
    Schedule,
    Target,
    User,
    events_connection,
    export_of,
    report_of,
)
from opsconductor_audit.types.alerting import (
    ALERTS_MANAGE,
    ALERTS_READ,
    SYSTEM_ADMIN,
    Alert,
    AlertFilter,
    AlertRule,
    AlertRuleDeleted,
    AlertRuleInput,
    AlertRuleSaved,
    AlertUpdated,
    EmailSettings,
    EmailSettingsInput,
    EmailSettingsSaved,
    NotificationLogEntry,
    NotificationTemplate,
    NotificationTemplateDeleted,
    NotificationTemplateInput,
    NotificationTemplateSaved,
    SystemHealth,
    TestEmailSent,
)
from opsconductor_shared.app import build_schema
from opsconductor_shared.auth import Authenticated, requires
from opsconductor_shared.errors import (
    DependencyUnavailable,
    NotFound,
    PermissionDenied,
    ValidationError,
    ValidationFailed,
)
from opsconductor_shared.paging import Connection, paginate
from opsconductor_shared.unit_of_work import maps_errors, transactional


@strawberry.type(description="What one retention pass archived (and deleted).")
class AuditRetentionResult:
    archived: int
    from_seq: int | None
    to_seq: int | None
    archive_file: str | None = strawberry.field(
        description="The archive's file name in the audit data directory."
    )


ExportAuditResult = Annotated[AuditExport | ValidationFailed, strawberry.union("ExportAuditResult")]
ComplianceReportResult = Annotated[
    ComplianceReport | ValidationFailed, strawberry.union("ComplianceReportResult")
]
ApplyRetentionResult = Annotated[
    AuditRetentionResult | ValidationFailed, strawberry.union("ApplyRetentionResult")
]


def _caller(info: Info) -> str:
    identity = info.context.identity
    assert identity is not None  # the permission class ran first
    return identity.subject


@strawberry.type
class Query:
    @strawberry.field(
        description="Audit events, newest first (Relay paging on seq).",
        permission_classes=[requires(READ)],
    )
    async def audit_events(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: AuditFilter | None = None,
    ) -> Connection[AuditEvent]:
        query = filter.to_query() if filter else service.AuditQuery()
        return await events_connection(query, first, after)

    @strawberry.field(description="One audit event by id.", permission_classes=[requires(READ)])
    async def audit_event(self, info: Info, id: strawberry.ID) -> AuditEvent | None:
        row = await service.get_event(str(id))
        return AuditEvent.from_row(row) if row else None

    @strawberry.field(
        description="Counts by type, outcome, severity and actor in a time range.",
        permission_classes=[requires(READ)],
    )
    async def audit_statistics(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> AuditStatistics:
        return AuditStatistics.from_dict(await service.statistics(from_=from_, to=to))

    @strawberry.field(
        description="Recompute and link the chain's hashes (and check the signed checkpoints) from "
        "fromSeq to toSeq (default: all); names the first event that does not verify.",
        permission_classes=[requires(READ)],
    )
    async def verify_audit_chain(
        self, info: Info, from_seq: int | None = None, to_seq: int | None = None
    ) -> AuditChainVerification:
        deps = info.context.deps
        result, checkpoint = await service.verify_chain(from_seq=from_seq, to_seq=to_seq, signer=deps.signer)
        if not result.ok:
            rows = await service.record_chain_broken(
                result, actor_id=info.context.identity.subject if info.context.identity else None
            )
            deps.alerting.on_events(rows)  # the default "Audit chain verification failed" rule
        return AuditChainVerification(
            ok=result.ok,
            checked=result.checked,
            first_bad_seq=result.first_bad_seq,
            message=result.message,
            checkpoint=AuditCheckpoint.from_row(checkpoint, deps.signer.public_key_b64)
            if checkpoint
            else None,
        )

    @strawberry.field(
        description="The key that signs checkpoints (anyone signed in may read it).",
        permission_classes=[Authenticated],
    )
    def audit_public_key(self, info: Info) -> AuditPublicKey:
        signer = info.context.deps.signer
        return AuditPublicKey(algorithm="Ed25519", key_id=signer.key_id, public_key=signer.public_key_b64)


@strawberry.type
class Mutation:
    @strawberry.mutation(
        description="Sign the chain's head now (checkpoints are also taken periodically).",
        permission_classes=[requires(ADMIN)],
    )
    async def create_audit_checkpoint(self, info: Info) -> AuditCheckpoint:
        deps = info.context.deps
        row = await service.take_checkpoint(deps.signer, reason="manual")
        return AuditCheckpoint.from_row(row, deps.signer.public_key_b64)

    @strawberry.mutation(
        description="Write the matching events (oldest first, up to a fresh signed checkpoint) to an "
        "NDJSON or CSV file; fetch `url` with the same bearer token.",
        permission_classes=[requires(EXPORT)],
    )
    @maps_errors(ERRORS)
    async def export_audit(
        self,
        info: Info,
        filter: AuditFilter | None = None,
        format: AuditExportFormat = AuditExportFormat.NDJSON,
    ) -> ExportAuditResult:
        deps = info.context.deps
        row = await service.export_events(
            query=filter.to_query() if filter else service.AuditQuery(),
            fmt=format.value,
            owner_id=_caller(info),
            signer=deps.signer,
            files_dir=deps.files_dir,
        )
        return await export_of(info, row)

    @strawberry.mutation(
        description="A compliance report over [from, to) as a CSV or JSON file, with the signed "
        "checkpoint it was made from; fetch `url` with the same bearer token.",
        permission_classes=[requires(EXPORT)],
    )
    @maps_errors(ERRORS)
    async def create_compliance_report(
        self,
        info: Info,
        kind: ComplianceReportKind,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        format: ReportFormat = ReportFormat.CSV,
    ) -> ComplianceReportResult:
        deps = info.context.deps
        row = await service.create_report(
            kind=kind.value,
            from_=from_,
            to=to,
            fmt=format.value,
            owner_id=_caller(info),
            signer=deps.signer,
            files_dir=deps.files_dir,
        )
        return await report_of(info, row)

    @strawberry.mutation(
        description="Archive (gzip NDJSON with a signed checkpoint) and delete events older than "
        "`olderThanDays` and/or beyond the newest `keepEvents`; the rest verifies from the checkpoint.",
        permission_classes=[requires(ADMIN)],
    )
    @maps_errors(ERRORS)
    async def apply_audit_retention(
        self, info: Info, older_than_days: float | None = None, keep_events: int | None = None
    ) -> ApplyRetentionResult:
        if older_than_days is None and keep_events is None:
            raise ValidationError("give olderThanDays and/or keepEvents", field="olderThanDays")
        if (older_than_days is not None and not 0 <= older_than_days <= 100_000) or (
            keep_events is not None and keep_events < 0
        ):
            raise ValidationError("olderThanDays and keepEvents must not be negative", field="olderThanDays")
        deps = info.context.deps
        policy = service.Policy(
            max_age=timedelta(days=older_than_days) if older_than_days is not None else None,
            max_events=keep_events,
        )
        result = await service.apply_retention(
            policy=policy, signer=deps.signer, files_dir=deps.files_dir, actor_id=_caller(info)
        )
        return AuditRetentionResult(
            archived=result.archived,
            from_seq=result.from_seq,
            to_seq=result.to_seq,
            archive_file=Path(result.path).name if result.path else None,
        )


# ---- alerting and system health -----------------------------------------------------------------

AlertRuleResult = Annotated[
    AlertRuleSaved | ValidationFailed | NotFound | PermissionDenied, strawberry.union("AlertRuleResult")
]
DeleteAlertRuleResult = Annotated[AlertRuleDeleted | NotFound, strawberry.union("DeleteAlertRuleResult")]
AlertResult = Annotated[AlertUpdated | ValidationFailed | NotFound, strawberry.union("AlertResult")]
NotificationTemplateResult = Annotated[
    NotificationTemplateSaved | ValidationFailed, strawberry.union("NotificationTemplateResult")
]
DeleteNotificationTemplateResult = Annotated[
    NotificationTemplateDeleted | ValidationFailed | NotFound,
    strawberry.union("DeleteNotificationTemplateResult"),
]
EmailSettingsResult = Annotated[
    EmailSettingsSaved | ValidationFailed, strawberry.union("EmailSettingsResult")
]
TestEmailResult = Annotated[
    TestEmailSent | ValidationFailed | DependencyUnavailable, strawberry.union("TestEmailResult")
]


def _actor(info: Info) -> alert_service.Actor:
    identity = info.context.identity
    return alert_service.Actor(
        id=identity.subject if identity else None, name=identity.username if identity else None
    )


@strawberry.type
class AlertingQuery:
    @strawberry.field(
        permission_classes=[requires(ALERTS_READ)], description="Every alert rule, oldest first."
    )
    async def alert_rules(self) -> list[AlertRule]:
        return [AlertRule.from_row(r) for r in await store.list_rules()]

    @strawberry.field(permission_classes=[requires(ALERTS_READ)], description="Alerts, newest first (Relay).")
    async def alerts(
        self, first: int | None = 50, after: str | None = None, filter: AlertFilter | None = None
    ) -> Connection[Alert]:
        query = alert_service.list_alerts(filter.to_service() if filter else alert_service.AlertFilterSpec())
        return await paginate(query, first=first, after=after, convert=Alert.from_row)

    @strawberry.field(permission_classes=[requires(ALERTS_READ)], description="One alert; null when unknown.")
    async def alert(self, id: strawberry.ID) -> Alert | None:
        row = await AlertRow.filter(id=str(id)).first()
        return Alert.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[requires(ALERTS_READ)],
        description="Notification attempts, newest first (Relay); one alert's when `alertId` is given.",
    )
    async def notification_log(
        self, first: int | None = 50, after: str | None = None, alert_id: strawberry.ID | None = None
    ) -> Connection[NotificationLogEntry]:
        query = LogRow.all().order_by("-created_at", "-attempt")
        if alert_id is not None:
            query = query.filter(alert_id=str(alert_id))
        return await paginate(query, first=first, after=after, convert=NotificationLogEntry.from_row)

    @strawberry.field(permission_classes=[requires(ALERTS_READ)], description="The notification templates.")
    async def notification_templates(self) -> list[NotificationTemplate]:
        return [NotificationTemplate.from_row(r) for r in await store.list_templates()]

    @strawberry.field(
        permission_classes=[requires(SYSTEM_ADMIN)],
        description="The system email sender; null until an admin sets it (the password is never shown).",
    )
    async def email_settings(self) -> EmailSettings | None:
        row = await store.email_settings()
        return EmailSettings.from_row(row) if row else None

    @strawberry.field(
        permission_classes=[requires(ALERTS_READ)],
        description="Every service's /ready, the router, the database, Redis and Ray, checked now.",
    )
    async def system_health(self, info: Info) -> SystemHealth:
        return SystemHealth.from_report(await info.context.deps.health.check())


@strawberry.type
class AlertingMutation:
    @strawberry.mutation(permission_classes=[requires(ALERTS_MANAGE)], description="A new alert rule.")
    @transactional(ERRORS)
    async def create_alert_rule(self, info: Info, input: AlertRuleInput) -> AlertRuleResult:
        deps = info.context.deps
        identity = info.context.identity
        row = await store.create_rule(
            draft=input.to_service(),
            actor=identity.subject if identity else None,
            secrets=deps.alerting.secrets,
            policy=deps.alerting.policy,
        )
        deps.alerting.rule_changed(row)
        return AlertRuleSaved(rule=AlertRule.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(ALERTS_MANAGE)],
        description="Replace a rule's definition (its windows start again).",
    )
    @transactional(ERRORS)
    async def update_alert_rule(
        self, info: Info, id: strawberry.ID, input: AlertRuleInput
    ) -> AlertRuleResult:
        deps = info.context.deps
        row = await store.update_rule(
            rule_id=str(id),
            draft=input.to_service(),
            secrets=deps.alerting.secrets,
            policy=deps.alerting.policy,
        )
        deps.alerting.rule_changed(row)
        return AlertRuleSaved(rule=AlertRule.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(ALERTS_MANAGE)], description="Delete a rule (its alerts stay)."
    )
    @transactional(ERRORS)
    async def delete_alert_rule(self, info: Info, id: strawberry.ID) -> DeleteAlertRuleResult:
        row = await store.delete_rule(rule_id=str(id))
        info.context.deps.alerting.rule_changed(row)
        return AlertRuleDeleted(id=strawberry.ID(row.id))

    @strawberry.mutation(permission_classes=[requires(ALERTS_MANAGE)], description="Someone is on it.")
    @transactional(ERRORS)
    async def acknowledge_alert(self, info: Info, id: strawberry.ID) -> AlertResult:
        row = await alert_service.acknowledge(alert_id=str(id), actor=_actor(info))
        return AlertUpdated(alert=Alert.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(ALERTS_MANAGE)],
        description="It is over; the next trigger of its rule and group raises a new alert.",
    )
    @transactional(ERRORS)
    async def resolve_alert(self, info: Info, id: strawberry.ID, note: str | None = None) -> AlertResult:
        row = await alert_service.resolve(alert_id=str(id), actor=_actor(info), note=note)
        return AlertUpdated(alert=Alert.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(ALERTS_MANAGE)], description="Create or replace a template (by name)."
    )
    @transactional(ERRORS)
    async def save_notification_template(
        self, info: Info, input: NotificationTemplateInput
    ) -> NotificationTemplateResult:
        row = await store.save_template(
            name=input.name,
            kind=input.kind.value,
            subject=input.subject,
            body=input.body,
            description=input.description,
            is_active=input.is_active is not False,
        )
        return NotificationTemplateSaved(template=NotificationTemplate.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(ALERTS_MANAGE)], description="Delete an unused template."
    )
    @transactional(ERRORS)
    async def delete_notification_template(self, info: Info, name: str) -> DeleteNotificationTemplateResult:
        await store.delete_template(name=name)
        return NotificationTemplateDeleted(name=name)

    @strawberry.mutation(
        permission_classes=[requires(SYSTEM_ADMIN)],
        description="Choose the system email sender (the SMTP server alert emails go through).",
    )
    @transactional(ERRORS)
    async def set_email_settings(self, info: Info, input: EmailSettingsInput) -> EmailSettingsResult:
        identity = info.context.identity
        row = await store.save_email_settings(
            draft=input.to_service(),
            actor=identity.subject if identity else None,
            secrets=info.context.deps.alerting.secrets,
            policy=info.context.deps.alerting.policy,
        )
        return EmailSettingsSaved(settings=EmailSettings.from_row(row))

    @strawberry.mutation(
        permission_classes=[requires(SYSTEM_ADMIN)],
        description="Send a test email through the system email sender now (logged in the notification log).",
    )
    @maps_errors(ERRORS)
    async def send_test_email(self, info: Info, to: str) -> TestEmailResult:
        entry = await info.context.deps.alerting.notifier.send_test_email(to=to)
        return TestEmailSent(entry=NotificationLogEntry.from_row(entry))


@strawberry.type
class AlertingSubscription:
    @strawberry.subscription(permission_classes=[requires(ALERTS_READ)], description="Each new alert.")
    async def alert_raised(self, info: Info) -> AsyncGenerator[Alert, None]:
        async with info.context.deps.alerting.broadcaster.listen(alerting.ALERTS_CHANNEL) as live:
            async for message in live:
                try:
                    alert_id = str(json.loads(message).get("id"))
                except (ValueError, AttributeError):
                    continue
                with info.context.runtime.db.bind():
                    row = await AlertRow.get_or_none(id=alert_id)
                if row is not None:
                    yield Alert.from_row(row)

    @strawberry.subscription(
        permission_classes=[requires(ALERTS_READ)],
        description="The system's health now, then each time a component's status changes.",
    )
    async def system_health_changed(self, info: Info) -> AsyncGenerator[SystemHealth, None]:
        monitor = info.context.deps.health
        async with info.context.deps.alerting.broadcaster.listen(health.HEALTH_CHANNEL) as live:
            yield SystemHealth.from_report(monitor.last or await monitor.check())
            async for message in live:
                try:
                    report = health.report_from_json(message)
                except (ValueError, KeyError, TypeError):
                    continue
                yield SystemHealth.from_report(report)


schema = build_schema(
    query=merge_types("Query", (Query, AlertingQuery)),
    mutation=merge_types("Mutation", (Mutation, AlertingMutation)),
    subscription=AlertingSubscription,
    types=[User, Target, Job, Execution, Schedule],
)

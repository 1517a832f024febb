"""Alert rules, notification templates and the system email sender: definitions in the audit
database. Secrets (webhook signing secrets, the SMTP password) are encrypted at rest with the
service's key ring, bound to their row, and never returned."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsconductor_audit.models import AlertRule, EmailSettings, NotificationTemplate
from opsconductor_audit.service.alerting import templates
from opsconductor_audit.service.alerting.channels import SECURITIES, SmtpConfig, check_address
from opsconductor_audit.service.alerting.defaults import DEFAULT_RULES
from opsconductor_audit.service.alerting.destinations import DestinationPolicy
from opsconductor_audit.service.alerting.rules import Channel, RuleSpec, validate
from opsconductor_shared.crypto import KeyRing
from opsconductor_shared.errors import NotFoundError, ValidationError

EMAIL_SETTINGS_ID = 1
MIN_SECRET = 16


@dataclass(frozen=True)
class ChannelDraft:
    type: str
    target: str
    secret: str | None = None  # webhooks: the HMAC key (write-only)


@dataclass(frozen=True)
class RuleDraft:
    name: str
    event_types: Sequence[str]
    threshold: int
    window_seconds: int
    severity: str = "WARNING"
    outcome: str | None = None
    group_by: str | None = None
    data_match: Any = field(default_factory=dict[str, Any])
    channels: Sequence[ChannelDraft] = ()
    enabled: bool = True
    description: str | None = None
    email_template: str | None = None
    webhook_template: str | None = None


@dataclass(frozen=True)
class EmailSettingsDraft:
    host: str
    port: int
    from_address: str
    security: str = "STARTTLS"
    username: str | None = None
    password: str | None = None  # None keeps the stored one; "" clears it
    validate_certs: bool = True


class Secrets:
    """AES-GCM at rest (shared crypto); the associated data binds each ciphertext to its row."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def seal(self, text: str, *, aad: str) -> str:
        return self.keyring.encrypt(text.encode(), aad=aad.encode())

    def open(self, token: str, *, aad: str) -> str:
        return self.keyring.decrypt(token, aad=aad.encode()).decode()


def _webhook_aad(rule_id: str, target: str) -> str:
    return f"alert-rule:{rule_id}:webhook:{target}"


def spec_of(row: AlertRule) -> RuleSpec:
    return RuleSpec(
        id=row.id,
        name=row.name,
        event_types=tuple(row.event_types),
        threshold=row.threshold,
        window_seconds=row.window_seconds,
        severity=row.severity,
        outcome=row.outcome,
        group_by=row.group_by,
        data_match=dict(row.data_match or {}),
        channels=tuple(Channel(str(c["type"]), str(c["target"])) for c in row.channels or []),
        enabled=row.enabled and not row.is_deleted,
        version=row.version,
    )


def webhook_secret(row: AlertRule, target: str, secrets: Secrets) -> str | None:
    for channel in row.channels or []:
        if channel.get("type") == "WEBHOOK" and channel.get("target") == target and channel.get("secret"):
            return secrets.open(str(channel["secret"]), aad=_webhook_aad(row.id, target))
    return None


async def _channels(
    rule_id: str,
    drafts: Sequence[ChannelDraft],
    previous: list[dict[str, Any]],
    *,
    secrets: Secrets,
    policy: DestinationPolicy,
) -> list[dict[str, Any]]:
    kept = {(c.get("type"), c.get("target")): c.get("secret") for c in previous}
    out: list[dict[str, Any]] = []
    for draft in drafts:
        target = draft.target.strip()
        if draft.type == "EMAIL":
            out.append({"type": "EMAIL", "target": check_address(target, field="channels")})
            continue
        await policy.check_url(target, field="channels")
        if draft.secret is not None:
            if len(draft.secret) < MIN_SECRET:
                raise ValidationError(
                    f"a webhook secret has at least {MIN_SECRET} characters", field="channels"
                )
            sealed = secrets.seal(draft.secret, aad=_webhook_aad(rule_id, target))
        else:
            sealed = kept.get(("WEBHOOK", target))
            if not sealed:
                raise ValidationError(
                    "a webhook channel needs a secret (its deliveries are signed with it)", field="channels"
                )
        out.append({"type": "WEBHOOK", "target": target, "secret": sealed})
    return out


async def _check_template(name: str | None, kind: str, field_name: str) -> None:
    if name is None:
        return
    if not await NotificationTemplate.filter(name=name, kind=kind).exists():
        raise ValidationError(f"no {kind.lower()} template named {name!r}", field=field_name)


async def _apply(
    row: AlertRule, draft: RuleDraft, *, secrets: Secrets, policy: DestinationPolicy
) -> AlertRule:
    validate(
        name=draft.name,
        event_types=list(draft.event_types),
        threshold=draft.threshold,
        window_seconds=draft.window_seconds,
        severity=draft.severity,
        outcome=draft.outcome,
        group_by=draft.group_by,
        data_match=draft.data_match,
        channels=[Channel(c.type, c.target) for c in draft.channels],
    )
    await _check_template(draft.email_template, "EMAIL", "emailTemplate")
    await _check_template(draft.webhook_template, "WEBHOOK", "webhookTemplate")
    row.channels = await _channels(
        row.id, draft.channels, list(row.channels or []), secrets=secrets, policy=policy
    )
    row.name = draft.name.strip()
    row.description = draft.description
    row.event_types = list(dict.fromkeys(draft.event_types))
    row.threshold = draft.threshold
    row.window_seconds = draft.window_seconds
    row.severity = draft.severity
    row.outcome = draft.outcome
    row.group_by = draft.group_by
    row.data_match = dict(draft.data_match)
    row.enabled = draft.enabled
    row.email_template = draft.email_template
    row.webhook_template = draft.webhook_template
    return row


async def create_rule(
    *, draft: RuleDraft, actor: str | None, secrets: Secrets, policy: DestinationPolicy
) -> AlertRule:
    row = AlertRule(id=str(uuid.uuid4()), created_by=actor, channels=[], data_match={}, event_types=[])
    await _apply(row, draft, secrets=secrets, policy=policy)
    await row.save()
    return row


async def get_rule(rule_id: str) -> AlertRule:
    row = await AlertRule.filter(id=rule_id, is_deleted=False).first()
    if row is None:
        raise NotFoundError("no alert rule with that id", id=rule_id)
    return row


async def update_rule(
    *, rule_id: str, draft: RuleDraft, secrets: Secrets, policy: DestinationPolicy
) -> AlertRule:
    row = await get_rule(rule_id)
    await _apply(row, draft, secrets=secrets, policy=policy)
    row.version += 1
    await row.save()
    return row


async def delete_rule(*, rule_id: str) -> AlertRule:
    row = await get_rule(rule_id)
    row.is_deleted = True
    row.enabled = False
    row.version += 1
    await row.save(update_fields=["is_deleted", "enabled", "version", "updated_at"])
    return row


async def list_rules() -> list[AlertRule]:
    return await AlertRule.filter(is_deleted=False).order_by("created_at", "id")


async def seed_defaults() -> int:
    """Insert the default rules and templates that were never seeded (a deleted default stays deleted)."""
    added = 0
    for rule in DEFAULT_RULES:
        if await AlertRule.filter(key=rule.key).exists():
            continue
        await AlertRule.create(
            id=str(uuid.uuid4()),
            key=rule.key,
            name=rule.name,
            description=rule.description,
            event_types=list(rule.event_types),
            outcome=rule.outcome,
            threshold=rule.threshold,
            window_seconds=rule.window_seconds,
            severity=rule.severity,
            group_by=rule.group_by,
            data_match=dict(rule.data_match),
            channels=[],
        )
        added += 1
    for spec in templates.DEFAULTS:
        if not await NotificationTemplate.filter(name=spec.name).exists():
            await NotificationTemplate.create(
                id=str(uuid.uuid4()), name=spec.name, kind=spec.kind, subject=spec.subject, body=spec.body
            )
    return added


# ---- templates ----------------------------------------------------------------------------------


async def save_template(
    *, name: str, kind: str, subject: str, body: str, description: str | None, is_active: bool
) -> NotificationTemplate:
    if not name.strip() or len(name) > 100:
        raise ValidationError("name must be 1..100 characters", field="name")
    if kind not in templates.KINDS:
        raise ValidationError("kind must be EMAIL or WEBHOOK", field="kind")
    templates.check(subject, body)
    row = await NotificationTemplate.filter(name=name).first()
    if row is None:
        row = NotificationTemplate(id=str(uuid.uuid4()), name=name)
    row.kind, row.subject, row.body = kind, subject, body
    row.description, row.is_active = description, is_active
    await row.save()
    return row


async def delete_template(*, name: str) -> None:
    if name in {t.name for t in templates.DEFAULTS}:
        raise ValidationError("the default templates can be changed but not deleted", field="name")
    if await AlertRule.filter(is_deleted=False).filter(email_template=name).exists() or (
        await AlertRule.filter(is_deleted=False, webhook_template=name).exists()
    ):
        raise ValidationError("an alert rule uses this template", field="name")
    deleted = await NotificationTemplate.filter(name=name).delete()
    if not deleted:
        raise NotFoundError("no template with that name", id=name)


async def list_templates() -> list[NotificationTemplate]:
    return await NotificationTemplate.all().order_by("name")


async def template_for(name: str | None, kind: str) -> templates.TemplateSpec:
    default = templates.DEFAULT_EMAIL if kind == "EMAIL" else templates.DEFAULT_WEBHOOK
    row = await NotificationTemplate.filter(name=name or default.name, kind=kind, is_active=True).first()
    if row is None:
        return default
    return templates.TemplateSpec(name=row.name, kind=row.kind, subject=row.subject, body=row.body)


# ---- the system email sender --------------------------------------------------------------------


def _password_aad() -> str:
    return f"email-settings:{EMAIL_SETTINGS_ID}:password"


async def save_email_settings(
    *, draft: EmailSettingsDraft, actor: str | None, secrets: Secrets, policy: DestinationPolicy
) -> EmailSettings:
    host = draft.host.strip()
    if not host or len(host) > 255 or any(c.isspace() or c in "/@" for c in host):
        raise ValidationError("host must be a host name or an address", field="host")
    if not 1 <= draft.port <= 65535:
        raise ValidationError("port must be between 1 and 65535", field="port")
    if draft.security not in SECURITIES:
        raise ValidationError("security must be NONE, STARTTLS or TLS", field="security")
    from_address = check_address(draft.from_address, field="fromAddress")
    await policy.check(host, draft.port, field="host")
    row = await EmailSettings.filter(id=EMAIL_SETTINGS_ID).first()
    if row is None:
        row = EmailSettings(id=EMAIL_SETTINGS_ID)
    row.host, row.port, row.security = host, draft.port, draft.security
    row.username = draft.username or None
    row.from_address = from_address
    row.validate_certs = draft.validate_certs
    row.updated_by = actor
    if draft.password is not None:
        row.password_encrypted = secrets.seal(draft.password, aad=_password_aad()) if draft.password else None
    await row.save()
    return row


async def email_settings() -> EmailSettings | None:
    return await EmailSettings.filter(id=EMAIL_SETTINGS_ID).first()


def smtp_config(row: EmailSettings, secrets: Secrets) -> SmtpConfig:
    password = secrets.open(row.password_encrypted, aad=_password_aad()) if row.password_encrypted else None
    return SmtpConfig(
        host=row.host,
        port=row.port,
        from_address=row.from_address,
        security=row.security,
        username=row.username,
        password=password,
        validate_certs=row.validate_certs,
    )

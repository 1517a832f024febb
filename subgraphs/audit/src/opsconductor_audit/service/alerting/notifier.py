"""Notifications: render the rule's templates, deliver over each channel in the background, and log
every attempt (the notification log). Never blocks the caller: deliveries are tasks, bounded by a
semaphore; retries sleep in their own task (exponential backoff, bounded attempts)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from opsconductor_audit.models import Alert, AlertRule, NotificationLog
from opsconductor_audit.service.alerting import channels, store
from opsconductor_audit.service.alerting.destinations import DestinationDenied, DestinationPolicy
from opsconductor_audit.service.alerting.templates import TEST_EMAIL, render
from opsconductor_shared.errors import DependencyUnavailableError, ValidationError
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.audit.alerting")


def alert_values(alert: Alert, rule: AlertRule | None) -> dict[str, Any]:
    return {
        "alert_id": alert.id,
        "rule_name": alert.rule_name,
        "severity": alert.severity,
        "status": alert.status,
        "title": alert.title,
        "message": alert.message,
        "group_key": alert.group_key or "-",
        "count": alert.count,
        "window_seconds": rule.window_seconds if rule else "",
        "first_at": alert.first_event_at.isoformat(),
        "last_at": alert.last_event_at.isoformat(),
        "event_type": alert.context.get("eventType", ""),
        "event_ids": list(alert.event_ids)[-10:],
        "note": alert.resolution_note or "",
    }


def webhook_payload(alert: Alert, subject: str, text: str, delivery_id: str) -> dict[str, Any]:
    return {
        "kind": "opsconductor.alert",
        "deliveryId": delivery_id,
        "sentAt": datetime.now(UTC).isoformat(),
        "alert": {
            "id": alert.id,
            "ruleId": alert.rule_id,
            "ruleName": alert.rule_name,
            "severity": alert.severity,
            "status": alert.status,
            "title": alert.title,
            "message": alert.message,
            "groupKey": alert.group_key,
            "count": alert.count,
            "firstEventAt": alert.first_event_at.isoformat(),
            "lastEventAt": alert.last_event_at.isoformat(),
            "raisedAt": alert.raised_at.isoformat(),
            "eventIds": list(alert.event_ids),
        },
        "subject": subject,
        "text": text,
    }


class Notifier:
    def __init__(
        self,
        *,
        secrets: store.Secrets,
        policy: DestinationPolicy,
        retry: channels.RetryPolicy,
        webhook_timeout: float = 10.0,
        smtp_timeout: float = 15.0,
        concurrency: int = 8,
        bind: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    ) -> None:
        self.secrets = secrets
        self.policy = policy
        self.retry = retry
        self.webhook_timeout = webhook_timeout
        self.smtp_timeout = smtp_timeout
        self._limit = asyncio.Semaphore(concurrency)
        self._bind = bind or contextlib.nullcontext
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._http

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def idle(self) -> None:
        """Wait until every delivery scheduled so far is done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def notify(self, alert: Alert, rule: AlertRule | None) -> None:
        """Deliver the alert over each of its rule's channels (in the background)."""
        if rule is None:
            return
        for channel in rule.channels or []:
            self._spawn(self._deliver(alert, rule, str(channel["type"]), str(channel["target"])))

    async def _log(
        self,
        *,
        delivery_id: str,
        alert_id: str | None,
        channel: str,
        destination: str,
        subject: str | None,
        attempt: int,
        status: str,
        error: str | None = None,
        response: str | None = None,
    ) -> None:
        with self._bind():
            await NotificationLog.create(
                id=str(uuid.uuid4()),
                delivery_id=delivery_id,
                alert_id=alert_id,
                channel=channel,
                destination=destination[:500],
                subject=(subject or "")[:200] or None,
                attempt=attempt,
                status=status,
                error=(error or "")[:2000] or None,
                response=(response or "")[:300] or None,
            )

    async def _deliver(self, alert: Alert, rule: AlertRule, kind: str, target: str) -> None:
        delivery_id = str(uuid.uuid4())
        try:
            async with self._limit:
                await self._deliver_once(alert, rule, kind, target, delivery_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a delivery never takes the service down; it is logged
            log.warning("notification failed", channel=kind, alert=alert.id, error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._log(
                    delivery_id=delivery_id,
                    alert_id=alert.id,
                    channel=kind,
                    destination=target,
                    subject=None,
                    attempt=1,
                    status="FAILED",
                    error=getattr(exc, "message", None) or type(exc).__name__,
                )

    async def _deliver_once(
        self, alert: Alert, rule: AlertRule, kind: str, target: str, delivery_id: str
    ) -> None:
        with self._bind():
            template = await store.template_for(
                rule.email_template if kind == "EMAIL" else rule.webhook_template, kind
            )
            settings_row = await store.email_settings() if kind == "EMAIL" else None
        subject, body = render(template, alert_values(alert, rule))
        if kind == "EMAIL":
            if settings_row is None:
                raise DependencyUnavailableError("no system email sender is configured", service="smtp")
            config = store.smtp_config(settings_row, self.secrets)
            await self.policy.check(config.host, config.port)

            async def attempt() -> str:
                return await channels.send_email(config, to=target, subject=subject, body=body)

        else:
            with self._bind():
                row = await AlertRule.filter(id=rule.id).first()
            secret = store.webhook_secret(row, target, self.secrets) if row else None
            if secret is None:
                raise ValidationError("the webhook channel has no secret", field="channels")
            await self.policy.check_url(target)
            payload = channels.webhook_body(webhook_payload(alert, subject, body, delivery_id))

            async def attempt() -> str:
                status = await channels.post_webhook(
                    self.http,
                    url=target,
                    body=payload,
                    secret=secret,
                    delivery_id=delivery_id,
                    seconds=self.webhook_timeout,
                )
                return f"HTTP {status}"

        async def on_attempt(number: int, result: str | None, error: str | None) -> None:
            last = number == self.retry.attempts
            status = "SENT" if error is None else ("FAILED" if last else "RETRYING")
            await self._log(
                delivery_id=delivery_id,
                alert_id=alert.id,
                channel=kind,
                destination=target,
                subject=subject,
                attempt=number,
                status=status,
                error=error,
                response=result,
            )

        delivered = await channels.with_retries(attempt, self.retry, on_attempt)
        if not delivered:
            # A non-retryable failure was logged RETRYING only if attempts remained: mark it final.
            with self._bind():
                last = await NotificationLog.filter(delivery_id=delivery_id).order_by("-attempt").first()
                if last is not None and last.status != "FAILED":
                    last.status = "FAILED"
                    await last.save(update_fields=["status"])

    async def send_test_email(self, *, to: str) -> NotificationLog:
        """One attempt now (no retries), logged; raises DependencyUnavailableError when it fails."""
        address = channels.check_address(to, field="to")
        row = await store.email_settings()
        if row is None:
            raise DependencyUnavailableError("no system email sender is configured", service="smtp")
        config = store.smtp_config(row, self.secrets)
        try:
            await self.policy.check(config.host, config.port, field="host")
        except DestinationDenied as exc:
            raise DependencyUnavailableError(exc.message, service="smtp") from None
        subject, body = render(TEST_EMAIL, {})
        delivery_id = str(uuid.uuid4())
        try:
            reply = await channels.send_email(config, to=address, subject=subject, body=body)
        except channels.DeliveryFailed as exc:
            await self._log(
                delivery_id=delivery_id,
                alert_id=None,
                channel="EMAIL",
                destination=address,
                subject=subject,
                attempt=1,
                status="FAILED",
                error=exc.message,
            )
            raise DependencyUnavailableError(
                f"the test email was not sent: {exc.message}", service="smtp"
            ) from None
        await self._log(
            delivery_id=delivery_id,
            alert_id=None,
            channel="EMAIL",
            destination=address,
            subject=subject,
            attempt=1,
            status="SENT",
            response=reply,
        )
        return await NotificationLog.filter(delivery_id=delivery_id).first()  # type: ignore[return-value]

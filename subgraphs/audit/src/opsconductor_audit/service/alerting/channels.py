"""Delivery over the two channels: email through the system email sender (aiosmtplib), and signed
webhooks (httpx). One attempt each; :func:`with_retries` retries with exponential backoff, a
bounded number of times, and reports every attempt (the notification log)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

import aiosmtplib
import httpx

from opsconductor_audit.service.alerting import signing
from opsconductor_shared.errors import ValidationError

SECURITIES = ("NONE", "STARTTLS", "TLS")


class DeliveryFailed(Exception):
    """One attempt failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def check_address(address: str, *, field: str = "target") -> str:
    """The bare address, or ValidationError (no display-name tricks, no header injection)."""
    if any(c in address for c in "\r\n") or len(address) > 254:
        raise ValidationError("invalid email address", field=field)
    _, bare = parseaddr(address)
    local, _, domain = bare.rpartition("@")
    if not local or not domain or " " in bare or bare != address.strip():
        raise ValidationError(f"invalid email address {address[:60]!r}", field=field)
    return bare


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    from_address: str
    security: str = "NONE"  # NONE | STARTTLS | TLS
    username: str | None = None
    password: str | None = None
    validate_certs: bool = True
    timeout: float = 15.0


async def send_email(config: SmtpConfig, *, to: str, subject: str, body: str) -> str:
    """Send one message; the server's reply to DATA, or DeliveryFailed."""
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="opsconductor.local")
    message.set_content(body)
    client = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        timeout=config.timeout,
        use_tls=config.security == "TLS",
        start_tls=config.security == "STARTTLS",
        validate_certs=config.validate_certs,
    )
    try:
        await client.connect()
        if config.username:
            await client.login(config.username, config.password or "")
        _, reply = await client.send_message(message)
        await client.quit()
        return reply
    except aiosmtplib.SMTPAuthenticationError:
        raise DeliveryFailed("SMTP authentication failed", retryable=False) from None
    except aiosmtplib.SMTPRecipientsRefused:
        raise DeliveryFailed("the SMTP server refused the recipient", retryable=False) from None
    except aiosmtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.code < 600
        raise DeliveryFailed(f"SMTP error {exc.code}: {exc.message[:200]}", retryable=not permanent) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise DeliveryFailed(f"cannot reach the SMTP server: {type(exc).__name__}") from None
    finally:
        if client.is_connected:
            client.close()


def webhook_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


async def post_webhook(
    client: httpx.AsyncClient, *, url: str, body: bytes, secret: str, delivery_id: str, seconds: float
) -> int:
    """POST one signed delivery; the HTTP status (2xx), or DeliveryFailed (5xx, 429 and network
    errors are retryable; other 4xx are not). Redirects are not followed."""
    headers = {
        "content-type": "application/json",
        "user-agent": "OpsConductor-Webhook/1",
        signing.DELIVERY_HEADER: delivery_id,
        **signing.sign(secret, body),
    }
    try:
        response = await client.post(url, content=body, headers=headers, timeout=seconds)
    except httpx.TimeoutException:
        raise DeliveryFailed("the webhook did not answer in time") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"cannot reach the webhook: {type(exc).__name__}") from None
    if 200 <= response.status_code < 300:
        return response.status_code
    retryable = response.status_code >= 500 or response.status_code in (408, 429)
    raise DeliveryFailed(f"the webhook answered HTTP {response.status_code}", retryable=retryable)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0

    def delay(self, attempt: int) -> float:
        """Before attempt ``attempt + 1`` (attempt counts from 1): exponential, capped, +-10% jitter."""
        raw = min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))
        return raw * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not a secret


async def with_retries(
    attempt_fn: Callable[[], Awaitable[str]],
    policy: RetryPolicy,
    on_attempt: Callable[[int, str | None, str | None], Awaitable[None]],
) -> bool:
    """Call ``attempt_fn`` until it succeeds, fails for good or runs out of attempts.
    ``on_attempt(number, result, error)`` is awaited after each. True when delivered."""
    for number in range(1, policy.attempts + 1):
        try:
            result = await attempt_fn()
        except DeliveryFailed as exc:
            await on_attempt(number, None, exc.message)
            if not exc.retryable or number == policy.attempts:
                return False
            await asyncio.sleep(policy.delay(number))
            continue
        await on_attempt(number, result, None)
        return True
    return False

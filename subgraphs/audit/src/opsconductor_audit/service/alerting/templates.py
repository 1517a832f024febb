"""Notification templates (legacy ``notification_templates``): subject and body with placeholders.

Rendering is ``string.Template`` with ``safe_substitute``: ``$name`` / ``${name}`` only, no
attribute access, no expressions, no loops, so a template an admin writes cannot reach anything
but the flat, pre-rendered values given to it. Unknown placeholders stay as written; values are
truncated so one event cannot make a notification huge.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsconductor_shared.errors import ValidationError

MAX_VALUE = 2_000
MAX_SUBJECT = 200
MAX_BODY = 20_000
KINDS = ("EMAIL", "WEBHOOK")

PLACEHOLDERS = (
    "alert_id",
    "rule_name",
    "severity",
    "status",
    "title",
    "message",
    "group_key",
    "count",
    "window_seconds",
    "first_at",
    "last_at",
    "event_type",
    "event_ids",
    "note",
)


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    kind: str
    subject: str
    body: str


DEFAULT_EMAIL = TemplateSpec(
    name="default-email",
    kind="EMAIL",
    subject="[OpsConductor] $severity: $title",
    body=(
        "Alert $alert_id ($status)\n\n"
        "Rule: $rule_name\nSeverity: $severity\nGroup: $group_key\n"
        "$count matching events between $first_at and $last_at (window ${window_seconds}s).\n"
        "Last event type: $event_type\n\n$message\n"
    ),
)
DEFAULT_WEBHOOK = TemplateSpec(
    name="default-webhook",
    kind="WEBHOOK",
    subject="$severity: $title",
    body="$message",
)
TEST_EMAIL = TemplateSpec(
    name="test-email",
    kind="EMAIL",
    subject="[OpsConductor] test email",
    body="This is a test email from OpsConductor's system email sender.\n",
)
DEFAULTS = (DEFAULT_EMAIL, DEFAULT_WEBHOOK)


def _flat(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_flat(v) for v in value)  # pyright: ignore[reportUnknownVariableType]
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def check(subject: str, body: str) -> None:
    """ValidationError when the template would not render (a stray ``$``)."""
    if len(subject) > MAX_SUBJECT:
        raise ValidationError(f"subject is longer than {MAX_SUBJECT} characters", field="subject")
    if len(body) > MAX_BODY:
        raise ValidationError(f"body is longer than {MAX_BODY} characters", field="body")
    for name, text in (("subject", subject), ("body", body)):
        template = string.Template(text)
        if not template.is_valid():
            raise ValidationError(f"{name}: invalid placeholder (write $$ for a dollar sign)", field=name)


def render(template: TemplateSpec, values: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body); the subject is one line (a header cannot be injected)."""
    flat = {k: _flat(v) for k, v in values.items()}
    subject = string.Template(template.subject).safe_substitute(flat)
    subject = " ".join(subject.split())[:MAX_SUBJECT]
    body = string.Template(template.body).safe_substitute(flat)[:MAX_BODY]
    return subject, body

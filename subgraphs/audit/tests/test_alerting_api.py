"""Alerting against the real platform: a real SMTP server (aiosmtpd) and a real HTTP receiver on
loopback. Failed runs raise an alert, which sends an email and a signed webhook (retried after a
500); the test email; acknowledge/resolve with history; a viewer cannot manage rules."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller

from opsconductor_audit.service.alerting import signing
from subgraphs.schedules.tests.helpers import create_job, unique_loopback
from tests.support.access import create_user, role_login
from tests.support.net import free_port
from tests.support.platform import gql
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "webhook-secret-0123456789"
RULE = """mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { __typename
  ... on AlertRuleSaved { rule { id name channels { type target hasSecret } } } ... on Error { message } } }"""
RULE_FIELD = """mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { __typename
  ... on ValidationFailed { field message } } }"""
ALERTS = """query($f: AlertFilter) { alerts(first: 20, filter: $f) { totalCount edges { node {
  id status severity title count groupKey
  notifications { channel status attempt error deliveryId }
  history { action status actorName note actor { id } } } } } }"""
ACK = """mutation($id: ID!) { acknowledgeAlert(id: $id) { __typename ... on AlertUpdated { alert { status } }
  ... on Error { message } } }"""
RESOLVE = """mutation($id: ID!, $n: String) { resolveAlert(id: $id, note: $n) { __typename
  ... on AlertUpdated { alert { status resolutionNote history { action actorName note } } } ... on Error { message } } }"""
EMAIL = """mutation($i: EmailSettingsInput!) { setEmailSettings(input: $i) { __typename
  ... on EmailSettingsSaved { settings { host port hasPassword } } ... on Error { message } } }"""
TEST_EMAIL = """mutation($to: String!) { sendTestEmail(to: $to) { __typename
  ... on TestEmailSent { entry { status channel destination } } ... on Error { message } } }"""
RUN = """mutation($job: ID!) { runJob(jobId: $job) { __typename ... on ExecutionStarted { execution { id } }
  ... on Error { message } } }"""


# ---- a real SMTP server and a real HTTP receiver on loopback -------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@dataclass
class Receiver:
    port: int
    statuses: list[int] = field(default_factory=list)  # answers in order; then 200
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


async def _serve(receiver: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        receiver.requests.append((headers, body))
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
    finally:
        writer.close()


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    rec = Receiver(port=port)
    server = await asyncio.start_server(lambda r, w: _serve(rec, r, w), "127.0.0.1", port)
    try:
        yield rec
    finally:
        server.close()
        await server.wait_closed()


async def _wait(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def test_failed_runs_send_an_email_and_a_signed_webhook_then_ack_and_resolve(
    platform: Any, admin_token: str, smtp: tuple[_Inbox, int], receiver: Receiver
) -> None:
    url = platform.url("audit")
    inbox, smtp_port = smtp
    body = await gql(
        url,
        EMAIL,
        {
            "i": {
                "host": "127.0.0.1",
                "port": smtp_port,
                "fromAddress": "opsc@example.com",
                "security": "NONE",
                "password": "not-used-here",
            }
        },
        token=admin_token,
    )
    saved = body["data"]["setEmailSettings"]
    assert saved["__typename"] == "EmailSettingsSaved" and saved["settings"]["hasPassword"] is True, body
    assert "password" not in str(body).replace("hasPassword", "")

    # the test email
    body = await gql(url, TEST_EMAIL, {"to": "admin@example.com"}, token=admin_token)
    assert body["data"]["sendTestEmail"]["__typename"] == "TestEmailSent", body
    assert any("test email" in m[2] and m[1] == ["admin@example.com"] for m in inbox.messages)

    job = await create_job(platform, admin_token, unique_loopback(), closed_port())
    receiver.statuses[:] = [500]  # the first delivery fails: retried with backoff, then 200
    name = f"failed runs {uuid.uuid4().hex[:6]}"
    body = await gql(
        url,
        RULE,
        {
            "i": {
                "name": name,
                "eventTypes": ["executions.execution_finished"],
                "outcome": "FAILURE",
                "threshold": 2,
                "windowSeconds": 600,
                "severity": "ERROR",
                "groupBy": "data.jobId",
                "channels": [
                    {"type": "EMAIL", "target": "oncall@example.com"},
                    {"type": "WEBHOOK", "target": receiver.url, "secret": SECRET},
                ],
            }
        },
        token=admin_token,
    )
    created = body["data"]["createAlertRule"]
    assert created["__typename"] == "AlertRuleSaved", body
    assert {"type": "WEBHOOK", "target": receiver.url, "hasSecret": True} in created["rule"]["channels"]
    assert SECRET not in str(body)

    for _ in range(2):
        body = await gql(platform.url("executions"), RUN, {"job": job}, token=admin_token)
        assert body["data"]["runJob"]["__typename"] == "ExecutionStarted", body

    async def alert() -> dict[str, Any] | None:
        body = await gql(url, ALERTS, {"f": {"groupKey": job}}, token=admin_token)
        edges = body["data"]["alerts"]["edges"]
        return edges[0]["node"] if edges else None

    raised = await _wait(alert, "the alert")
    assert raised["status"] == "ACTIVE" and raised["severity"] == "ERROR" and name in raised["title"]
    assert raised["history"][0]["action"] == "RAISED" and raised["history"][0]["actorName"] == "system"

    await _wait(lambda: _true(any(m[1] == ["oncall@example.com"] for m in inbox.messages)), "the email")
    mail = next(m for m in inbox.messages if m[1] == ["oncall@example.com"])
    assert "Subject: [OpsConductor] ERROR:" in mail[2] and raised["id"] in mail[2]

    await _wait(lambda: _true(len(receiver.requests) >= 2), "the webhook retry")
    deliveries = {h[signing.DELIVERY_HEADER.lower()] for h, _ in receiver.requests}
    assert len(deliveries) == 1  # one delivery, two attempts
    for headers, payload in receiver.requests:
        assert signing.verify(
            SECRET,
            payload,
            headers[signing.TIMESTAMP_HEADER.lower()],
            headers[signing.SIGNATURE_HEADER.lower()],
        )
        assert not signing.verify(
            "wrong-secret-0123456789",
            payload,
            headers[signing.TIMESTAMP_HEADER.lower()],
            headers[signing.SIGNATURE_HEADER.lower()],
        )
    assert raised["id"].encode() in receiver.requests[-1][1]

    async def logged() -> list[dict[str, Any]] | None:
        node = await alert()
        hooks = [n for n in (node or {}).get("notifications", []) if n["channel"] == "WEBHOOK"]
        return hooks if any(n["status"] == "SENT" for n in hooks) else None

    hooks = await _wait(logged, "the notification log")
    assert [(n["attempt"], n["status"]) for n in hooks] == [(1, "RETRYING"), (2, "SENT")]
    assert "HTTP 500" in (hooks[0]["error"] or "")

    body = await gql(url, ACK, {"id": raised["id"]}, token=admin_token)
    assert body["data"]["acknowledgeAlert"]["alert"]["status"] == "ACKNOWLEDGED", body
    body = await gql(url, RESOLVE, {"id": raised["id"], "n": "restarted the host"}, token=admin_token)
    resolved = body["data"]["resolveAlert"]["alert"]
    assert resolved["status"] == "RESOLVED" and resolved["resolutionNote"] == "restarted the host"
    assert [h["action"] for h in resolved["history"]][-2:] == ["ACKNOWLEDGED", "RESOLVED"]
    assert (
        resolved["history"][-1]["actorName"] == "admin"
        and resolved["history"][-1]["note"] == "restarted the host"
    )
    body = await gql(url, RESOLVE, {"id": raised["id"]}, token=admin_token)
    assert body["data"]["resolveAlert"]["__typename"] == "ValidationFailed", body


async def _true(value: bool) -> bool:
    return value


async def test_a_viewer_reads_but_cannot_manage_rules(platform: Any, admin_token: str) -> None:
    url = platform.url("audit")
    username = f"alertviewer{uuid.uuid4().hex[:6]}"
    await create_user(platform, admin_token, username, ["viewer"])
    token = await role_login(platform, username)
    body = await gql(
        url,
        RULE,
        {"i": {"name": "x", "eventTypes": ["auth.login_failed"], "threshold": 1, "windowSeconds": 60}},
        token=token,
    )
    assert body.get("data") is None or body["data"].get("createAlertRule") is None, body
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", body
    body = await gql(url, "{ alertRules { id isDefault name } }", token=admin_token)
    names = {r["name"] for r in body["data"]["alertRules"] if r["isDefault"]}
    assert {
        "Repeated job failures",
        "Target went critical",
        "Missed schedule",
        "Repeated failed logins",
        "Audit chain verification failed",
        "Service degraded",
    } <= names, body


async def test_webhook_to_metadata_address_and_bad_input_are_refused(platform: Any, admin_token: str) -> None:
    url = platform.url("audit")
    base = {"name": "meta", "eventTypes": ["auth.*"], "threshold": 1, "windowSeconds": 60}
    for channels, field_name in (
        ([{"type": "WEBHOOK", "target": "http://169.254.169.254/latest", "secret": SECRET}], "channels"),
        ([{"type": "WEBHOOK", "target": "http://127.0.0.1:9/x"}], "channels"),  # no secret
        ([{"type": "EMAIL", "target": "not an address"}], "channels"),
    ):
        body = await gql(url, RULE_FIELD, {"i": {**base, "channels": channels}}, token=admin_token)
        assert body["data"]["createAlertRule"]["__typename"] == "ValidationFailed", body
        assert body["data"]["createAlertRule"]["field"] == field_name, body
    body = await gql(url, RULE, {"i": {**base, "threshold": 0}}, token=admin_token)
    assert body["data"]["createAlertRule"]["__typename"] == "ValidationFailed", body


async def _first_event(
    url: str, query: str, token: str, after_subscribed: Any, timeout: float = 60
) -> dict[str, Any]:
    """Subscribe over graphql-transport-ws, run ``after_subscribed()``, return the first `data`."""
    import json

    import websockets

    async with websockets.connect(
        url.replace("http://", "ws://"), subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        await asyncio.sleep(0.5)  # the server listens before anything is published
        await after_subscribed()
        async with asyncio.timeout(timeout):
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                assert msg["type"] == "next", msg
                return msg["payload"]["data"]
    raise AssertionError("the subscription ended")


async def test_alert_raised_is_pushed_for_failed_logins_and_health_is_subscribable(
    platform: Any, admin_token: str
) -> None:
    url = platform.url("audit")
    who = f"nosuch{uuid.uuid4().hex[:8]}"
    body = await gql(
        url,
        RULE,
        {
            "i": {
                "name": f"logins of {who}",
                "eventTypes": ["auth.login_failed"],
                "threshold": 2,
                "windowSeconds": 300,
                "groupBy": "actorName",
                "dataMatch": {"username": who},
                "severity": "WARNING",
            }
        },
        token=admin_token,
    )
    assert body["data"]["createAlertRule"]["__typename"] == "AlertRuleSaved", body

    async def fail_twice() -> None:
        for _ in range(2):
            answer = await gql(
                platform.url("auth"),
                'mutation($u: String!) { login(username: $u, password: "wrong-password") { __typename } }',
                {"u": who},
            )
            assert "errors" in answer or answer["data"]["login"]["__typename"] != "LoginSucceeded", answer

    data = await _first_event(
        url, "subscription { alertRaised { id title groupKey severity status } }", admin_token, fail_twice
    )
    raised = data["alertRaised"]
    assert raised["groupKey"] == who and raised["status"] == "ACTIVE" and who in raised["title"], raised

    async def nothing() -> None:
        return None

    data = await _first_event(
        url, "subscription { systemHealthChanged { status services { name status } } }", admin_token, nothing
    )
    assert {s["name"] for s in data["systemHealthChanged"]["services"]} >= {"auth", "audit", "database"}

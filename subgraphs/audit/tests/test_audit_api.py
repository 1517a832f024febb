"""The audit trail through the router on the real platform (PostgreSQL, Redis, Ray, sshd): a failed
login, a role change and a job run show up in auditEvents; trails; permissions; tampering with
one row of the audit database makes verifyAuditChain fail at that row."""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from subgraphs.schedules.tests.helpers import create_job, unique_loopback
from tests.support.access import ROLE_PASSWORD, create_user
from tests.support.platform import RunningPlatform, gql, login
from tests.support.sshd import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVENTS = """query($f: AuditFilter, $first: Int, $after: String) { auditEvents(first: $first, after: $after, filter: $f) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id seq at type action outcome severity actor { id } actorName ip userAgent subjectType subjectId
    correlationId source data prevHash hash } } } }"""
VERIFY = """query($from: Int, $to: Int) { verifyAuditChain(fromSeq: $from, toSeq: $to) {
  ok checked firstBadSeq message checkpoint { seq hash signature publicKey } } }"""
RUN_JOB = """mutation($id: ID!) { runJob(jobId: $id) {
  __typename ... on ExecutionStarted { execution { id } } ... on Error { message } } }"""
LOGIN = """mutation($u: String!, $p: String!) { login(username: $u, password: $p) { __typename } }"""


async def _until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def _events(url: str, token: str, flt: dict[str, Any], first: int = 50) -> list[dict[str, Any]]:
    body = await gql(url, EVENTS, {"f": flt, "first": first}, token=token)
    assert "errors" not in body, body
    return [e["node"] for e in body["data"]["auditEvents"]["edges"]]


async def test_failed_login_role_change_and_run_are_audited(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    name = f"aud{uuid.uuid4().hex[:8]}"
    user_id = await create_user(platform, admin_token, name, ["viewer"])
    bad = await gql(router.url, LOGIN, {"u": name, "p": "wrong-password-1"})
    assert bad["data"]["login"]["__typename"] == "InvalidCredentials", bad

    async def failed_login() -> list[dict[str, Any]]:
        return await _events(router.url, admin_token, {"types": ["auth.login_failed"], "subjectId": user_id})

    (failed,) = await _until(failed_login)
    assert failed["outcome"] == "FAILURE" and failed["severity"] == "WARNING"
    assert failed["action"] == "login" and failed["subjectType"] == "User"
    assert failed["data"]["username"] == name and failed["data"]["reason"] == "bad_password"
    assert "wrong-password-1" not in str(failed)
    assert failed["ip"] is not None

    changed = await gql(
        router.url,
        """mutation($u: ID!) { setUserRoles(userId: $u, roles: ["viewer", "auditor"]) { __typename } }""",
        {"u": user_id},
        token=admin_token,
    )
    assert "errors" not in changed, changed

    async def role_change() -> list[dict[str, Any]]:
        return await _events(
            router.url, admin_token, {"types": ["users.user_roles_changed"], "subjectId": user_id}
        )

    (roles,) = await _until(role_change)
    assert roles["actor"] is not None and roles["severity"] == "WARNING"
    assert sorted(roles["data"]["roles"]) == ["auditor", "viewer"]

    async def mutation_record() -> list[dict[str, Any]]:
        got = await _events(
            router.url, admin_token, {"types": ["users.mutation"], "correlationId": roles["correlationId"]}
        )
        return [e for e in got if e["action"] == "setUserRoles"]

    (mutation,) = await _until(mutation_record)  # every mutation: who, what, outcome, from where
    assert mutation["outcome"] == "SUCCESS" and mutation["actor"]["id"] == roles["actor"]["id"]
    assert (
        mutation["ip"] and mutation["data"]["operation"] == "setUserRoles" and "roles" not in mutation["data"]
    )

    job = await create_job(platform, admin_token, unique_loopback(), closed_port())
    started = await gql(router.url, RUN_JOB, {"id": job}, token=admin_token)
    assert started["data"]["runJob"]["__typename"] == "ExecutionStarted", started
    execution = started["data"]["runJob"]["execution"]["id"]

    async def run_events() -> list[dict[str, Any]] | None:
        got = await _events(router.url, admin_token, {"subjectType": "Execution", "subjectId": execution})
        types = {e["type"] for e in got}
        return got if {"executions.execution_started", "executions.execution_finished"} <= types else None

    run = await _until(run_events, timeout=60)
    finished = next(e for e in run if e["type"] == "executions.execution_finished")
    assert finished["outcome"] == "FAILURE"  # the target's port is closed
    (digest,) = finished["data"]["targets"]  # the per-target digest (never output)
    assert digest["status"] != "SUCCEEDED" and set(digest) == {"targetId", "status", "exitCode", "message"}
    assert digest["message"]  # why it failed (the engine's reason), never output
    trails = await gql(
        router.url,
        """query($e: ID!, $j: ID!) { execution(id: $e) { auditTrail(first: 10) { edges { node { type } } } }
          job(id: $j) { auditTrail(first: 10) { totalCount edges { node { type } } } } }""",
        {"e": execution, "j": job},
        token=admin_token,
    )
    assert "errors" not in trails, trails
    run_types = {e["node"]["type"] for e in trails["data"]["execution"]["auditTrail"]["edges"]}
    assert {"executions.execution_started", "executions.execution_finished"} <= run_types
    job_types = {e["node"]["type"] for e in trails["data"]["job"]["auditTrail"]["edges"]}
    assert "jobs.job_created" in job_types
    granted = await _events(router.url, admin_token, {"types": ["targets.connection_granted"]})
    assert any(g["data"]["purpose"] == "execution" for g in granted), granted

    # the new auditor (a role change away) can read; a viewer cannot; the user sees their own trail
    auditor = await login(router.url, name, ROLE_PASSWORD)
    assert await _events(router.url, auditor, {"types": ["auth.login_failed"], "subjectId": user_id})
    viewer_name = f"vw{uuid.uuid4().hex[:8]}"
    viewer_id = await create_user(platform, admin_token, viewer_name, ["viewer"])
    viewer = await login(router.url, viewer_name, ROLE_PASSWORD)
    denied = await gql(router.url, EVENTS, {"f": {}, "first": 1}, token=viewer)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN", denied
    own = await gql(
        router.url,
        """query { me { id auditTrail(first: 10) { edges { node { type } } } } }""",
        token=viewer,
    )
    assert "errors" not in own, own
    assert own["data"]["me"]["id"] == viewer_id
    assert any(e["node"]["type"] == "users.user_created" for e in own["data"]["me"]["auditTrail"]["edges"]), (
        own
    )
    other = await gql(
        router.url,
        """query($id: ID!) { user(id: $id) { auditTrail(first: 1) { totalCount } } }""",
        {"id": user_id},
        token=viewer,
    )
    assert other.get("errors"), other


async def test_paging_and_filters(router: Any, platform: RunningPlatform, admin_token: str) -> None:
    for _ in range(3):
        await gql(router.url, LOGIN, {"u": f"ghost{uuid.uuid4().hex[:6]}", "p": "nope-nope-1"})

    async def some() -> list[dict[str, Any]]:
        got = await _events(
            router.url, admin_token, {"types": ["auth.login_failed"], "outcomes": ["FAILURE"]}
        )
        return got if len(got) >= 3 else []

    await _until(some)
    body = await gql(
        router.url, EVENTS, {"f": {"types": ["auth.login_failed"]}, "first": 2}, token=admin_token
    )
    page1 = body["data"]["auditEvents"]
    assert len(page1["edges"]) == 2 and page1["pageInfo"]["hasNextPage"] and page1["totalCount"] >= 3
    body = await gql(
        router.url,
        EVENTS,
        {"f": {"types": ["auth.login_failed"]}, "first": 2, "after": page1["pageInfo"]["endCursor"]},
        token=admin_token,
    )
    page2 = body["data"]["auditEvents"]["edges"]
    seqs = [e["node"]["seq"] for e in page1["edges"]] + [e["node"]["seq"] for e in page2]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    bad = await gql(router.url, EVENTS, {"f": {}, "first": 1, "after": "nope"}, token=admin_token)
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", bad
    stats = await gql(
        router.url,
        """{ auditStatistics { total byType { key count } byOutcome { key count } bySeverity { key count } byActor { key count } } }""",
        token=admin_token,
    )
    assert "errors" not in stats, stats
    by_type = {c["key"]: c["count"] for c in stats["data"]["auditStatistics"]["byType"]}
    assert by_type["auth.login_failed"] >= 3


async def test_editing_one_row_fails_verification_at_that_row(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    ok = await gql(router.url, VERIFY, {}, token=admin_token)
    assert ok["data"]["verifyAuditChain"]["ok"], ok
    events = await _events(router.url, admin_token, {}, first=5)
    victim = events[2]["seq"]
    dsn = platform.databases["audit"]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE audit_events SET actor_name = 'mallory' WHERE seq = $1", victim)
        broken = await gql(router.url, VERIFY, {}, token=admin_token)
        result = broken["data"]["verifyAuditChain"]
        assert not result["ok"] and result["firstBadSeq"] == victim, result
        await conn.execute(
            "UPDATE audit_events SET actor_name = $2 WHERE seq = $1", victim, events[2]["actorName"]
        )
    finally:
        await conn.close()
    again = await gql(router.url, VERIFY, {}, token=admin_token)
    assert again["data"]["verifyAuditChain"]["ok"], again

    async def chain_broken_recorded() -> list[dict[str, Any]]:
        return await _events(router.url, admin_token, {"types": ["audit.chain_broken"]})

    (alarm,) = (await _until(chain_broken_recorded))[:1]
    assert alarm["severity"] == "CRITICAL" and alarm["data"]["firstBadSeq"] == victim


EXPORT = """mutation($f: AuditFilter, $fmt: AuditExportFormat) { exportAudit(filter: $f, format: $fmt) {
  __typename ... on AuditExport { id url rows sha256 checkpoint { seq hash publicKey } } ... on Error { message } } }"""
REPORT = """mutation($k: ComplianceReportKind!, $from: DateTime!, $to: DateTime!, $fmt: ReportFormat) {
  createComplianceReport(kind: $k, from: $from, to: $to, format: $fmt) {
  __typename ... on ComplianceReport { id kind url rows sha256 checkpoint { seq } } ... on Error { message } } }"""


def _cli_verify(path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("opsconductor")), "audit", "verify", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout)


async def _download(url: str, token: str | None, dest: Path) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=60) as http, http.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 200:
            with dest.open("wb") as fh:
                async for chunk in resp.aiter_bytes():
                    fh.write(chunk)
        return resp


def _tamper_action(line: str, csv_header: str | None) -> str:
    """``line`` (one exported event) with its ``action`` changed by one character."""
    if csv_header is None:
        event = json.loads(line)
        event["action"] += "x"
        return json.dumps(event, separators=(",", ":")) + "\n"
    column = next(csv.reader([csv_header])).index("action")
    row = next(csv.reader([line]))
    row[column] += "x"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["NDJSON", "CSV"])
async def test_export_verifies_offline_and_a_tampered_copy_does_not(
    router: Any, platform: RunningPlatform, admin_token: str, tmp_path: Path, fmt: str
) -> None:
    await gql(router.url, LOGIN, {"u": f"exp{uuid.uuid4().hex[:6]}", "p": "nope-nope-1"})
    body = await gql(router.url, EXPORT, {"f": None, "fmt": fmt}, token=admin_token)
    export = body["data"]["exportAudit"]
    assert export["__typename"] == "AuditExport", body
    assert export["rows"] > 0 and export["checkpoint"]["seq"] >= export["rows"]
    dest = tmp_path / f"export.{fmt.lower()}"
    resp = await _download(export["url"], admin_token, dest)
    assert resp.status_code == 200
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == export["sha256"]
    assert (await _download(export["url"], None, tmp_path / "x")).status_code == 401

    key = (await gql(router.url, "{ auditPublicKey { publicKey } }", token=admin_token))["data"][
        "auditPublicKey"
    ]
    code, report = _cli_verify(dest, "--public-key", key["publicKey"])
    assert code == 0 and report["ok"] and report["signatureOk"], report
    assert report["events"] == export["rows"]

    # one event's `action` (a field every event has) changed: the CLI names it. Which event comes
    # first depends on what the session recorded before (e.g. health changes), so no guessing.
    lines = dest.read_text().splitlines(keepends=True)
    index = 3 if fmt == "CSV" else 2
    victim = lines[index]
    lines[index] = _tamper_action(victim, lines[1] if fmt == "CSV" else None)
    assert lines[index] != victim
    tampered = tmp_path / f"tampered.{fmt.lower()}"
    tampered.write_text("".join(lines))
    code, report = _cli_verify(tampered)
    assert code == 1 and not report["ok"] and report["firstBadSeq"] is not None, report
    # a checkpoint signed by someone else's key is refused when the real key is pinned
    code, report = _cli_verify(dest, "--public-key", base64.b64encode(b"\x01" * 32).decode())
    assert code == 1 and report["signatureOk"] is False


async def test_filtered_export_and_permissions(
    router: Any, platform: RunningPlatform, admin_token: str, tmp_path: Path
) -> None:
    body = await gql(
        router.url, EXPORT, {"f": {"types": ["auth.login_failed"]}, "fmt": "NDJSON"}, token=admin_token
    )
    export = body["data"]["exportAudit"]
    dest = tmp_path / "failed.ndjson"
    assert (await _download(export["url"], admin_token, dest)).status_code == 200
    code, report = _cli_verify(dest)
    assert code == 0 and report["ok"], report
    types = {json.loads(line).get("type") for line in dest.read_text().splitlines()[1:-1]}
    assert types == {"auth.login_failed"}
    name = f"vx{uuid.uuid4().hex[:8]}"
    await create_user(platform, admin_token, name, ["viewer"])
    viewer = await login(router.url, name, ROLE_PASSWORD)
    denied = await gql(router.url, EXPORT, {"f": None, "fmt": "CSV"}, token=viewer)
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN", denied

    async def denial() -> list[dict[str, Any]]:
        got = await _events(router.url, admin_token, {"types": ["audit.mutation"], "outcomes": ["DENIED"]})
        return [e for e in got if e["data"]["operation"] == "exportAudit" and e["data"]["actorName"] == name]

    (record,) = await _until(denial)
    assert record["data"]["error"] == "FORBIDDEN" and record["severity"] == "WARNING"
    assert (await _download(export["url"], viewer, tmp_path / "y")).status_code == 403


async def test_compliance_reports(
    router: Any, platform: RunningPlatform, admin_token: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(minutes=1)).isoformat()}
    for kind in (
        "RUNS_BY_TARGET",
        "PRIVILEGE_CHANGES",
        "LOGINS",
        "CREDENTIAL_USE",
        "CONFIGURATION_CHANGES",
        "DANGEROUS_COMMANDS",
        "STALE_ACCESS",
    ):
        for fmt in ("CSV", "JSON"):
            body = await gql(router.url, REPORT, {"k": kind, **window, "fmt": fmt}, token=admin_token)
            report = body["data"]["createComplianceReport"]
            assert report["__typename"] == "ComplianceReport" and report["kind"] == kind, body
            dest = tmp_path / f"{kind}.{fmt.lower()}"
            assert (await _download(report["url"], admin_token, dest)).status_code == 200
            assert hashlib.sha256(dest.read_bytes()).hexdigest() == report["sha256"]
            code, verified = _cli_verify(dest)
            assert code == 0 and verified["signatureOk"], (kind, fmt, verified)
            if fmt == "JSON":
                rows = json.loads(dest.read_text())["rows"]
                assert len(rows) == report["rows"]
                if kind == "LOGINS":
                    assert {r["type"] for r in rows} >= {"auth.login_failed", "auth.login_succeeded"}
                if kind == "PRIVILEGE_CHANGES":
                    assert any(r["type"] == "users.user_roles_changed" for r in rows)
                if kind == "RUNS_BY_TARGET":
                    assert rows and rows[0]["runs"] >= 1
    bad = await gql(
        router.url, REPORT, {"k": "LOGINS", "from": window["to"], "to": window["from"]}, token=admin_token
    )
    assert bad["data"]["createComplianceReport"]["__typename"] == "ValidationFailed", bad

    async def failure() -> list[dict[str, Any]]:
        got = await _events(router.url, admin_token, {"types": ["audit.mutation"], "outcomes": ["FAILURE"]})
        return [e for e in got if e["data"]["operation"] == "createComplianceReport"]

    (record,) = (await _until(failure))[:1]
    assert record["data"]["error"] == "ValidationFailed" and record["actor"] is not None

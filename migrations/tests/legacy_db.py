"""The tests' own legacy database generator: a fresh PostgreSQL database shaped like the
monolith's (legacy_schema.sql, from LEGACY.md §1) holding both job-schema eras at once, every
credential type (encrypted with the legacy Fernet scheme, implemented here independently of the
importer), soft deletes, the four target-serial formats, schedules with history, archived tables,
and an ``audit.log`` with a tampered and a malformed line."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
from cryptography.fernet import Fernet

SCHEMA = Path(__file__).with_name("legacy_schema.sql")
SECRET_KEY = "legacy-monolith-secret"  # shorter than 32 bytes: the '0' padding quirk applies
T0 = datetime(2025, 8, 15, 9, 0, tzinfo=UTC)


def legacy_encrypt(secret_key: str, data: dict[str, Any]) -> str:
    key = base64.urlsafe_b64encode(secret_key.encode()[:32].ljust(32, b"0"))
    token = Fernet(key).encrypt(json.dumps(data).encode())
    return base64.urlsafe_b64encode(token).decode()


def bcrypt_hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@dataclass
class LegacyFixture:
    dsn: str
    audit_log: Path
    passwords: dict[str, str]
    target_serials: dict[int, str]
    target_uuids: dict[int, str]
    job_serials: dict[int, str]
    counts: dict[str, int] = field(default_factory=dict[str, int])


async def build_legacy_db(
    admin_dsn: str,
    tmp: Path,
    *,
    ssh_host: str,
    ssh_port: int,
    ssh_user: str,
    ssh_password: str,
    key_host: str,
    key_user: str,
    key_pem: str,
) -> LegacyFixture:
    name = f"opsc_legacy_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = f"{admin_dsn.rsplit('/', 1)[0]}/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA.read_text())
        return await _fill(
            conn,
            dsn,
            tmp,
            ssh_host=ssh_host,
            ssh_port=ssh_port,
            ssh_user=ssh_user,
            ssh_password=ssh_password,
            key_host=key_host,
            key_user=key_user,
            key_pem=key_pem,
        )
    finally:
        await conn.close()


async def drop_legacy_db(admin_dsn: str, dsn: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def _fill(
    conn: asyncpg.Connection,
    dsn: str,
    tmp: Path,
    *,
    ssh_host: str,
    ssh_port: int,
    ssh_user: str,
    ssh_password: str,
    key_host: str,
    key_user: str,
    key_pem: str,
) -> LegacyFixture:
    passwords = {
        "admin": "admin123",
        "alice": "alice-Old-pass1",
        "bob": "bob-Old-pass2",
        "gwen": "gwen-Old-pass3",
    }
    users = [
        ("admin", "admin@opsconductor.com", "administrator", True),
        ("alice", "alice@example.com", "manager", True),
        ("bob", "bob@example.com", "user", False),  # deactivated (legacy soft delete)
        ("gwen", "gwen@example.com", "guest", True),
    ]
    for username, email, role, active in users:
        await conn.execute(
            "INSERT INTO users (username, email, password_hash, role, is_active, last_login) VALUES ($1,$2,$3,$4,$5,$6)",
            username,
            email,
            bcrypt_hash(passwords[username]),
            role,
            active,
            T0,
        )
    await conn.execute(  # a name our rules refuse: reported as skipped
        "INSERT INTO users (username, email, password_hash, role) VALUES ('bad name!', 'bad@example.com', $1, 'user')",
        bcrypt_hash("x"),
    )
    await conn.execute(
        "INSERT INTO user_sessions (user_id, session_token, expires_at) VALUES (2, 'tok-a', $1), (3, 'tok-b', $1)",
        T0 + timedelta(hours=8),
    )
    for key, value in {
        "timezone": "UTC",
        "inactivity_timeout_minutes": 60,
        "warning_time_minutes": 2,
        "max_concurrent_jobs": 50,
        "log_retention_days": 30,
    }.items():
        await conn.execute(
            "INSERT INTO system_settings (setting_key, setting_value) VALUES ($1, $2)", key, json.dumps(value)
        )

    # targets: the four serial formats, a duplicate name, a soft delete. TGT-NNNNNN serials are
    # high: the session's platform issues TGT-000001... to other tests' targets, and the importer
    # rightly refuses a serial that already belongs to another target.
    targets = [
        ("TGT-900001", "web-1", "linux", True, "development"),
        ("TGT-2025-000002", "web-1", "linux", True, "testing"),  # same name, by design
        ("T20250000003", "db-1", "postgresql", True, "production"),
        ("TGT-20250818-AB12", "switch-1", "cisco_switch", True, "development"),
        ("TGT-900005", "old-box", "windows", False, "testing"),  # soft-deleted
        ("TGT-900006", "api-1", "generic_device", True, "development"),
        ("TGT-900007", "mail-1", "smtp_server", True, "development"),
    ]
    uuids: dict[int, str] = {}
    for i, (serial, tname, os_type, active, env) in enumerate(targets, start=1):
        u = str(uuid.uuid4())
        uuids[i] = u
        await conn.execute(
            "INSERT INTO universal_targets (target_uuid, target_serial, name, os_type, is_active, environment, created_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)",
            uuid.UUID(u),
            serial,
            tname,
            os_type,
            active,
            env,
            T0,
        )
    methods = [  # (target, type, config, primary, priority)
        (1, "ssh", {"host": ssh_host, "port": ssh_port, "timeout": 30, "key_algorithm": "rsa"}, True, 1),
        (2, "ssh", {"host": key_host, "port": ssh_port, "timeout": 30}, True, 1),
        (
            3,
            "postgresql",
            {"host": "127.0.20.3", "port": 5432, "database": "postgres", "ssl_mode": "prefer"},
            True,
            1,
        ),
        (
            4,
            "snmp",
            {"host": "127.0.20.4", "port": 161, "version": "2c", "community": "public", "retries": 3},
            True,
            1,
        ),
        (5, "winrm", {"host": "127.0.20.5", "port": 5985, "transport": "plaintext"}, True, 1),
        (6, "rest_api", {"host": "127.0.20.6", "port": 80, "protocol": "http", "base_path": "/"}, True, 1),
        (6, "ssh", {"host": "127.0.20.6", "port": 22}, False, 2),
        (7, "smtp", {"host": "127.0.20.7", "port": 587, "use_tls": True}, True, 1),
    ]
    for tid, mtype, cfg, primary, prio in methods:
        await conn.execute(
            "INSERT INTO target_communication_methods (target_id, method_type, method_name, is_primary, priority, config)"
            " VALUES ($1,$2,$3,$4,$5,$6)",
            tid,
            mtype,
            f"{mtype}_20250815_090000",
            primary,
            prio,
            json.dumps(cfg),
        )
    creds = [  # (method id, type, plaintext or raw stored text)
        (1, "password", {"type": "password", "username": ssh_user, "password": ssh_password}),
        (2, "ssh_key", {"type": "ssh_key", "username": key_user, "private_key": key_pem}),
        (3, "password", {"type": "password", "username": "postgres", "password": "pg-secret"}),
        (4, "snmp_community", {"type": "password", "username": "", "password": "s3cret-community"}),
        (5, "password", {"type": "password", "username": "Administrator", "password": "win-pass"}),
        (6, "api_key", {"type": "password", "username": "svc", "password": "api-key-123"}),
        (7, "api_token", {"type": "ssh_key", "username": "svc", "private_key": "token-abc"}),
    ]
    for mid, ctype, plain in creds:
        await conn.execute(
            "INSERT INTO target_credentials (communication_method_id, credential_type, credential_name, is_primary,"
            " encrypted_credentials) VALUES ($1,$2,$3,true,$4)",
            mid,
            ctype,
            f"{plain['username']}_{ctype}",
            legacy_encrypt(SECRET_KEY, plain),
        )
    await conn.execute(  # encrypted under another key: must be reported, not guessed
        "INSERT INTO target_credentials (communication_method_id, credential_type, credential_name, encrypted_credentials)"
        " VALUES (8, 'password', 'mail_password', $1)",
        legacy_encrypt("some-other-key", {"type": "password", "username": "mail", "password": "x"}),
    )
    await conn.execute(
        "INSERT INTO target_credentials (communication_method_id, credential_type, credential_name, encrypted_credentials)"
        " VALUES (8, 'password', 'mail_garbage', 'not base64 at all!')"
    )

    # jobs: era 1 (J-serials, branches, action results, logs) and era 2 (flat results, retry rows)
    job_serials = {1: "J20250000001", 2: "JOB-000002", 3: "JOB-2025-000003", 4: "JOB-000004"}
    jobs = [
        (1, "era1 hello", "completed", False, None),
        (2, "era2 all targets", "failed", False, None),
        (3, "deleted job", "deleted", True, None),
        (4, "one shot", "scheduled", False, datetime(2030, 1, 1, 12, 0, tzinfo=UTC)),
    ]
    for jid, jname, status, deleted, sched in jobs:
        await conn.execute(
            "INSERT INTO jobs (name, status, created_by, is_deleted, deleted_at, scheduled_at, job_serial, created_at)"
            " VALUES ($1,$2,2,$3,$4,$5,$6,$7)",
            jname,
            status,
            deleted,
            T0 if deleted else None,
            sched,
            job_serials[jid],
            T0,
        )
    actions = [  # (job, order, name, command)
        (1, 1, "greet", "echo hello"),
        (1, 2, "fail", "exit 3"),
        (2, 1, "uptime", "uptime"),
        (3, 1, "noop", "true"),
        (4, 1, "later", "date"),
    ]
    for jid, order, aname, cmd in actions:
        await conn.execute(
            "INSERT INTO job_actions (job_id, action_order, action_type, action_name, action_parameters)"
            " VALUES ($1,$2,'command',$3,$4)",
            jid,
            order,
            aname,
            json.dumps({"command": cmd, "captureOutput": True}),
        )
    for jid, tid in [(1, 1), (1, 2), (3, 3), (4, 1)]:  # job 2 has none: "all active targets"
        await conn.execute("INSERT INTO job_targets (job_id, target_id) VALUES ($1,$2)", jid, tid)
    execs = [  # (job, number, status, serial)
        (1, 1, "failed", "J20250000001.0001"),
        (2, 1, "failed", "EXEC-00000002"),
        (2, 2, "running", "EXEC-00000003"),  # never ended
    ]
    for jid, num, status, serial in execs:
        await conn.execute(
            "INSERT INTO job_executions (job_id, execution_number, status, started_at, completed_at, total_targets,"
            " execution_serial, created_at) VALUES ($1,$2,$3,$4,$5,2,$6,$4)",
            jid,
            num,
            status,
            T0,
            T0 + timedelta(seconds=5),
            serial,
        )
    for b, tid in [(1, 1), (2, 2)]:  # era 1: execution 1, two branches
        await conn.execute(
            "INSERT INTO job_execution_branches (job_execution_id, target_id, branch_serial, branch_id, status,"
            " started_at, completed_at, exit_code) VALUES (1,$1,$2,$3,'failed',$4,$5,3)",
            tid,
            f"J20250000001.0001.{b:04d}",
            f"{b:03d}",
            T0,
            T0 + timedelta(seconds=2),
        )
        for order, (aname, cmd, out, code, st) in enumerate(
            [("greet", "echo hello", "hello\n", 0, "completed"), ("fail", "exit 3", "", 3, "failed")], start=1
        ):
            await conn.execute(
                "INSERT INTO job_action_results (branch_id, action_id, action_serial, action_order, action_name,"
                " action_type, status, result_output, result_error, exit_code, command_executed, execution_time_ms)"
                " VALUES ($1,$2,$3,$4,$5,'command',$6,$7,$8,$9,$10,12)",
                b,
                order,
                f"J20250000001.0001.{b:04d}.{order:04d}",
                order,
                aname,
                st,
                out,
                "" if code == 0 else "boom",
                code,
                cmd,
            )
        await conn.execute(
            "INSERT INTO job_execution_logs (job_execution_id, branch_id, log_phase, log_level, log_category,"
            " log_message, timestamp) VALUES (1,$1,'authentication','info','authentication','authenticated',$2),"
            " (1,$1,'action_execution','error','command_execution','action fail exited 3',$3)",
            b,
            T0 + timedelta(seconds=1),
            T0 + timedelta(seconds=2),
        )
    await conn.execute(
        "INSERT INTO job_execution_logs (job_execution_id, log_phase, log_category, log_message, timestamp)"
        " VALUES (1,'creation','system','execution created',$1)",
        T0,
    )
    banner = "Connection: ssh 127.0.0.1:22\nUser: opsc\nCONNECTED\n" + "=" * 40 + "\n"
    era2 = [  # (execution, target, action name, status, out, err, code)
        (2, 1, "uptime", "failed", banner, "timeout", 124),
        (2, 1, "uptime (Retry 1)", "failed", banner, "timeout", 124),
        (2, 1, "uptime (Retry Mechanism)", "completed", banner + " 10:00 up 3 days", "", 0),
        (2, 3, "uptime", "completed", banner + " 10:00 up 9 days", "", 0),
    ]
    for eid, tid, aname, st, out, err, code in era2:
        await conn.execute(
            "INSERT INTO job_execution_results (execution_id, target_id, target_name, action_id, action_order,"
            " action_name, action_type, status, started_at, completed_at, execution_time_ms, output_text, error_text,"
            " exit_code, command_executed) VALUES ($1,$2,$3,3,1,$4,'command',$5,$6,$7,40,$8,$9,$10,'uptime')",
            eid,
            tid,
            f"target-{tid}",
            aname,
            st,
            T0,
            T0 + timedelta(seconds=1),
            out,
            err,
            code,
        )

    schedules = [  # weekly (UI days 1,3 = Mon, Wed) in Berlin; cron UTC; an unknown recurring_type
        dict(
            job_id=1,
            schedule_type="recurring",
            recurring_type="weekly",
            interval=1,
            time="09:00",
            days_of_week="1,3",
            timezone="Europe/Berlin",
            next_run=datetime(2025, 8, 18, 9, 0, tzinfo=UTC),
        ),
        dict(
            job_id=2,
            schedule_type="cron",
            cron_expression="*/15 * * * *",
            timezone="UTC",
            next_run=datetime(2025, 8, 15, 9, 15, tzinfo=UTC),
        ),
        dict(job_id=2, schedule_type="recurring", recurring_type="fortnightly", timezone="UTC"),
    ]
    for s in schedules:
        cols = ", ".join(s)
        marks = ", ".join(f"${i}" for i in range(1, len(s) + 1))
        await conn.execute(f"INSERT INTO job_schedules ({cols}) VALUES ({marks})", *s.values())  # noqa: S608
    for sched_at, status, exec_id in [
        (T0, "completed", 1),
        (T0, "completed", None),
        (T0 + timedelta(days=2), "skipped", None),
    ]:
        await conn.execute(
            "INSERT INTO schedule_executions (job_schedule_id, job_execution_id, scheduled_at, started_at, status)"
            " VALUES (1,$1,$2,$2,$3)",
            exec_id,
            sched_at,
            status,
        )
    await conn.execute(
        "INSERT INTO notification_templates (name, subject_template, body_template) VALUES ('job_failed', 'Job {{name}} failed', 'Body')"
    )
    await conn.execute(
        "INSERT INTO alert_rules (name, metric_type, condition, threshold_value, severity, notification_channels)"
        " VALUES ('failure rate', 'job_failure_rate', 'gt', 10, 'warning', '[\"email\"]')"
    )
    await conn.execute(
        "INSERT INTO device_types (value, label, category) VALUES ('linux', 'Linux', 'operating_system')"
    )
    await conn.execute(
        "INSERT INTO discovery_jobs (name, network_ranges, status) VALUES ('lan', '[\"127.0.30.0/24\"]', 'completed')"
    )
    await conn.execute(
        "INSERT INTO discovered_devices (discovery_job_id, ip_address, status, target_id) VALUES (1, '127.0.30.5', 'ignored', NULL)"
    )

    audit = tmp / "audit.log"
    lines = []
    for i, event in enumerate(["user_login", "target_created", "job_executed"]):
        entry = {
            "id": f"audit_{1755248400000000 + i}",
            "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
            "event_type": event,
            "user_id": 2,
            "resource_type": "system",
            "resource_id": str(i),
            "action": event,
            "details": {},
            "severity": "info",
            "ip_address": "127.0.0.1",
            "user_agent": "t",
        }
        entry["checksum"] = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        lines.append(json.dumps(entry))
    tampered = json.loads(lines[1])
    tampered["severity"] = "critical"  # edited after the fact: checksum no longer matches
    lines[1] = json.dumps(tampered)
    lines.append("{not json")
    audit.write_text("\n".join(lines) + "\n")
    return LegacyFixture(
        dsn=dsn,
        audit_log=audit,
        passwords=passwords,
        target_serials={i: t[0] for i, t in enumerate(targets, start=1)},
        target_uuids=uuids,
        job_serials=job_serials,
        counts={
            "users": 5,
            "universal_targets": 7,
            "target_communication_methods": 8,
            "target_credentials": 9,
            "jobs": 4,
            "job_executions": 3,
        },
    )

"""The migration run: legacy tables in order, each row through the owning subgraph's import function.

Every write is one transaction in one service's database and an upsert keyed by legacy ids, so a
second run changes nothing and a run killed half-way resumes to the same end state. ``dry_run``
reads, decrypts and maps everything but opens no service database (nothing is written).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from opsconductor_auth.models import Credential as AuthCredential
from opsconductor_auth.service import import_legacy_credential as import_password_hash
from opsconductor_jobs.service.store import ensure_counters
from opsconductor_migrate import runs
from opsconductor_migrate.audit import audit_present, import_audit_log
from opsconductor_migrate.dbs import SERVICES, Databases
from opsconductor_migrate.fernet import LegacyDecryptError, decrypt, legacy_fernet, secret_of
from opsconductor_migrate.models import LegacyArchive
from opsconductor_migrate.report import Report, TableReport, checksum
from opsconductor_migrate.source import Source
from opsconductor_shared.errors import DomainError
from opsconductor_shared.legacy import Outcome, upsert
from opsconductor_targets.service.catalog import seed_device_types
from opsconductor_targets.service.legacy import (
    LegacySecret,
    import_legacy_credential,
    import_legacy_method,
    import_legacy_target,
    legacy_method_id,
)
from opsconductor_targets.service.vault import Vault, load_keyring
from opsconductor_targets.settings import Settings as TargetsSettings
from opsconductor_users.service.catalog import canonical_role, seed_roles
from opsconductor_users.service.legacy import upsert_legacy_user

__all__ = ["ARCHIVED", "InjectedFailure", "Migration"]

ARCHIVED = {
    "system_settings": "no settings service yet",
    "notification_templates": "no notifications service yet",
    "notification_logs": "no notifications service yet",
    "alert_rules": "no alerting service yet",
    "alert_logs": "no alerting service yet",
    "analytics_alert_rules": "no alerting service yet",
    "discovery_jobs": "no discovery service yet",
    "discovered_devices": "no discovery service yet",
    "discovery_templates": "no discovery service yet",
    "discovery_schedules": "no discovery service yet",
    "device_types": "targets seeds its own catalogue; legacy rows kept for review",
    "device_type_categories": "targets seeds its own catalogue; legacy rows kept for review",
    "device_type_templates": "no device-type templates feature yet",
    "device_type_usage": "no device-type usage feature yet",
    "performance_metrics": "analytics are recomputed from runs; kept for history",
    "system_health_snapshots": "kept for history",
    "report_templates": "no reports feature yet",
    "generated_reports": "no reports feature yet",
    "celery_task_history": "the engine is Ray; kept for history",
    "celery_metrics_snapshots": "the engine is Ray; kept for history",
}


class InjectedFailure(RuntimeError):
    """``OPSC_MIGRATE_FAIL_AFTER=N``: stop after N written rows (tests simulate a killed run)."""


@dataclass
class Maps:
    users: dict[int, str] = field(default_factory=dict[int, str])
    targets: dict[int, dict[str, Any]] = field(default_factory=dict[int, dict[str, Any]])
    methods: dict[int, str] = field(default_factory=dict[int, str])
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict[int, dict[str, Any]])
    executions: dict[int, str] = field(default_factory=dict[int, str])


class Migration:
    def __init__(self, *, source: Source, secret_key: str, dry_run: bool, progress: Any = None) -> None:
        self.source = source
        self.fernet: Fernet = legacy_fernet(secret_key)
        self.dry_run = dry_run
        self.report = Report(dry_run=dry_run)
        self.dbs = Databases()
        self.maps = Maps()
        self.progress = progress
        self.vault: Vault | None = None
        self.writes = 0
        fail_after = os.environ.get("OPSC_MIGRATE_FAIL_AFTER")
        self.fail_after = int(fail_after) if fail_after else None
        self.data: dict[str, list[dict[str, Any]]] = {}

    # ---- helpers ----------------------------------------------------------------------------

    def wrote(self) -> None:
        self.writes += 1
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise InjectedFailure(f"injected failure after {self.writes} written rows")

    @staticmethod
    def count(t: TableReport, outcome: Outcome) -> None:
        if outcome is Outcome.CREATED:
            t.created += 1
        elif outcome is Outcome.UPDATED:
            t.updated += 1
        else:
            t.unchanged += 1

    def tick(self, n: int = 1) -> None:
        if self.progress is not None:
            self.progress(n)

    async def load(self) -> None:
        for table in [
            "users",
            "user_sessions",
            "universal_targets",
            "target_communication_methods",
            "target_credentials",
            "jobs",
            "job_actions",
            "job_targets",
            "job_executions",
            "job_execution_results",
            "job_execution_branches",
            "job_action_results",
            "job_execution_logs",
            "job_schedules",
            "schedule_executions",
        ]:
            rows = await self.source.rows(table)
            if rows is None:
                self.report.table(table, "absent", "not in this legacy database")
            self.data[table] = rows or []

    def total_rows(self) -> int:
        return sum(len(v) for v in self.data.values())

    # ---- the run ----------------------------------------------------------------------------

    async def run(self, archived_rows: dict[str, list[dict[str, Any]] | None], audit_log: Path) -> Report:
        if not self.dry_run:
            await self.dbs.open((*SERVICES, "audit") if audit_present() else SERVICES)
            with self.dbs.dbs["targets"].bind():
                self.vault = Vault(load_keyring(TargetsSettings()))
            await self.prepare()
        try:
            await self.users()
            await self.targets()
            await runs.jobs(self)
            await runs.executions(self)
            await runs.schedules(self)
            await self.archive(archived_rows)
            await import_audit_log(self, audit_log)
            if not self.dry_run:
                from opsconductor_migrate.verify import verify

                await verify(self)
        finally:
            await self.dbs.close()
        return self.report

    async def prepare(self) -> None:
        """What each service does at start-up before it takes writes (idempotent, its own code):
        the role catalogue, the job counter, the target counter and device types."""
        async with self.dbs.read("users"):
            await seed_roles()  # outside a transaction, as the users service does
        async with self.dbs.tx("jobs"):
            await ensure_counters()
        async with self.dbs.read("targets"):
            await seed_device_types()

    async def users(self) -> None:
        t = self.report.table("users", "imported", "bcrypt hashes kept (rehashed to argon2id on first login)")
        s = self.report.table("user_sessions", "skipped", "sessions are not carried: users log in again")
        for row in self.data["user_sessions"]:
            s.read += 1
            s.skip(row["id"], "sessions are not carried")
            self.tick()
        for row in self.data["users"]:
            t.read += 1
            self.tick()
            role = canonical_role(str(row.get("role") or "user"))
            t.checksums[str(row["id"])] = checksum(
                [
                    row["username"].strip(),
                    row["email"].strip().lower(),
                    bool(row.get("is_active", True)),
                    role,
                ]
            )
            if self.dry_run:
                t.created += 1
                continue
            try:
                async with self.dbs.tx("users"):
                    record, created = await upsert_legacy_user(
                        legacy_id=row["id"],
                        username=row["username"],
                        email=row["email"],
                        role=str(row.get("role") or "user"),
                        is_active=bool(row.get("is_active", True)),
                        last_login_at=row.get("last_login"),
                    )
            except DomainError as exc:
                t.checksums.pop(str(row["id"]), None)
                t.skip(row["id"], f"{row['username']}: {exc.message}")
                continue
            self.maps.users[row["id"]] = record.id
            async with self.dbs.tx("auth"):
                cred = await AuthCredential.get_or_none(user_id=record.id)
                hash_new = cred is None or not cred.password_hash
                if hash_new:
                    await import_password_hash(
                        user_id=record.id,
                        username=record.username,
                        password_hash=row["password_hash"],
                        roles=list(record.roles),
                        permissions=list(record.permissions),
                        is_active=record.is_active,
                    )
            self.count(t, Outcome.CREATED if created or hash_new else Outcome.UNCHANGED)
            self.wrote()

    async def targets(self) -> None:
        t = self.report.table("universal_targets", "imported", "uuid and serial kept; soft deletes kept")
        m = self.report.table("target_communication_methods", "imported", "config.host/port -> host/port")
        c = self.report.table(
            "target_credentials", "imported", "legacy Fernet decrypted, re-encrypted by the vault"
        )
        methods_by_target: dict[int, list[dict[str, Any]]] = {}
        for row in self.data["target_communication_methods"]:
            methods_by_target.setdefault(row["target_id"], []).append(row)
        for row in self.data["universal_targets"]:
            t.read += 1
            self.tick()
            primary = next(
                (mm for mm in methods_by_target.get(row["id"], []) if mm.get("is_primary")),
                (methods_by_target.get(row["id"]) or [None])[0],
            )
            cfg = (primary or {}).get("config") or {}
            self.maps.targets[row["id"]] = {
                "id": str(row["target_uuid"]),
                "name": row["name"],
                "active": bool(row.get("is_active", True)),
                "host": str(cfg.get("host") or ""),
                "port": int(cfg.get("port") or 22) if str(cfg.get("port") or "22").isdigit() else 22,
            }
            t.checksums[str(row["id"])] = checksum(
                [
                    str(row["target_uuid"]),
                    row["target_serial"],
                    row["name"],
                    bool(row.get("is_active", True)),
                    row["os_type"],
                ]
            )
            if self.dry_run:
                t.created += 1
                continue
            try:
                async with self.dbs.tx("targets"):
                    _, outcome = await import_legacy_target(
                        target_uuid=str(row["target_uuid"]),
                        serial=row["target_serial"],
                        name=row["name"],
                        os_type=row["os_type"],
                        description=row.get("description"),
                        environment=row.get("environment") or "development",
                        location=row.get("location"),
                        data_center=row.get("data_center"),
                        region=row.get("region"),
                        status=row.get("status") or "active",
                        health_status=row.get("health_status") or "unknown",
                        is_active=bool(row.get("is_active", True)),
                        created_at=row.get("created_at"),
                    )
            except DomainError as exc:
                self.maps.targets.pop(row["id"])
                t.checksums.pop(str(row["id"]), None)
                t.skip(row["id"], exc.message)
                continue
            self.count(t, outcome)
            self.wrote()
        for row in self.data["target_communication_methods"]:
            m.read += 1
            self.tick()
            target = self.maps.targets.get(row["target_id"])
            if target is None:
                m.skip(row["id"], f"its target {row['target_id']} was not imported")
                continue
            cfg = dict(row.get("config") or {})
            m.checksums[str(row["id"])] = checksum(
                [
                    target["id"],
                    row["method_type"],
                    str(cfg.get("host") or "").lower(),
                    row.get("priority") or 1,
                    bool(row.get("is_primary")),
                    bool(row.get("is_active", True)),
                ]
            )
            self.maps.methods[row["id"]] = legacy_method_id(row["id"])
            if self.dry_run:
                m.created += 1
                continue
            try:
                async with self.dbs.tx("targets"):
                    result = await import_legacy_method(
                        legacy_id=row["id"],
                        target_id=target["id"],
                        method_type=row["method_type"],
                        config=cfg,
                        is_primary=bool(row.get("is_primary")),
                        is_active=bool(row.get("is_active", True)),
                        priority=int(row.get("priority") or 1),
                        created_at=row.get("created_at"),
                    )
            except DomainError as exc:
                self.maps.methods.pop(row["id"])
                m.checksums.pop(str(row["id"]), None)
                m.skip(row["id"], exc.message)
                continue
            if result.dropped_keys:
                self.report.notes.append(
                    f"method {row['id']}: config keys that look like secrets were not kept: "
                    f"{', '.join(result.dropped_keys)}"
                )
            self.count(m, result.outcome)
            self.wrote()
        for row in self.data["target_credentials"]:
            c.read += 1
            self.tick()
            method_id = self.maps.methods.get(row["communication_method_id"])
            if method_id is None:
                c.skip(row["id"], f"its method {row['communication_method_id']} was not imported")
                continue
            try:
                secret = secret_of(row["credential_type"], decrypt(self.fernet, row["encrypted_credentials"]))
            except LegacyDecryptError as exc:
                c.skip(row["id"], f"credential {row['credential_name']}: {exc}")
                continue
            c.checksums[str(row["id"])] = checksum(
                [row["credential_type"], secret.username, fingerprint(secret)]
            )
            if self.dry_run:
                c.created += 1
                continue
            assert self.vault is not None
            try:
                async with self.dbs.tx("targets"):
                    _, outcome = await import_legacy_credential(
                        vault=self.vault,
                        legacy_id=row["id"],
                        method_id=method_id,
                        credential_type=row["credential_type"],
                        secret=secret,
                        is_primary=bool(row.get("is_primary", True)),
                        is_active=bool(row.get("is_active", True)),
                        created_at=row.get("created_at"),
                    )
            except DomainError as exc:
                c.checksums.pop(str(row["id"]), None)
                c.skip(row["id"], exc.message)
                continue
            self.count(c, outcome)
            self.wrote()

    async def archive(self, archived_rows: dict[str, list[dict[str, Any]] | None]) -> None:
        for table, rows in archived_rows.items():
            if rows is None:
                self.report.table(table, "absent", "not in this legacy database")
                continue
            t = self.report.table(table, "archived", f"kept in the migrate archive: {ARCHIVED[table]}")
            for index, row in enumerate(rows):
                t.read += 1
                self.tick()
                legacy_id = str(row.get("id", row.get("value", index)))
                data = {k: _jsonable(v) for k, v in row.items()}
                digest = checksum(data)
                t.checksums[legacy_id] = digest
                if self.dry_run:
                    t.created += 1
                    continue
                async with self.dbs.tx("migrate"):
                    _, outcome = await upsert(
                        LegacyArchive,
                        {"id": f"{table}:{legacy_id}"[:120]},
                        {"table": table, "legacy_id": legacy_id, "data": data, "checksum": digest},
                    )
                self.count(t, outcome)
                self.wrote()


def _jsonable(value: Any) -> Any:
    from opsconductor_migrate.report import _plain  # pyright: ignore[reportPrivateUsage]

    return _plain(value)


def fingerprint(secret: LegacySecret) -> str:
    """What a credential is compared by: an SSH key's public-key fingerprint, else a password hash."""
    if secret.private_key:
        import asyncssh

        try:
            key = asyncssh.import_private_key(secret.private_key, secret.passphrase)
            return str(key.get_fingerprint("sha256"))
        except (asyncssh.KeyImportError, ValueError):
            return "unreadable-key"
    return "sha256:" + checksum(secret.password or "")

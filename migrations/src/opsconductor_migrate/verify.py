"""After the import: read every imported row back from its service's database, recompute the
checksum of the compared fields, and check the relations across services."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsconductor_executions.models import Execution, StepResult, TargetRun
from opsconductor_jobs.models import Job, JobTarget
from opsconductor_migrate.report import checksum
from opsconductor_shared.legacy import legacy_uuid
from opsconductor_targets.models import CommunicationMethod, Credential, Target
from opsconductor_targets.service.legacy import LegacySecret, legacy_method_id
from opsconductor_users.models import User
from opsconductor_users.service.records import user_records

if TYPE_CHECKING:
    from opsconductor_migrate.importer import Migration


def _compare(mig: Migration, table: str, actual: dict[str, str]) -> None:
    t = mig.report.tables[table]
    for legacy_id, expected in t.checksums.items():
        got = actual.get(legacy_id)
        if got is None:
            t.mismatches.append(f"{table} {legacy_id}: not found after import")
        elif got != expected:
            t.mismatches.append(f"{table} {legacy_id}: compared fields differ")


async def verify(mig: Migration) -> None:
    from opsconductor_migrate.importer import fingerprint

    actual: dict[str, str] = {}
    async with mig.dbs.read("users"):
        for legacy_id in mig.report.tables["users"].checksums:
            user = await User.get_or_none(id=str(legacy_uuid("users", legacy_id)))
            if user is not None:
                (rec,) = await user_records([user])
                actual[legacy_id] = checksum(
                    [rec.username, rec.email, rec.is_active, rec.roles[0] if rec.roles else None]
                )
    _compare(mig, "users", actual)
    target_ids: set[str] = set()
    async with mig.dbs.read("targets"):
        actual = {}
        by_id = {str(t.id): t for t in await Target.all()}
        target_ids = set(by_id)
        for legacy_id, info in mig.maps.targets.items():
            t = by_id.get(info["id"])
            if t is not None:
                actual[str(legacy_id)] = checksum([str(t.uuid), t.serial, t.name, t.is_active, t.os_type])
        _compare(mig, "universal_targets", actual)
        actual = {}
        methods = {m.id: m for m in await CommunicationMethod.all()}
        for legacy_id in mig.report.tables["target_communication_methods"].checksums:
            m = methods.get(legacy_method_id(int(legacy_id)))
            if m is not None:
                target_id = str(m.target_id)  # pyright: ignore[reportAttributeAccessIssue]
                actual[legacy_id] = checksum(
                    [target_id, m.type, m.host, m.priority, m.is_primary, m.is_active]
                )
        _compare(mig, "target_communication_methods", actual)
        # Relations are checked over the imported rows only: the platform may hold other data
        # (e.g. runs kept after their target was deleted), which is not this import's concern.
        imported_methods = [
            m
            for legacy_id in mig.report.tables["target_communication_methods"].checksums
            if (m := methods.get(legacy_method_id(int(legacy_id)))) is not None
        ]
        orphans = [m.id for m in imported_methods if str(m.target_id) not in target_ids]  # type: ignore[attr-defined]
        mig.report.relation("every method's target exists", len(imported_methods), orphans)
        actual = {}
        assert mig.vault is not None
        for legacy_id in mig.report.tables["target_credentials"].checksums:
            cred = await Credential.get_or_none(id=str(legacy_uuid("target_credentials", legacy_id)))
            if cred is not None:
                s = mig.vault.decrypt(cred)
                secret = LegacySecret(
                    cred.username, s.get("password"), s.get("privateKey"), s.get("passphrase")
                )
                actual[legacy_id] = checksum([cred.type, cred.username, fingerprint(secret)])
        _compare(mig, "target_credentials", actual)
    async with mig.dbs.read("jobs"):
        actual = {}
        for legacy_id, info in mig.maps.jobs.items():
            job = await Job.get_or_none(id=info["id"]).prefetch_related("steps", "targets")
            if job is not None:
                actual[str(legacy_id)] = checksum(
                    [
                        job.serial,
                        job.name,
                        job.is_deleted,
                        [s.command for s in job.ordered_steps()],
                        sorted(job.target_ids()),
                    ]
                )
        _compare(mig, "jobs", actual)
        links = await JobTarget.filter(job_id__in=[info["id"] for info in mig.maps.jobs.values()])
        mig.report.relation(
            "every job's targets exist",
            len(links),
            [f"{lk.job_id}->{lk.target_id}" for lk in links if lk.target_id not in target_ids],  # type: ignore[attr-defined]
        )
    async with mig.dbs.read("executions"):
        actual = {}
        for legacy_id, execution_id in mig.maps.executions.items():
            ex = await Execution.get_or_none(id=execution_id)
            if ex is None:
                continue
            runs = []
            for run in await TargetRun.filter(execution_id=execution_id):
                steps = await StepResult.filter(target_run_id=run.id).order_by("step_index")
                runs.append([run.target_id, [(s.name, s.exit_code, s.stdout, s.stderr) for s in steps]])
            legacy_row = next(r for r in mig.data["job_executions"] if r["id"] == legacy_id)
            actual[str(legacy_id)] = checksum(
                [ex.number, ex.legacy_serial, str(legacy_row["status"]), sorted(runs)]
            )
        _compare(mig, "job_executions", actual)
        runs_all = await TargetRun.filter(execution_id__in=list(mig.maps.executions.values()))
        job_ids = {info["id"] for info in mig.maps.jobs.values()}
        mig.report.relation(
            "every result's execution and target exist",
            len(runs_all),
            [f"{r.id}:{r.target_id}" for r in runs_all if r.target_id not in target_ids],
        )
        ex_all = await Execution.filter(id__in=list(mig.maps.executions.values()))
        mig.report.relation(
            "every imported run's job exists", len(ex_all), [e.id for e in ex_all if e.job_id not in job_ids]
        )

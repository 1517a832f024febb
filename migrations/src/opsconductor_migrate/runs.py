"""Jobs (both eras), their runs (era-1 branches/action results/logs, era-2 flat results incl.
retry rows) and schedules with their history, each through the owning subgraph's functions."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconductor_executions.service.legacy import (
    LegacyLog,
    LegacyStepResult,
    LegacyTargetRun,
    import_legacy_execution,
    legacy_execution_id,
)
from opsconductor_jobs.service.legacy import import_legacy_job, legacy_job_id
from opsconductor_migrate.report import checksum
from opsconductor_schedules.service.importer import LegacyFire, import_legacy_schedule
from opsconductor_schedules.service.legacy import LegacyMapping, from_job_scheduled_at, from_legacy_schedule
from opsconductor_schedules.service.timeline import slots
from opsconductor_shared.errors import DomainError
from opsconductor_shared.runplan import RunPlan, Step

if TYPE_CHECKING:
    from opsconductor_migrate.importer import Migration

_INTERPRETERS = {"bash": "bash", "sh": "sh", "shell": "sh", "python": "python", "powershell": "powershell"}


def step_of(action: dict[str, Any], order: int) -> dict[str, Any]:
    """A legacy ``job_actions`` row as a run-plan step. Legacy ran every action of a target even
    after one failed (no stop-on-error): ``continue_on_error`` keeps that, per job."""
    params = action.get("action_parameters") or {}
    if not isinstance(params, dict):
        params = {}
    step: dict[str, Any] = {
        "order": order,
        "name": str(action.get("action_name") or f"action {order}")[:255],
        "type": "command",
        "command": str(params.get("command") or ""),
        "continue_on_error": True,
    }
    codes = params.get("expectedExitCodes")
    if isinstance(codes, list) and codes and all(isinstance(c, int) for c in codes):
        step["expected_exit_codes"] = codes
    if isinstance(params.get("workingDirectory"), str) and params["workingDirectory"]:
        step["working_directory"] = params["workingDirectory"]
    kind = str(action.get("action_type") or "command")
    if kind == "script" and params.get("scriptContent"):
        step["type"] = "script"
        step["script"] = {
            "interpreter": _INTERPRETERS.get(str(params.get("scriptType") or "bash").lower(), "bash"),
            "body": str(params["scriptContent"]),
        }
    return Step.model_validate(step).model_dump(mode="json")


async def jobs(mig: Migration) -> None:
    t = mig.report.table("jobs", "imported", "serials kept (both eras); status is derived from runs now")
    a = mig.report.table("job_actions", "mapped", "steps of their job; continue-on-error as legacy ran them")
    jt = mig.report.table("job_targets", "mapped", "explicit targets of their job")
    actions: dict[int, list[dict[str, Any]]] = {}
    for row in mig.data["job_actions"]:
        actions.setdefault(row["job_id"], []).append(row)
    links: dict[int, list[int]] = {}
    for row in mig.data["job_targets"]:
        links.setdefault(row["job_id"], []).append(row["target_id"])
    active_targets = [v["id"] for v in mig.maps.targets.values() if v["active"]]
    for row in mig.data["jobs"]:
        t.read += 1
        mig.tick()
        acts = sorted(actions.get(row["id"], []), key=lambda r: (r["action_order"], r["id"]))
        steps = [step_of(act, i) for i, act in enumerate(acts, start=1)]
        legacy_targets = links.get(row["id"], [])
        missing = [tid for tid in legacy_targets if tid not in mig.maps.targets]
        target_ids = [mig.maps.targets[tid]["id"] for tid in legacy_targets if tid in mig.maps.targets]
        if not legacy_targets:
            target_ids = list(active_targets)
            mig.report.notes.append(
                f"job {row['id']} had no target rows (legacy: all active targets): "
                f"imported with the {len(target_ids)} active targets listed explicitly"
            )
        serial = str(row.get("job_serial") or f"JOB-{row['id']:06d}")
        mig.maps.jobs[row["id"]] = {
            "id": legacy_job_id(row["id"]),
            "serial": serial,
            "name": row["name"],
            "steps": steps,
            "target_ids": target_ids,
            "created_by": mig.maps.users.get(row.get("created_by") or -1),
        }
        t.checksums[str(row["id"])] = checksum(
            [
                serial,
                row["name"][:255],
                bool(row.get("is_deleted")),
                [s["command"] for s in steps],
                sorted(target_ids),
            ]
        )
        a.read += len(acts)
        jt.read += len(legacy_targets)
        mig.tick(len(acts) + len(legacy_targets))
        for tid in missing:
            jt.skip(f"{row['id']}->{tid}", f"target {tid} was not imported")
        if mig.dry_run:
            t.created += 1
            a.created += len(acts)
            jt.created += len(legacy_targets) - len(missing)
            continue
        try:
            async with mig.dbs.tx("jobs"):
                _, outcome = await import_legacy_job(
                    legacy_id=row["id"],
                    serial=serial,
                    name=row["name"],
                    description=row.get("description"),
                    steps=steps,
                    target_ids=target_ids,
                    is_deleted=bool(row.get("is_deleted")) or row.get("status") == "deleted",
                    deleted_at=row.get("deleted_at"),
                    created_by=mig.maps.jobs[row["id"]]["created_by"],
                    created_at=row.get("created_at"),
                )
        except DomainError as exc:
            mig.maps.jobs.pop(row["id"])
            t.checksums.pop(str(row["id"]), None)
            t.skip(row["id"], exc.message)
            for act in acts:
                a.skip(act["id"], f"its job {row['id']} was not imported")
            continue
        for report in (t,):
            mig.count(report, outcome)
        for _ in acts:
            mig.count(a, outcome)
        for _ in range(len(legacy_targets) - len(missing)):
            mig.count(jt, outcome)
        mig.wrote()


def _ms(value: Any) -> float | None:
    return float(value) if value is not None else None


def _era2_runs(mig: Migration, results: list[dict[str, Any]]) -> dict[int, LegacyTargetRun]:
    by_target: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_target.setdefault(r["target_id"], []).append(r)
    runs: dict[int, LegacyTargetRun] = {}
    for tid, rows in by_target.items():
        target = mig.maps.targets[tid]
        rows.sort(key=lambda r: (r["action_order"], r["id"]))
        statuses = [str(r["status"]) for r in rows]
        status = (
            "failed"
            if "failed" in statuses
            else ("completed" if all(s == "completed" for s in statuses) else statuses[-1])
        )
        runs[tid] = LegacyTargetRun(
            target_id=target["id"],
            target_name=str(rows[0].get("target_name") or target["name"]),
            host=target["host"],
            port=target["port"],
            status=status,
            exit_code=rows[-1].get("exit_code"),
            started_at=min((r["started_at"] for r in rows if r.get("started_at")), default=None),
            finished_at=max((r["completed_at"] for r in rows if r.get("completed_at")), default=None),
            steps=[
                LegacyStepResult(
                    name=str(r["action_name"]),
                    command=str(r.get("command_executed") or ""),
                    status=str(r["status"]),
                    exit_code=r.get("exit_code"),
                    stdout=str(r.get("output_text") or ""),
                    stderr=str(r.get("error_text") or ""),
                    duration_ms=_ms(r.get("execution_time_ms")),
                    finished_at=r.get("completed_at"),
                )
                for r in rows
            ],
        )
    return runs


def _log(row: dict[str, Any]) -> LegacyLog:
    text = f"[{row.get('log_phase')}/{row.get('log_category')}/{row.get('log_level')}] {row.get('log_message') or ''}"
    return LegacyLog(
        at=row.get("timestamp") or row.get("created_at") or datetime.now(UTC),
        text=text,
        error=str(row.get("log_level")) == "error",
    )


def _era1_run(
    mig: Migration, branch: dict[str, Any], results: list[dict[str, Any]], logs: list[dict[str, Any]]
) -> LegacyTargetRun:
    target = mig.maps.targets[branch["target_id"]]
    results = sorted(results, key=lambda r: (r["action_order"], r["id"]))
    steps = [
        LegacyStepResult(
            name=str(r["action_name"]),
            command=str(r.get("command_executed") or ""),
            status=str(r["status"]),
            exit_code=r.get("exit_code"),
            stdout=str(r.get("result_output") or ""),
            stderr=str(r.get("result_error") or ""),
            duration_ms=_ms(r.get("execution_time_ms")),
            finished_at=r.get("completed_at"),
        )
        for r in results
    ]
    if not steps and (branch.get("result_output") or branch.get("result_error")):
        steps.append(
            LegacyStepResult(
                name="legacy branch output",
                command="",
                status=str(branch["status"]),
                exit_code=branch.get("exit_code"),
                stdout=str(branch.get("result_output") or ""),
                stderr=str(branch.get("result_error") or ""),
            )
        )
    return LegacyTargetRun(
        target_id=target["id"],
        target_name=target["name"],
        host=target["host"],
        port=target["port"],
        status=str(branch["status"]),
        exit_code=branch.get("exit_code"),
        message=f"legacy branch {branch.get('branch_serial') or branch['id']}",
        started_at=branch.get("started_at"),
        finished_at=branch.get("completed_at"),
        steps=steps,
        logs=[_log(lg) for lg in logs],
    )


async def executions(mig: Migration) -> None:
    t = mig.report.table("job_executions", "imported", "numbers and serials kept; statuses mapped")
    r2 = mig.report.table(
        "job_execution_results", "mapped", "era 2: step results (retry rows as their own steps)"
    )
    b1 = mig.report.table("job_execution_branches", "mapped", "era 1: target runs")
    ar1 = mig.report.table("job_action_results", "mapped", "era 1: step results")
    lg1 = mig.report.table("job_execution_logs", "mapped", "era 1: execution events")
    results: dict[int, list[dict[str, Any]]] = {}
    for row in mig.data["job_execution_results"]:
        results.setdefault(row["execution_id"], []).append(row)
    branches: dict[int, list[dict[str, Any]]] = {}
    for row in mig.data["job_execution_branches"]:
        branches.setdefault(row["job_execution_id"], []).append(row)
    action_results: dict[int, list[dict[str, Any]]] = {}
    for row in mig.data["job_action_results"]:
        action_results.setdefault(row["branch_id"], []).append(row)
    logs: dict[tuple[int, int | None], list[dict[str, Any]]] = {}
    for row in mig.data["job_execution_logs"]:
        logs.setdefault((row["job_execution_id"], row.get("branch_id")), []).append(row)
    for row in mig.data["job_executions"]:
        t.read += 1
        mig.tick()
        job = mig.maps.jobs.get(row["job_id"])
        mine2 = [r for r in results.get(row["id"], [])]
        mine1 = branches.get(row["id"], [])
        counted = [
            (r2, len(mine2)),
            (b1, len(mine1)),
            (ar1, sum(len(action_results.get(b["id"], [])) for b in mine1)),
            (lg1, sum(len(v) for (e, _), v in logs.items() if e == row["id"])),
        ]
        for report, n in counted:
            report.read += n
            mig.tick(n)
        if job is None:
            t.skip(row["id"], f"its job {row['job_id']} was not imported")
            for report, n in counted:
                for _ in range(n):
                    report.skip(row["id"], f"its execution {row['id']} was not imported")
            continue
        dangling = [r for r in mine2 if r["target_id"] not in mig.maps.targets]
        dangling += [b for b in mine1 if b["target_id"] not in mig.maps.targets]
        for d in dangling:
            (r2 if "action_name" in d else b1).skip(d["id"], f"its target {d['target_id']} was not imported")
        runs = _era2_runs(mig, [r for r in mine2 if r["target_id"] in mig.maps.targets])
        for b in mine1:
            if b["target_id"] in mig.maps.targets and b["target_id"] not in runs:
                runs[b["target_id"]] = _era1_run(
                    mig, b, action_results.get(b["id"], []), logs.get((row["id"], b["id"]), [])
                )
        target_runs = list(runs.values())
        plan = RunPlan.model_validate(
            {
                "job_id": job["id"],
                "serial": job["serial"],
                "name": job["name"],
                "version": 1,
                "steps": job["steps"],
                "target_ids": [r.target_id for r in target_runs],
            }
        ).model_dump(mode="json", by_alias=True)
        serial = row.get("execution_serial")
        mig.maps.executions[row["id"]] = legacy_execution_id(row["id"])
        t.checksums[str(row["id"])] = checksum(
            [
                row["execution_number"],
                serial,
                str(row["status"]),
                sorted(
                    [r.target_id, [(s.name, s.exit_code, s.stdout, s.stderr) for s in r.steps]]
                    for r in target_runs
                ),
            ]
        )
        if mig.dry_run:
            t.created += 1
            for report, n in counted:
                report.created += n
            continue
        try:
            async with mig.dbs.tx("executions"):
                _, outcome = await import_legacy_execution(
                    legacy_id=row["id"],
                    job_id=job["id"],
                    job_serial=job["serial"],
                    job_name=job["name"],
                    number=row["execution_number"],
                    status=str(row["status"]),
                    legacy_serial=str(serial) if serial else None,
                    plan=plan,
                    created_at=row.get("created_at"),
                    started_at=row.get("started_at"),
                    finished_at=row.get("completed_at"),
                    target_runs=target_runs,
                    run_logs=[_log(lg) for lg in logs.get((row["id"], None), [])],
                )
        except DomainError as exc:
            mig.maps.executions.pop(row["id"])
            t.checksums.pop(str(row["id"]), None)
            t.skip(row["id"], exc.message)
            continue
        mig.count(t, outcome)
        for report, n in counted:
            for _ in range(n - (len(dangling) if report is r2 or report is b1 else 0)):
                mig.count(report, outcome)
        mig.wrote()


async def schedules(mig: Migration) -> None:
    t = mig.report.table("job_schedules", "imported", "weekdays as the UI meant them; timezones applied")
    h = mig.report.table("schedule_executions", "mapped", "schedule history")
    fires: dict[int, list[dict[str, Any]]] = {}
    for row in mig.data["schedule_executions"]:
        fires.setdefault(row["job_schedule_id"], []).append(row)
    todo: list[tuple[int, Any, LegacyMapping | None, str, list[dict[str, Any]], Any]] = []
    for row in mig.data["job_schedules"]:
        t.read += 1
        mig.tick()
        mine = fires.get(row["id"], [])
        h.read += len(mine)
        mig.tick(len(mine))
        job = mig.maps.jobs.get(row["job_id"])
        if job is None:
            t.skip(row["id"], f"its job {row['job_id']} was not imported")
            for f in mine:
                h.skip(f["id"], f"its schedule {row['id']} was not imported")
            continue
        try:
            mapping = from_legacy_schedule(row, job_id=job["id"])
        except DomainError as exc:
            t.skip(row["id"], exc.message)
            for f in mine:
                h.skip(f["id"], f"its schedule {row['id']} was not imported")
            continue
        todo.append((row["id"], row, mapping, job["created_by"], mine, row.get("next_run")))
    for row in mig.data["jobs"]:  # one-shot jobs.scheduled_at (legacy status 'scheduled')
        job = mig.maps.jobs.get(row["id"])
        if (
            job
            and row.get("scheduled_at")
            and str(row.get("status")) == "scheduled"
            and not row.get("is_deleted")
        ):
            t.read += 1
            todo.append(
                (
                    -row["id"],
                    row,
                    from_job_scheduled_at(job["id"], row["scheduled_at"]),
                    job["created_by"],
                    [],
                    row["scheduled_at"],
                )
            )
    for legacy_id, _row, mapping, owner, mine, _legacy_next in todo:
        assert mapping is not None
        for note in mapping.notes:
            mig.report.notes.append(f"schedule {legacy_id}: {note}")
        if mig.dry_run:
            t.created += 1
            h.created += len(mine)
            continue
        legacy_fires = [
            LegacyFire(
                legacy_id=f["id"],
                scheduled_at=f["scheduled_at"],
                status=str(f["status"]),
                execution_id=mig.maps.executions.get(f.get("job_execution_id") or -1),
                started_at=f.get("started_at"),
                error=f.get("error_message"),
            )
            for f in mine
        ]
        try:
            async with mig.dbs.tx("schedules"):
                result = await import_legacy_schedule(
                    legacy_id=legacy_id, mapping=mapping, owner_id=owner, fires=legacy_fires
                )
        except DomainError as exc:
            t.skip(legacy_id, exc.message)
            continue
        if result.created:
            t.created += 1
            h.created += result.fires_imported
        else:
            t.unchanged += 1
            h.unchanged += len(mine) - result.duplicates
        for _ in range(result.duplicates):
            h.skip(legacy_id, "legacy fired this nominal time twice (kept the first)")
        change = next_fire_change(mapping, result.schedule.next_fire_at, result.schedule.id)
        if change is not None:
            mig.report.schedule_changes.append({"legacyId": legacy_id, **change})
        mig.wrote()


def next_fire_change(
    mapping: LegacyMapping, ours: datetime | None, schedule_id: str
) -> dict[str, Any] | None:
    """When the schedule's timezone is not UTC: the next time legacy would have fired it (it
    computed every time in UTC) against the next time it fires now, if they differ."""
    draft = mapping.draft
    if draft.timezone == "UTC" or ours is None:
        return None
    now = datetime.now(UTC)
    legacy_spec = replace(draft, timezone="UTC").spec(anchor=now)
    legacy_next = next(
        (s.scheduled_for for s in slots(legacy_spec, schedule_id=schedule_id, after=now)), None
    )
    if legacy_next is None or abs(legacy_next - ours) < timedelta(seconds=1):
        return None
    return {
        "timezone": draft.timezone,
        "legacyNextRun": legacy_next.isoformat(),
        "nextFireAt": ours.isoformat(),
    }

"""What the legacy importer (``opsconductor migrate-legacy``) calls to write jobs' tables.

``import_legacy_job`` is a keyword-only, idempotent upsert keyed by the legacy job id (the job's id
derives from it): the serial is kept (``JOB-000001``, ``JOB-YYYY-NNNNNN`` or era-1
``J20250000001``), the steps are the legacy actions in ``action_order`` (the caller sets
``continueOnError``: legacy ran every action after a failed one), the targets are given
explicitly (a legacy job without target rows meant "all active targets": the caller lists them),
a soft delete stays a soft delete. The definition is version 1 with its snapshot, as a new job's.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from tortoise.expressions import Q

from opsconductor_jobs import events
from opsconductor_jobs.models import Counter, Job, JobStep, JobTarget, JobVersion, Outbox
from opsconductor_jobs.service.definition import ValidJob, dump, load_step
from opsconductor_jobs.service.store import JOB_COUNTER, next_number
from opsconductor_shared.errors import ValidationError
from opsconductor_shared.events import record_event
from opsconductor_shared.legacy import Outcome, aware, legacy_uuid, upsert

__all__ = ["import_legacy_job", "legacy_job_id"]

_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


def legacy_job_id(legacy_id: int) -> str:
    return str(legacy_uuid("jobs", legacy_id))


async def _number_for(job_id: str, serial: str) -> int:
    existing = await Job.get_or_none(id=job_id)
    if existing is not None:
        return int(existing.number)
    if m := re.fullmatch(r"JOB-(\d{6})", serial):
        wanted = int(m.group(1))
        if not await Job.filter(number=wanted).exists():
            await Counter.get_or_create(name=JOB_COUNTER, defaults={"value": 0})
            await Counter.filter(name=JOB_COUNTER, value__lt=wanted).update(value=wanted)
            return wanted
    while True:
        number = await next_number()
        if not await Job.filter(Q(number=number) | Q(serial=f"JOB-{number:06d}")).exists():
            return number


async def import_legacy_job(
    *,
    legacy_id: int,
    serial: str,
    name: str,
    description: str | None,
    steps: list[dict[str, Any]],
    target_ids: list[str],
    is_deleted: bool = False,
    deleted_at: datetime | None = None,
    created_by: str | None = None,
    created_at: datetime | None = None,
) -> tuple[Job, Outcome]:
    """One legacy job with its actions (``steps``: run-plan step JSON) and targets (caller's transaction)."""
    serial = serial.strip()
    if not _SERIAL_RE.fullmatch(serial):
        raise ValidationError(f"legacy job serial {serial!r} does not fit 20 characters", field="serial")
    job_id = legacy_job_id(legacy_id)
    clash = await Job.filter(serial=serial).exclude(id=job_id).first()
    if clash is not None:
        raise ValidationError(f"serial {serial} already belongs to job {clash.id}", field="serial")
    try:
        valid = ValidJob(
            name=name[:255],
            description=description,
            steps=[load_step(s) for s in steps],
            target_ids=list(dict.fromkeys(target_ids)),
        )
    except ValueError as exc:
        raise ValidationError(f"legacy job actions do not make valid steps: {exc}", field="steps") from None
    values: dict[str, Any] = {
        "number": await _number_for(job_id, serial),
        "serial": serial,
        "name": valid.name,
        "description": description,
        "policy": dump(valid.policy),
        "parameters": [],
        "target_selector": None,
        "is_deleted": is_deleted,
        "deleted_at": aware(deleted_at) if is_deleted else None,
        "created_by": created_by,
    }
    if created_at is not None:
        values["created_at"] = aware(created_at)
    row, outcome = await upsert(Job, {"id": job_id}, values)
    snapshot = valid.to_snapshot()
    version = await JobVersion.get_or_none(job_id=job_id, version=1)
    if version is not None and version.snapshot == snapshot and outcome is not Outcome.CREATED:
        return row, outcome
    await JobStep.filter(job_id=job_id).delete()
    await JobTarget.filter(job_id=job_id).delete()
    await JobStep.bulk_create([JobStep(job=row, **s.model_dump(mode="json")) for s in valid.steps])
    if valid.target_ids:
        await JobTarget.bulk_create([JobTarget(job=row, target_id=t) for t in valid.target_ids])
    if version is None:
        await JobVersion.create(job=row, version=1, snapshot=snapshot, created_by=created_by)
    else:
        version.snapshot = snapshot
        await version.save(update_fields=["snapshot"])
    if row.version != 1:
        row.version = 1
        await row.save(update_fields=["version"])
    if outcome is Outcome.CREATED:
        await record_event(
            Outbox,
            events.job_created(
                row, step_count=len(valid.steps), target_ids=valid.target_ids, actor=created_by
            ),
        )
    return row, Outcome.CREATED if outcome is Outcome.CREATED else Outcome.UPDATED

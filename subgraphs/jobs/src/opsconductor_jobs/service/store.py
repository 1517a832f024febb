"""Storing job definitions: serial numbers, create, update (optimistic version), soft delete, reads.

Functions write; the resolver owns the transaction (``@transactional`` / ``unit_of_work``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.expressions import F, Q

from opsconductor_jobs import events
from opsconductor_jobs.errors import VersionConflictError
from opsconductor_jobs.models import (
    Counter,
    Job,
    JobStep,
    JobTarget,
    JobVersion,
    Outbox,
    live_jobs_by_id,
    parse_id,
)
from opsconductor_jobs.service.definition import ValidJob, dump, valid_from_model
from opsconductor_shared.errors import NotFoundError
from opsconductor_shared.events import new_uuid7, record_event

JOB_COUNTER = "job"


async def next_number(counter: str = JOB_COUNTER) -> int:
    """Take the next value of a counter; the UPDATE holds the row lock until the caller commits."""
    if not await Counter.filter(name=counter).update(value=F("value") + 1):
        await Counter.create(name=counter, value=1)
    row = await Counter.get(name=counter)
    return int(row.value)


async def ensure_counters() -> None:
    """Create the counter rows at start-up so the first concurrent creates do not race on the insert."""
    await Counter.get_or_create(name=JOB_COUNTER, defaults={"value": 0})


def serial_of(number: int) -> str:
    return f"JOB-{number:06d}"


async def _free_number() -> int:
    """The next counter value whose number and serial no imported (legacy) job already holds."""
    while True:
        number = await next_number()
        if not await Job.filter(Q(number=number) | Q(serial=serial_of(number))).exists():
            return number


async def _write_definition(row: Job, job: ValidJob) -> None:
    # The step columns are named as the plan's Step fields (snake_case); script, transfer and env
    # are JSON columns holding the nested models' JSON.
    await JobStep.bulk_create([JobStep(job=row, **s.model_dump(mode="json")) for s in job.steps])
    if job.target_ids:
        await JobTarget.bulk_create([JobTarget(job=row, target_id=t) for t in job.target_ids])


async def create_job(*, job: ValidJob, actor: str | None) -> Job:
    """Store a validated definition (its targets already checked) as version 1."""
    number = await _free_number()
    row = await Job.create(
        id=new_uuid7(),
        number=number,
        serial=serial_of(number),
        name=job.name,
        description=job.description,
        policy=dump(job.policy),
        parameters=[p.to_json() for p in job.parameters],
        target_selector=job.target_selector,
        created_by=actor,
    )
    await _write_definition(row, job)
    await JobVersion.create(job=row, version=row.version, snapshot=job.to_snapshot(), created_by=actor)
    await record_event(
        Outbox, events.job_created(row, step_count=len(job.steps), target_ids=job.target_ids, actor=actor)
    )
    return row


async def update_job(
    *, job_id: str, job: ValidJob, based_on: int, expected_version: int | None, actor: str | None
) -> tuple[Job, bool]:
    """Replace the definition; ``(row, changed)``. ``NotFoundError`` when there is no such live job.

    ``based_on`` is the version the patch was merged onto; when another edit landed in between,
    or ``expected_version`` is not current, it is a ``VersionConflictError`` (no lost update).
    An edit that changes nothing keeps the version.
    """
    row = await _locked(job_id)
    if expected_version is not None and expected_version != row.version:
        raise VersionConflictError(expected_version, row.version)
    if based_on != row.version:
        raise VersionConflictError(based_on, row.version)
    await row.fetch_related("steps", "targets")
    before = valid_from_model(row).to_snapshot()
    if before == job.to_snapshot():
        return row, False
    if not await JobVersion.filter(job_id=row.id, version=row.version).exists():
        # A job stored before versions existed (or imported): keep what it was before the edit.
        await JobVersion.create(job=row, version=row.version, snapshot=before, created_by=row.created_by)
    await JobStep.filter(job_id=row.id).delete()
    await JobTarget.filter(job_id=row.id).delete()
    row.name = job.name
    row.description = job.description  # type: ignore[assignment]  # nullable column, stub types it str
    row.policy = dump(job.policy)
    row.parameters = [p.to_json() for p in job.parameters]
    row.target_selector = job.target_selector
    row.version += 1
    await row.save()
    await _write_definition(row, job)
    await JobVersion.create(job=row, version=row.version, snapshot=job.to_snapshot(), created_by=actor)
    await record_event(
        Outbox, events.job_updated(row, step_count=len(job.steps), target_ids=job.target_ids, actor=actor)
    )
    return row, True


async def _locked(job_id: str) -> Job:
    """The live job's row, locked until the caller's transaction ends; else ``NotFoundError``."""
    key = parse_id(job_id)
    row = None if key is None else await Job.filter(id=key, is_deleted=False).select_for_update().first()
    if row is None:
        raise NotFoundError(f"job {job_id} not found", id=job_id)
    return row


async def delete_job(*, job_id: str, actor: str | None) -> Job:
    """Soft-delete; ``NotFoundError`` when there is no such live job."""
    row = await _locked(job_id)
    row.is_deleted = True
    row.deleted_at = datetime.now(UTC)
    await row.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    await record_event(Outbox, events.job_deleted(row, actor=actor))
    return row


# ---- reads ------------------------------------------------------------------------------------


async def get_job(*, job_id: str) -> Job | None:
    return (await live_jobs_by_id([job_id])).get(str(parse_id(job_id)))


async def live_job(*, job_id: str) -> Job:
    """The live job, else ``NotFoundError``."""
    row = await get_job(job_id=job_id)
    if row is None:
        raise NotFoundError(f"job {job_id} not found", id=job_id)
    return row


async def stored_version(*, job_id: str, version: int) -> ValidJob | None:
    """The definition as it was at ``version`` (its snapshot), if that version is stored."""
    stored = await JobVersion.filter(job_id=job_id, version=version).first()
    return None if stored is None else ValidJob.from_snapshot(stored.snapshot)


async def job_versions(*, job_id: str) -> list[JobVersion]:
    """Every version of a live job, newest first (empty for unknown or deleted jobs)."""
    key = parse_id(job_id)
    if key is None:
        return []
    return list(await JobVersion.filter(job_id=key, job__is_deleted=False).order_by("-version"))


@dataclass
class JobPage:
    rows: list[Job]
    has_next: bool
    total: int


async def list_jobs(*, first: int, after: int | None, search: str | None) -> JobPage:
    """Newest first, keyset-paged on the job number (``after`` is the last number seen)."""
    base = Job.filter(is_deleted=False)
    term = (search or "").strip()
    if term:
        base = base.filter(
            Q(name__icontains=term) | Q(serial__icontains=term) | Q(description__icontains=term)
        )
    total = await base.count()
    page = base.order_by("-number")
    if after is not None:
        page = page.filter(number__lt=after)
    rows = await page.limit(first + 1).prefetch_related("steps", "targets")
    return JobPage(rows=list(rows[:first]), has_next=len(rows) > first, total=total)

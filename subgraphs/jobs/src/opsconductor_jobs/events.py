"""Events the jobs service publishes (``jobs.*`` on ``opsc.events.jobs``); it consumes none yet.

Envelopes carry ids, names and counts, never step commands: commands may embed values an
operator would not want copied into every consumer's database.
"""

from __future__ import annotations

from opsconductor_jobs.models import Job
from opsconductor_shared.events import EventEnvelope

SOURCE = "jobs"
JOB_CREATED = "jobs.job_created"
JOB_UPDATED = "jobs.job_updated"
JOB_DELETED = "jobs.job_deleted"


def job_created(job: Job, *, step_count: int, target_ids: list[str], actor: str | None) -> EventEnvelope:
    return EventEnvelope(
        type=JOB_CREATED,
        source=SOURCE,
        subject=str(job.id),
        actor=actor,
        data={
            "id": str(job.id),
            "serial": job.serial,
            "name": job.name,
            "version": job.version,
            "stepCount": step_count,
            "targetIds": target_ids,
            "policy": job.policy,
            "targetSelector": job.target_selector,
            "parameters": [p.get("name") for p in job.parameters or []],
        },
    )


def job_updated(job: Job, *, step_count: int, target_ids: list[str], actor: str | None) -> EventEnvelope:
    """A new version of the definition (same data as ``job_created``)."""
    envelope = job_created(job, step_count=step_count, target_ids=target_ids, actor=actor)
    return envelope.model_copy(update={"type": JOB_UPDATED})


def job_deleted(job: Job, *, actor: str | None) -> EventEnvelope:
    return EventEnvelope(
        type=JOB_DELETED,
        source=SOURCE,
        subject=str(job.id),
        actor=actor,
        data={"id": str(job.id), "serial": job.serial, "name": job.name},
    )

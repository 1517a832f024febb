"""Events the schedules service publishes (``schedules.*`` on ``opsc.events.schedules``).

One per schedule change and one per history row (every nominal time), so audit sees every
decision: fired, missed, skipped (overlap, blackout, DST), queued, failed. It consumes
``jobs.job_deleted`` (a deleted job's schedules are deleted; the wiring is in app.py).
"""

from __future__ import annotations

from opsconductor_schedules.models import Schedule, ScheduleFire
from opsconductor_shared.events import EventEnvelope

SOURCE = "schedules"
JOB_DELETED = "jobs.job_deleted"
SCHEDULE_CREATED = "schedules.schedule_created"
SCHEDULE_UPDATED = "schedules.schedule_updated"
SCHEDULE_DELETED = "schedules.schedule_deleted"
SCHEDULE_PAUSED = "schedules.schedule_paused"
SCHEDULE_RESUMED = "schedules.schedule_resumed"
FIRE_TYPES = {
    "FIRED": "schedules.fired",
    "MISSED": "schedules.fire_missed",
    "SKIPPED_OVERLAP": "schedules.fire_skipped",
    "SKIPPED_BLACKOUT": "schedules.fire_skipped",
    "SKIPPED_DST": "schedules.fire_skipped",
    "QUEUED": "schedules.fire_queued",
    "FAILED": "schedules.fire_failed",
}


def schedule_changed(kind: str, schedule: Schedule, *, actor: str | None) -> EventEnvelope:
    """``kind`` is one of the SCHEDULE_* names; the data is the definition without parameters
    (parameter values may be secrets an operator would not copy into every consumer)."""
    return EventEnvelope(
        type=kind,
        source=SOURCE,
        subject=schedule.id,
        actor=actor,
        data={
            "id": schedule.id,
            "jobId": schedule.job_id,
            "ownerId": schedule.owner_id,
            "name": schedule.name,
            "kind": schedule.kind,
            "timezone": schedule.timezone,
            "cron": schedule.cron,
            "intervalSeconds": schedule.interval_seconds,
            "runAt": schedule.run_at.isoformat() if schedule.run_at else None,
            "enabled": schedule.enabled,
            "misfirePolicy": schedule.misfire_policy,
            "overlapPolicy": schedule.overlap_policy,
            "version": schedule.version,
        },
    )


def fire_recorded(fire: ScheduleFire, *, owner_id: str | None) -> EventEnvelope:
    return EventEnvelope(
        type=FIRE_TYPES[fire.outcome],
        source=SOURCE,
        subject=fire.schedule_id,
        actor=owner_id,
        data={
            "id": fire.id,
            "scheduleId": fire.schedule_id,
            "jobId": fire.job_id,
            "scheduledFor": fire.scheduled_for.isoformat(),
            "firedAt": fire.fired_at.isoformat() if fire.fired_at else None,
            "outcome": fire.outcome,
            "reason": fire.reason,
            "executionId": fire.execution_id,
            "lateMs": fire.late_ms,
            "catchUp": fire.catch_up,
        },
    )

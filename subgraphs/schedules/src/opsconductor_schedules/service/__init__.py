"""The schedules domain: definitions, the timing core, the firing loop and its collaborators.

Schema code calls ``service.x(...)``; the collaborators live in :class:`Deps` (built in app.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from opsconductor_schedules.service.clients import JobDirectory, OwnerCheck, RunStarter
from opsconductor_schedules.service.definitions import (
    STARTING,
    ScheduleDraft,
    blackouts_of,
    create_schedule,
    delete_schedule,
    delete_schedules_of_job,
    get_schedule,
    history,
    recurring_of,
    set_enabled,
    spec_of,
    update_schedule,
)
from opsconductor_schedules.service.describe import Preview
from opsconductor_schedules.service.firing import FIRES_CHANNEL, Scheduler, SchedulerConfig
from opsconductor_schedules.service.queries import (
    UpcomingFire,
    list_schedules,
    next_run_of_job,
    preview_draft,
    schedules_of_job,
    upcoming_fires,
)
from opsconductor_schedules.service.spec import (
    Blackout,
    DstGapPolicy,
    DstOverlapPolicy,
    FireOutcome,
    Kind,
    MisfirePolicy,
    OverlapPolicy,
    Recurring,
    RecurringUnit,
    Weekday,
)
from opsconductor_shared.live import Broadcaster


@dataclass
class Deps:
    """The schedules service's collaborators."""

    jobs: JobDirectory
    scheduler: Scheduler
    broadcaster: Broadcaster


__all__ = [
    "FIRES_CHANNEL",
    "STARTING",
    "Blackout",
    "Deps",
    "DstGapPolicy",
    "DstOverlapPolicy",
    "FireOutcome",
    "JobDirectory",
    "Kind",
    "MisfirePolicy",
    "OverlapPolicy",
    "OwnerCheck",
    "Preview",
    "Recurring",
    "RecurringUnit",
    "RunStarter",
    "ScheduleDraft",
    "Scheduler",
    "SchedulerConfig",
    "UpcomingFire",
    "Weekday",
    "blackouts_of",
    "create_schedule",
    "delete_schedule",
    "delete_schedules_of_job",
    "get_schedule",
    "history",
    "list_schedules",
    "next_run_of_job",
    "preview_draft",
    "recurring_of",
    "schedules_of_job",
    "set_enabled",
    "spec_of",
    "upcoming_fires",
    "update_schedule",
]

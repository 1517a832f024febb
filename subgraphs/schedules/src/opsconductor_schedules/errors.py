"""The schedules subgraph's domain exceptions (no strawberry here)."""

from __future__ import annotations

from opsconductor_shared.errors import DomainError, ValidationError

__all__ = ["InvalidScheduleError", "ScheduleNotRunnableError"]


class InvalidScheduleError(ValidationError):
    """A schedule definition that cannot fire as written (bad cron, unknown timezone, ...)."""


class ScheduleNotRunnableError(DomainError):
    """runScheduleNow on a schedule whose job or owner cannot run now; the message says why."""

    code = "SCHEDULE_NOT_RUNNABLE"

"""What a schedule is, as plain data: the kinds, the policies and their validation.

Pure (no database, no clock): the timing core (:mod:`.timeline`) and the GraphQL layer both build
on :class:`ScheduleSpec`. Field names in validation errors are the GraphQL input's (camelCase).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from opsconductor_schedules.errors import InvalidScheduleError

__all__ = [
    "Blackout",
    "DstGapPolicy",
    "DstOverlapPolicy",
    "FireOutcome",
    "Kind",
    "MisfirePolicy",
    "OverlapPolicy",
    "Recurring",
    "RecurringUnit",
    "ScheduleSpec",
    "Weekday",
    "zone",
]


class Kind(StrEnum):
    CRON = "CRON"
    INTERVAL = "INTERVAL"
    ONCE = "ONCE"
    RECURRING = "RECURRING"


class RecurringUnit(StrEnum):
    MINUTES = "MINUTES"
    HOURS = "HOURS"
    DAYS = "DAYS"
    WEEKS = "WEEKS"
    MONTHS = "MONTHS"


class Weekday(StrEnum):
    """Weekdays by name, never by number (legacy read numbers two ways: UI 0 = Sunday, backend 0 = Monday)."""

    MON = "MON"
    TUE = "TUE"
    WED = "WED"
    THU = "THU"
    FRI = "FRI"
    SAT = "SAT"
    SUN = "SUN"

    @property
    def iso_index(self) -> int:
        """0 = Monday ... 6 = Sunday (Python's ``date.weekday()``)."""
        return list(Weekday).index(self)


class MisfirePolicy(StrEnum):
    SKIP = "SKIP"
    RUN_ONCE = "RUN_ONCE"
    RUN_ALL = "RUN_ALL"


class OverlapPolicy(StrEnum):
    ALLOW = "ALLOW"
    SKIP = "SKIP"
    QUEUE = "QUEUE"


class DstGapPolicy(StrEnum):
    RUN_AT_TRANSITION = "RUN_AT_TRANSITION"
    SKIP = "SKIP"


class DstOverlapPolicy(StrEnum):
    FIRST = "FIRST"
    BOTH = "BOTH"


class FireOutcome(StrEnum):
    FIRED = "FIRED"
    MISSED = "MISSED"
    SKIPPED_OVERLAP = "SKIPPED_OVERLAP"
    SKIPPED_BLACKOUT = "SKIPPED_BLACKOUT"
    SKIPPED_DST = "SKIPPED_DST"
    QUEUED = "QUEUED"
    FAILED = "FAILED"


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_INTERVAL_SECONDS = 366 * 24 * 3600
MAX_JITTER_SECONDS = 3600
MAX_CATCH_UP_SECONDS = 7 * 24 * 3600


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or :class:`InvalidScheduleError` (``timezone``). Fixed-offset aliases are refused."""
    if not name or name != name.strip() or len(name) > 64:
        raise InvalidScheduleError("timezone must be an IANA name such as Europe/Berlin", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidScheduleError(f"unknown timezone {name!r} (use an IANA name)", field="timezone") from exc


def parse_hhmm(value: str, *, field_name: str = "recurring.at") -> time:
    match = _HHMM.match(value.strip())
    if match is None:
        raise InvalidScheduleError("at must be HH:MM (24-hour)", field=field_name)
    return time(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class Recurring:
    """The legacy recurring kinds: every N minutes/hours/days/weeks/months, at HH:MM, on weekdays."""

    unit: RecurringUnit
    every: int = 1
    at: time | None = None
    weekdays: tuple[Weekday, ...] = ()
    day_of_month: int | None = None

    def validate(self) -> None:
        if not 1 <= self.every <= 1000:
            raise InvalidScheduleError("every must be between 1 and 1000", field="recurring.every")
        wall = self.unit in (RecurringUnit.DAYS, RecurringUnit.WEEKS, RecurringUnit.MONTHS)
        if self.at is not None and not wall:
            raise InvalidScheduleError(
                "at applies to DAYS, WEEKS and MONTHS only (MINUTES and HOURS count elapsed time)",
                field="recurring.at",
            )
        if self.weekdays and self.unit is not RecurringUnit.WEEKS:
            raise InvalidScheduleError("weekdays apply to unit WEEKS only", field="recurring.weekdays")
        if self.unit is RecurringUnit.WEEKS and not self.weekdays:
            raise InvalidScheduleError("unit WEEKS needs at least one weekday", field="recurring.weekdays")
        if len(set(self.weekdays)) != len(self.weekdays):
            raise InvalidScheduleError("a weekday is listed twice", field="recurring.weekdays")
        if self.unit is RecurringUnit.MONTHS:
            if self.day_of_month is None or not 1 <= self.day_of_month <= 31:
                raise InvalidScheduleError(
                    "unit MONTHS needs dayOfMonth between 1 and 31", field="recurring.dayOfMonth"
                )
        elif self.day_of_month is not None:
            raise InvalidScheduleError("dayOfMonth applies to unit MONTHS only", field="recurring.dayOfMonth")


@dataclass(frozen=True)
class Blackout:
    """No fire inside this window: ``cron`` + ``duration`` (wall clock, the schedule's timezone) or
    the fixed ``start``..``end`` (UTC instants); the end is exclusive."""

    cron: str | None = None
    duration: timedelta | None = None
    start: datetime | None = None
    end: datetime | None = None

    def validate(self, index: int) -> None:
        name = f"blackouts[{index}]"
        if self.cron is not None:
            if self.start is not None or self.end is not None:
                raise InvalidScheduleError("a blackout is cron + durationMinutes or from + to", field=name)
            if self.duration is None or not timedelta(minutes=1) <= self.duration <= timedelta(days=31):
                raise InvalidScheduleError(
                    "durationMinutes must be 1..44640", field=f"{name}.durationMinutes"
                )
        else:
            if self.start is None or self.end is None:
                raise InvalidScheduleError("a blackout is cron + durationMinutes or from + to", field=name)
            if _aware(self.start) >= _aware(self.end):
                raise InvalidScheduleError("a blackout's to must be after its from", field=f"{name}.to")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ScheduleSpec:
    """Everything that decides when a schedule fires (times are UTC instants)."""

    kind: Kind
    timezone: str
    anchor: datetime
    """Where INTERVAL and the legacy recurring periods count from: startAt, else the creation time."""
    cron: str | None = None
    interval_seconds: int | None = None
    run_at: datetime | None = None
    recurring: Recurring | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    max_runs: int | None = None
    jitter_seconds: int = 0
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    catch_up_window_seconds: int = 3600
    overlap_policy: OverlapPolicy = OverlapPolicy.SKIP
    dst_gap_policy: DstGapPolicy = DstGapPolicy.RUN_AT_TRANSITION
    dst_overlap_policy: DstOverlapPolicy = DstOverlapPolicy.FIRST
    blackouts: tuple[Blackout, ...] = field(default_factory=tuple[Blackout, ...])

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def validate(self) -> ScheduleSpec:
        """Raise :class:`InvalidScheduleError` naming the input field; return self when valid."""
        from opsconductor_schedules.service.triggers import check_cron  # cron needs the trigger layer

        zone(self.timezone)
        given = {
            Kind.CRON: ("cron", self.cron is not None),
            Kind.INTERVAL: ("intervalSeconds", self.interval_seconds is not None),
            Kind.ONCE: ("runAt", self.run_at is not None),
            Kind.RECURRING: ("recurring", self.recurring is not None),
        }
        for kind, (name, present) in given.items():
            if kind is self.kind and not present:
                raise InvalidScheduleError(f"kind {kind} needs {name}", field=name)
            if kind is not self.kind and present:
                raise InvalidScheduleError(f"{name} applies to kind {kind} only", field=name)
        if self.cron is not None:
            check_cron(self.cron, field_name="cron")
        if self.interval_seconds is not None and not 1 <= self.interval_seconds <= MAX_INTERVAL_SECONDS:
            raise InvalidScheduleError(
                f"intervalSeconds must be 1..{MAX_INTERVAL_SECONDS}", field="intervalSeconds"
            )
        if self.recurring is not None:
            self.recurring.validate()
        if self.start_at and self.end_at and _aware(self.end_at) <= _aware(self.start_at):
            raise InvalidScheduleError("endAt must be after startAt", field="endAt")
        if self.max_runs is not None and self.max_runs < 1:
            raise InvalidScheduleError("maxRuns must be at least 1", field="maxRuns")
        if not 0 <= self.jitter_seconds <= MAX_JITTER_SECONDS:
            raise InvalidScheduleError(
                f"jitterSeconds must be 0..{MAX_JITTER_SECONDS}", field="jitterSeconds"
            )
        if not 0 <= self.catch_up_window_seconds <= MAX_CATCH_UP_SECONDS:
            raise InvalidScheduleError(
                f"catchUpWindowSeconds must be 0..{MAX_CATCH_UP_SECONDS}", field="catchUpWindowSeconds"
            )
        if len(self.blackouts) > 50:
            raise InvalidScheduleError("at most 50 blackouts", field="blackouts")
        for index, blackout in enumerate(self.blackouts):
            blackout.validate(index)
            if blackout.cron is not None:
                check_cron(blackout.cron, field_name=f"blackouts[{index}].cron")
        return self

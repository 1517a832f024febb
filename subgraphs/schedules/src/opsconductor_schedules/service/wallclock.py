"""Our DST layer: what a wall time of a timezone means on the days its clocks shift.

``resolve(wall, tz)`` says whether a naive wall time exists once (the usual case), not at all (a
spring-forward *gap*: it gives the transition instant, where the clocks jump) or twice (a
fall-back *overlap*: it gives both instants, first one first). The policies then decide:

* gap, ``RUN_AT_TRANSITION`` (default, classic cron): fire once at the transition — ``30 2 * * *``
  in America/New_York on 2027-03-14 fires at 03:00 EDT; ``SKIP``: no run, a SKIPPED_DST row.
* overlap, ``FIRST`` (default): fire at the first occurrence, the repeat is a SKIPPED_DST row;
  ``BOTH``: fire at both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Resolution", "resolve", "shift_label", "transition_between"]

_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Resolution:
    """The instants (UTC) of one wall time: one normally, none in a gap, two in an overlap."""

    wall: datetime
    instants: tuple[datetime, ...]
    transition: datetime | None = None
    """For a gap: the instant the clocks jump (the first existing wall time after the gap)."""

    @property
    def is_gap(self) -> bool:
        return not self.instants

    @property
    def is_overlap(self) -> bool:
        return len(self.instants) == 2


def _utc(wall: datetime, tz: ZoneInfo, fold: int) -> datetime:
    return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _exists(wall: datetime, instant: datetime, tz: ZoneInfo) -> bool:
    return instant.astimezone(tz).replace(tzinfo=None) == wall


def transition_between(low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (low, high] whose UTC offset differs from ``low``'s (to the second)."""
    offset = low.astimezone(tz).utcoffset()
    while high - low > _SECOND:
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + _SECOND
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high


def resolve(wall: datetime, tz: ZoneInfo) -> Resolution:
    """What the naive ``wall`` time means in ``tz`` (see the module docstring)."""
    first, second = _utc(wall, tz, 0), _utc(wall, tz, 1)
    ok_first, ok_second = _exists(wall, first, tz), _exists(wall, second, tz)
    if ok_first and ok_second and first != second:
        return Resolution(wall, (min(first, second), max(first, second)))
    if ok_first or ok_second:
        return Resolution(wall, (first if ok_first else second,))
    # A gap: fold=0 reads the wall with the offset before the shift, fold=1 with the one after;
    # the transition lies between those two readings.
    low, high = min(first, second), max(first, second)
    return Resolution(wall, (), transition=transition_between(low - _SECOND, high, tz))


def shift_label(instant: datetime, tz: ZoneInfo) -> str:
    """``03:00 EDT`` — the wall time and abbreviation of an instant in ``tz``."""
    local = instant.astimezone(tz)
    return f"{local:%H:%M} {local.tzname()}"

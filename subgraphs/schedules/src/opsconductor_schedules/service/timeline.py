"""The slots of a schedule: every nominal time, in order, with what happens to it.

A :class:`Slot` is one nominal time (``scheduled_for``, a UTC instant: the claim key with the
schedule id) and either nothing decided yet (``outcome is None``: it fires, subject to the misfire
and overlap policies at run time) or a decision made by the definition alone (SKIPPED_DST,
SKIPPED_BLACKOUT). Candidates come from APScheduler (:mod:`.triggers`); DST meaning from
:mod:`.wallclock`; then blackouts, start/end, max runs and jitter.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from opsconductor_schedules.service.spec import (
    Blackout,
    DstGapPolicy,
    DstOverlapPolicy,
    FireOutcome,
    ScheduleSpec,
)
from opsconductor_schedules.service.triggers import (
    cron_trigger,
    instant_candidates,
    is_wall_clock,
    wall_candidates,
)
from opsconductor_schedules.service.wallclock import resolve, shift_label

__all__ = ["Slot", "in_blackout", "jitter_offset", "next_slot", "slots"]

_MAX_SHIFT = timedelta(hours=3)  # more than any DST shift: where to start reading wall times


@dataclass(frozen=True)
class Slot:
    scheduled_for: datetime
    """The nominal instant (UTC); with the schedule id, the unique claim of this fire."""
    fire_at: datetime
    """When to start it: ``scheduled_for`` plus the schedule's deterministic jitter."""
    outcome: FireOutcome | None = None
    """None: it fires (misfire and overlap policies decide at run time); else decided already."""
    reason: str | None = None
    note: str | None = None
    """A DST note for previews and history (``02:30 does not exist on 2027-03-14 ...``)."""


@dataclass(frozen=True)
class _Entry:
    instant: datetime
    fires: bool
    note: str | None
    gap_wall: datetime | None = None
    """Set for a wall time that does not exist (notes of one gap are merged into one)."""


def jitter_offset(schedule_id: str, scheduled_for: datetime, jitter_seconds: int) -> timedelta:
    """The same offset in [0, jitter] for one nominal time on every replica and after restarts."""
    if jitter_seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{schedule_id}|{scheduled_for.isoformat()}".encode()).digest()
    millis = int.from_bytes(digest[:8], "big") % (jitter_seconds * 1000 + 1)
    return timedelta(milliseconds=millis)


def in_blackout(instant: datetime, blackouts: tuple[Blackout, ...], tz: ZoneInfo) -> Blackout | None:
    """The first blackout window containing ``instant`` (start inclusive, end exclusive)."""
    for blackout in blackouts:
        if blackout.cron is not None and blackout.duration is not None:
            # the latest window start at or before the instant, if it is within `duration`
            since = instant - blackout.duration + timedelta(microseconds=1)
            start = cron_trigger(blackout.cron).get_next_fire_time(
                None, since.astimezone(tz).replace(tzinfo=UTC)
            )
            if start is not None:
                wall_start = start.replace(tzinfo=None)
                resolution = resolve(wall_start, tz)
                starts = resolution.instants or (resolution.transition,)
                if any(s is not None and s <= instant < s + blackout.duration for s in starts):
                    return blackout
        elif (
            blackout.start is not None
            and blackout.end is not None
            and blackout.start <= instant < blackout.end
        ):
            return blackout
    return None


def _day(wall: datetime) -> str:
    return f"{wall:%Y-%m-%d}"


def _gap_note(walls: list[datetime], transition: datetime, spec: ScheduleSpec, fires: bool) -> str:
    tz = spec.tz
    before = (transition - timedelta(seconds=1)).astimezone(tz)
    after = transition.astimezone(tz)
    jump_from = after.replace(tzinfo=None) - (
        (after.utcoffset() or timedelta()) - (before.utcoffset() or timedelta())
    )
    times = ", ".join(f"{w:%H:%M}" for w in walls)
    verb = "does" if len(walls) == 1 else "do"
    what = (
        f"{times} {verb} not exist on {_day(walls[0])} in {spec.timezone} (clocks jump from "
        f"{jump_from:%H:%M} {before.tzname()} to {shift_label(transition, tz)})"
    )
    return (
        f"{what}: fires once at {shift_label(transition, tz)}"
        if fires
        else f"{what}: skipped (dstGapPolicy SKIP)"
    )


def _wall_entries(spec: ScheduleSpec, start_wall: datetime) -> Iterator[tuple[datetime, list[_Entry]]]:
    """For each wall candidate: the lower bound of its instants, and its entries."""
    tz = spec.tz
    for wall in wall_candidates(spec, start_wall):
        res = resolve(wall, tz)
        bound = min(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
        if res.is_gap:
            assert res.transition is not None
            fires = spec.dst_gap_policy is DstGapPolicy.RUN_AT_TRANSITION
            entries = [_Entry(res.transition, fires, None, gap_wall=wall)]
        elif res.is_overlap:
            first, second = res.instants
            what = (
                f"{wall:%H:%M} happens twice on {_day(wall)} in {spec.timezone} "
                f"({shift_label(first, tz)} and {shift_label(second, tz)})"
            )
            if spec.dst_overlap_policy is DstOverlapPolicy.BOTH:
                note = f"{what}: fires at both (dstOverlapPolicy BOTH)"
                entries = [_Entry(first, True, note), _Entry(second, True, note)]
            else:
                entries = [
                    _Entry(first, True, f"{what}: fires at the first, {shift_label(first, tz)}"),
                    _Entry(second, False, f"{what}: the repeat at {shift_label(second, tz)} is skipped"),
                ]
        else:
            entries = [_Entry(res.instants[0], True, None)]
        yield bound, entries


def _group_note(group: list[_Entry], spec: ScheduleSpec, fires: bool) -> str | None:
    notes = [e.note for e in group if e.note and e.fires == fires]
    gap_walls = [e.gap_wall for e in group if e.gap_wall is not None]
    if gap_walls:
        notes.insert(
            0,
            _gap_note(
                gap_walls, group[0].instant, spec, spec.dst_gap_policy is DstGapPolicy.RUN_AT_TRANSITION
            ),
        )
    return "; ".join(dict.fromkeys(notes)) or None


def _ordered_entries(spec: ScheduleSpec, after: datetime) -> Iterator[list[_Entry]]:
    """Entries grouped by instant, in instant order (one group = one nominal time)."""
    if not is_wall_clock(spec):
        for instant in instant_candidates(spec, after):
            yield [_Entry(instant, True, None)]
        return
    start_wall = (after - _MAX_SHIFT).astimezone(spec.tz).replace(tzinfo=None)
    heap: list[tuple[datetime, int, _Entry]] = []
    order = count()

    def drain(limit: datetime | None) -> Iterator[list[_Entry]]:
        while heap and (limit is None or heap[0][0] < limit):
            instant, _, entry = heapq.heappop(heap)
            group = [entry]
            while heap and heap[0][0] == instant:
                group.append(heapq.heappop(heap)[2])
            yield group

    for bound, entries in _wall_entries(spec, start_wall):
        yield from drain(bound)
        for entry in entries:
            heapq.heappush(heap, (entry.instant, next(order), entry))
    yield from drain(None)


def slots(
    spec: ScheduleSpec,
    *,
    schedule_id: str,
    after: datetime,
    inclusive: bool = False,
    fire_count: int = 0,
) -> Iterator[Slot]:
    """Every slot after ``after`` (at it too when ``inclusive``), in nominal order, until the end
    (``endAt``, ``maxRuns`` counting ``fire_count`` runs already made, or a ONCE schedule's run)."""
    tz = spec.tz
    remaining = None if spec.max_runs is None else spec.max_runs - fire_count
    if remaining is not None and remaining <= 0:
        return
    start = after if spec.start_at is None else max(after, spec.start_at)
    inclusive = inclusive or (spec.start_at is not None and spec.start_at > after)
    for group in _ordered_entries(spec, start):
        instant = group[0].instant
        if instant < start or (instant == start and not inclusive):
            continue
        if spec.end_at is not None and instant > spec.end_at:
            return
        if not any(e.fires for e in group):
            note = _group_note(group, spec, fires=False)
            yield Slot(instant, instant, FireOutcome.SKIPPED_DST, reason=note, note=note)
            continue
        note = _group_note(group, spec, fires=True)
        blackout = in_blackout(instant, spec.blackouts, tz)
        if blackout is not None:
            window = (
                f"blackout {blackout.cron} for {int((blackout.duration or timedelta()).total_seconds() // 60)} min"
                if blackout.cron
                else f"blackout {blackout.start:%Y-%m-%d %H:%M}..{blackout.end:%Y-%m-%d %H:%M} UTC"
            )
            yield Slot(instant, instant, FireOutcome.SKIPPED_BLACKOUT, reason=f"inside {window}", note=note)
            continue
        yield Slot(instant, instant + jitter_offset(schedule_id, instant, spec.jitter_seconds), note=note)
        if remaining is not None:
            remaining -= 1
            if remaining <= 0:
                return


def next_slot(spec: ScheduleSpec, *, schedule_id: str, after: datetime, fire_count: int = 0) -> Slot | None:
    return next(iter(slots(spec, schedule_id=schedule_id, after=after, fire_count=fire_count)), None)

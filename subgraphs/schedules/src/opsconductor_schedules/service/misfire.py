"""What runs when fires are late: the misfire policy and its catch-up window (pure).

A fire is *on time* when it starts within the grace period after its ``fire_at``; later, it was
*missed* (the scheduler was down or stalled). Missed fires older than the catch-up window never
run (MISSED). Inside the window:

* ``SKIP``: none run (MISSED);
* ``RUN_ONCE`` (default): one catch-up run for the latest of them, the rest MISSED — none when an
  on-time fire in the same batch runs anyway;
* ``RUN_ALL``: each runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsconductor_schedules.service.spec import FireOutcome, MisfirePolicy
from opsconductor_schedules.service.timeline import Slot

__all__ = ["Decision", "plan_due"]


@dataclass(frozen=True)
class Decision:
    slot: Slot
    outcome: FireOutcome | None
    """None: start a run (the overlap policy may still skip or queue it); else record this outcome."""
    reason: str | None = None
    catch_up: bool = False


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():.1f}s"


def plan_due(
    due: Sequence[Slot],
    *,
    now: datetime,
    policy: MisfirePolicy,
    catch_up_window: timedelta,
    grace: timedelta,
) -> list[Decision]:
    """One decision per due slot (``fire_at <= now``), in the order given."""
    decisions: list[Decision | None] = [None] * len(due)
    missed: list[int] = []
    on_time_runs = False
    for index, slot in enumerate(due):
        if slot.outcome is not None:
            decisions[index] = Decision(slot, slot.outcome, slot.reason)
        elif now - slot.fire_at <= grace:
            decisions[index] = Decision(slot, None)
            on_time_runs = True
        else:
            missed.append(index)
    inside = [i for i in missed if now - due[i].scheduled_for <= catch_up_window]
    chosen: set[int] = set()
    if policy is MisfirePolicy.RUN_ALL:
        chosen = set(inside)
    elif policy is MisfirePolicy.RUN_ONCE and inside and not on_time_runs:
        chosen = {inside[-1]}
    for index in missed:
        slot = due[index]
        late = now - slot.fire_at
        if index in chosen:
            decisions[index] = Decision(slot, None, f"catch-up run, {_seconds(late)} late", catch_up=True)
        elif index not in inside:
            decisions[index] = Decision(
                slot, FireOutcome.MISSED, f"missed by {_seconds(late)}: older than the catch-up window"
            )
        elif policy is MisfirePolicy.SKIP:
            decisions[index] = Decision(
                slot, FireOutcome.MISSED, f"missed by {_seconds(late)} (misfirePolicy SKIP)"
            )
        else:
            decisions[index] = Decision(
                slot,
                FireOutcome.MISSED,
                f"missed by {_seconds(late)}: covered by one catch-up run (RUN_ONCE)",
            )
    return [d for d in decisions if d is not None]

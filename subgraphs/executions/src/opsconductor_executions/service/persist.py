"""Persisting a followed run: engine event batches become event rows, target-run and step-result
updates and the run's counters, in one transaction per batch (a few statements, not one per
target). The payloads it returns are what live subscribers get."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opsconductor_executions import events
from opsconductor_executions.models import TERMINAL, Execution, ExecutionEvent, Outbox, StepResult, TargetRun
from opsconductor_ray.protocol import EngineEvent
from opsconductor_shared.events import record_event
from opsconductor_shared.unit_of_work import Committer, unit_of_work

RUN_FIELDS = ("status", "exit_code", "message", "connection_reused", "started_at", "finished_at")
"""The TargetRun columns events change."""
_OUTPUT = frozenset({"STDOUT", "STDERR"})


EXECUTION_FIELDS = (
    "status",
    "started_at",
    "finished_at",
    "succeeded_targets",
    "failed_targets",
    "cancelled_targets",
    "last_seq",
)
"""The Execution columns a batch of events changes."""
EVENT_COLUMNS = (
    "execution_id",
    "seq",
    "type",
    "target_id",
    "step_index",
    "step_name",
    "data",
    "exit_code",
    "status",
    "at",
)


def _marks(db: Any, count: int) -> list[str]:
    """Parameter placeholders of the connection's dialect."""
    if db.capabilities.dialect == "postgres":
        return [f"${i}" for i in range(1, count + 1)]
    return ["?"] * count


async def _insert_events(execution_id: str, rows: list[dict[str, Any]]) -> None:
    """The batch's events in one prepared INSERT executed per row (no model objects)."""
    if not rows:
        return
    db = ExecutionEvent._choose_db(True)
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    marks = ", ".join(_marks(db, len(EVENT_COLUMNS)))
    # only constant column names and placeholders go into the text; every value is a parameter
    sql = f'INSERT INTO "{ExecutionEvent._meta.db_table}" ({columns}) VALUES ({marks})'  # noqa: S608
    await db.execute_many(
        sql,
        [
            [
                execution_id,
                r["seq"],
                r["type"],
                r["targetId"],
                r["stepIndex"],
                r["stepName"],
                r["data"],
                r["exitCode"],
                r["status"],
                r["at"],
            ]
            for r in rows
        ],
    )


async def _update_runs(runs: list[TargetRun]) -> None:
    """One prepared UPDATE executed for every changed target run (what ``bulk_update`` does with
    a CASE per column, at a fraction of its cost for hundreds of rows)."""
    if not runs:
        return
    db = TargetRun._choose_db(True)
    fields = TargetRun._meta.fields_map
    marks = _marks(db, len(RUN_FIELDS) + 1)
    assignments = ", ".join(f'"{column}" = {mark}' for column, mark in zip(RUN_FIELDS, marks, strict=False))
    # only constant column names and placeholders go into the text; every value is a parameter
    sql = f'UPDATE "{TargetRun._meta.db_table}" SET {assignments} WHERE "id" = {marks[-1]}'  # noqa: S608
    await db.execute_many(
        sql,
        [
            [fields[column].to_db_value(getattr(run, column), run) for column in RUN_FIELDS] + [run.id]
            for run in runs
        ],
    )


async def _save_step_results(results: dict[tuple[int, int], dict[str, Any]]) -> None:
    """Store finished steps, keyed (target run id, step index): new ones in one INSERT; one the
    engine reported again replaces the stored row (never expected, but never a failed batch)."""
    if not results:
        return
    run_ids = sorted({run_id for run_id, _ in results})
    existing = {
        (r.target_run_id, r.step_index): r  # type: ignore[attr-defined]
        for r in await StepResult.filter(
            target_run_id__in=run_ids, step_index__in=sorted({i for _, i in results})
        )
    }
    fresh = []
    for (run_id, index), values in results.items():
        row = existing.get((run_id, index))
        if row is None:
            fresh.append(StepResult(target_run_id=run_id, step_index=index, **values))
        else:
            await row.update_from_dict(values).save()
    await StepResult.bulk_create(fresh, batch_size=500)


@dataclass(frozen=True)
class Staged:
    """A batch's events ready to store, and their rows."""

    events: list[EngineEvent]
    rows: list[dict[str, Any]]

    @property
    def payloads(self) -> list[dict[str, Any]]:
        """The JSON form live subscribers get (``live.event_payload``'s fields)."""
        return [{**row, "at": row["at"].isoformat()} for row in self.rows]


def merge_staged(batches: list[Staged]) -> Staged:
    """Consecutive staged batches as one (stored in one transaction)."""
    if len(batches) == 1:
        return batches[0]
    return Staged(
        events=[e for staged in batches for e in staged.events],
        rows=[row for staged in batches for row in staged.rows],
    )


class _Quiet:
    """No relay to wake (unit tests of the staging)."""

    def events_committed(self) -> None:
        return None


class RunWriter:
    """Applies engine events to the run's rows; one instance per followed execution.

    Output is stored once, as the run's event rows (``TargetRun.steps`` reads it from them),
    exactly as the engine sent it: the engine is the only one that cuts it
    (``ExecutionPlan.max_output_bytes``, with ``truncation_marker``) and says so on the step's
    STEP_FINISHED (``EngineEvent.truncated``), so the writer keeps no step output in memory and
    stored, streamed and replayed output agree.
    """

    def __init__(
        self,
        execution: Execution,
        *,
        runtime: Committer | None = None,
        steps: dict[int, tuple[str, str]] | None = None,
    ) -> None:
        self.runtime = runtime or _Quiet()
        self.steps = steps or {}
        """Name and command per step index, as the engine numbers them."""
        self.execution = execution
        self.last_seq = execution.last_seq
        """The highest seq stored."""
        self.staged_seq = execution.last_seq
        """The highest seq staged (published, maybe not stored yet)."""
        self.finished = execution.status in TERMINAL
        self.runs: dict[str, TargetRun] | None = None
        """The run's target rows, read once and kept while only this follower writes them."""

    def stage(self, batch: list[EngineEvent]) -> Staged:
        """The batch's events not staged yet: the rows to store and (``Staged.payloads``) what
        live subscribers get, published before it is stored."""
        events = [e for e in batch if e.seq > self.staged_seq]
        rows = []
        for e in events:
            rows.append(
                {
                    "seq": e.seq,
                    "type": str(e.type),
                    "targetId": e.target_id,
                    "stepIndex": e.step_index,
                    "stepName": e.step_name,
                    "data": e.data,
                    "exitCode": e.exit_code,
                    "status": None if e.status is None else str(e.status),
                    "at": datetime.fromtimestamp(e.at, UTC),
                }
            )
        if events:
            self.staged_seq = events[-1].seq
        return Staged(events=events, rows=rows)

    async def persist(self, batch: list[EngineEvent]) -> list[dict[str, Any]]:
        """Stage and store a batch; its payloads (for callers that publish after storing)."""
        staged = self.stage(batch)
        await self.store(staged)
        return staged.payloads

    async def store(self, staged: Staged) -> None:
        """Store staged events (in seq order: one batch after the other) in one transaction."""
        if not staged.events:
            return
        try:
            await self._store(staged)
        except BaseException:
            self.runs = None  # rolled back: the cached rows hold changes that were not stored
            raise

    async def _store(self, staged: Staged) -> None:
        async with unit_of_work(self.runtime):
            # Row lock: two replicas following one run (a lease taken over) never write a seq twice.
            # Only the columns that tell whether someone else wrote; not the plan (every target).
            locked = (
                await Execution.select_for_update().only("id", "last_seq", "status").get(id=self.execution.id)
            )
            pairs = [
                (e, row) for e, row in zip(staged.events, staged.rows, strict=True) if e.seq > locked.last_seq
            ]
            if not pairs:
                # another replica persisted these: its target-run writes are not in our cache
                self.last_seq = locked.last_seq
                self.finished = locked.status in TERMINAL
                self.runs = None
                return
            if (
                self.runs is None
                or locked.last_seq != self.last_seq
                or locked.status != self.execution.status
            ):
                # first batch, after a rollback, or another replica wrote since ours: read afresh
                execution = await Execution.get(id=self.execution.id)
                self.runs = {r.target_id: r for r in await TargetRun.filter(execution_id=execution.id)}
            else:
                execution = self.execution  # only we wrote since: what we hold is what is stored
            runs = self.runs
            dirty: set[str] = set()
            results: dict[tuple[int, int], dict[str, Any]] = {}
            for e, row in pairs:
                if e.type not in _OUTPUT:  # output changes no row but its own (most events)
                    await self._apply(execution, runs, e, row["at"], dirty, results)
            # A few statements per batch, not per target: hundreds of targets finish together.
            await _insert_events(execution.id, [row for _, row in pairs])
            await _save_step_results(results)
            await _update_runs([runs[t] for t in sorted(dirty)])
            self.last_seq = pairs[-1][0].seq
            execution.last_seq = self.last_seq
            # not the whole row: its plan (every target) need not be written again per batch
            await execution.save(update_fields=EXECUTION_FIELDS)
        self.execution = execution

    async def _apply(
        self,
        execution: Execution,
        runs: dict[str, TargetRun],
        e: EngineEvent,
        at: datetime,
        dirty: set[str],
        results: dict[tuple[int, int], dict[str, Any]],
    ) -> None:
        run = runs.get(e.target_id) if e.target_id else None
        if e.type == "EXECUTION_STARTED":
            execution.status = "RUNNING"
            execution.started_at = at
        elif e.type == "TARGET_STARTED" and run is not None:
            run.status = "RUNNING"
            run.started_at = at
            run.connection_reused = e.reused_connection
            dirty.add(run.target_id)
        elif e.type == "STEP_FINISHED" and run is not None and e.step_index is not None:
            name, command = self.steps.get(e.step_index, ("", ""))
            results[(run.id, e.step_index)] = {
                "name": e.step_name or name,
                "command": command,
                "status": e.status or "FAILED",
                "exit_code": e.exit_code,
                "stdout": "",  # read from the event rows (stored once)
                "stderr": "",
                "duration_ms": e.duration_ms,
                # the engine says whether it cut the step's output (its marker is in the events);
                # never a search for the word "truncated" in what the command printed
                "truncated": bool(e.truncated),
                "finished_at": at,
            }
            if e.exit_code is not None:
                run.exit_code = e.exit_code
                dirty.add(run.target_id)
        elif e.type == "TARGET_FINISHED" and run is not None:
            run.status = e.status or "FAILED"
            run.finished_at = at
            if e.status != "SUCCEEDED" and e.data:
                run.message = e.data
            dirty.add(run.target_id)
            if run.status == "SUCCEEDED":
                execution.succeeded_targets += 1
            elif run.status == "CANCELLED":
                execution.cancelled_targets += 1
            else:
                execution.failed_targets += 1
        elif e.type == "EXECUTION_FINISHED":
            execution.status = e.status or "FAILED"
            execution.finished_at = at
            if execution.started_at is None:
                execution.started_at = at
            self.finished = True
            await record_event(
                Outbox, events.execution_finished(execution, targets=events.target_digest(runs.values()))
            )

"""Executions domain logic: start a run on the engine, follow its events, persist and fan out.

A run: snapshot the job (jobs subgraph), get a short-lived connection grant for its targets
(targets subgraph; secrets stay there until the engine's pool asks at connect time), create the
rows, start an ExecutionCoordinator on Ray, and follow it. The follower pulls event batches from
the coordinator, persists them in one transaction per batch (events + the rows they change),
then publishes them to live subscribers. Because the coordinator keeps every event and the
database records the highest persisted sequence number, a restarted service re-attaches and
continues from there: nothing is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from opsconductor_executions.models import Execution, ExecutionEvent, Outbox, StepResult, TargetRun
from opsconductor_executions.settings import Settings
from opsconductor_ray.protocol import CredentialRef, EngineEvent, ExecutionPlan, StepSpec, TargetSpec
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DependencyUnavailableError, NotFoundError, ValidationError
from opsconductor_shared.events import Broadcaster, EventEnvelope, record_event
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.executions")

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
TRUNCATED_MARKER = "\n[... output truncated by OpsConductor: over {limit} bytes ...]\n"

JOB_QUERY = """query($id: ID!) { job(id: $id) { id serial name version targetIds
  steps { order name command timeoutSeconds continueOnError } policy { maxParallel } } }"""
GRANT_MUTATION = """mutation($ids: [ID!]!) { issueConnectionGrant(targetIds: $ids) {
  __typename ... on ConnectionGrant { grant resolverUrl targets { id name host port method } }
  ... on Error { message } } }"""


def now() -> datetime:
    return datetime.now(UTC)


def channel(execution_id: str) -> str:
    return f"execution:{execution_id}"


def event_payload(row: ExecutionEvent | dict[str, Any]) -> dict[str, Any]:
    """The JSON form published to live subscribers (same fields as the GraphQL type)."""
    if isinstance(row, dict):
        return row
    return {
        "seq": row.seq,
        "type": row.type,
        "targetId": row.target_id,
        "stepIndex": row.step_index,
        "stepName": row.step_name,
        "data": row.data,
        "exitCode": row.exit_code,
        "status": row.status,
        "at": row.at.isoformat(),
    }


@dataclass
class Deps:
    settings: Settings
    engine: Any | None  # opsconductor_ray.client.EngineClient
    jobs: ServiceClient
    targets: ServiceClient
    broadcaster: Broadcaster
    followers: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    # -- starting a run ------------------------------------------------------------------------

    async def run_job(
        self, *, job_id: str, target_ids: list[str] | None, actor: str | None, notify: Any
    ) -> Execution:
        if self.engine is None:
            raise DependencyUnavailableError("execution engine (Ray) is not available", "engine")
        try:
            job = (await self.jobs.execute(JOB_QUERY, {"id": job_id}))["job"]
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"jobs service unavailable: {exc}", "jobs") from exc
        if job is None:
            raise NotFoundError(f"job {job_id} not found", id=job_id)
        chosen = list(dict.fromkeys(target_ids)) if target_ids else list(job["targetIds"])
        unknown = [t for t in chosen if t not in set(job["targetIds"])]
        if unknown:
            raise ValidationError(
                f"targets not part of job {job['serial']}: {', '.join(unknown)}", field="targetIds"
            )
        if not chosen:
            raise ValidationError("the job has no targets to run on", field="targetIds")
        try:
            grant = (await self.targets.execute(GRANT_MUTATION, {"ids": chosen}, retries=0))[
                "issueConnectionGrant"
            ]
        except ServiceCallError as exc:
            raise DependencyUnavailableError(f"targets service unavailable: {exc}", "targets") from exc
        if grant["__typename"] != "ConnectionGrant":
            raise ValidationError(grant.get("message", "targets unavailable"), field="targetIds")
        steps = sorted(job["steps"], key=lambda s: s["order"])
        plan_json = {
            "steps": [
                {
                    "name": s["name"],
                    "command": s["command"],
                    "timeoutSeconds": s["timeoutSeconds"],
                    "continueOnError": s["continueOnError"],
                }
                for s in steps
            ],
            "policy": job["policy"],
            "targets": grant["targets"],
        }
        execution = await self._create_rows(job, plan_json, actor)
        notify()
        plan = ExecutionPlan(
            execution_id=execution.id,
            steps=tuple(
                StepSpec(
                    name=s["name"],
                    command=s["command"],
                    timeout_s=float(s["timeoutSeconds"]),
                    continue_on_error=bool(s["continueOnError"]),
                )
                for s in steps
            ),
            targets=tuple(
                TargetSpec(
                    target_id=t["id"],
                    name=t["name"],
                    host=t["host"],
                    port=int(t["port"]),
                    method=str(t["method"]).lower(),
                )
                for t in grant["targets"]
            ),
            credentials=CredentialRef(resolver_url=grant["resolverUrl"], grant=grant["grant"]),
            max_parallel=int(job["policy"]["maxParallel"]),
            connect_timeout_s=self.settings.connect_timeout_seconds,
        )
        # Creating the coordinator actor takes Ray a second or two: the caller gets the QUEUED run now,
        # and the follower starts it (EXECUTION_STARTED then streams to subscribers as usual).
        self.follow(execution.id, plan)
        return execution

    async def _create_rows(self, job: dict[str, Any], plan: dict[str, Any], actor: str | None) -> Execution:
        for attempt in range(5):
            try:
                async with in_transaction():
                    latest = (
                        await Execution.filter(job_id=job["id"])
                        .annotate(m=Max("number"))
                        .values_list("m", flat=True)
                    )
                    number = (latest[0] or 0) + 1 if latest else 1
                    execution = await Execution.create(
                        id=str(uuid.uuid4()),
                        job_id=job["id"],
                        job_serial=job.get("serial"),
                        job_name=job["name"],
                        job_version=job.get("version") or 1,
                        number=number,
                        status="QUEUED",
                        requested_by=actor,
                        plan=plan,
                        total_targets=len(plan["targets"]),
                    )
                    await TargetRun.bulk_create(
                        [
                            TargetRun(
                                execution=execution,
                                target_id=t["id"],
                                target_name=t["name"],
                                host=t["host"],
                                port=int(t["port"]),
                            )
                            for t in plan["targets"]
                        ]
                    )
                    await record_event(
                        Outbox,
                        EventEnvelope(
                            type="executions.execution_started",
                            source="executions",
                            subject=execution.id,
                            actor=actor,
                            data={
                                "executionId": execution.id,
                                "jobId": job["id"],
                                "number": number,
                                "targetIds": [t["id"] for t in plan["targets"]],
                            },
                        ),
                    )
                return execution
            except IntegrityError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))  # another run took this number: take the next
        raise RuntimeError("unreachable")

    async def _finish_without_engine(
        self, execution_id: str, message: str, *, status: str = "FAILED"
    ) -> None:
        """End a run the engine cannot report on (never started, or its coordinator is gone)."""
        async with in_transaction():
            execution = await Execution.get(id=execution_id)
            execution.status = status
            execution.message = message
            execution.finished_at = now()
            if status == "CANCELLED":
                execution.cancelled_targets = execution.total_targets
            else:
                execution.failed_targets = execution.total_targets
            await execution.save()
            await TargetRun.filter(execution_id=execution_id).update(
                status=status, message=message, finished_at=now()
            )
            seq = execution.last_seq + 1
            row = await ExecutionEvent.create(
                execution=execution,
                seq=seq,
                type="EXECUTION_FINISHED",
                status=status,
                data=json.dumps({"message": message}),
                at=now(),
            )
            execution.last_seq = seq
            await execution.save(update_fields=["last_seq"])
        await self.broadcaster.publish(channel(execution_id), json.dumps(event_payload(row)))

    # -- following a run -----------------------------------------------------------------------

    def follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        """Follow a run in the background; with ``plan``, start it on the engine first."""
        if execution_id in self.followers and not self.followers[execution_id].done():
            return
        task = asyncio.create_task(self._follow(execution_id, plan), name=f"follow-{execution_id}")
        self.followers[execution_id] = task
        task.add_done_callback(lambda _t: self.followers.pop(execution_id, None))

    async def _follow(self, execution_id: str, plan: ExecutionPlan | None = None) -> None:
        assert self.engine is not None
        if plan is not None:
            try:
                await self.engine.start(plan)
            except Exception as exc:
                log.exception("engine refused the run", execution_id=execution_id)
                await self._finish_without_engine(
                    execution_id, f"execution engine failed to start the run: {exc}"
                )
                return
        execution = await Execution.get(id=execution_id)
        follower = _Follower(execution, self.settings.max_output_bytes_per_step)
        await follower.load_partial_output()
        failures = 0
        while True:
            try:
                batch: list[EngineEvent] = await self.engine.events(
                    execution_id, follower.last_seq, wait_s=1.0
                )
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                if failures >= 3 or not await self._engine_knows(execution_id):
                    log.error("lost the execution coordinator", execution_id=execution_id, error=str(exc))
                    await self._finish_without_engine(execution_id, f"execution coordinator lost: {exc}")
                    return
                await asyncio.sleep(0.5)
                continue
            if not batch:
                continue
            if self.settings.event_batch_wait_seconds and not any(
                e.type == "EXECUTION_FINISHED" for e in batch
            ):
                await asyncio.sleep(self.settings.event_batch_wait_seconds)
                with contextlib.suppress(Exception):
                    more = await self.engine.events(execution_id, batch[-1].seq, wait_s=0)
                    batch.extend(more)
            rows = await follower.persist(batch)
            for row in rows:
                await self.broadcaster.publish(channel(execution_id), json.dumps(row))
            if follower.finished:
                with contextlib.suppress(Exception):
                    await self.engine.release(execution_id)
                return

    async def _engine_knows(self, execution_id: str) -> bool:
        try:
            return bool(await self.engine.is_running(execution_id))  # type: ignore[union-attr]
        except Exception:
            return False

    async def reattach(self) -> None:
        """On start-up: follow every run the database still shows as active."""
        for execution in await Execution.filter(status__in=["QUEUED", "RUNNING"]):
            if self.engine is not None and await self._engine_knows(execution.id):
                log.info(
                    "re-attaching to running execution",
                    execution_id=execution.id,
                    after_seq=execution.last_seq,
                )
                self.follow(execution.id)
            else:
                await self._finish_without_engine(
                    execution.id, "execution coordinator no longer exists (service or cluster restarted)"
                )

    async def cancel(self, execution_id: str) -> Execution:
        execution = await Execution.get_or_none(id=execution_id)
        if execution is None:
            raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
        if execution.status in TERMINAL:
            raise ValidationError(f"execution already {execution.status.lower()}", field="id")
        if self.engine is not None and execution_id in self.followers:
            # The follower may still be creating the coordinator: give it the time that takes.
            for _ in range(100):
                if await self._engine_knows(execution_id):
                    break
                await asyncio.sleep(0.1)
        if self.engine is None or not await self._engine_knows(execution_id):
            task = self.followers.get(execution_id)
            if task is not None:
                task.cancel()
            await self._finish_without_engine(execution_id, "cancelled before it ran", status="CANCELLED")
        else:
            await self.engine.cancel(execution_id)
        return execution


class _Follower:
    """Applies engine events to the run's rows; one instance per followed execution."""

    def __init__(self, execution: Execution, max_output: int) -> None:
        self.execution = execution
        self.max_output = max_output
        self.last_seq = execution.last_seq
        self.finished = execution.status in TERMINAL
        self.output: dict[tuple[str, int, str], list[str]] = defaultdict(list)
        self.sizes: dict[tuple[str, int, str], int] = defaultdict(int)

    async def load_partial_output(self) -> None:
        """After a restart, rebuild the output of steps that had not finished yet."""
        finished = {
            (r.target_id, r.step_index)
            for r in await ExecutionEvent.filter(execution_id=self.execution.id, type="STEP_FINISHED")
        }
        async for row in ExecutionEvent.filter(
            execution_id=self.execution.id, type__in=["STDOUT", "STDERR"]
        ).order_by("seq"):
            if (
                (row.target_id, row.step_index) not in finished
                and row.target_id
                and row.step_index is not None
            ):
                self._append(row.target_id, row.step_index, row.type, row.data or "")

    def _append(self, target_id: str, step_index: int, kind: str, text: str) -> None:
        key = (target_id, step_index, kind)
        room = self.max_output - self.sizes[key]
        if room <= 0:
            return
        if len(text) > room:
            text = text[:room] + TRUNCATED_MARKER.format(limit=self.max_output)
            self.sizes[key] = self.max_output
        else:
            self.sizes[key] += len(text)
        self.output[key].append(text)

    async def persist(self, batch: list[EngineEvent]) -> list[dict[str, Any]]:
        batch = [e for e in batch if e.seq > self.last_seq]
        if not batch:
            return []
        payloads: list[dict[str, Any]] = []
        async with in_transaction():
            execution = await Execution.get(id=self.execution.id)
            runs = {r.target_id: r for r in await TargetRun.filter(execution_id=execution.id)}
            steps_by_index = {i: s for i, s in enumerate(execution.plan.get("steps", []))}
            rows = []
            dirty: set[str] = set()
            for e in batch:
                at = datetime.fromtimestamp(e.at, UTC)
                rows.append(
                    ExecutionEvent(
                        execution_id=execution.id,
                        seq=e.seq,
                        type=e.type,
                        target_id=e.target_id,
                        step_index=e.step_index,
                        step_name=e.step_name,
                        data=e.data,
                        exit_code=e.exit_code,
                        status=e.status,
                        at=at,
                    )
                )
                await self._apply(execution, runs, steps_by_index, e, at, dirty)
            await ExecutionEvent.bulk_create(rows)
            self.last_seq = batch[-1].seq
            execution.last_seq = self.last_seq
            await execution.save()
            for target_id in dirty:
                await runs[target_id].save()
            for row in rows:
                payloads.append(event_payload(row))
        self.execution = execution
        return payloads

    async def _apply(
        self,
        execution: Execution,
        runs: dict[str, TargetRun],
        steps: dict[int, Any],
        e: EngineEvent,
        at: datetime,
        dirty: set[str],
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
        elif e.type in ("STDOUT", "STDERR") and e.target_id and e.step_index is not None:
            self._append(e.target_id, e.step_index, e.type, e.data or "")
        elif e.type == "STEP_FINISHED" and run is not None and e.step_index is not None:
            spec = steps.get(e.step_index, {})
            out = "".join(self.output.pop((run.target_id, e.step_index, "STDOUT"), []))
            err = "".join(self.output.pop((run.target_id, e.step_index, "STDERR"), []))
            await StepResult.update_or_create(
                target_run=run,
                step_index=e.step_index,
                defaults={
                    "name": e.step_name or spec.get("name", ""),
                    "command": spec.get("command", ""),
                    "status": e.status or "FAILED",
                    "exit_code": e.exit_code,
                    "stdout": out,
                    "stderr": err,
                    "duration_ms": e.duration_ms,
                    "finished_at": at,
                },
            )
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
                Outbox,
                EventEnvelope(
                    type="executions.execution_finished",
                    source="executions",
                    subject=execution.id,
                    data={
                        "executionId": execution.id,
                        "jobId": execution.job_id,
                        "status": execution.status,
                        "succeeded": execution.succeeded_targets,
                        "failed": execution.failed_targets,
                    },
                ),
            )

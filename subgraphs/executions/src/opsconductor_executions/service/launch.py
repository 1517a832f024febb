"""Starting runs: dry run, runJob and retryExecution (prepare → dangerous-command decision →
create), and queue admission (the next run waiting behind an ended one).

``prepare_run`` / ``prepare_retry`` make no writes. ``decide_dangerous`` and ``create_run`` write
in the caller's transaction (the resolver's ``unit_of_work``); the run is handed to the engine
after the commit (``ExecutionService.start``). ``start_next`` is background work and opens its own.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.functions import Max
from tortoise.transactions import in_transaction

from opsconductor_executions import events
from opsconductor_executions.errors import DangerousCommandBlockedError, JobAlreadyRunningError
from opsconductor_executions.models import ACTIVE, TERMINAL, Execution, Outbox, TargetRun
from opsconductor_executions.service.follow import Followers
from opsconductor_executions.service.lifecycle import (
    GrantClock,
    advisory_lock,
    check_idempotency_key,
    now,
    remember_key,
    remembered_execution,
)
from opsconductor_executions.service.plans import Grant, JobRun, PlanSource, engine_plan, stored_plan
from opsconductor_executions.settings import Settings
from opsconductor_ray.protocol import ExecutionPlan
from opsconductor_shared.errors import DependencyUnavailableError, DomainError, NotFoundError, ValidationError
from opsconductor_shared.events import record_event
from opsconductor_shared.logging import get_logger
from opsconductor_shared.unit_of_work import unit_of_work

log = get_logger("opsconductor.executions")


@dataclass(frozen=True)
class Caller:
    """Who starts a run, and what they may do (the resolver reads it from the identity once)."""

    actor: str | None
    may_run_dangerous: bool = False
    confirm_dangerous: bool = False


@dataclass
class Launch:
    """A run about to be created: its plan, who asks, and (after create_run) its grant."""

    job_run: JobRun
    caller: Caller
    retry_of: str | None = None
    idempotency_key: str | None = None
    execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    grant: Grant | None = None
    engine_plan: ExecutionPlan | None = None


@dataclass(frozen=True)
class PlanPreview:
    """A dry run's answer: the plan, its targets as the targets subgraph knows them, its batches."""

    job_run: JobRun
    targets: list[dict[str, Any]]
    batches: list[list[str]]


def _engine_required(engine: Any | None) -> None:
    if engine is None:
        raise DependencyUnavailableError("execution engine (Ray) is not available", "engine")


async def dry_run(
    *, plans: PlanSource, job_id: str, target_ids: list[str] | None, parameters: dict[str, Any] | None
) -> PlanPreview:
    """The resolved plan and its batches; nothing is created or started."""
    job_run = await plans.job_run(job_id=job_id, parameters=parameters, target_ids=target_ids)
    if not job_run.plan.target_ids:
        raise ValidationError("the job has no targets to run on", field="targetIds")
    targets = await plans.targets_info(job_run.plan.target_ids)
    return PlanPreview(
        job_run=job_run, targets=targets, batches=job_run.plan.policy.batches([t["id"] for t in targets])
    )


async def prepare_run(
    *,
    plans: PlanSource,
    engine: Any | None,
    settings: Settings,
    job_id: str,
    target_ids: list[str] | None,
    parameters: dict[str, Any] | None,
    caller: Caller,
    idempotency_key: str | None = None,
) -> Launch | Execution:
    """runJob's plan; or, for a repeated request (same caller, job and idempotency key), the run
    the first one created (nothing runs twice, L10)."""
    _engine_required(engine)
    key = check_idempotency_key(idempotency_key)
    if key is not None:
        known = await remembered_execution(caller.actor, job_id, key, settings.idempotency_retention)
        if known is not None:
            return known
    job_run = await plans.job_run(job_id=job_id, parameters=parameters, target_ids=target_ids)
    return Launch(job_run=job_run, caller=caller, idempotency_key=key)


async def prepare_retry(
    *, engine: Any | None, execution_id: str, only_failed: bool, caller: Caller
) -> Launch:
    """A new run of the same job version (the plan exactly as run), on the targets that did not
    succeed (FAILED or CANCELLED) or, with ``only_failed`` false, on all of them."""
    _engine_required(engine)
    original = await Execution.get_or_none(id=execution_id)
    if original is None:
        raise NotFoundError(f"execution {execution_id} not found", id=execution_id)
    if original.status not in TERMINAL:
        raise ValidationError(f"execution is still {original.status.lower()}", field="id")
    runs = await TargetRun.filter(execution_id=execution_id).order_by("id")
    chosen = [r.target_id for r in runs if not only_failed or r.status != "SUCCEEDED"]
    if not chosen:
        raise ValidationError("no failed targets to retry", field="onlyFailed")
    stored = stored_plan(original)
    plan = stored.plan.model_copy(update={"target_ids": tuple(chosen)})
    return Launch(job_run=JobRun(plan=plan, dangerous=stored.dangerous), caller=caller, retry_of=original.id)


async def decide_dangerous(*, launch: Launch) -> DangerousCommandBlockedError | None:
    """Record the dangerous-command decision (caller's transaction) when the plan has findings;
    the error to raise once it is committed when the run is blocked."""
    findings = launch.job_run.dangerous
    if not findings:
        return None
    caller, plan = launch.caller, launch.job_run.plan
    allowed = caller.may_run_dangerous and caller.confirm_dangerous
    if allowed:
        reason = "confirmed by a holder of jobs:execute-dangerous"
    elif not caller.may_run_dangerous:
        reason = "caller lacks jobs:execute-dangerous"
    else:
        reason = "not confirmed (confirmDangerous: true is required)"
    await record_event(
        Outbox,
        events.dangerous_command_decision(
            actor=caller.actor,
            job_id=plan.job_id,
            job_serial=plan.serial or None,
            job_version=plan.version,
            findings=findings,
            allowed=allowed,
            reason=reason,
        ),
    )
    if allowed:
        return None
    rules = ", ".join(sorted({f.get("rule", "?") for f in findings}))
    return DangerousCommandBlockedError(f"the job has dangerous steps ({rules}): {reason}", findings)


def _engine_plan(settings: Settings, execution_id: str, launch: Launch, grant: Grant) -> ExecutionPlan:
    return engine_plan(
        execution_id,
        launch.job_run.plan,
        grant,
        connect_timeout_s=settings.connect_timeout_seconds,
        max_output_bytes=settings.max_output_bytes_per_step,
    )


async def create_run(*, plans: PlanSource, settings: Settings, replica: str, launch: Launch) -> Execution:
    """Grant, engine plan (refuses what the engine cannot run) and the run's rows, in the caller's
    transaction; the job's concurrency policy applies. A concurrent request with the same
    idempotency key gets the run the first one created."""
    plan = launch.job_run.plan
    if not plan.target_ids:
        raise ValidationError("the job has no targets to run on", field="targetIds")
    launch.grant = await plans.grant(plan.target_ids)  # the authoritative check that they exist
    launch.engine_plan = _engine_plan(settings, launch.execution_id, launch, launch.grant)
    for attempt in range(5):
        try:
            async with in_transaction() as conn:  # a savepoint: a number clash is retried
                return await _create_rows(conn, settings=settings, replica=replica, launch=launch)
        except IntegrityError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.01 * (attempt + 1))  # another run took this number: take the next
    raise RuntimeError("unreachable")


async def _create_rows(conn: Any, *, settings: Settings, replica: str, launch: Launch) -> Execution:
    plan, grant, actor = launch.job_run.plan, launch.grant, launch.caller.actor
    assert grant is not None
    await advisory_lock(conn, plan.job_id)
    if launch.idempotency_key is not None:
        known = await remembered_execution(
            actor, plan.job_id, launch.idempotency_key, settings.idempotency_retention
        )
        if known is not None:
            return known
        await remember_key(
            actor, plan.job_id, launch.idempotency_key, launch.execution_id, settings.idempotency_retention
        )
    waiting = False
    message = None
    concurrency = plan.policy.concurrency
    if concurrency in ("skip", "queue"):
        active = await Execution.filter(job_id=plan.job_id, status__in=ACTIVE).order_by("number").first()
        if active is not None and concurrency == "skip":
            raise JobAlreadyRunningError(
                f"job {plan.serial or plan.job_id} already has execution "
                f"#{active.number} {active.status.lower()} (concurrency: skip)",
                active.id,
            )
        if active is not None:
            waiting = True
            message = f"queued behind execution #{active.number}"
    latest = await Execution.filter(job_id=plan.job_id).annotate(m=Max("number")).values_list("m", flat=True)
    number = int(cast(int, latest[0]) or 0) + 1 if latest else 1
    execution = await Execution.create(
        id=launch.execution_id,
        job_id=plan.job_id,
        job_serial=plan.serial or None,
        job_name=plan.name,
        job_version=plan.version,
        number=number,
        status="QUEUED",
        message=message,
        waiting=waiting,
        requested_by=actor,
        plan=plan.to_json(),
        dangerous=launch.job_run.dangerous,
        parameters=plan.parameters,
        retry_of=launch.retry_of,
        total_targets=len(grant.targets),
        lease_owner=None if waiting else replica,
        lease_until=None if waiting else now() + settings.lease,
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
            for t in grant.targets
        ]
    )
    await record_event(
        Outbox, events.execution_started(execution, target_ids=[t["id"] for t in grant.targets])
    )
    return execution


def start(*, followers: Followers, settings: Settings, execution: Execution, launch: Launch) -> None:
    """After the run's rows committed: hand it to a follower, which starts it on the engine
    (a run waiting behind another starts when ``start_next`` admits it)."""
    if execution.waiting or execution.id != launch.execution_id or launch.engine_plan is None:
        return  # queued, or a concurrent request with the same idempotency key created it
    if launch.grant is not None:
        followers.grant_clocks[execution.id] = GrantClock.of(
            launch.grant.expires_at, settings.grant_renew_fraction
        )
    followers.follow(execution.id, launch.engine_plan)


async def start_next(*, followers: Followers, plans: PlanSource, settings: Settings, job_id: str) -> None:
    """Start the oldest run queued behind others of this job, when none is active any more."""
    async with unit_of_work(followers.runtime):
        await advisory_lock(Execution._choose_db(True), job_id)
        if await Execution.filter(job_id=job_id, status__in=ACTIVE, waiting=False).exists():
            return
        # locked and re-checked: a cancel of this queued run either wins or sees it started
        nxt = (
            await Execution.select_for_update()
            .filter(job_id=job_id, status="QUEUED", waiting=True)
            .order_by("number")
            .first()
        )
        if nxt is None:
            return
        nxt.waiting = False
        nxt.message = None  # pyright: ignore[reportAttributeAccessIssue]
        nxt.lease_owner = followers.replica
        nxt.lease_until = now() + settings.lease
        await nxt.save(update_fields=["waiting", "message", "lease_owner", "lease_until"])
    try:
        launch = Launch(job_run=stored_plan(nxt), caller=Caller(actor=nxt.requested_by), execution_id=nxt.id)
        grant = await plans.grant(launch.job_run.plan.target_ids)
        plan = _engine_plan(settings, nxt.id, launch, grant)
    except DomainError as exc:
        await followers.finish_without_engine(nxt.id, f"could not start the queued run: {exc.message}")
        return
    log.info("starting queued execution", execution_id=nxt.id, job_id=job_id)
    followers.grant_clocks[nxt.id] = GrantClock.of(grant.expires_at, settings.grant_renew_fraction)
    followers.follow(nxt.id, plan)

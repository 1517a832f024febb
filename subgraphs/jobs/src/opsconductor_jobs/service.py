"""Jobs domain logic: validate a definition, check its targets exist, store it, list and delete.

No strawberry here. Functions write; the resolver owns the transaction. Target existence is
checked through a :class:`TargetDirectory` (the targets subgraph in production) *before* the
resolver opens its transaction, so no database transaction waits on another service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from tortoise.expressions import F, Q

from opsconductor_jobs import events
from opsconductor_jobs.models import (
    DEFAULT_MAX_PARALLEL,
    DEFAULT_STEP_TIMEOUT_SECONDS,
    Counter,
    Job,
    JobStep,
    JobTarget,
    Outbox,
    live_jobs_by_id,
    parse_id,
)
from opsconductor_shared.client import ServiceCallError, ServiceClient
from opsconductor_shared.errors import DomainError, ValidationError
from opsconductor_shared.events import new_uuid7, record_event
from opsconductor_shared.logging import get_logger

log = get_logger("opsconductor.jobs")

NAME_MAX = 255
DESCRIPTION_MAX = 10_000
COMMAND_MAX_BYTES = 64 * 1024
TIMEOUT_RANGE = (1, 86_400)
MAX_PARALLEL_RANGE = (1, 1000)
MAX_STEPS = 100
MAX_TARGETS = 10_000
TARGET_ID_MAX = 64
JOB_COUNTER = "job"


# ---- domain errors ----------------------------------------------------------------------------


class UnknownTargetsError(DomainError):
    def __init__(self, target_ids: list[str]) -> None:
        super().__init__(f"unknown target id(s): {', '.join(target_ids)}")
        self.target_ids = target_ids


class DependencyUnavailableError(DomainError):
    def __init__(self, service: str, message: str) -> None:
        super().__init__(message)
        self.service = service


# ---- input (plain data; the resolver converts GraphQL inputs into these) ----------------------


@dataclass
class StepDraft:
    name: str
    command: str
    timeout_seconds: int | None = None
    continue_on_error: bool | None = None


@dataclass
class JobDraft:
    name: str
    steps: list[StepDraft]
    target_ids: list[str]
    description: str | None = None
    max_parallel: int | None = None


@dataclass
class ValidStep:
    order: int
    name: str
    command: str
    timeout_seconds: int
    continue_on_error: bool


@dataclass
class ValidJob:
    name: str
    description: str | None
    steps: list[ValidStep]
    target_ids: list[str]
    policy: dict[str, Any] = field(default_factory=dict)


def _in_range(value: int, bounds: tuple[int, int], what: str, field_name: str) -> None:
    low, high = bounds
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high} (got {value})", field=field_name)


def validate_job(draft: JobDraft) -> ValidJob:
    """Check a new definition; the first problem raises ``ValidationError`` naming the input field.

    Field names are the GraphQL input paths (``steps[1].command``) so a form can point at them.
    """
    name = draft.name.strip()
    if not name:
        raise ValidationError("name must not be empty", field="name")
    if len(name) > NAME_MAX:
        raise ValidationError(f"name must be at most {NAME_MAX} characters", field="name")
    description = draft.description.strip() if draft.description else None
    if description and len(description) > DESCRIPTION_MAX:
        raise ValidationError(
            f"description must be at most {DESCRIPTION_MAX} characters", field="description"
        )

    if not draft.steps:
        raise ValidationError("a job needs at least one step", field="steps")
    if len(draft.steps) > MAX_STEPS:
        raise ValidationError(f"a job has at most {MAX_STEPS} steps", field="steps")
    steps: list[ValidStep] = []
    for index, step in enumerate(draft.steps):
        path = f"steps[{index}]"
        step_name = step.name.strip()
        if not step_name:
            raise ValidationError(f"step {index + 1}: name must not be empty", field=f"{path}.name")
        if len(step_name) > NAME_MAX:
            raise ValidationError(
                f"step {index + 1}: name must be at most {NAME_MAX} characters", field=f"{path}.name"
            )
        if not step.command.strip():
            raise ValidationError(f"step {index + 1}: command must not be empty", field=f"{path}.command")
        size = len(step.command.encode())
        if size > COMMAND_MAX_BYTES:
            raise ValidationError(
                f"step {index + 1}: command is {size} bytes; the limit is {COMMAND_MAX_BYTES} bytes (64 KiB)",
                field=f"{path}.command",
            )
        timeout = DEFAULT_STEP_TIMEOUT_SECONDS if step.timeout_seconds is None else step.timeout_seconds
        _in_range(timeout, TIMEOUT_RANGE, f"step {index + 1}: timeoutSeconds", f"{path}.timeoutSeconds")
        steps.append(
            ValidStep(
                order=index + 1,
                name=step_name,
                command=step.command,
                timeout_seconds=timeout,
                continue_on_error=bool(step.continue_on_error),
            )
        )

    max_parallel = DEFAULT_MAX_PARALLEL if draft.max_parallel is None else draft.max_parallel
    _in_range(max_parallel, MAX_PARALLEL_RANGE, "maxParallel", "policy.maxParallel")

    target_ids: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(draft.target_ids):
        target_id = str(raw).strip()
        if not target_id or len(target_id) > TARGET_ID_MAX:
            raise ValidationError(f"targetIds[{index}] is not a valid id", field=f"targetIds[{index}]")
        if target_id not in seen:  # the same target twice means once
            seen.add(target_id)
            target_ids.append(target_id)
    if not target_ids:
        raise ValidationError("a job needs at least one target", field="targetIds")
    if len(target_ids) > MAX_TARGETS:
        raise ValidationError(f"a job has at most {MAX_TARGETS} targets", field="targetIds")

    return ValidJob(
        name=name,
        description=description or None,
        steps=steps,
        target_ids=target_ids,
        policy={"maxParallel": max_parallel},
    )


# ---- the targets service ----------------------------------------------------------------------


class TargetDirectory(Protocol):
    """Which of some target ids exist. Raises ``DependencyUnavailableError`` when it cannot tell."""

    async def existing(self, target_ids: Sequence[str]) -> set[str]: ...


TARGETS_BY_IDS = "query($ids: [ID!]!) { targetsByIds(ids: $ids) { id } }"


class TargetsSubgraph:
    """The targets subgraph, called directly with the jobs service token (``targets:read``)."""

    chunk = 500

    def __init__(self, client: ServiceClient) -> None:
        self.client = client

    async def existing(self, target_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(target_ids), self.chunk):
            ids = list(target_ids[start : start + self.chunk])
            try:
                # One retry only: a person is waiting on createJob, and a down service stays down.
                data = await self.client.execute(TARGETS_BY_IDS, {"ids": ids}, retries=1)
                found.update(str(t["id"]) for t in data["targetsByIds"])
            except (ServiceCallError, KeyError, TypeError, ValueError) as exc:
                log.warning("targets service call failed", url=self.client.url, error=str(exc))
                raise DependencyUnavailableError(
                    "targets",
                    "the targets service is unavailable, so the target ids could not be checked; "
                    "try again shortly",
                ) from exc
        return found


async def check_targets(directory: TargetDirectory, target_ids: list[str]) -> None:
    found = await directory.existing(target_ids)
    missing = [t for t in target_ids if t not in found]
    if missing:
        raise UnknownTargetsError(missing)


# ---- writes -----------------------------------------------------------------------------------


async def next_number(counter: str = JOB_COUNTER) -> int:
    """Take the next value of a counter; the UPDATE holds the row lock until the caller commits."""
    if not await Counter.filter(name=counter).update(value=F("value") + 1):
        await Counter.create(name=counter, value=1)
    row = await Counter.get(name=counter)
    return int(row.value)


async def ensure_counters() -> None:
    """Create the counter rows at start-up so the first concurrent creates do not race on the insert."""
    await Counter.get_or_create(name=JOB_COUNTER, defaults={"value": 0})


def serial_of(number: int) -> str:
    return f"JOB-{number:06d}"


async def create_job(job: ValidJob, *, actor: str | None) -> Job:
    """Store a validated definition (its targets already checked) and record ``jobs.job_created``."""
    number = await next_number()
    row = await Job.create(
        id=new_uuid7(),
        number=number,
        serial=serial_of(number),
        name=job.name,
        description=job.description,
        policy=job.policy,
        created_by=actor,
    )
    await JobStep.bulk_create(
        [
            JobStep(
                job=row,
                order=s.order,
                name=s.name,
                type="command",
                command=s.command,
                timeout_seconds=s.timeout_seconds,
                continue_on_error=s.continue_on_error,
            )
            for s in job.steps
        ]
    )
    await JobTarget.bulk_create([JobTarget(job=row, target_id=t) for t in job.target_ids])
    await record_event(
        Outbox, events.job_created(row, step_count=len(job.steps), target_ids=job.target_ids, actor=actor)
    )
    return row


async def delete_job(job_id: str, *, actor: str | None) -> Job | None:
    """Soft-delete; ``None`` when there is no such live job."""
    key = parse_id(job_id)
    if key is None:
        return None
    row = await Job.filter(id=key, is_deleted=False).select_for_update().first()
    if row is None:
        return None
    row.is_deleted = True
    row.deleted_at = datetime.now(UTC)
    await row.save(update_fields=["is_deleted", "deleted_at", "updated_at"])
    await record_event(Outbox, events.job_deleted(row, actor=actor))
    return row


# ---- reads ------------------------------------------------------------------------------------


async def get_job(job_id: str) -> Job | None:
    return (await live_jobs_by_id([job_id])).get(str(parse_id(job_id)))


@dataclass
class JobPage:
    rows: list[Job]
    has_next: bool
    total: int


async def list_jobs(*, first: int, after: int | None, search: str | None) -> JobPage:
    """Newest first, keyset-paged on the job number (``after`` is the last number seen)."""
    base = Job.filter(is_deleted=False)
    term = (search or "").strip()
    if term:
        base = base.filter(
            Q(name__icontains=term) | Q(serial__icontains=term) | Q(description__icontains=term)
        )
    total = await base.count()
    page = base.order_by("-number")
    if after is not None:
        page = page.filter(number__lt=after)
    rows = await page.limit(first + 1).prefetch_related("steps", "targets")
    return JobPage(rows=list(rows[:first]), has_next=len(rows) > first, total=total)

"""The jobs service's own tables: job definitions, their ordered steps and target links."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase

DEFAULT_MAX_PARALLEL = 50
DEFAULT_STEP_TIMEOUT_SECONDS = 300


class Counter(models.Model):
    """Named increasing counters: the job counter numbers the serials.

    Serials are JOB-000001, JOB-000002, ..., the row is locked by the increment, so concurrent
    creates get distinct numbers. Table names carry the job prefix because tortoise caches
    insert statements per (connection name, table) process-wide, and the embedded platform runs
    every service in one process.
    """

    name = fields.CharField(max_length=50, primary_key=True)
    value = fields.BigIntField(default=0)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "job_counters"


class Job(models.Model):
    """A job definition, soft-deleted, since runs and audit refer to it."""

    id = fields.UUIDField(primary_key=True)
    number = fields.BigIntField(unique=True, description="From the job counter, orders the job list.")
    serial = fields.CharField(max_length=20, unique=True, description="JOB-000001: the human handle.")
    name = fields.CharField(max_length=255)
    description = fields.TextField(null=True)
    policy = fields.JSONField(
        default=dict, description="Run policy keys (camelCase), see service.DEFAULT_POLICY."
    )
    parameters = fields.JSONField(
        default=list, description="Declared parameters (name, type, required, default, choices)."
    )
    target_selector = fields.JSONField(
        null=True, description="Target selector (tags, osTypes, environments) resolved per run."
    )
    version = fields.IntField(default=1, description="Incremented on every edit of the definition.")
    is_deleted = fields.BooleanField(default=False, db_index=True)
    deleted_at = fields.DatetimeField(null=True)
    created_by = fields.CharField(
        max_length=64, null=True, description="Subject of the token of the creator."
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    steps: fields.ReverseRelation[JobStep]
    targets: fields.ReverseRelation[JobTarget]
    versions: fields.ReverseRelation[JobVersion]

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "jobs"

    def ordered_steps(self) -> list[JobStep]:
        """Steps in run order (needs 'steps' prefetched)."""
        return sorted(self.steps, key=lambda s: s.order)

    def target_ids(self) -> list[str]:
        """Target ids in the order they were given (needs 'targets' prefetched)."""
        return [t.target_id for t in sorted(self.targets, key=lambda t: t.id)]


class JobStep(models.Model):
    id = fields.BigIntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "jobs.Job", related_name="steps", on_delete=fields.CASCADE
    )
    order = fields.IntField(description="1-based position, steps run in this order on each target.")
    name = fields.CharField(max_length=255)
    type = fields.CharField(max_length=20, default="command")
    command = fields.TextField()
    timeout_seconds = fields.IntField(default=DEFAULT_STEP_TIMEOUT_SECONDS)
    continue_on_error = fields.BooleanField(default=False)
    working_directory = fields.TextField(null=True)
    env = fields.JSONField(default=list, description="Environment variables (name and value) in order.")
    expected_exit_codes = fields.JSONField(
        default=list, description="Exit codes that count as success (empty means 0)."
    )
    script = fields.JSONField(null=True, description="Script (interpreter, body, arguments) of script steps.")
    transfer = fields.JSONField(
        null=True, description="Transfer (direction, source, destination, content, mode)."
    )

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "job_steps"
        unique_together = (("job", "order"),)


class JobVersion(models.Model):
    """One version of a definition, as a whole snapshot: runs record the version they ran, and
    an edit must not change what an old run's version meant."""

    id = fields.BigIntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "jobs.Job", related_name="versions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    snapshot = fields.JSONField(
        description="The whole definition (name, steps, targets, parameters, policy)."
    )
    created_by = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "job_versions"
        unique_together = (("job", "version"),)


class JobTarget(models.Model):
    """A target a job runs on, by id (the targets service owns it)."""

    id = fields.BigIntField(primary_key=True)
    job: fields.ForeignKeyRelation[Job] = fields.ForeignKeyField(
        "jobs.Job", related_name="targets", on_delete=fields.CASCADE
    )
    target_id = fields.CharField(max_length=64, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "job_targets"
        unique_together = (("job", "target_id"),)


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"


def parse_id(value: str) -> uuid.UUID | None:
    """A job id as a UUID, 'None' for anything else (ids are opaque to clients, so no error)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def live_jobs_by_id(job_ids: Sequence[str]) -> dict[str, Job]:
    """Live (not deleted) jobs with steps and targets loaded, unknown and malformed ids are absent."""
    keys = [k for k in (parse_id(i) for i in job_ids) if k is not None]
    if not keys:
        return {}
    rows = await Job.filter(id__in=keys, is_deleted=False).prefetch_related("steps", "targets")
    return {str(row.id): row for row in rows}

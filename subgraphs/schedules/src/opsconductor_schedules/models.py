"""The schedules service's own tables: schedules, their fire history (the claims), outbox, processed events."""

from __future__ import annotations

from typing import Any

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase


class Schedule(models.Model):
    """When a job runs by itself, and as whom (its owner)."""

    id = fields.CharField(max_length=36, primary_key=True)  # UUIDv7 string: sorts by creation time
    job_id = fields.CharField(max_length=36, db_index=True)
    owner_id = fields.CharField(max_length=64, null=True, description="User the runs act for (the creator).")
    name = fields.CharField(max_length=255, null=True)
    kind = fields.CharField(max_length=16)
    timezone = fields.CharField(max_length=64)
    cron = fields.CharField(max_length=200, null=True)
    interval_seconds = fields.IntField(null=True)
    run_at = fields.DatetimeField(null=True)
    recurring: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    anchor = fields.DatetimeField(description="Where INTERVAL and recurring periods count from.")
    start_at = fields.DatetimeField(null=True)
    end_at = fields.DatetimeField(null=True)
    max_runs = fields.IntField(null=True)
    jitter_seconds = fields.IntField(default=0)
    misfire_policy = fields.CharField(max_length=16, default="RUN_ONCE")
    catch_up_window_seconds = fields.IntField(default=3600)
    overlap_policy = fields.CharField(max_length=16, default="SKIP")
    dst_gap_policy = fields.CharField(max_length=24, default="RUN_AT_TRANSITION")
    dst_overlap_policy = fields.CharField(max_length=16, default="FIRST")
    blackouts: fields.Field[list[dict[str, Any]]] = fields.JSONField(default=list)
    parameters: fields.Field[dict[str, Any] | None] = fields.JSONField(null=True)
    target_ids: fields.Field[list[str] | None] = fields.JSONField(null=True)
    enabled = fields.BooleanField(default=True)
    fire_count = fields.IntField(default=0, description="Runs started (FIRED), for maxRuns.")
    last_fire_at = fields.DatetimeField(null=True)
    cursor_at = fields.DatetimeField(
        null=True, description="Every nominal time up to here has its history row (the loop's progress)."
    )
    next_fire_at = fields.DatetimeField(null=True, description="The next nominal fire time, when enabled.")
    next_due_at = fields.DatetimeField(
        null=True, db_index=True, description="When the loop must next act: next fire plus jitter."
    )
    version = fields.IntField(default=1)
    is_deleted = fields.BooleanField(default=False, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "schedules"


class ScheduleFire(models.Model):
    """One nominal time of one schedule: the claim (unique) and then its outcome."""

    id = fields.CharField(max_length=36, primary_key=True)
    schedule: fields.ForeignKeyRelation[Schedule] = fields.ForeignKeyField(
        "schedules.Schedule", related_name="fires", on_delete=fields.CASCADE
    )
    job_id = fields.CharField(max_length=36, db_index=True)
    scheduled_for = fields.DatetimeField()
    fired_at = fields.DatetimeField(null=True)
    outcome = fields.CharField(
        max_length=20, description="A FireOutcome, or STARTING while the run is being started."
    )
    reason: fields.Field[str | None] = fields.TextField(null=True)  # type: ignore[assignment]
    execution_id = fields.CharField(max_length=36, null=True)
    late_ms = fields.IntField(null=True)
    catch_up = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    schedule_id: str

    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "schedule_fires"
        unique_together = (("schedule", "scheduled_for"),)


class Outbox(OutboxBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:  # pyright: ignore[reportIncompatibleVariableOverride] - tortoise's Meta idiom
        table = "processed_events"

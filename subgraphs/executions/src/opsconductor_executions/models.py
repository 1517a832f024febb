"""Executions' own tables: runs, per-target runs, per-step results, and the event log."""

from __future__ import annotations

from tortoise import fields, models

from opsconductor_shared.events import OutboxBase, ProcessedEventBase

# pyright: reportIncompatibleVariableOverride=false
# (Tortoise's `class Meta` per model)

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
"""Statuses a run (and a target run) ends in."""
ACTIVE = ("QUEUED", "RUNNING")
"""Statuses of a run that has not ended."""


class Execution(models.Model):
    id = fields.CharField(max_length=36, primary_key=True)
    job_id = fields.CharField(max_length=36, db_index=True)
    job_serial = fields.CharField(max_length=30, null=True)
    legacy_serial = fields.CharField(max_length=60, null=True)  # EXEC-00000001 / J20250000001.0001 (imported)
    job_name = fields.CharField(max_length=255)
    job_version = fields.IntField(default=1)
    number = fields.IntField()
    status = fields.CharField(max_length=20, default="QUEUED", db_index=True)
    message = fields.TextField(null=True)
    requested_by = fields.CharField(max_length=100, null=True)
    # the RunPlan as run (opsconductor_shared.runplan, camelCase JSON): never secrets. Rows from
    # before RunPlan hold {steps, policy, targets, dangerous}: read it with service.plans.stored_plan.
    plan = fields.JSONField(default=dict)
    dangerous = fields.JSONField(null=True)  # the dangerous-command findings confirmed for this run
    parameters = fields.JSONField(default=dict)  # effective job parameters (defaults applied)
    retry_of = fields.CharField(max_length=36, null=True)  # the execution this one retries
    waiting = fields.BooleanField(default=False)  # QUEUED behind another run of the job (concurrency=queue)
    # cancelExecution was asked: the run ends CANCELLED once the engine confirms (or settles that it
    # never started); until then it keeps its status (CANCELLING in the API).
    cancel_requested = fields.BooleanField(default=False, db_default=False)
    # Which replica follows the run, until when: a replica adopts runs whose lease expired.
    lease_owner = fields.CharField(max_length=100, null=True)
    lease_until = fields.DatetimeField(null=True)
    total_targets = fields.IntField(default=0)
    succeeded_targets = fields.IntField(default=0)
    failed_targets = fields.IntField(default=0)
    cancelled_targets = fields.IntField(default=0)
    last_seq = fields.IntField(default=0)  # highest engine event persisted
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "executions"
        unique_together = (("job_id", "number"),)


class TargetRun(models.Model):
    id = fields.BigIntField(primary_key=True)
    execution = fields.ForeignKeyField("executions.Execution", related_name="target_runs")
    target_id = fields.CharField(max_length=36, db_index=True)
    target_name = fields.CharField(max_length=255)
    host = fields.CharField(max_length=255)
    port = fields.IntField()
    status = fields.CharField(max_length=20, default="PENDING")
    exit_code = fields.IntField(null=True)
    message = fields.TextField(null=True)
    connection_reused = fields.BooleanField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "target_runs"
        unique_together = (("execution", "target_id"),)


class StepResult(models.Model):
    id = fields.BigIntField(primary_key=True)
    target_run = fields.ForeignKeyField("executions.TargetRun", related_name="steps")
    step_index = fields.IntField()
    name = fields.CharField(max_length=255)
    command = fields.TextField()
    status = fields.CharField(max_length=20)
    exit_code = fields.IntField(null=True)
    stdout = fields.TextField(default="")
    stderr = fields.TextField(default="")
    duration_ms = fields.FloatField(null=True)
    truncated = fields.BooleanField(default=False)  # stdout or stderr cut at the per-step limit
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "step_results"
        unique_together = (("target_run", "step_index"),)


class ExecutionEvent(models.Model):
    id = fields.BigIntField(primary_key=True)
    execution = fields.ForeignKeyField("executions.Execution", related_name="events")
    seq = fields.IntField()
    type = fields.CharField(max_length=30)
    target_id = fields.CharField(max_length=36, null=True)
    step_index = fields.IntField(null=True)
    step_name = fields.CharField(max_length=255, null=True)
    data = fields.TextField(null=True)
    exit_code = fields.IntField(null=True)
    status = fields.CharField(max_length=20, null=True)
    at = fields.DatetimeField()

    class Meta:
        table = "execution_events"
        unique_together = (("execution", "seq"),)


class IdempotencyKey(models.Model):
    """runJob's idempotencyKey: a retried request (same caller, job and key) gets the run the
    first one created. Rows expire after ``idempotency_key_hours`` (the sweep deletes them)."""

    id = fields.BigIntField(primary_key=True)
    key = fields.CharField(max_length=200)
    actor = fields.CharField(max_length=100)
    job_id = fields.CharField(max_length=36)
    execution_id = fields.CharField(max_length=36)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("actor", "job_id", "key"),)


class Outbox(OutboxBase):
    class Meta:
        table = "outbox"


class ProcessedEvent(ProcessedEventBase):
    class Meta:
        table = "processed_events"

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Outbox',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('stream', fields.CharField(max_length=100)),
                ('envelope', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('published_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox', 'app': 'schedules', 'pk_attr': 'id'},
            bases=['OutboxBase'],
        ),
        ops.CreateModel(
            name='ProcessedEvent',
            fields=[
                ('event_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('processed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'processed_events', 'app': 'schedules', 'pk_attr': 'event_id'},
            bases=['ProcessedEventBase'],
        ),
        ops.CreateModel(
            name='Schedule',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('job_id', fields.CharField(db_index=True, max_length=36)),
                ('owner_id', fields.CharField(null=True, description='User the runs act for (the creator).', max_length=64)),
                ('name', fields.CharField(null=True, max_length=255)),
                ('kind', fields.CharField(max_length=16)),
                ('timezone', fields.CharField(max_length=64)),
                ('cron', fields.CharField(null=True, max_length=200)),
                ('interval_seconds', fields.IntField(null=True)),
                ('run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('recurring', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('anchor', fields.DatetimeField(description='Where INTERVAL and recurring periods count from.', auto_now=False, auto_now_add=False)),
                ('start_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('end_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('max_runs', fields.IntField(null=True)),
                ('jitter_seconds', fields.IntField(default=0)),
                ('misfire_policy', fields.CharField(default='RUN_ONCE', max_length=16)),
                ('catch_up_window_seconds', fields.IntField(default=3600)),
                ('overlap_policy', fields.CharField(default='SKIP', max_length=16)),
                ('dst_gap_policy', fields.CharField(default='RUN_AT_TRANSITION', max_length=24)),
                ('dst_overlap_policy', fields.CharField(default='FIRST', max_length=16)),
                ('blackouts', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('parameters', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('target_ids', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('fire_count', fields.IntField(default=0, description='Runs started (FIRED), for maxRuns.')),
                ('last_fire_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('cursor_at', fields.DatetimeField(null=True, description="Every nominal time up to here has its history row (the loop's progress).", auto_now=False, auto_now_add=False)),
                ('next_fire_at', fields.DatetimeField(null=True, description='The next nominal fire time, when enabled.', auto_now=False, auto_now_add=False)),
                ('next_due_at', fields.DatetimeField(null=True, db_index=True, description='When the loop must next act: next fire plus jitter.', auto_now=False, auto_now_add=False)),
                ('version', fields.IntField(default=1)),
                ('is_deleted', fields.BooleanField(default=False, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'schedules', 'app': 'schedules', 'pk_attr': 'id', 'table_description': 'When a job runs by itself, and as whom (its owner).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ScheduleFire',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('schedule', fields.ForeignKeyField('schedules.Schedule', source_field='schedule_id', db_constraint=True, to_field='id', related_name='fires', on_delete=OnDelete.CASCADE)),
                ('job_id', fields.CharField(db_index=True, max_length=36)),
                ('scheduled_for', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('fired_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharField(description='A FireOutcome, or STARTING while the run is being started.', max_length=20)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('execution_id', fields.CharField(null=True, max_length=36)),
                ('late_ms', fields.IntField(null=True)),
                ('catch_up', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'schedule_fires', 'app': 'schedules', 'unique_together': (('schedule', 'scheduled_for'),), 'pk_attr': 'id', 'table_description': 'One nominal time of one schedule: the claim (unique) and then its outcome.'},
            bases=['Model'],
        ),
    ]

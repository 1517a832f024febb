import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Execution',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('job_id', fields.CharField(db_index=True, max_length=36)),
                ('job_serial', fields.CharField(null=True, max_length=30)),
                ('job_name', fields.CharField(max_length=255)),
                ('job_version', fields.IntField(default=1)),
                ('number', fields.IntField()),
                ('status', fields.CharField(default='QUEUED', db_index=True, max_length=20)),
                ('message', fields.TextField(null=True, unique=False)),
                ('requested_by', fields.CharField(null=True, max_length=100)),
                ('plan', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('total_targets', fields.IntField(default=0)),
                ('succeeded_targets', fields.IntField(default=0)),
                ('failed_targets', fields.IntField(default=0)),
                ('cancelled_targets', fields.IntField(default=0)),
                ('last_seq', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'executions', 'app': 'executions', 'unique_together': (('job_id', 'number'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExecutionEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('execution', fields.ForeignKeyField('executions.Execution', source_field='execution_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('seq', fields.IntField()),
                ('type', fields.CharField(max_length=30)),
                ('target_id', fields.CharField(null=True, max_length=36)),
                ('step_index', fields.IntField(null=True)),
                ('step_name', fields.CharField(null=True, max_length=255)),
                ('data', fields.TextField(null=True, unique=False)),
                ('exit_code', fields.IntField(null=True)),
                ('status', fields.CharField(null=True, max_length=20)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'execution_events', 'app': 'executions', 'unique_together': (('execution', 'seq'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Outbox',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('stream', fields.CharField(max_length=100)),
                ('envelope', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('published_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox', 'app': 'executions', 'pk_attr': 'id'},
            bases=['OutboxBase'],
        ),
        ops.CreateModel(
            name='ProcessedEvent',
            fields=[
                ('event_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('processed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'processed_events', 'app': 'executions', 'pk_attr': 'event_id'},
            bases=['ProcessedEventBase'],
        ),
        ops.CreateModel(
            name='TargetRun',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('execution', fields.ForeignKeyField('executions.Execution', source_field='execution_id', db_constraint=True, to_field='id', related_name='target_runs', on_delete=OnDelete.CASCADE)),
                ('target_id', fields.CharField(max_length=36)),
                ('target_name', fields.CharField(max_length=255)),
                ('host', fields.CharField(max_length=255)),
                ('port', fields.IntField()),
                ('status', fields.CharField(default='PENDING', max_length=20)),
                ('exit_code', fields.IntField(null=True)),
                ('message', fields.TextField(null=True, unique=False)),
                ('connection_reused', fields.BooleanField(null=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'target_runs', 'app': 'executions', 'unique_together': (('execution', 'target_id'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StepResult',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('target_run', fields.ForeignKeyField('executions.TargetRun', source_field='target_run_id', db_constraint=True, to_field='id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('step_index', fields.IntField()),
                ('name', fields.CharField(max_length=255)),
                ('command', fields.TextField(unique=False)),
                ('status', fields.CharField(max_length=20)),
                ('exit_code', fields.IntField(null=True)),
                ('stdout', fields.TextField(default='', unique=False)),
                ('stderr', fields.TextField(default='', unique=False)),
                ('duration_ms', fields.FloatField(null=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'step_results', 'app': 'executions', 'unique_together': (('target_run', 'step_index'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]

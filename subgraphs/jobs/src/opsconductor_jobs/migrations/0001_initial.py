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
            name='Counter',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=50)),
                ('value', fields.BigIntField(default=0)),
            ],
            options={'table': 'job_counters', 'app': 'jobs', 'pk_attr': 'name', 'table_description': 'Named increasing counters: the job counter numbers the serials.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Job',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('number', fields.BigIntField(unique=True, description='From the job counter, orders the job list.')),
                ('serial', fields.CharField(unique=True, description='JOB-000001: the human handle.', max_length=20)),
                ('name', fields.CharField(max_length=255)),
                ('description', fields.TextField(null=True, unique=False)),
                ('policy', fields.JSONField(default=dict, description='{maxParallel}, more policy keys come later.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('version', fields.IntField(default=1, description='Incremented on every edit of the definition.')),
                ('is_deleted', fields.BooleanField(default=False, db_index=True)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(null=True, description='Subject of the token of the creator.', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'jobs', 'app': 'jobs', 'pk_attr': 'id', 'table_description': 'A job definition, soft-deleted, since runs and audit refer to it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobStep',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('jobs.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='steps', on_delete=OnDelete.CASCADE)),
                ('order', fields.IntField(description='1-based position, steps run in this order on each target.')),
                ('name', fields.CharField(max_length=255)),
                ('type', fields.CharField(default='command', max_length=20)),
                ('command', fields.TextField(unique=False)),
                ('timeout_seconds', fields.IntField(default=300)),
                ('continue_on_error', fields.BooleanField(default=False)),
            ],
            options={'table': 'job_steps', 'app': 'jobs', 'unique_together': (('job', 'order'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='JobTarget',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('jobs.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='targets', on_delete=OnDelete.CASCADE)),
                ('target_id', fields.CharField(db_index=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'job_targets', 'app': 'jobs', 'unique_together': (('job', 'target_id'),), 'pk_attr': 'id', 'table_description': 'A target a job runs on, by id (the targets service owns it).'},
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
            options={'table': 'outbox', 'app': 'jobs', 'pk_attr': 'id'},
            bases=['OutboxBase'],
        ),
        ops.CreateModel(
            name='ProcessedEvent',
            fields=[
                ('event_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('processed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'processed_events', 'app': 'jobs', 'pk_attr': 'event_id'},
            bases=['ProcessedEventBase'],
        ),
    ]

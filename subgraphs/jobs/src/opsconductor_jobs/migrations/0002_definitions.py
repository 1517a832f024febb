from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('jobs', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='JobVersion',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('jobs.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('snapshot', fields.JSONField(description='The whole definition (name, steps, targets, parameters, policy).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'job_versions', 'app': 'jobs', 'unique_together': (('job', 'version'),), 'pk_attr': 'id', 'table_description': 'One version of a definition, as a whole snapshot: runs record the version they ran, and'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='Job',
            name='policy',
            field=fields.JSONField(default=dict, description='Run policy keys (camelCase), see service.DEFAULT_POLICY.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Job',
            name='parameters',
            field=fields.JSONField(default=list, description='Declared parameters (name, type, required, default, choices).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Job',
            name='target_selector',
            field=fields.JSONField(null=True, description='Target selector (tags, osTypes, environments) resolved per run.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='JobStep',
            name='env',
            field=fields.JSONField(default=list, description='Environment variables (name and value) in order.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='JobStep',
            name='expected_exit_codes',
            field=fields.JSONField(default=list, description='Exit codes that count as success (empty means 0).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='JobStep',
            name='script',
            field=fields.JSONField(null=True, description='Script (interpreter, body, arguments) of script steps.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='JobStep',
            name='transfer',
            field=fields.JSONField(null=True, description='Transfer (direction, source, destination, content, mode).', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='JobStep',
            name='working_directory',
            field=fields.TextField(null=True, unique=False),
        ),
    ]

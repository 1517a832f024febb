from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('executions', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Execution',
            name='lease_owner',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='Execution',
            name='lease_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Execution',
            name='parameters',
            field=fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Execution',
            name='retry_of',
            field=fields.CharField(null=True, max_length=36),
        ),
        ops.AddField(
            model_name='Execution',
            name='waiting',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='StepResult',
            name='truncated',
            field=fields.BooleanField(default=False),
        ),
        ops.AlterField(
            model_name='TargetRun',
            name='target_id',
            field=fields.CharField(db_index=True, max_length=36),
        ),
    ]

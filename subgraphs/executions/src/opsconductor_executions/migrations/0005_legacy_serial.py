from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('executions', '0004_run_plan')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Execution',
            name='legacy_serial',
            field=fields.CharField(max_length=60, null=True),
        ),
    ]

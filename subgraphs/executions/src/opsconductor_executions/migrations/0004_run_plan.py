from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('executions', '0003_review_fixes')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Execution',
            name='dangerous',
            field=fields.JSONField(null=True),
        ),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0003_api_keys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='SigningKey',
            name='superseded_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]

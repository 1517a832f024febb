from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0004_signing_key_rotation')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Credential',
            name='claims_version',
            field=fields.BigIntField(null=True),
        ),
    ]

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('users', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='department',
            field=fields.CharField(null=True, max_length=100),
        ),
        ops.AddField(
            model_name='User',
            name='timezone',
            field=fields.CharField(default='UTC', db_default='UTC', max_length=64),
        ),
    ]

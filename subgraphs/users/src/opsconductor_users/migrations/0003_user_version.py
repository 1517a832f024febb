from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    """M6: a per-user snapshot version, bumped with every change that emits a users.* event."""

    dependencies = [("users", "0002_profile")]

    initial = False

    operations = [
        ops.AddField(
            model_name="User",
            name="version",
            field=fields.IntField(default=0, db_default=0),
        ),
    ]

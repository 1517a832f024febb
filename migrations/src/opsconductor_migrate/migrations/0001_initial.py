from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="LegacyArchive",
            fields=[
                ("id", fields.CharField(primary_key=True, max_length=120)),
                ("table", fields.CharField(max_length=60, db_index=True)),
                ("legacy_id", fields.CharField(max_length=60)),
                ("data", fields.JSONField()),
                ("checksum", fields.CharField(max_length=64)),
                ("imported_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "legacy_archive", "app": "migrate", "pk_attr": "id"},
            bases=["Model"],
        ),
    ]

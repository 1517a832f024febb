import functools
from json import dumps, loads
from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name="Outbox",
            fields=[
                ("id", fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ("stream", fields.CharField(max_length=100)),
                (
                    "envelope",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("created_at", fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                (
                    "published_at",
                    fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={"table": "outbox", "app": "users", "pk_attr": "id"},
            bases=["OutboxBase"],
        ),
        ops.CreateModel(
            name="ProcessedEvent",
            fields=[
                ("event_id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("processed_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "processed_events", "app": "users", "pk_attr": "event_id"},
            bases=["ProcessedEventBase"],
        ),
        ops.CreateModel(
            name="Role",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=50)),
                ("description", fields.CharField(default="", max_length=255)),
                (
                    "permissions",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("is_system", fields.BooleanField(default=False)),
            ],
            options={
                "table": "roles",
                "app": "users",
                "pk_attr": "name",
                "table_description": "A named set of `resource:action` permissions (`*` means all).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="User",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ("username", fields.CharField(unique=True, max_length=50)),
                ("email", fields.CharField(unique=True, max_length=254)),
                ("display_name", fields.CharField(max_length=100)),
                ("is_active", fields.BooleanField(default=True)),
                ("deleted_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("last_login_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "users",
                "app": "users",
                "pk_attr": "id",
                "table_description": "A person who can log in. The password lives in auth, never here.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="UserRole",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "user",
                    fields.ForeignKeyField(
                        "users.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="role_links",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "role",
                    fields.ForeignKeyField(
                        "users.Role",
                        source_field="role_id",
                        db_constraint=True,
                        to_field="name",
                        related_name="user_links",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "user_roles",
                "app": "users",
                "unique_together": (("user", "role"),),
                "pk_attr": "id",
            },
            bases=["Model"],
        ),
    ]

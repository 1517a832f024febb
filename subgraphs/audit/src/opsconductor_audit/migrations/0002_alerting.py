from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('audit', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Alert',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('rule_id', fields.CharField(null=True, db_index=True, max_length=36)),
                ('rule_name', fields.CharField(max_length=200)),
                ('group_key', fields.CharField(null=True, max_length=255)),
                ('open_key', fields.CharField(null=True, unique=True, description='rule:group while not resolved (one open alert).', max_length=300)),
                ('severity', fields.CharField(db_index=True, max_length=16)),
                ('status', fields.CharField(db_index=True, max_length=16)),
                ('title', fields.CharField(max_length=300)),
                ('message', fields.TextField(unique=False)),
                ('count', fields.IntField(default=0, description='Matching events over all triggers while open.')),
                ('triggers', fields.IntField(default=1)),
                ('first_event_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_event_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('event_ids', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('context', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('raised_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('acknowledged_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('acknowledged_by', fields.CharField(null=True, max_length=64)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_by', fields.CharField(null=True, max_length=64)),
                ('resolution_note', fields.TextField(null=True, unique=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'alerts', 'app': 'audit', 'pk_attr': 'id', 'table_description': "One alert: a rule's window reached its threshold. Repeats while open add to ``count``."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AlertHistory',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('alert', fields.ForeignKeyField('audit.Alert', source_field='alert_id', db_constraint=True, to_field='id', related_name='history', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharField(max_length=16)),
                ('status', fields.CharField(max_length=16)),
                ('actor_id', fields.CharField(null=True, max_length=64)),
                ('actor_name', fields.CharField(null=True, max_length=150)),
                ('note', fields.TextField(null=True, unique=False)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'alert_history', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'A state change of an alert, with who and when (RAISED, REPEATED, ACKNOWLEDGED, RESOLVED).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AlertRule',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('key', fields.CharField(null=True, unique=True, description="A seeded default's key.", max_length=64)),
                ('name', fields.CharField(max_length=200)),
                ('description', fields.TextField(null=True, unique=False)),
                ('event_types', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('outcome', fields.CharField(null=True, max_length=16)),
                ('threshold', fields.IntField()),
                ('window_seconds', fields.IntField()),
                ('severity', fields.CharField(max_length=16)),
                ('group_by', fields.CharField(null=True, max_length=200)),
                ('data_match', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('channels', fields.JSONField(default=list, description='[{type, target, secret (encrypted, webhooks)}]', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('email_template', fields.CharField(null=True, max_length=100)),
                ('webhook_template', fields.CharField(null=True, max_length=100)),
                ('enabled', fields.BooleanField(default=True)),
                ('version', fields.IntField(default=1)),
                ('is_deleted', fields.BooleanField(default=False, db_index=True)),
                ('created_by', fields.CharField(null=True, max_length=64)),
                ('last_triggered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('trigger_count', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'alert_rules', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'Alert rule over audit event types (API.md AlertRuleInput), with a sliding window per group key.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='EmailSettings',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('host', fields.CharField(max_length=255)),
                ('port', fields.IntField()),
                ('security', fields.CharField(default='STARTTLS', max_length=16)),
                ('username', fields.CharField(null=True, max_length=255)),
                ('password_encrypted', fields.TextField(null=True, unique=False)),
                ('from_address', fields.CharField(max_length=254)),
                ('validate_certs', fields.BooleanField(default=True)),
                ('updated_by', fields.CharField(null=True, max_length=64)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'email_settings', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'The system email sender (one row, id 1): an SMTP server an admin chose. The password is'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationLog',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('delivery_id', fields.CharField(db_index=True, max_length=36)),
                ('alert_id', fields.CharField(null=True, db_index=True, max_length=36)),
                ('channel', fields.CharField(max_length=16)),
                ('destination', fields.CharField(max_length=500)),
                ('subject', fields.CharField(null=True, max_length=200)),
                ('attempt', fields.IntField()),
                ('status', fields.CharField(max_length=16)),
                ('error', fields.TextField(null=True, unique=False)),
                ('response', fields.CharField(null=True, max_length=300)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notification_log', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'Every delivery attempt: channel, destination, status and error (never a secret).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='NotificationTemplate',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('name', fields.CharField(unique=True, max_length=100)),
                ('kind', fields.CharField(max_length=16)),
                ('subject', fields.CharField(max_length=200)),
                ('body', fields.TextField(unique=False)),
                ('description', fields.TextField(null=True, unique=False)),
                ('is_active', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'notification_templates', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'Legacy ``notification_templates``: subject and body with ``$placeholders``.'},
            bases=['Model'],
        ),
    ]

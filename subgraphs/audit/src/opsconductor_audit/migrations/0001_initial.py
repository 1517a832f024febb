from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='AuditArchive',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('from_seq', fields.BigIntField()),
                ('to_seq', fields.BigIntField()),
                ('rows', fields.IntField()),
                ('path', fields.CharField(max_length=1024)),
                ('sha256', fields.CharField(max_length=64)),
                ('checkpoint_id', fields.CharField(max_length=36)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_archives', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'Events archived by retention (gzip NDJSON with their checkpoint), then deleted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditCheckpoint',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('seq', fields.BigIntField(db_index=True)),
                ('hash', fields.CharField(max_length=64)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('key_id', fields.CharField(description='sha256 of the raw public key, hex, first 16.', max_length=64)),
                ('signature', fields.CharField(description='base64 Ed25519 signature of the statement.', max_length=128)),
                ('reason', fields.CharField(description='periodic, export, retention, report, manual.', max_length=20)),
            ],
            options={'table': 'audit_checkpoints', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'A signed statement "the chain\'s event ``seq`` has hash ``hash``" (Ed25519, the service\'s key).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditEvent',
            fields=[
                ('seq', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('id', fields.CharField(unique=True, description="The source event's id (deduplication).", max_length=64)),
                ('at', fields.DatetimeField(db_index=True, description="When it happened (the source event's time).", auto_now=False, auto_now_add=False)),
                ('type', fields.CharField(max_length=100)),
                ('action', fields.CharField(max_length=100)),
                ('outcome', fields.CharField(max_length=10)),
                ('severity', fields.CharField(max_length=10)),
                ('actor_id', fields.CharField(null=True, max_length=64)),
                ('actor_name', fields.CharField(null=True, max_length=255)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=512)),
                ('subject_type', fields.CharField(null=True, max_length=50)),
                ('subject_id', fields.CharField(null=True, max_length=64)),
                ('correlation_id', fields.CharField(null=True, max_length=64)),
                ('source', fields.CharField(max_length=50)),
                ('data', fields.TextField(description="The event's data as canonical JSON text (hashed byte for byte).", unique=False)),
                ('prev_hash', fields.CharField(max_length=64)),
                ('hash', fields.CharField(max_length=64)),
                ('recorded_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_events', 'app': 'audit', 'indexes': [Index(fields=['type', 'seq']), Index(fields=['action', 'seq']), Index(fields=['actor_id', 'seq']), Index(fields=['subject_type', 'subject_id', 'seq']), Index(fields=['correlation_id', 'seq']), Index(fields=['outcome', 'seq']), Index(fields=['severity', 'seq'])], 'pk_attr': 'seq', 'table_description': 'One audited action, appended to the hash chain. ``seq`` is gapless and in commit order.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditExport',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=36)),
                ('kind', fields.CharField(description='EXPORT or a ComplianceReportKind.', max_length=40)),
                ('format', fields.CharField(max_length=10)),
                ('owner_id', fields.CharField(max_length=64)),
                ('path', fields.CharField(max_length=1024)),
                ('rows', fields.IntField(default=0)),
                ('sha256', fields.CharField(max_length=64)),
                ('checkpoint', fields.ForeignKeyField('audit.AuditCheckpoint', source_field='checkpoint_id', null=True, db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_exports', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'An export file (NDJSON or CSV) or a compliance report, written to the data directory.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChainHead',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('last_seq', fields.BigIntField(default=0)),
                ('last_hash', fields.CharField(max_length=64)),
                ('base_seq', fields.BigIntField(default=0, description='Events up to this seq were archived and deleted.')),
                ('base_hash', fields.CharField(description='The hash of event base_seq (genesis: 64 zeros).', max_length=64)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'audit_chain_head', 'app': 'audit', 'pk_attr': 'id', 'table_description': 'The one row every append locks (SELECT ... FOR UPDATE): one writer at a time, so the chain'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='LegacyQuarantine',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('file', fields.CharField(max_length=1024)),
                ('line_no', fields.IntField()),
                ('reason', fields.CharField(max_length=255)),
                ('line', fields.TextField(description='The line as read (truncated to 10,000 characters).', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_legacy_quarantine', 'app': 'audit', 'unique_together': (('file', 'line_no'),), 'pk_attr': 'id', 'table_description': 'A line of a legacy ``audit.log`` that could not be imported (with its number and why).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Outbox',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('stream', fields.CharField(max_length=100)),
                ('envelope', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('published_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox', 'app': 'audit', 'pk_attr': 'id'},
            bases=['OutboxBase'],
        ),
        ops.CreateModel(
            name='ProcessedEvent',
            fields=[
                ('event_id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('processed_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'processed_events', 'app': 'audit', 'pk_attr': 'event_id'},
            bases=['ProcessedEventBase'],
        ),
    ]

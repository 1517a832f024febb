from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('executions', '0002_run_options')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(max_length=200)),
                ('actor', fields.CharField(max_length=100)),
                ('job_id', fields.CharField(max_length=36)),
                ('execution_id', fields.CharField(max_length=36)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'idempotency_keys', 'app': 'executions', 'unique_together': (('actor', 'job_id', 'key'),), 'pk_attr': 'id', 'table_description': "runJob's idempotencyKey: a retried request (same caller, job and key) gets the run the"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Execution',
            name='cancel_requested',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]

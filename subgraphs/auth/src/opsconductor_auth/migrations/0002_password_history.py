from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('auth', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PasswordHistory',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.CharField(db_index=True, max_length=36)),
                ('password_hash', fields.CharField(max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'password_history', 'app': 'auth', 'pk_attr': 'id', 'table_description': 'Earlier password hashes of a user, so the policy can refuse a recent one.'},
            bases=['Model'],
        ),
    ]

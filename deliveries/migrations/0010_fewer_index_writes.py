"""The foreign keys' own indexes dropped where an index of Meta leads with
the same column (models.Event.organization says why).

Only the indexes go: Django's AlterField would also drop and re-add each
foreign key, and PostgreSQL would check every row again under a lock that
stops writes; SQLite would copy each table. DROP INDEX is instant on both.
"""

import django.db.models.deletion
from django.db import migrations, models

# (table, column, the index Django named for the foreign key)
INDEXES = [
    ("deliveries_delivery", "event_id", "deliveries_delivery_event_id_ee0aa5a0"),
    ("deliveries_delivery", "organization_id", "deliveries_delivery_organization_id_dba64a07"),
    ("deliveries_delivery", "webhook_id", "deliveries_delivery_webhook_id_9d6badc2"),
    ("deliveries_deliveryattempt", "delivery_id", "deliveries_deliveryattempt_delivery_id_85da7e15"),
    ("deliveries_event", "organization_id", "deliveries_event_organization_id_c17c2279"),
]

# (model, field, the model it refers to, its related_name), as in models.py
FOREIGN_KEYS = [
    ("delivery", "event", "deliveries.event", "deliveries"),
    ("delivery", "organization", "webhooks.organization", "+"),
    ("delivery", "webhook", "webhooks.webhook", "deliveries"),
    ("deliveryattempt", "delivery", "deliveries.delivery", "attempt_set"),
    ("event", "organization", "webhooks.organization", "events"),
]


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0009_manual_attempts"),
        ("webhooks", "0004_platform"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for table, column, name in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name=model_name,
                    name=name,
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related_name,
                        to=to,
                    ),
                )
                for model_name, name, to, related_name in FOREIGN_KEYS
            ],
        ),
    ]

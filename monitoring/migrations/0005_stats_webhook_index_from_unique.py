"""The stats tables' own index on webhook_id goes: the unique (webhook, minute)
and (webhook, hour) indexes serve lookups by webhook, and with both present
SQLite's planner read every minute row of a webhook for a window of minutes.

Only the index is dropped (not the foreign key rebuilt, as AlterField would:
on SQLite that copies the whole table)."""

import django.db.models.deletion
from django.db import migrations, models

# Django's names for the indexes it created with the foreign keys.
INDEXES = {
    "deliveries_webhookstats": "deliveries_webhookstats_webhook_id_9b662713",
    "monitoring_webhookhourlystats": "monitoring_webhookhourlystats_webhook_id_a1e28802",
}


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0004_alert_current_value"),
        ("webhooks", "0004_platform"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="webhookhourlystats",
                    name="webhook",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="hourly_stats",
                        to="webhooks.webhook",
                    ),
                ),
                migrations.AlterField(
                    model_name="webhookstats",
                    name="webhook",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stats",
                        to="webhooks.webhook",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX "{index}" ON "{table}" ("webhook_id")',
                )
                for table, index in INDEXES.items()
            ],
        ),
    ]

"""Leases move from Delivery.claimed_until to a table of their own
(models.Lease says why). The leases live at the time of the migration are
copied, so a worker's requests in flight across it keep their slots and are
not claimed twice."""

import django.db.models.deletion
from django.db import migrations, models

COPY_LIVE_LEASES = (
    "INSERT INTO deliveries_lease (delivery_id, webhook_id, until) "
    "SELECT id, webhook_id, claimed_until FROM deliveries_delivery "
    "WHERE claimed_until IS NOT NULL AND status = 'pending'"
)
COPY_BACK = (
    "UPDATE deliveries_delivery SET claimed_until = ("
    "SELECT until FROM deliveries_lease WHERE delivery_id = deliveries_delivery.id) "
    "WHERE id IN (SELECT delivery_id FROM deliveries_lease)"
)


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0010_fewer_index_writes"),
        ("webhooks", "0004_platform"),
    ]

    operations = [
        migrations.CreateModel(
            name="Lease",
            fields=[
                (
                    "delivery",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="lease",
                        serialize=False,
                        db_constraint=False,
                        to="deliveries.delivery",
                    ),
                ),
                (
                    "webhook",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="webhooks.webhook",
                    ),
                ),
                ("until", models.DateTimeField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["webhook", "until"], name="lease_webhook_idx"),
                    models.Index(fields=["until"], name="lease_until_idx"),
                ],
            },
        ),
        migrations.RunSQL(COPY_LIVE_LEASES, reverse_sql=COPY_BACK),
        migrations.RemoveIndex(model_name="delivery", name="delivery_claimed_idx"),
        migrations.RemoveIndex(model_name="delivery", name="delivery_webhook_claimed_idx"),
        migrations.RemoveField(model_name="delivery", name="claimed_until"),
    ]

"""A lease says when its request has ended (models.Lease.settled), so that
every worker's claim counts it out of its webhook's requests in flight
before the attempt is recorded. Leases live at the time of the migration are
of requests in flight: not settled, the default."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0011_leases"),
    ]

    operations = [
        migrations.AddField(
            model_name="lease",
            name="settled",
            field=models.BooleanField(default=False, db_default=False),
        ),
    ]

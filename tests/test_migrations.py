"""An existing database moves to the current layout without losing a row.

The stats and alert models moved from `deliveries` to `monitoring`, keeping
their tables (SeparateDatabaseAndState). This migrates the test database
back to the layout before the move, writes rows into every table with the
models of that time, migrates forward again and reads every row back
through today's models.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event, Lease
from monitoring.models import Alert, AlertRule, StatsTotals, WebhookStats
from webhooks.models import ApiKey, EventType, Membership, Organization, Webhook

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = pytest.mark.embedded

# The last migrations before the layout of one app per concern.
OLD_LAYOUT = {
    "webhooks": "0002_webhook_failed_delivery_streak",
    "deliveries": "0004_event_org_log_idx",
}
PROJECT_APPS = ("webhooks", "deliveries", "monitoring")


def migrate(targets):
    """Migrate to `targets`; returns the resulting state (its historical models)."""
    return MigrationExecutor(connection).migrate(targets)


def old_layout_targets(executor) -> list[tuple[str, str | None]]:
    # Every later migration of the project's apps is unapplied, whatever
    # later work adds: the apps that did not exist then go back to zero.
    apps_with_migrations = {app for app, _ in executor.loader.graph.leaf_nodes()}
    return [(app, OLD_LAYOUT.get(app)) for app in PROJECT_APPS if app in apps_with_migrations]


def table_counts(tables: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.django_db(transaction=True)
def test_an_old_layout_database_keeps_every_row():
    executor = MigrationExecutor(connection)
    targets = old_layout_targets(executor)
    migrate(targets)
    # The models as they were then: the state of those nodes (and what they need).
    old = (
        MigrationExecutor(connection)
        .loader.project_state([(app, name) for app, name in targets if name])
        .apps
    )
    now = timezone.now()

    user = old.get_model("auth", "User").objects.create(username="ada")
    org = old.get_model("webhooks", "Organization").objects.create(name="Acme")
    old.get_model("webhooks", "Membership").objects.create(
        organization=org, user=user, role="owner"
    )
    old.get_model("webhooks", "ApiKey").objects.create(
        organization=org, prefix="hk_abc", key_hash="0" * 64
    )
    webhook = old.get_model("webhooks", "Webhook").objects.create(
        organization=org, url="https://example.com/hook", event_patterns=["person.*"]
    )
    old.get_model("webhooks", "EventType").objects.create(organization=org, name="person.created")
    event = old.get_model("deliveries", "Event").objects.create(
        organization=org, type="person.created", data_json='{"id":1}', delivery_count=1
    )
    # In flight: a worker's lease on the row, as leases were kept then.
    leased_until = now + timedelta(seconds=30)
    delivery = old.get_model("deliveries", "Delivery").objects.create(
        organization=org,
        event=event,
        webhook=webhook,
        event_type="person.created",
        attempts=1,
        claimed_until=leased_until,
    )
    old.get_model("deliveries", "DeliveryAttempt").objects.create(
        delivery=delivery, number=1, started_at=now, duration_ms=12, response_status=200
    )
    old.get_model("deliveries", "WebhookStats").objects.create(
        webhook=webhook, minute=now.replace(second=0, microsecond=0), attempts=7, lat_2=7
    )
    old.get_model("deliveries", "StatsTotals").objects.update_or_create(
        pk=1, defaults={"rolled_up_to": now, "attempts": 41}
    )
    rule = old.get_model("deliveries", "AlertRule").objects.create(
        organization=org, webhook=webhook, metric="failed_deliveries", threshold=3
    )
    old.get_model("deliveries", "Alert").objects.create(
        organization=org, rule=rule, webhook=webhook, metric="failed_deliveries", value=5
    )
    models = [
        Organization, Membership, ApiKey, Webhook, EventType, Event, Delivery,
        DeliveryAttempt, WebhookStats, StatsTotals, AlertRule, Alert,
    ]  # fmt: skip
    tables = [model._meta.db_table for model in models]
    before = table_counts(tables)
    assert all(before.values()), before

    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert table_counts(tables) == before
    for model in models:
        assert model.objects.count() == before[model._meta.db_table], model
    stats = WebhookStats.objects.get()
    assert (stats.webhook.public_id, stats.attempts, stats.lat_2) == (webhook.public_id, 7, 7)
    assert StatsTotals.objects.get(pk=1).attempts == 41
    alert = Alert.objects.select_related("rule", "webhook").get()
    assert (alert.rule.public_id, alert.webhook.url, alert.value) == (
        rule.public_id,
        "https://example.com/hook",
        5,
    )
    assert Delivery.objects.get().event.data_json == '{"id":1}'
    # The lease moved to its own table (0011): the request keeps its slot.
    lease = Lease.objects.get()
    assert (lease.delivery_id, lease.webhook_id, lease.until) == (
        delivery.pk,
        webhook.pk,
        leased_until,
    )

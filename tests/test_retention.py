"""Retention in production conditions: the daily job deletes in batches that
each commit on their own (no long transaction, no table-wide locks), and the
aggregates the dashboard and the API show outlive the attempts."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event
from deliveries.publishing import publish
from monitoring import jobs
from monitoring.models import WebhookStats
from monitoring.retention import BATCH_SIZE, purge
from tests.conftest import deliver_due
from tests.factories import OrganizationFactory, WebhookFactory
from tests.receiver import Answer


def count_elsewhere(model) -> int:
    """The rows another connection sees, i.e. what has been committed."""
    result = []

    def count():
        try:
            result.append(model.objects.count())
        finally:
            connections.close_all()

    thread = threading.Thread(target=count)
    thread.start()
    thread.join()
    return result[0]


@pytest.mark.django_db(transaction=True)
def test_the_daily_job_commits_each_batch_before_the_next(settings, redis_conn):
    settings.HERALD_RETENTION_DAYS = 30
    org = OrganizationFactory()
    webhook = WebhookFactory(organization=org)
    long_ago = timezone.now() - timedelta(days=45)
    event = Event.objects.create(organization=org, type="person.created", data_json="{}")
    delivery = Delivery.objects.create(
        organization=org, event=event, webhook=webhook, event_type=event.type, status="failed"
    )
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=delivery, number=1, started_at=long_ago, duration_ms=5)
        for _ in range(BATCH_SIZE * 2 + 500)
    )
    Event.objects.bulk_create(
        Event(organization=org, type="person.created", data_json="{}", created_at=long_ago)
        for _ in range(BATCH_SIZE // 4 + 100)
    )
    # The statement that picks a batch's primary keys.
    tables = {
        f'SELECT "{model._meta.db_table}"."id" AS "pk" FROM ': model
        for model in (DeliveryAttempt, Event)
    }
    seen: dict[str, list[int]] = {model.__name__: [] for model in tables.values()}

    def observe(execute, sql, params, many, context):
        # Before each batch picks its rows, another connection sees every
        # earlier batch's deletion: they were committed.
        for prefix, model in tables.items():
            if sql.startswith(prefix):
                seen[model.__name__].append(count_elsewhere(model))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(observe):
        result = jobs.purge_old()

    assert result.startswith(f"{BATCH_SIZE * 2 + 500} attempts, {BATCH_SIZE // 4 + 100} events")
    total = BATCH_SIZE * 2 + 500
    assert seen["DeliveryAttempt"] == [total, total - BATCH_SIZE, total - 2 * BATCH_SIZE, 0]
    events = BATCH_SIZE // 4 + 101  # and the recent one
    assert seen["Event"] == [events, events - BATCH_SIZE // 4, 1]
    assert list(Event.objects.values_list("pk", flat=True)) == [event.pk]


def test_the_dashboard_figures_outlive_the_attempts(org, api, receiver):
    webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
    receiver.script("/hook", Answer(status=200), Answer(status=500), Answer(status=200))
    for i in range(3):
        publish(org, "person.created", {"i": i})
    deliver_due()
    DeliveryAttempt.objects.update(started_at=timezone.now() - timedelta(days=3))
    Event.objects.update(created_at=timezone.now() - timedelta(days=3))
    path = f"/api/v1/webhooks/{webhook.public_id}/stats"
    before = {window: api.get(path, {"window": window}).json() for window in ("24h", "7d", "30d")}
    assert before["30d"]["attempts"] == 3 and before["30d"]["failed_deliveries"] == 1

    events = Event.objects.count()  # the three, and herald.delivery.exhausted

    purged = purge(days=1)

    assert (purged.attempts, purged.events, purged.stats_rows) == (3, events, 0)
    assert not DeliveryAttempt.objects.exists() and not Delivery.objects.exists()
    after = {window: api.get(path, {"window": window}).json() for window in ("24h", "7d", "30d")}
    assert after == before


def test_stats_are_kept_for_the_longest_dashboard_window_and_a_day(org):
    webhook = WebhookFactory(organization=org)
    now = timezone.now()
    for days in (1, 29, 30.5, 32, 90):
        WebhookStats.objects.create(webhook=webhook, minute=now - timedelta(days=days), attempts=1)
    assert purge(days=1).stats_rows == 2
    assert sorted(round((now - m).total_seconds() / 86400, 1) for m in _minutes()) == [1, 29, 30.5]


def _minutes():
    return WebhookStats.objects.values_list("minute", flat=True)


def test_a_stop_request_ends_the_purge_between_batches(org):
    webhook = WebhookFactory(organization=org)
    event = Event.objects.create(organization=org, type="person.created", data_json="{}")
    delivery = Delivery.objects.create(
        organization=org, event=event, webhook=webhook, event_type=event.type, status="failed"
    )
    long_ago = timezone.now() - timedelta(days=45)
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=delivery, number=1, started_at=long_ago, duration_ms=5)
        for _ in range(10)
    )
    asked = []

    def should_stop():
        asked.append(1)
        return len(asked) > 2  # a SIGTERM arrives during the second batch

    purged = purge(days=30, batch_size=3, should_stop=should_stop)
    assert (purged.attempts, purged.events, purged.stats_rows) == (6, 0, 0)
    assert DeliveryAttempt.objects.count() == 4

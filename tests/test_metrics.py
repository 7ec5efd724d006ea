"""GET /metrics: Prometheus exposition behind a token, read from the
database at scrape time in a few indexed queries, with counters that never
go down (retention and webhook deletion included)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import Delivery
from deliveries.publishing import publish
from monitoring import totals
from monitoring.models import WebhookStats
from monitoring.retention import purge
from monitoring.stats import StatsBatch
from tests.conftest import deliver_due
from tests.factories import WebhookFactory, lease
from tests.receiver import Answer

TOKEN = "s3cret-metrics-token"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.HERALD_METRICS_TOKEN = TOKEN


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response["Cache-Control"].startswith("max-age=0")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def record_stats(webhook, at, *attempts):
    """Add attempts to the per-minute stats the way the dispatcher does:
    (succeeded, latency_ms or None, ended or None)."""
    batch = StatsBatch()
    for succeeded, latency_ms, ended in attempts:
        batch.attempt(webhook.id, at, succeeded=succeeded, latency_ms=latency_ms, ended=ended)
    batch.write()


class TestAccess:
    def test_without_a_token_configured_there_is_no_endpoint(self, client, settings, db):
        settings.HERALD_METRICS_TOKEN = ""
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404

    @pytest.mark.parametrize(
        "headers, query",
        [
            ({}, ""),
            ({"Authorization": "Bearer wrong"}, ""),
            ({"Authorization": f"Bearer {TOKEN}x"}, ""),
            ({"Authorization": f"Basic {TOKEN}"}, ""),
            ({}, "?token=wrong"),
        ],
    )
    def test_a_missing_or_wrong_token_is_refused(self, client, db, headers, query):
        response = client.get(f"/metrics{query}", headers=headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"herald_" not in response.content

    def test_the_token_goes_as_a_bearer_or_a_query_parameter(self, client, db):
        assert (
            client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        )
        assert (
            client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
        )
        assert client.get(f"/metrics?token={TOKEN}").status_code == 200

    def test_the_token_is_compared_in_constant_time(self, client, db, monkeypatch):
        import hmac

        from monitoring import prometheus

        compared = []
        original = hmac.compare_digest

        def compare_digest(a, b):
            compared.append((a, b))
            return original(a, b)

        monkeypatch.setattr(prometheus.hmac, "compare_digest", compare_digest)
        client.get(f"/metrics?token={TOKEN}")
        assert compared == [(TOKEN.encode(), TOKEN.encode())]

    def test_only_get(self, client, db):
        response = client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 405

    def test_openmetrics_when_asked(self, client, db):
        response = client.get(
            "/metrics",
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Accept": "application/openmetrics-text; version=1.0.0",
            },
        )
        assert response["Content-Type"].startswith("application/openmetrics-text")
        assert response.content.rstrip().endswith(b"# EOF")


class TestFigures:
    def test_an_empty_installation_reads_zero(self, client, db, redis_conn):
        samples = scrape(client)
        assert value(samples, "herald_deliveries_total", outcome="succeeded") == 0
        assert value(samples, "herald_attempt_latency_seconds_count") == 0
        assert value(samples, "herald_deliveries_due") == 0
        assert value(samples, "herald_oldest_due_delivery_age_seconds") == 0
        assert value(samples, "herald_queue_jobs") == 0

    def test_outcomes_and_the_latency_histogram_come_from_the_stats(self, client, org, redis_conn):
        webhook = WebhookFactory(organization=org)
        other = WebhookFactory()  # another organization's counts add up too
        now = timezone.now()
        record_stats(
            webhook,
            now,
            (True, 5, None),  # ≤ 10 ms
            (True, 300, "succeeded"),  # ≤ 500 ms
            (False, 20_000, None),  # > 10 s
            (False, None, "failed"),  # no response (a timeout): no latency
        )
        record_stats(other, now - timedelta(minutes=3), (True, 10, "succeeded"))

        samples = scrape(client)

        assert value(samples, "herald_deliveries_total", outcome="succeeded") == 2
        assert value(samples, "herald_deliveries_total", outcome="failed") == 1
        assert value(samples, "herald_attempts_total", outcome="succeeded") == 3
        assert value(samples, "herald_attempts_total", outcome="failed") == 2
        buckets = {
            le: value(samples, "herald_attempt_latency_seconds_bucket", le=le)
            for le in ("0.01", "0.025", "0.25", "0.5", "10.0", "+Inf")
        }
        assert buckets == {"0.01": 2, "0.025": 2, "0.25": 2, "0.5": 3, "10.0": 3, "+Inf": 4}
        assert value(samples, "herald_attempt_latency_seconds_count") == 4
        assert value(samples, "herald_attempt_latency_seconds_sum") == pytest.approx(20.315)

    def test_every_bucket_bound_is_exposed_in_seconds_cumulatively(self, client, org, redis_conn):
        webhook = WebhookFactory(organization=org)
        record_stats(webhook, timezone.now(), *[(True, ms, None) for ms in (1, 30, 3000, 9999)])
        samples = scrape(client)
        bounds = sorted(
            float(dict(labels)["le"])
            for name, labels in samples
            if name == "herald_attempt_latency_seconds_bucket"
        )
        assert bounds == [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")]
        counts = [
            value(samples, "herald_attempt_latency_seconds_bucket", le=le)
            for le in ("0.01", "0.05", "2.5", "5.0", "10.0", "+Inf")
        ]
        assert counts == [1, 2, 2, 3, 4, 4]

    def test_real_deliveries_show_up(self, client, org, receiver, redis_conn):
        WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=200), Answer(status=500))
        publish(org, "person.created", {"n": 1})
        publish(org, "person.created", {"n": 2})
        deliver_due()
        samples = scrape(client)
        assert value(samples, "herald_deliveries_total", outcome="succeeded") == 1
        assert value(samples, "herald_deliveries_total", outcome="failed") == 1
        assert value(samples, "herald_attempt_latency_seconds_count") == 2

    def test_queue_depth_and_the_oldest_due_delivery(
        self, client, org, redis_conn, django_capture_on_commit_callbacks
    ):
        webhook = WebhookFactory(organization=org)
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(4):
                publish(org, "person.created", {"i": i})  # one wake-up job
        now = timezone.now()
        first, second, third, fourth = Delivery.objects.order_by("id")
        Delivery.objects.filter(pk=first.pk).update(next_attempt_at=now - timedelta(seconds=90))
        # In flight: claimed by a worker, so not waiting.
        Delivery.objects.filter(pk=second.pk).update(next_attempt_at=now - timedelta(hours=1))
        lease(second.pk, now + timedelta(minutes=1))
        # A retry not due yet.
        Delivery.objects.filter(pk=third.pk).update(next_attempt_at=now + timedelta(minutes=5))

        samples = scrape(client)

        assert value(samples, "herald_deliveries_due") == 2
        assert 90 <= value(samples, "herald_oldest_due_delivery_age_seconds") < 100
        assert value(samples, "herald_queue_jobs") == 1  # the wake-up job
        webhook.status = "paused"
        webhook.save()
        assert value(scrape(client), "herald_deliveries_due") == 0

    def test_redis_down_leaves_out_only_the_queue_length(
        self, client, org, redis_conn, monkeypatch
    ):
        import redis

        from monitoring import health

        monkeypatch.setattr(
            health, "_redis_client", redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.2)
        )
        samples = scrape(client)
        assert ("herald_queue_jobs", ()) not in samples
        assert value(samples, "herald_deliveries_due") == 0


class TestCounters:
    def test_retention_and_deleting_webhooks_never_lower_them(self, client, org, redis_conn):
        kept, doomed = WebhookFactory(organization=org), WebhookFactory(organization=org)
        now = timezone.now()
        for webhook in (kept, doomed):
            record_stats(webhook, now - timedelta(days=40), (True, 40, "succeeded"))
            record_stats(webhook, now - timedelta(hours=2), (False, 600, "failed"))
            record_stats(webhook, now - timedelta(minutes=1), (True, 7, "succeeded"))
        figures = (
            ("herald_deliveries_total", {"outcome": "succeeded"}, 4),
            ("herald_deliveries_total", {"outcome": "failed"}, 2),
            ("herald_attempt_latency_seconds_count", {}, 6),
            ("herald_attempt_latency_seconds_bucket", {"le": "0.05"}, 4),
        )

        def assert_unchanged():
            samples = scrape(client)
            for name, labels, expected in figures:
                assert value(samples, name, **labels) == expected, name

        assert_unchanged()
        totals.roll_up()
        assert_unchanged()
        assert purge(days=30).stats_rows == 2  # the 40-day-old minutes are gone...
        assert_unchanged()  # ...but still counted
        doomed.delete()  # its recent minutes go with it
        assert not WebhookStats.objects.filter(webhook_id=doomed.id).exists()
        assert_unchanged()
        org.delete()
        assert not WebhookStats.objects.exists()
        assert_unchanged()
        totals.roll_up(timezone.now() + timedelta(hours=1))
        assert_unchanged()

    def test_a_roll_up_takes_only_minutes_older_than_the_lag(self, org):
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        record_stats(webhook, now - totals.ROLL_UP_LAG - timedelta(minutes=2), (True, 5, None))
        record_stats(webhook, now - timedelta(minutes=2), (True, 5, None))
        mark = totals.roll_up(now)
        row = totals.StatsTotals.objects.get()
        assert row.rolled_up_to == mark and row.attempts == 1
        assert totals.roll_up(now) == mark and totals.StatsTotals.objects.get().attempts == 1
        assert totals.current()["attempts"] == 2

    @pytest.mark.django_db(transaction=True)
    def test_totals_read_from_one_snapshot_outside_a_transaction(self, redis_conn):
        # transaction=True: current() opens the transaction itself (REPEATABLE
        # READ on PostgreSQL), as it does in a web request.
        webhook = WebhookFactory()
        record_stats(webhook, timezone.now(), (True, 5, "succeeded"))
        assert totals.current()["succeeded_deliveries"] == 1
        assert connection.get_autocommit()


class TestCost:
    def test_a_scrape_is_a_few_indexed_queries_and_never_reads_attempts(
        self, client, org, receiver, redis_conn
    ):
        WebhookFactory(organization=org, url=receiver.url())
        for i in range(5):
            publish(org, "person.created", {"i": i})
        deliver_due()
        with CaptureQueriesContext(connection) as queries:
            scrape(client)
        statements = [
            q["sql"]
            for q in queries.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "SET TRANSACTION"))
        ]
        assert len(statements) == 4, statements
        assert not [s for s in statements if "deliveryattempt" in s.lower()]
        assert not [s for s in statements if "webhookstats" in s.lower() and "minute" not in s]

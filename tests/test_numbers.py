"""Numbers that are right: each figure the dashboard, the API and the notices
show means what its label says (SPEC §6, §7).

- p95 latency lies between the fastest and the slowest attempt it summarises;
- manual attempts are told apart from the scheduled ones;
- open alerts show their value at the latest evaluation, and count
  thresholds read as whole numbers;
- the webhook page's tiles and chart cover the window picked, in the same units;
- the overview says what "failed" counts, and shows failed attempts too.
"""

import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard import charts, queries
from dashboard.templatetags.figures import attempt_counts
from deliveries import actions
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.publishing import publish
from monitoring import alerts
from monitoring import stats as metrics
from monitoring.models import Alert, AlertRule, WebhookHourlyStats, WebhookStats
from monitoring.stats import StatsBatch
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Membership

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = pytest.mark.embedded


def answered(webhook, latencies_ms, at):
    """Counters for attempts answered in these latencies, each at `at` (one
    datetime) or at its own time (a list as long as the latencies)."""
    times = at if isinstance(at, list) else [at] * len(latencies_ms)
    batch = StatsBatch()
    for latency, when in zip(latencies_ms, times, strict=True):
        batch.attempt(webhook.pk, when, succeeded=True, latency_ms=latency, ended="succeeded")
    batch.write()


def p95_of(webhook, window=timedelta(hours=24), now=None):
    now = now or timezone.now()
    return metrics.window_stats([webhook.pk], now - window, now)[webhook.pk].p95_latency_ms


@pytest.fixture
def viewer(client, org):
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.VIEWER).user)
    return client


@pytest.fixture
def browser_admin(org):
    client = Client()
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.ADMIN).user)
    return client


# --- p95 latency -------------------------------------------------------------------


class TestP95StaysWithinTheAttempts:
    """A p95 read from the latency histogram is interpolated within its bucket
    and kept between the fastest and the slowest response it summarises: a
    bucket's edge (10 ms when every attempt took 2 to 6) is nobody's latency."""

    @pytest.mark.parametrize(
        "spread",
        ["one minute", "five minutes", "five hours"],
    )
    def test_attempts_of_2_to_6_ms_have_a_p95_between_5_and_6(self, org, spread):
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        step = {"one minute": None, "five minutes": 1, "five hours": 60}[spread]
        times = now if step is None else [now - timedelta(minutes=step * i) for i in range(5)]
        answered(webhook, [2, 3, 4, 5, 6], times)

        p95 = p95_of(webhook)

        assert 5 <= p95 <= 6, p95
        # The chart's buckets: each within its own attempts.
        for point in metrics.series(
            [webhook.pk], now - timedelta(hours=24), now, timedelta(hours=1)
        )[webhook.pk]:
            if point.attempts:
                assert 2 <= point.p95_latency_ms <= 6, point

    def test_one_attempt_is_its_own_p95(self, org):
        webhook = WebhookFactory(organization=org)
        answered(webhook, [7], timezone.now())
        assert p95_of(webhook) == 7

    def test_the_slowest_bucket_is_bounded_by_the_slowest_attempt(self, org):
        webhook = WebhookFactory(organization=org)
        answered(webhook, [12_000, 14_000], timezone.now())
        assert 12_000 <= p95_of(webhook) <= 14_000

    def test_a_real_delivery_has_a_p95_within_its_attempts(self, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url("/hook"))
        for i in range(12):
            publish(org, "person.created", {"i": i})
        deliver_due(concurrency=4)
        durations = list(
            DeliveryAttempt.objects.filter(delivery__webhook=webhook).values_list(
                "duration_ms", flat=True
            )
        )
        assert len(durations) == 12
        assert min(durations) <= p95_of(webhook, timedelta(hours=1)) <= max(durations)

    def test_each_row_keeps_the_fastest_and_slowest_across_batches(self, org):
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        # An attempt without a response first: the row exists, with no extremes.
        batch = StatsBatch()
        batch.attempt(webhook.pk, now, succeeded=False, latency_ms=None)
        batch.write()
        minute = WebhookStats.objects.get(webhook=webhook)
        assert (minute.latency_min_ms, minute.latency_max_ms) == (None, None)

        answered(webhook, [40, 9], now)
        answered(webhook, [3, 20], now)
        answered(webhook, [300], now)

        for row in (
            WebhookStats.objects.get(webhook=webhook),
            WebhookHourlyStats.objects.get(webhook=webhook),
        ):
            assert (row.latency_min_ms, row.latency_max_ms) == (3, 300)
            assert (row.attempts, row.responses) == (6, 5)

    def test_a_row_counted_before_the_extremes_were_kept_bounds_nothing(self, org):
        """Rows from before migration 0003 have responses and no extremes: later
        attempts in the same minute must not pass their own range off as the row's."""
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        minute, hour = metrics.minute_of(now), metrics.hour_of(now)
        old = {"attempts": 5, "succeeded_attempts": 5, "responses": 5, "latency_total_ms": 45}
        WebhookStats.objects.create(webhook=webhook, minute=minute, lat_0=5, **old)
        WebhookHourlyStats.objects.create(webhook=webhook, hour=hour, lat_0=5, **old)

        answered(webhook, [3, 3], now)

        row = WebhookStats.objects.get(webhook=webhook)
        assert (row.responses, row.latency_min_ms, row.latency_max_ms) == (7, None, None)
        hourly = WebhookHourlyStats.objects.get(webhook=webhook)
        assert (hourly.latency_min_ms, hourly.latency_max_ms) == (None, None)
        # Unknown extremes: the p95 is the bucket's interpolation, not clamped to 3 ms.
        assert 3 < p95_of(webhook) <= 10

    def test_reading_the_extremes_adds_no_query(self, org, django_assert_num_queries):
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        answered(webhook, [2, 6], [now - timedelta(hours=5), now])
        # The whole hours, then the ragged minutes at each end (one end is
        # empty when the window starts on the hour, or ends with one: the
        # window takes in the whole of now's minute).
        with django_assert_num_queries(3 if now.minute not in (0, 59) else 2):
            metrics.window_stats([webhook.pk], now - timedelta(hours=24), now)
        with django_assert_num_queries(1):
            points = metrics.series([webhook.pk], now - timedelta(days=7), now, timedelta(hours=6))
        assert metrics.combine(points[webhook.pk]).p95_latency_ms <= 6

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        latencies=st.lists(st.integers(min_value=0, max_value=40_000), min_size=1, max_size=60),
        seed=st.integers(min_value=0, max_value=10_000),
    )
    def test_p95_is_never_below_the_fastest_nor_above_the_slowest(self, org, latencies, seed):
        webhook = WebhookFactory(organization=org)
        now = timezone.now()
        spread = random.Random(seed)
        times = [now - timedelta(minutes=spread.randrange(0, 48 * 60)) for _ in latencies]
        answered(webhook, latencies, times)

        for window in (timedelta(hours=1), timedelta(hours=24), timedelta(days=3)):
            start = metrics.minute_of(now - window)  # windows count whole minutes
            inside = [ms for ms, at in zip(latencies, times, strict=True) if at >= start]
            p95 = p95_of(webhook, window, now)
            if inside:
                assert min(inside) <= p95 <= max(inside), (window, sorted(inside), p95)
            else:
                assert p95 is None

    def test_the_percentile_interpolates_within_the_known_range(self):
        five_under_10_ms = [5] + [0] * 10
        assert metrics.percentile_from_histogram(five_under_10_ms, 0.95) == 9.5  # unbounded
        bounded = metrics.percentile_from_histogram(
            five_under_10_ms, 0.95, fastest_ms=2, slowest_ms=6
        )
        assert bounded == pytest.approx(5.8)

    def test_the_api_stats_agree(self, api, org):
        webhook = WebhookFactory(organization=org)
        answered(webhook, [2, 3, 4, 5, 6], timezone.now())
        body = api.get(f"/api/v1/webhooks/{webhook.public_id}/stats").json()
        assert 5 <= body["p95_latency_ms"] <= 6

    def test_metrics_still_exports_the_histogram(self, client, org, settings):
        settings.HERALD_METRICS_TOKEN = "s3cret"
        webhook = WebhookFactory(organization=org)
        answered(webhook, [2, 3, 4, 5, 6], timezone.now())
        response = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 200
        text = response.content.decode()
        assert 'herald_attempt_latency_seconds_bucket{le="0.01"} 5.0' in text, text
        assert "herald_attempt_latency_seconds_sum 0.02" in text, text


# --- alerts --------------------------------------------------------------------------

# In the past, so that deliveries a test makes stay out of the windows evaluated.
NOW = datetime(2026, 1, 15, 12, 0, 30, tzinfo=UTC)


def failures(webhook, at, count):
    """`count` attempts that failed and ended their deliveries at `at`."""
    batch = StatsBatch()
    for _ in range(count):
        batch.attempt(webhook.pk, at, succeeded=False, latency_ms=100, ended="failed")
    batch.write()


def failed_deliveries_rule(org, threshold=5):
    """The organization's only rule: more than `threshold` failed deliveries in 60 minutes."""
    AlertRule.objects.filter(organization=org).delete()
    return alerts.create_rule(org, metric="failed_deliveries", threshold=threshold, min_attempts=1)


def cell(html: str, alert: Alert, name: str) -> str:
    """The text of the alert row's cell of class `name` on the alerts page."""
    row = re.search(rf'<tr id="alert-{alert.public_id}">(.*?)</tr>', html, re.S)
    assert row, alert.public_id
    found = re.search(rf'<td class="num {name}"[^>]*>([^<]*)</td>', row.group(1))
    assert found, name
    return found.group(1)


class TestOpenAlertsShowTheirValueNow:
    """An open alert shows the value its latest evaluation measured (SPEC §7),
    beside the one it opened with; the e-mail of its resolution says where
    the metric stands."""

    @pytest.fixture
    def hook(self, org):
        return WebhookFactory(organization=org, name="Orders")

    def test_each_evaluation_records_the_value_it_measured(self, org, hook):
        failed_deliveries_rule(org)
        failures(hook, NOW, 8)
        alerts.evaluate(NOW)
        failures(hook, NOW + timedelta(minutes=10), 6)
        alerts.evaluate(NOW + timedelta(minutes=10))

        alert = Alert.objects.get()
        assert (alert.state, alert.value, alert.current_value) == ("open", 8, 14)
        assert alert.evaluated_at == NOW + timedelta(minutes=10)

        alerts.evaluate(NOW + timedelta(minutes=65))  # the first 8 left the window
        alert.refresh_from_db()
        assert (alert.state, alert.value, alert.current_value) == ("open", 8, 6)

        alerts.evaluate(NOW + timedelta(minutes=75))  # all of them did
        alert.refresh_from_db()
        assert (alert.state, alert.current_value) == ("resolved", 0)

    def test_the_pages_and_the_api_show_the_value_now(self, org, hook, viewer, api):
        failed_deliveries_rule(org)
        failures(hook, NOW, 8)
        alerts.evaluate(NOW)
        failures(hook, NOW + timedelta(minutes=10), 6)
        alerts.evaluate(NOW + timedelta(minutes=10))
        alert = Alert.objects.get()

        page = viewer.get("/alerts/").content.decode()
        assert cell(page, alert, "alert-value") == "14"
        assert cell(page, alert, "alert-threshold") == "5"
        assert "8 failed deliveries in the last 60 minutes" in page  # what opened it

        webhook_page = viewer.get(f"/webhooks/{hook.public_id}/").content.decode()
        assert '<span class="alert-now">Now 14.</span>' in webhook_page

        (item,) = api.get("/api/v1/alerts", {"state": "open"}).json()["items"]
        assert (item["value"], item["current_value"], item["threshold"]) == (8, 14, 5)

    def test_the_resolution_notice_says_where_the_metric_stands(self, org, hook, mailoutbox):
        MembershipFactory(organization=org, user=UserFactory(email="owner@example.com"))
        failed_deliveries_rule(org)
        failures(hook, NOW, 8)
        alerts.evaluate(NOW)
        alerts.evaluate(NOW + timedelta(minutes=75))
        opened, resolved = mailoutbox
        assert "8 failed deliveries in the last 60 minutes, more than 5 (8 attempts)." in (
            opened.body
        )
        assert "Now 0." in resolved.body

    def test_an_alert_from_before_shows_the_value_it_opened_with(self, org, hook, viewer):
        rule = failed_deliveries_rule(org)
        alert = Alert.objects.create(
            organization=org, rule=rule, webhook=hook, metric="failed_deliveries", value=9,
            threshold=5, window_minutes=60, message="9 failed deliveries.",
        )  # fmt: skip
        assert cell(viewer.get("/alerts/").content.decode(), alert, "alert-value") == "9"

    def test_recording_the_values_keeps_a_pass_at_a_fixed_number_of_queries(
        self, db, max_statements
    ):
        def failing_org(count):
            org = OrganizationFactory()
            failed_deliveries_rule(org)
            for _ in range(count):
                failures(WebhookFactory(organization=org), NOW, 8)
            return org

        def staying_over(at):
            with CaptureQueriesContext(connection) as queries:
                alerts.evaluate(at)
            return len(queries)

        failing_org(2)
        alerts.evaluate(NOW)
        few = staying_over(NOW + timedelta(minutes=1))

        failing_org(60)
        alerts.evaluate(NOW + timedelta(minutes=2))
        with max_statements(few):
            alerts.evaluate(NOW + timedelta(minutes=3))
        assert (
            Alert.objects.filter(state="open", evaluated_at=NOW + timedelta(minutes=3)).count()
            == 62
        )


class TestCountThresholdsReadAsWholeNumbers:
    """A count rule's threshold is stored as a float; it reads "5", never "5.0"
    (nor 1,000,000 as "1e+06"), wherever people read it. The API's numbers
    stay numbers."""

    @pytest.fixture
    def hook(self, org):
        return WebhookFactory(organization=org, name="Orders")

    def test_the_alerts_page_and_the_rule_form(self, org, viewer, browser_admin):
        five = failed_deliveries_rule(org, 5)
        alerts.create_rule(org, metric="failed_deliveries", threshold=1_000_000)
        page = viewer.get("/alerts/").content.decode()
        assert "more than 5 failed deliveries" in page
        assert "more than 1,000,000 failed deliveries" in page
        assert "5.0" not in page and "e+06" not in page
        form = browser_admin.get(f"/alerts/rules/{five.public_id}/").content.decode()
        assert re.search(r'name="threshold" value="5"', form), form
        assert str(five) == "more than 5 failed deliveries / 60 min"

    def test_messages_e_mails_and_chat(self, org, hook, mailoutbox, receiver, settings):
        settings.HERALD_SLACK_WEBHOOK_URL = receiver.url("/slack")
        MembershipFactory(organization=org, user=UserFactory(email="owner@example.com"))
        failed_deliveries_rule(org, 5)
        failures(hook, NOW, 8)
        alerts.evaluate(NOW)
        alert = Alert.objects.get()
        assert (
            alert.message == "8 failed deliveries in the last 60 minutes, more than 5 (8 attempts)."
        )
        (email,) = mailoutbox
        (chat,) = receiver.to("/slack")
        for text in (email.body, json.loads(chat.body)["text"]):
            assert "more than 5 (8 attempts)" in text
            assert "5.0" not in text and "8.0" not in text

    def test_big_counts_read_with_separators(self):
        text = alerts.describe("failed_deliveries", 1_234_567.0, 1_000_000.0, 60, 1_300_000)
        assert text == (
            "1,234,567 failed deliveries in the last 60 minutes, "
            "more than 1,000,000 (1,300,000 attempts)."
        )

    def test_the_api_keeps_numbers_and_words_whole(self, org, hook, api):
        failed_deliveries_rule(org, 5)
        failures(hook, NOW, 8)
        alerts.evaluate(NOW)
        (rule,) = api.get("/api/v1/alert-rules").json()["items"]
        (alert,) = api.get("/api/v1/alerts").json()["items"]
        assert rule["threshold"] == 5 and isinstance(rule["threshold"], int | float)
        assert alert["threshold"] == 5 and alert["value"] == 8
        assert "more than 5 (" in alert["message"]


# --- manual attempts -----------------------------------------------------------------


def attempts_cells(html: str) -> list[str]:
    return re.findall(r'<td class="num attempts">([^<]*)</td>', html)


class TestManualAttemptsReadAsSuch:
    """Attempts read "n of max" against the retry schedule; retries and
    resends people ask for are counted apart: "3 of 3 scheduled, +2 manual",
    never "5 of 3"."""

    @pytest.fixture
    def exhausted(self, org, receiver, settings):
        """A delivery that used its 3 scheduled attempts, then was retried twice by hand."""
        settings.HERALD_RETRY_SCHEDULE = [0.0]
        webhook = WebhookFactory(organization=org, url=receiver.url("/down"), max_attempts=3)
        receiver.script("/down", *[Answer(status=500)] * 5)
        publish(org, "person.created", {"id": 1})
        deliver_due()
        for _ in range(2):
            actions.retry_delivery(Delivery.objects.get(webhook=webhook))
            deliver_due()
        return Delivery.objects.select_related("event").get(webhook=webhook)

    def test_the_engine_counts_the_manual_attempts(self, exhausted):
        assert exhausted.status == "failed"
        assert (exhausted.attempts, exhausted.manual_attempts) == (5, 2)
        triggers = list(exhausted.attempt_set.order_by("number").values_list("trigger", flat=True))
        assert triggers == ["auto", "auto", "auto", "manual", "manual"]

    def test_the_log_the_delivery_and_the_event_pages_say_so(self, exhausted, viewer):
        webhook_page = viewer.get(f"/webhooks/{exhausted.webhook.public_id}/").content.decode()
        assert attempts_cells(webhook_page) == ["3 of 3 scheduled, +2 manual"]
        event_page = viewer.get(f"/events/{exhausted.event.public_id}/").content.decode()
        assert attempts_cells(event_page) == ["3 of 3 scheduled, +2 manual"]

        page = viewer.get(f"/deliveries/{exhausted.public_id}/").content.decode()
        tile = re.search(r'id="attempts-scheduled">(.*?)</div>', page).group(1)
        assert re.sub(r"<[^>]+>", "", tile) == "3 of 3 scheduled"
        assert '<div class="tile-sub" id="attempts-manual">+2 manual' in page
        for html in (webhook_page, event_page, page):
            assert "5 of 3" not in re.sub(r"<[^>]+>|\s+", " ", html)

    def test_without_manual_attempts_it_is_n_of_max(self, org, receiver, viewer):
        webhook = WebhookFactory(organization=org, url=receiver.url("/ok"), max_attempts=3)
        publish(org, "person.created", {"id": 1})
        deliver_due()
        page = viewer.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert attempts_cells(page) == ["1 of 3"]

    def test_a_max_lowered_since_never_reads_more_than_its_whole(self):
        delivery = Delivery(attempts=5, manual_attempts=0)
        assert str(attempt_counts(delivery, 3)) == "5 of 5"
        delivery = Delivery(attempts=6, manual_attempts=1)
        assert str(attempt_counts(delivery, 3)) == "5 of 5 scheduled, +1 manual"


@pytest.mark.django_db(transaction=True)
def test_deliveries_from_before_count_their_manual_attempts():
    """Migration deliveries 0009 counts the manual attempts already kept."""
    executor = MigrationExecutor(connection)
    before = [("deliveries", "0008_replays_and_search")]
    executor.migrate(before)
    old = MigrationExecutor(connection).loader.project_state(before).apps
    org = old.get_model("webhooks", "Organization").objects.create(name="Acme")
    webhook = old.get_model("webhooks", "Webhook").objects.create(
        organization=org, url="https://example.com/hook", event_patterns=["*"]
    )
    event = old.get_model("deliveries", "Event").objects.create(
        organization=org, type="person.created", data_json="{}"
    )
    Delivery_ = old.get_model("deliveries", "Delivery")
    Attempt = old.get_model("deliveries", "DeliveryAttempt")
    retried = Delivery_.objects.create(
        organization=org, event=event, webhook=webhook, event_type=event.type, attempts=4
    )
    now = timezone.now()
    for number, trigger in enumerate(["auto", "auto", "manual", "manual"], start=1):
        Attempt.objects.create(
            delivery=retried, number=number, trigger=trigger, started_at=now, duration_ms=5
        )

    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert Delivery.objects.get(pk=retried.pk).manual_attempts == 2


# --- the overview's failures ---------------------------------------------------------


def overview_row(html: str, webhook) -> str:
    row = re.search(
        rf"<tr>\s*<td>\s*<a [^>]*href=\"/webhooks/{webhook.public_id}/\".*?</tr>", html, re.S
    )
    assert row, webhook.public_id
    return row.group(0)


def cell_text(row: str, name: str) -> str:
    found = re.search(rf'<td class="num {name}">(.*?)</td>', row, re.S)
    assert found, name
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


class TestTheOverviewSaysWhatFailed:
    """The overview's "Failed (24 h)" counted failed deliveries only: a flaky
    webhook whose retries all made it read "0 failed" at 64 % success. It
    now names what it counts and shows failed attempts beside it."""

    def test_a_flaky_webhook_shows_its_failed_attempts(self, org, viewer):
        flaky = WebhookFactory(organization=org, name="Flaky")
        batch = StatsBatch()
        now = timezone.now()
        for i in range(25):
            ok = i < 16
            batch.attempt(
                flaky.pk, now, succeeded=ok, latency_ms=50, ended="succeeded" if ok else None
            )
        batch.write()

        page = viewer.get("/").content.decode()

        assert ">Failed deliveries (24 h)</th>" in page and ">Failed attempts (24 h)</th>" in page
        assert "deliveries that ended <code>failed</code>" in page
        row = overview_row(page, flaky)
        assert ">64%<" in row
        assert cell_text(row, "failed-deliveries") == "0"
        assert cell_text(row, "failed-attempts") == "9 of 25"

    def test_through_the_engine(self, org, receiver, viewer, settings):
        settings.HERALD_RETRY_SCHEDULE = [0.0]  # retries due at once
        webhook = WebhookFactory(organization=org, url=receiver.url("/flaky"), max_attempts=3)
        receiver.script("/flaky", Answer(status=500), Answer(status=503))
        for i in range(4):
            publish(org, "person.created", {"i": i})
        deliver_due(concurrency=1)
        assert set(Delivery.objects.filter(webhook=webhook).values_list("status", flat=True)) == {
            "succeeded"
        }
        row = overview_row(viewer.get("/").content.decode(), webhook)
        assert cell_text(row, "failed-deliveries") == "0"
        assert cell_text(row, "failed-attempts") == "2 of 6"


# --- the webhook page: tiles and chart -----------------------------------------------


def path_points(d: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML](-?[\d.]+),(-?[\d.]+)", d)]


def traffic_series(step_minutes: int, buckets: int, every: int = 1):
    """Points as series() gives them: `buckets` of `step_minutes`, every
    `every`-th one with attempts (half of them failed at the third)."""
    start = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    points = []
    for i in range(buckets):
        point = metrics.Point(at=start + timedelta(minutes=step_minutes * i))
        if i % every == 0:
            point.attempts, point.succeeded_attempts = 4, 2 if i % 3 == 0 else 4
            point.avg_latency_ms, point.p95_latency_ms = 40.0, 1500.0
        points.append(point)
    return points


# (bucket minutes, buckets, label format) of the four windows (dashboard.queries.CHART_WINDOWS)
WINDOW_SHAPES = {
    "1h": (2, 31, "%H:%M"),
    "24h": (60, 25, "%H:%M"),
    "7d": (360, 29, "%b %d"),
    "30d": (1440, 31, "%b %d"),
}


class TestTheChartSitsOnItsBuckets:
    """Each bucket spans [i·slot, (i+1)·slot): its bar fills it, its success
    and latency points sit at its centre, its time at its left edge."""

    @pytest.mark.parametrize("width", [charts.WIDE, charts.COMPACT])
    def test_points_sit_at_the_centre_of_their_bars(self, width):
        points = traffic_series(60, 25)
        chart = charts.draw(points, width, "%H:%M")
        slot = width / len(points)
        line = path_points(chart.success_line)
        latency = path_points(chart.latency_line)
        assert len(line) == len(latency) == len(chart.volume_bars) == 25
        for i, (bar, (x, _), (lx, _)) in enumerate(
            zip(chart.volume_bars, line, latency, strict=True)
        ):
            assert i * slot <= bar.x < bar.x + bar.width <= (i + 1) * slot
            assert abs(bar.x + bar.width / 2 - x) <= 0.1 and lx == x

    def test_no_line_nor_shading_bridges_buckets_without_attempts(self):
        chart = charts.draw(traffic_series(60, 25, every=3), charts.WIDE, "%H:%M")
        assert "L" not in chart.success_line and "L" not in chart.latency_line
        assert chart.success_area == ""
        assert len(chart.success_dots) == len(chart.latency_dots) == 9

    @pytest.mark.parametrize("window", list(WINDOW_SHAPES))
    @pytest.mark.parametrize("width", [charts.WIDE, charts.COMPACT])
    def test_time_labels_name_bucket_edges_and_never_overlap(self, window, width):
        step, buckets, label_format = WINDOW_SHAPES[window]
        points = traffic_series(step, buckets)
        labels = charts.axis_labels(points, width, label_format)
        slot = width / buckets
        assert 3 <= len(labels) <= charts.MAX_LABELS
        for label in labels:
            index = round(label.x / slot)
            assert abs(label.x - index * slot) <= 0.1
            assert label.text == points[index].at.strftime(label_format)
            left, right = label.extent
            assert left >= 0 and right <= width
        for before, after in zip(labels, labels[1:], strict=False):
            assert before.extent[1] < after.extent[0]
        if "%H" not in label_format:  # never one day named twice
            assert len({label.text for label in labels}) == len(labels)

    def test_latency_reads_in_the_tiles_units(self, org, viewer):
        webhook = WebhookFactory(organization=org)
        answered(webhook, [1200, 1500, 1800], timezone.now())
        page = viewer.get(f"/webhooks/{webhook.public_id}/").content.decode()
        # 1.5 s on the tile, a 2 s scale on the chart, seconds in the tooltips.
        assert re.search(r'id="stat-avg">1\.5 s<', page)
        assert 'text-anchor="end">2.0 s</text>' in page
        assert "avg 1.5 s · p95 1.8 s</title>" in page
        assert not re.search(r"\d{4} ms", page)


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d"])
def test_the_tiles_and_the_chart_count_the_window_picked(org, viewer, window):
    """The tiles count exactly the window picked; the chart's buckets hold
    what the tiles count (and no attempt from well before the window)."""
    span = queries.CHART_WINDOWS[window][0]
    webhook = WebhookFactory(organization=org)
    now = timezone.now()
    batch = StatsBatch()
    batch.attempt(webhook.pk, now - span + timedelta(minutes=3), succeeded=False, latency_ms=10)
    batch.attempt(webhook.pk, now - timedelta(minutes=1), succeeded=True, latency_ms=10)
    batch.attempt(webhook.pk, now - span - timedelta(hours=2), succeeded=True, latency_ms=10)
    batch.write()

    page = viewer.get(f"/webhooks/{webhook.public_id}/?chart={window}").content.decode()

    label = queries.WINDOW_LABELS[window]
    assert f'<div class="tile-label">Success rate ({label})</div>' in page
    assert re.search(r'id="stat-success">50%<', page)
    wide = re.search(r'<svg class="chart".*?</svg>', page, re.S).group(0)
    assert sum(int(n) for n in re.findall(r"· (\d+) attempts?", wide)) == 2


@pytest.mark.embedded
class TestWindowsReadOnlyTheirRows:
    """A window of stats reads the rows of its minutes and hours, found through
    the (webhook, time) index, never every row a webhook ever had: on SQLite
    that made the overview 7 times slower at 1 M attempts than at 10 k."""

    def test_each_query_searches_by_webhook_and_time(self, org):
        if connection.vendor != "sqlite":
            pytest.skip("the plan asked of is SQLite's (the embedded default)")
        webhooks = [WebhookFactory(organization=org) for _ in range(2)]
        now = timezone.now().replace(minute=30)
        with CaptureQueriesContext(connection) as captured:
            metrics.window_stats([w.pk for w in webhooks], now - timedelta(hours=24), now)
        plans = []
        with connection.cursor() as cursor:
            for query in captured.captured_queries:
                cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                plans.append(" ".join(row[3] for row in cursor.fetchall()))
        assert len(plans) == 3  # the whole hours, the ragged minutes at each end
        for plan in plans:
            assert re.search(r"USING INDEX \S+ \(webhook_id=\? AND (minute|hour)>\? AND", plan), (
                plan
            )

"""Threshold alerting (SPEC §6): rules, the evaluation pass, notifications.

The clock is controlled by passing `now=` to alerts.evaluate; traffic is
written as the per-minute counters the dispatcher keeps (metrics.StatsBatch),
which is all the evaluation reads.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from deliveries.models import Delivery, Event
from monitoring import alerts, jobs
from monitoring.models import Alert, AlertRule
from monitoring.stats import StatsBatch
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, WebhookFactory
from webhooks.errors import InvalidInput
from webhooks.models import Membership, Webhook
from webhooks.organizations import create_organization

# In the past, so that real deliveries made by a test (counted at the real
# time) stay out of the windows evaluated.
NOW = datetime(2026, 1, 15, 12, 0, 30, tzinfo=UTC)
Metric = AlertRule.Metric


def traffic(webhook, at, *, ok=0, failed=0, latency_ms=100, failed_deliveries=None):
    """Counters for `ok` + `failed` attempts at `at`, each answered in
    `latency_ms`; by default every failed attempt ended its delivery."""
    batch = StatsBatch()
    for _ in range(ok):
        batch.attempt(webhook.pk, at, succeeded=True, latency_ms=latency_ms, ended="succeeded")
    for _ in range(failed):
        batch.attempt(webhook.pk, at, succeeded=False, latency_ms=latency_ms)
    batch.deliveries_failed(
        webhook.pk, at, failed if failed_deliveries is None else failed_deliveries
    )
    batch.write()


def only_rule(org, metric=Metric.SUCCESS_RATE, threshold=0.95, **fields) -> AlertRule:
    """Replace the organization's default rules with this one."""
    AlertRule.objects.filter(organization=org).delete()
    return alerts.create_rule(org, metric=metric, threshold=threshold, **fields)


@pytest.fixture
def hook(org):
    return WebhookFactory(organization=org, name="Orders", url="http://127.0.0.1:9/orders")


@pytest.fixture
def ops(org, receiver):
    """A webhook that subscribes to Herald's operational events."""
    return WebhookFactory(
        organization=org, name="Ops", url=receiver.url("/ops"), event_patterns=["herald.*"]
    )


def herald_events(event_type=None):
    events = Event.objects.filter(type__startswith="herald.")
    if event_type:
        events = events.filter(type=event_type)
    return list(events.order_by("id"))


# --- defaults -------------------------------------------------------------------


class TestDefaultRules:
    def expected(self):
        return {
            ("failed_deliveries", 10.0, 60, 10, True),
            ("avg_latency_ms", 5000.0, 60, 10, True),
            ("success_rate", 0.95, 60, 10, True),
        }

    def rules_of(self, org):
        return set(
            AlertRule.objects.filter(organization=org, webhook=None).values_list(
                "metric", "threshold", "window_minutes", "min_attempts", "enabled"
            )
        )

    def test_every_new_organization_gets_twigs_defaults(self, db):
        assert self.rules_of(create_organization("Acme", owner_username="alice")) == self.expected()
        assert self.rules_of(OrganizationFactory()) == self.expected()

    def test_saving_an_organization_again_adds_nothing(self, org):
        org.name = "Renamed"
        org.save()
        assert AlertRule.objects.filter(organization=org).count() == 3


# --- evaluation -----------------------------------------------------------------


class TestOpeningAndResolving:
    def test_crossing_opens_one_alert_and_staying_over_repeats_nothing(self, org, hook):
        rule = only_rule(org)
        traffic(hook, NOW, ok=10, failed=10)

        result = alerts.evaluate(NOW)
        assert (result.opened, result.resolved) == (1, 0)
        alert = Alert.objects.get()
        assert alert.rule == rule and alert.webhook == hook and alert.organization == org
        assert alert.kind == "threshold" and alert.state == "open"
        assert alert.metric == "success_rate" and alert.value == 0.5 and alert.threshold == 0.95
        assert alert.opened_at == NOW and alert.resolved_at is None
        assert "50.0 %" in alert.message and "95 %" in alert.message

        for minute in range(1, 30):
            at = NOW + timedelta(minutes=minute)
            traffic(hook, at, ok=1, failed=3)
            assert alerts.evaluate(at).opened == 0
        assert Alert.objects.count() == 1 and Alert.objects.get().state == "open"

    def test_dropping_back_resolves_it_and_a_new_crossing_opens_a_new_one(self, org, hook):
        only_rule(org)
        traffic(hook, NOW, ok=0, failed=20)
        alerts.evaluate(NOW)

        later = NOW + timedelta(minutes=90)  # the failures left the 60-minute window
        traffic(hook, later, ok=20)
        result = alerts.evaluate(later)
        assert (result.opened, result.resolved) == (0, 1)
        alert = Alert.objects.get()
        assert alert.state == "resolved" and alert.resolved_at == later
        assert alerts.evaluate(later + timedelta(minutes=1)).resolved == 0

        much_later = later + timedelta(hours=3)
        traffic(hook, much_later, failed=20)
        assert alerts.evaluate(much_later).opened == 1
        assert list(Alert.objects.order_by("id").values_list("state", flat=True)) == [
            "resolved",
            "open",
        ]

    def test_a_window_without_traffic_resolves_it(self, org, hook):
        only_rule(org, Metric.AVG_LATENCY_MS, 1000)
        traffic(hook, NOW, ok=20, latency_ms=3000)
        assert alerts.evaluate(NOW).opened == 1
        assert alerts.evaluate(NOW + timedelta(minutes=61)).resolved == 1

    def test_the_minimum_sample_size_keeps_one_failure_from_paging(self, org, hook):
        only_rule(org, min_attempts=10)
        traffic(hook, NOW, failed=1)
        assert alerts.evaluate(NOW).opened == 0
        traffic(hook, NOW, failed=8)  # 9 attempts
        assert alerts.evaluate(NOW).opened == 0
        traffic(hook, NOW, failed=1)  # 10
        assert alerts.evaluate(NOW).opened == 1

    @pytest.mark.parametrize(
        "metric, threshold, crossing, not_crossing",
        [
            # (ok, failed, latency_ms) of 20 attempts
            (Metric.FAILED_DELIVERIES, 10, (9, 11, 50), (10, 10, 50)),
            (Metric.AVG_LATENCY_MS, 5000, (20, 0, 5001), (20, 0, 5000)),
            (Metric.SUCCESS_RATE, 0.95, (18, 2, 50), (19, 1, 50)),
        ],
    )
    def test_each_metric_fires_past_its_threshold_and_not_at_it(
        self, org, metric, threshold, crossing, not_crossing
    ):
        only_rule(org, metric, threshold)
        over = WebhookFactory(organization=org)
        at = WebhookFactory(organization=org)
        for webhook, (ok, failed, latency) in ((over, crossing), (at, not_crossing)):
            traffic(webhook, NOW, ok=ok, failed=failed, latency_ms=latency)
        alerts.evaluate(NOW)
        assert list(Alert.objects.values_list("webhook", flat=True)) == [over.pk]

    def test_only_the_window_counts(self, org, hook):
        only_rule(org, Metric.FAILED_DELIVERIES, 5, window_minutes=10)
        traffic(hook, NOW - timedelta(minutes=11), failed=20)  # before the window
        traffic(hook, NOW + timedelta(minutes=1), failed=20)  # after `now`
        traffic(hook, NOW - timedelta(minutes=9), ok=20)
        assert alerts.evaluate(NOW).opened == 0

    def test_an_organization_wide_rule_opens_one_alert_per_crossing_webhook(self, org):
        only_rule(org)
        failing = [WebhookFactory(organization=org) for _ in range(3)]
        healthy = WebhookFactory(organization=org)
        for webhook in failing:
            traffic(webhook, NOW, failed=20)
        traffic(healthy, NOW, ok=20)
        other_org_hook = WebhookFactory(organization=OrganizationFactory())
        traffic(other_org_hook, NOW, failed=20)  # its defaults fire for it, not ours

        alerts.evaluate(NOW)
        ours = Alert.objects.filter(organization=org)
        assert {a.webhook_id for a in ours} == {w.pk for w in failing}
        assert Alert.objects.filter(webhook=other_org_hook).count() == 2  # success, failed

    def test_a_rule_on_one_webhook_watches_only_that_one(self, org, hook):
        only_rule(org, webhook=hook)
        other = WebhookFactory(organization=org)
        traffic(hook, NOW, failed=20)
        traffic(other, NOW, failed=20)
        alerts.evaluate(NOW)
        assert list(Alert.objects.values_list("webhook", flat=True)) == [hook.pk]

    def test_a_disabled_webhook_gets_no_new_threshold_alerts(self, org, hook):
        only_rule(org)
        Webhook.objects.filter(pk=hook.pk).update(status=Webhook.Status.DISABLED)
        traffic(hook, NOW, failed=20)
        assert alerts.evaluate(NOW).opened == 0

    def test_disabling_changing_or_deleting_the_rule_resolves_its_alerts(self, org, hook):
        rule = only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)

        alerts.update_rule(rule, threshold=0.5)  # the next evaluation decides
        assert Alert.objects.get().state == "open"
        alerts.update_rule(rule, enabled=False)
        assert Alert.objects.get().state == "resolved"
        assert alerts.evaluate(NOW).opened == 0

        alerts.update_rule(rule, enabled=True)
        assert alerts.evaluate(NOW).opened == 1
        alerts.delete_rule(rule)
        assert list(Alert.objects.values_list("state", "rule")) == [
            ("resolved", None),
            ("resolved", None),
        ]

    def test_a_rule_disabled_in_the_admin_is_caught_by_the_next_evaluation(self, org, hook):
        rule = only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)
        AlertRule.objects.filter(pk=rule.pk).update(enabled=False)  # no update_rule
        assert alerts.evaluate(NOW).resolved == 1
        assert Alert.objects.get().state == "resolved"

    def test_a_webhook_disabled_alert_of_a_webhook_enabled_in_the_admin_resolves(self, org, hook):
        from deliveries import actions

        actions.disable_webhook(hook, "test")
        assert Alert.objects.get().kind == "webhook_disabled"
        Webhook.objects.filter(pk=hook.pk).update(status=Webhook.Status.ACTIVE)
        assert alerts.evaluate(NOW).resolved == 1


# --- notifications --------------------------------------------------------------


@pytest.fixture
def people(org):
    owner = MembershipFactory(
        organization=org, user=UserFactory(email="owner@example.com"), role="owner"
    )
    admin = MembershipFactory(
        organization=org, user=UserFactory(email="admin@example.com"), role="admin"
    )
    MembershipFactory(organization=org, user=UserFactory(email="viewer@example.com"), role="viewer")
    MembershipFactory(organization=org, user=UserFactory(email=""), role=Membership.Role.ADMIN)
    return owner, admin


class TestNotifications:
    def test_one_email_per_transition_to_owners_and_admins(self, org, hook, people, mailoutbox):
        only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)
        (opened,) = mailoutbox
        assert sorted(opened.to) == ["admin@example.com", "owner@example.com"]
        assert opened.subject == f"[Herald] {org.name}: 1 alert opened"
        assert "Orders" in opened.body and hook.public_id in opened.body
        assert "Success rate 0.0 %" in opened.body

        for minute in range(1, 10):
            alerts.evaluate(NOW + timedelta(minutes=minute))
        assert len(mailoutbox) == 1

        alerts.evaluate(NOW + timedelta(minutes=61))
        assert len(mailoutbox) == 2
        resolved = mailoutbox[1]
        assert resolved.subject == f"[Herald] {org.name}: 1 alert resolved"
        assert "Resolved" in resolved.body
        alerts.evaluate(NOW + timedelta(minutes=62))
        assert len(mailoutbox) == 2

    def test_operational_events_reach_subscribers_once_and_never_the_failing_webhook(
        self, org, receiver, ops, django_capture_on_commit_callbacks
    ):
        only_rule(org)
        # The failing webhook subscribes to Herald's events too.
        failing = WebhookFactory(
            organization=org, url=receiver.url("/failing"), event_patterns=["herald.*"]
        )
        traffic(failing, NOW, failed=20)
        for minute in range(5):
            alerts.evaluate(NOW + timedelta(minutes=minute))
        deliver_due()
        (received,) = receiver.to("/ops")
        body = json.loads(received.body)
        assert body["type"] == "herald.alert.opened"
        alert = Alert.objects.get()
        assert body["data"]["alert"] == {
            "id": alert.public_id,
            "rule": alert.rule.public_id,
            "webhook": failing.public_id,
            "kind": "threshold",
            "state": "open",
            "metric": "success_rate",
            "value": 0.0,
            "current_value": 0.0,
            "threshold": 0.95,
            "window_minutes": 60,
            "message": alert.message,
            "opened_at": "2026-01-15T12:00:30.000Z",
            "resolved_at": None,
        }
        assert body["data"]["webhook"] == {
            "id": failing.public_id,
            "name": failing.name,
        }

        alerts.evaluate(NOW + timedelta(minutes=61))
        alerts.evaluate(NOW + timedelta(minutes=62))
        deliver_due()
        assert [json.loads(r.body)["type"] for r in receiver.to("/ops")] == [
            "herald.alert.opened",
            "herald.alert.resolved",
        ]
        resolved = json.loads(receiver.to("/ops")[1].body)["data"]
        assert resolved["alert"]["state"] == "resolved" and resolved["reason"] == "recovered"
        assert receiver.to("/failing") == []
        assert not Delivery.objects.filter(webhook=failing).exists()

    def test_a_slack_compatible_channel_gets_the_text(self, org, hook, receiver, settings):
        settings.HERALD_SLACK_WEBHOOK_URL = receiver.url("/slack")
        only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)
        alerts.evaluate(NOW + timedelta(minutes=1))
        (received,) = receiver.to("/slack")
        assert received.header("Content-Type") == "application/json"
        text = json.loads(received.body)["text"]
        assert text.startswith(f"*Herald* · {org.name}: 1 alert opened")
        assert "Orders" in text and hook.public_id in text

    def test_the_chat_channel_goes_through_the_ssrf_guard(self, org, hook, receiver, settings):
        settings.HERALD_SLACK_WEBHOOK_URL = receiver.url("/slack")
        settings.HERALD_ALLOW_PRIVATE_TARGETS = False
        only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)  # refused and logged, not raised
        assert receiver.to("/slack") == []

    def test_a_mail_server_failure_does_not_stop_the_evaluation(self, org, hook, people, settings):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens
        only_rule(org)
        traffic(hook, NOW, failed=20)
        assert alerts.evaluate(NOW).opened == 1


class TestNoAlertStorm:
    """Hundreds of failing webhooks in one organization: one evaluation pass
    is a fixed number of queries, and people get one e-mail, not hundreds."""

    def failing_org(self, count):
        org = OrganizationFactory()
        MembershipFactory(organization=org, user=UserFactory(email="owner@example.com"))
        Webhook.objects.bulk_create(
            [
                Webhook(organization=org, name=f"Hook {i}", url=f"https://h{i}.example/hook")
                for i in range(count)
            ]
        )
        batch = StatsBatch()
        for webhook_id in Webhook.objects.filter(organization=org).values_list("id", flat=True):
            for _ in range(12):
                batch.attempt(webhook_id, NOW, succeeded=False, latency_ms=80, ended="failed")
        batch.write()
        Webhook.objects.create(
            organization=org, name="Ops", url="https://ops.example/", event_patterns=["herald.*"]
        )
        return org

    def queries_of_one_pass(self, at):
        with CaptureQueriesContext(connection) as queries:
            result = alerts.evaluate(at)
        return len(queries), result

    def test_one_pass_is_bounded_whatever_the_number_of_webhooks(
        self, db, mailoutbox, max_statements
    ):
        small = self.failing_org(5)
        small_queries, result = self.queries_of_one_pass(NOW)
        assert result.opened == 10  # failed deliveries and success rate, per webhook

        big = self.failing_org(300)
        with max_statements(small_queries):
            result = alerts.evaluate(NOW + timedelta(minutes=1))
        assert result.opened == 600 and result.checks == 3 * (6 + 301)
        assert Alert.objects.filter(organization=big, state="open").count() == 600
        # One e-mail per organization per pass, listing a bounded number of lines.
        assert len(mailoutbox) == 2
        assert mailoutbox[1].subject == f"[Herald] {big.name}: 600 alerts opened"
        assert "… and 550 more." in mailoutbox[1].body
        # One event per alert, each to the subscriber only.
        ops = Webhook.objects.get(organization=big, name="Ops")
        assert Delivery.objects.filter(webhook=ops).count() == 600
        assert Delivery.objects.filter(organization=big).exclude(webhook=ops).count() == 0

        # Staying over: nothing new, still bounded.
        with max_statements(small_queries):
            result = alerts.evaluate(NOW + timedelta(minutes=2))
        assert (result.opened, result.resolved) == (0, 0)
        assert len(mailoutbox) == 2

        # All recovering at once: bounded too, one e-mail.
        with max_statements(small_queries):
            result = alerts.evaluate(NOW + timedelta(hours=2))
        assert result.resolved == 610
        assert len(mailoutbox) == 4  # one per organization
        assert small.pk != big.pk


# --- rules: validation ----------------------------------------------------------


class TestRuleValidation:
    @pytest.mark.parametrize(
        "fields, field",
        [
            ({"metric": "failed_deliveries", "threshold": -1}, "threshold"),
            ({"metric": "failed_deliveries", "threshold": 0}, "threshold"),
            ({"metric": "failed_deliveries", "threshold": 2.5}, "threshold"),
            ({"metric": "failed_deliveries", "threshold": 10**7}, "threshold"),
            ({"metric": "avg_latency_ms", "threshold": 0}, "threshold"),
            ({"metric": "avg_latency_ms", "threshold": 600_001}, "threshold"),
            ({"metric": "avg_latency_ms", "threshold": float("inf")}, "threshold"),
            ({"metric": "avg_latency_ms", "threshold": float("nan")}, "threshold"),
            ({"metric": "success_rate", "threshold": 95}, "threshold"),
            ({"metric": "success_rate", "threshold": 0}, "threshold"),
            ({"metric": "success_rate", "threshold": -0.5}, "threshold"),
            ({"metric": "success_rate", "threshold": True}, "threshold"),
            ({"metric": "success_rate", "threshold": "0.9"}, "threshold"),
            ({"metric": "p99", "threshold": 1}, "metric"),
            ({"metric": "success_rate", "threshold": 0.9, "window_minutes": 0}, "window_minutes"),
            (
                {"metric": "success_rate", "threshold": 0.9, "window_minutes": 1441},
                "window_minutes",
            ),
            ({"metric": "success_rate", "threshold": 0.9, "window_minutes": 1.5}, "window_minutes"),
            ({"metric": "success_rate", "threshold": 0.9, "min_attempts": 0}, "min_attempts"),
            ({"metric": "success_rate", "threshold": 0.9, "min_attempts": 10**7}, "min_attempts"),
            ({"metric": "success_rate", "threshold": 0.9, "enabled": "yes"}, "enabled"),
            ({"metric": "success_rate", "threshold": 0.9, "webhook": "wh_nope"}, "webhook"),
        ],
    )
    def test_nonsense_is_refused_naming_the_field(self, org, fields, field):
        with pytest.raises(InvalidInput) as raised:
            alerts.create_rule(org, **fields)
        assert raised.value.field == field and raised.value.message
        assert AlertRule.objects.filter(organization=org).count() == 3

    def test_a_rule_on_another_organizations_webhook_is_refused(self, org):
        theirs = WebhookFactory(organization=OrganizationFactory())
        for webhook in (theirs, theirs.public_id):
            with pytest.raises(InvalidInput, match="no webhook with this id") as raised:
                alerts.create_rule(org, metric="success_rate", threshold=0.9, webhook=webhook)
            assert raised.value.field == "webhook"
        rule = AlertRule.objects.filter(organization=org).first()
        with pytest.raises(InvalidInput):
            alerts.update_rule(rule, webhook=theirs.public_id)
        rule.refresh_from_db()
        assert rule.webhook is None

    def test_the_edges_are_accepted(self, org, hook):
        for metric, threshold in (
            ("failed_deliveries", 1),
            ("failed_deliveries", 1_000_000),
            ("avg_latency_ms", 1),
            ("avg_latency_ms", 600_000),
            ("success_rate", 1),
            ("success_rate", 0.0001),
        ):
            alerts.create_rule(
                org, metric=metric, threshold=threshold, window_minutes=1440, min_attempts=1
            )
        rule = alerts.create_rule(
            org, metric="success_rate", threshold=0.99, webhook=hook.public_id, window_minutes=1
        )
        assert rule.webhook == hook and rule.threshold == 0.99

    def test_update_validates_the_result_and_leaves_a_bad_change_unsaved(self, org):
        rule = AlertRule.objects.get(organization=org, metric="success_rate")
        with pytest.raises(InvalidInput) as raised:
            alerts.update_rule(rule, metric="avg_latency_ms")  # 0.95 ms is not a latency
        assert raised.value.field == "threshold"
        with pytest.raises(InvalidInput, match="unknown field"):
            alerts.update_rule(rule, organization=OrganizationFactory())
        with pytest.raises(InvalidInput, match="may not be null"):
            alerts.update_rule(rule, threshold=None)
        rule.refresh_from_db()
        assert (rule.metric, rule.threshold) == ("success_rate", 0.95)
        alerts.update_rule(rule, metric="avg_latency_ms", threshold=2000)
        rule.refresh_from_db()
        assert (rule.metric, rule.threshold) == ("avg_latency_ms", 2000.0)

    def test_the_admin_form_uses_the_same_validation(self, org):
        from django.core.exceptions import ValidationError

        rule = AlertRule(organization=org, metric="success_rate", threshold=5)
        with pytest.raises(ValidationError) as raised:
            rule.full_clean()
        assert "threshold" in raised.value.message_dict


# --- listing (what the dashboard calls) -----------------------------------------


class TestListing:
    def test_list_alerts_filters_and_orders_newest_first(self, org, hook):
        other = WebhookFactory(organization=org)
        only_rule(org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)
        traffic(other, NOW + timedelta(minutes=1), failed=20)
        alerts.evaluate(NOW + timedelta(minutes=1))
        alerts.evaluate(NOW + timedelta(minutes=61))  # hook's failures left the window

        assert [a.webhook for a in alerts.list_alerts(org)] == [other, hook]
        assert [a.webhook for a in alerts.list_alerts(org, state="open")] == [other]
        assert [a.webhook for a in alerts.list_alerts(org, state="resolved")] == [hook]
        assert [a.webhook for a in alerts.list_alerts(org, webhook=hook)] == [hook]
        assert list(alerts.list_alerts(org, kind="webhook_disabled")) == []
        assert len(alerts.list_alerts(org, since=NOW + timedelta(seconds=1))) == 1
        assert len(alerts.list_alerts(org, until=NOW + timedelta(seconds=1))) == 1
        assert list(alerts.list_alerts(OrganizationFactory())) == []
        with pytest.raises(InvalidInput):
            alerts.list_alerts(org, state="closed")

    def test_open_alerts_per_webhook_in_one_query(self, org, hook, django_assert_num_queries):
        quiet = WebhookFactory(organization=org)
        traffic(hook, NOW, failed=20)
        alerts.evaluate(NOW)
        with django_assert_num_queries(1):
            found = alerts.open_alerts_by_webhook([hook, quiet.pk])
            assert {a.metric for a in found[hook.pk]} == {"success_rate", "failed_deliveries"}
            assert {a.rule.metric for a in found[hook.pk]} == {"success_rate", "failed_deliveries"}
        assert found[quiet.pk] == []


# --- the periodic job -----------------------------------------------------------


def test_the_scheduler_runs_the_evaluation_every_interval(settings):
    from rq import cron

    import monitoring.cron  # noqa: F401  (registers the periodic jobs)

    (entry,) = [j for j in cron._job_data_registry if j["func"] is jobs.evaluate_alerts]
    assert entry["interval"] == settings.HERALD_ALERT_INTERVAL_SECONDS == 60


@pytest.mark.django_db(transaction=True)  # the job closes stale connections, as in a worker
def test_the_job_evaluates_and_skips_while_another_pass_runs(org, hook, redis_conn):
    traffic(hook, datetime.now(UTC), failed=20)
    assert "2 opened" in jobs.evaluate_alerts()
    redis_conn.set(jobs.ALERTS_LOCK_KEY, "1")
    assert jobs.evaluate_alerts().startswith("skipped")

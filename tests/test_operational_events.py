"""Herald's operational events (SPEC §3) from real deliveries, and
auto-disable: 50 failed deliveries in a row over 24 h, or a 410 at once."""

import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from deliveries import actions, claiming, dispatch
from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from monitoring.models import Alert
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from tests.receiver import Answer
from webhooks import patterns
from webhooks.errors import InvalidInput
from webhooks.models import Webhook


@pytest.fixture(autouse=True)
def _immediate_retries(settings):
    settings.HERALD_RETRY_SCHEDULE = [0]


@pytest.fixture
def ops(org, receiver):
    """A webhook subscribed to every operational event."""
    return WebhookFactory(
        organization=org, name="Ops", url=receiver.url("/ops"), event_patterns=["herald.*"]
    )


@pytest.fixture
def deliver_all(django_capture_on_commit_callbacks):
    """Deliver until nothing is due, running the on-commit publication of
    operational events after each dispatcher run, as a worker does."""

    def run(rounds: int = 10) -> None:
        for _ in range(rounds):
            with django_capture_on_commit_callbacks(execute=True):
                made = deliver_due()
            if not made and not claiming.due_exists():
                return

    return run


def ops_received(receiver, path="/ops") -> list[dict]:
    return [json.loads(r.body) for r in receiver.to(path)]


def failing_hook(org, receiver, path="/fail", status=500, **fields) -> Webhook:
    receiver.always(path, Answer(status=status))
    fields.setdefault("event_patterns", ["person.*", "herald.*"])
    return WebhookFactory(organization=org, url=receiver.url(path), **fields)


class TestDeliveryEvents:
    def test_failing_after_the_4th_failed_attempt_then_exhausted(
        self, org, receiver, ops, deliver_all
    ):
        hook = failing_hook(org, receiver, max_attempts=5)
        published = publish(org, "person.created", {"n": 1})
        deliver_all()

        delivery = Delivery.objects.get(webhook=hook)
        assert delivery.status == "failed" and delivery.attempts == 5
        received = {e["type"]: e for e in ops_received(receiver)}  # sent concurrently
        assert len(received) == 2
        failing = received["herald.delivery.failing"]
        exhausted = received["herald.delivery.exhausted"]
        assert failing["webhookId"] == ops.public_id
        data = failing["data"]
        assert data["webhook"] == {"id": hook.public_id, "name": hook.name}
        assert data["event"] == {"id": published.event.public_id, "type": "person.created"}
        assert data["delivery"]["id"] == delivery.public_id
        assert data["delivery"]["status"] == "pending" and data["delivery"]["attempts"] == 4
        assert data["delivery"]["next_attempt_at"].endswith("Z")
        last = data["last_attempt"]
        assert last["number"] == 4 and last["status_code"] == 500
        assert last["error_kind"] == "http_status" and last["trigger"] == "auto"
        assert exhausted["data"]["delivery"]["status"] == "failed"
        assert exhausted["data"]["delivery"]["next_attempt_at"] is None
        assert exhausted["data"]["last_attempt"]["number"] == 5
        # The failing webhook subscribes to herald.* too, and hears nothing about itself.
        assert {json.loads(r.body)["type"] for r in receiver.to("/fail")} == {"person.created"}

    def test_a_delivery_whose_4th_attempt_is_its_last_is_only_exhausted(
        self, org, receiver, ops, deliver_all
    ):
        failing_hook(org, receiver, max_attempts=4)
        publish(org, "person.created", {})
        deliver_all()
        assert [e["type"] for e in ops_received(receiver)] == ["herald.delivery.exhausted"]

    def test_recovered_when_a_delivery_succeeds_after_failed_attempts(
        self, org, receiver, ops, deliver_all
    ):
        hook = WebhookFactory(organization=org, url=receiver.url("/flaky"))
        receiver.script("/flaky", Answer(status=500), Answer(status=503))
        publish(org, "person.created", {})
        deliver_all()
        publish(org, "person.updated", {})  # succeeds at once: no event
        deliver_all()
        (recovered,) = ops_received(receiver)
        assert recovered["type"] == "herald.delivery.recovered"
        assert recovered["data"]["webhook"]["id"] == hook.public_id
        assert recovered["data"]["delivery"]["status"] == "succeeded"
        assert recovered["data"]["last_attempt"]["number"] == 3
        assert recovered["data"]["last_attempt"]["status_code"] == 200

    def test_a_manual_retry_that_succeeds_is_a_recovery(self, org, receiver, ops, deliver_all):
        hook = WebhookFactory(organization=org, url=receiver.url("/once"), max_attempts=1)
        receiver.script("/once", Answer(status=500))
        publish(org, "person.created", {})
        deliver_all()
        actions.retry_delivery(Delivery.objects.get(webhook=hook))
        deliver_all()
        assert [e["type"] for e in ops_received(receiver)] == [
            "herald.delivery.exhausted",
            "herald.delivery.recovered",
        ]
        assert ops_received(receiver)[1]["data"]["last_attempt"]["trigger"] == "manual"

    def test_reports_about_reports_are_never_made(self, org, receiver, deliver_all):
        # Two subscribers of operational events, one of them failing too.
        broken_ops = failing_hook(
            org, receiver, path="/broken-ops", max_attempts=5, event_patterns=["herald.*"]
        )
        WebhookFactory(organization=org, url=receiver.url("/ops"), event_patterns=["herald.*"])
        failing_hook(org, receiver, max_attempts=1, event_patterns=["person.*"])
        publish(org, "person.created", {})
        deliver_all()

        (report,) = Event.objects.filter(type__startswith="herald.")
        assert report.type == "herald.delivery.exhausted"
        # broken_ops failed five times to receive it: no failing/exhausted about that.
        assert Delivery.objects.get(event=report, webhook=broken_ops).status == "failed"
        assert len(receiver.to("/broken-ops")) == 5
        assert Event.objects.filter(type__startswith="herald.").count() == 1

    def test_nothing_is_published_when_the_batch_rolls_back(
        self, org, receiver, ops, django_capture_on_commit_callbacks
    ):
        failing_hook(org, receiver, max_attempts=1)
        publish(org, "person.created", {})
        results = [dispatch.attempt(c) for c in dispatch.claim(10)]
        with (
            django_capture_on_commit_callbacks(execute=True) as callbacks,
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            dispatch.record(results)
            raise RuntimeError("the batch transaction fails")
        assert callbacks == []
        assert not Event.objects.filter(type__startswith="herald.").exists()
        with django_capture_on_commit_callbacks(execute=True):
            dispatch.record(results)
        assert Event.objects.filter(type="herald.delivery.exhausted").count() == 1


class TestOperationalTypes:
    def test_catch_all_patterns_do_not_select_them(self):
        assert not patterns.matches("*", "herald.alert.opened")
        assert not patterns.matches("*.*", "herald.delivery.failing")
        assert not patterns.matches("*.alert.opened", "herald.alert.opened")
        assert patterns.matches("herald.*", "herald.alert.opened")
        assert patterns.matches("herald.alert.*", "herald.alert.opened")
        assert patterns.matches("herald.webhook.disabled", "herald.webhook.disabled")
        assert patterns.matches("*", "person.created")

    def test_applications_cannot_publish_them(self, org):
        with pytest.raises(InvalidInput, match="reserved") as raised:
            publish(org, "herald.alert.opened", {})
        assert raised.value.field == "type"
        assert not Event.objects.exists()


class TestHotPath:
    """What operational events cost the dispatcher: nothing for a batch
    without them, else a fixed number of queries in the recording transaction."""

    # The attempts' INSERT; on PostgreSQL a COPY, which Django does not count.
    ATTEMPTS = 0 if connection.vendor == "postgresql" else 1

    def results(self, org, receiver, count, status):
        receiver.always("/hook", Answer(status=status))
        WebhookFactory(
            organization=org, url=receiver.url("/hook"), max_attempts=1, max_in_flight=100
        )
        for i in range(count):
            publish(org, "person.created", {"i": i})
        claimed = []
        while len(claimed) < count:  # a claim takes half a webhook's cap at most
            claimed += dispatch.claim(count - len(claimed))
        return [dispatch.attempt(c) for c in claimed]

    @pytest.mark.parametrize("count", [5, 100])
    def test_a_batch_of_successes_costs_what_it_did(
        self, org, receiver, ops, count, max_statements
    ):
        results = self.results(org, receiver, count, 200)
        # savepoint, attempts, deliveries, their leases, webhook health, lane,
        # stats (minutes, hours), release
        with max_statements(8 + self.ATTEMPTS):
            dispatch.record(results)

    @pytest.mark.parametrize("count", [5, 100])
    def test_a_batch_of_exhausted_deliveries_adds_a_fixed_number_of_queries(
        self,
        org,
        receiver,
        ops,
        count,
        max_statements,
        django_capture_on_commit_callbacks,
    ):
        results = self.results(org, receiver, count, 500)
        # + the auto-disable check; then the events: savepoint, subscribers,
        # events, deliveries, catalog, their lanes, release
        with (
            max_statements(9 + self.ATTEMPTS + 7),
            django_capture_on_commit_callbacks(execute=True),
        ):
            dispatch.record(results)
        assert Event.objects.filter(type="herald.delivery.exhausted").count() == count
        assert Delivery.objects.filter(webhook=ops).count() == count


# --- auto-disable ---------------------------------------------------------------


class TestAutoDisable:
    @pytest.fixture(autouse=True)
    def _limits(self, settings):
        settings.HERALD_DISABLE_AFTER_FAILURES = 3
        settings.HERALD_DISABLE_AFTER_HOURS = 24

    @pytest.fixture
    def hook(self, org, receiver):
        return failing_hook(org, receiver, max_attempts=1)

    def deliver_at(self, org, at, receiver=None) -> None:
        """One event, attempted once, recorded as if at `at` (the controlled clock)."""
        publish(org, "person.created", {"at": at.isoformat()})
        dispatch.record([dispatch.attempt(c) for c in dispatch.claim(10)], now=at)

    def test_the_count_alone_does_not_disable(self, org, hook):
        start = timezone.now()
        for minute in range(10):
            self.deliver_at(org, start + timedelta(minutes=minute))
        hook.refresh_from_db()
        assert hook.status == "active" and hook.consecutive_failed_deliveries == 10
        assert hook.failed_deliveries_since == start
        assert not Alert.objects.exists()

    def test_the_time_alone_does_not_disable(self, org, hook):
        start = timezone.now()
        self.deliver_at(org, start)
        self.deliver_at(org, start + timedelta(hours=30))
        hook.refresh_from_db()
        assert hook.status == "active" and hook.consecutive_failed_deliveries == 2

    def test_a_success_resets_the_count(self, org, hook, receiver):
        start = timezone.now()
        self.deliver_at(org, start)
        self.deliver_at(org, start + timedelta(hours=1))
        receiver.script("/fail", Answer(status=200))
        self.deliver_at(org, start + timedelta(hours=2))
        hook.refresh_from_db()
        assert hook.consecutive_failed_deliveries == 0 and hook.failed_deliveries_since is None
        self.deliver_at(org, start + timedelta(hours=25))
        self.deliver_at(org, start + timedelta(hours=26))
        hook.refresh_from_db()
        assert hook.status == "active" and hook.consecutive_failed_deliveries == 2

    def test_both_thresholds_disable_it_with_an_alert_and_an_event(
        self, org, hook, ops, receiver, django_capture_on_commit_callbacks
    ):
        start = timezone.now() - timedelta(hours=25)
        self.deliver_at(org, start)
        self.deliver_at(org, start + timedelta(hours=1))
        self.deliver_at(org, start + timedelta(hours=23, minutes=59))
        hook.refresh_from_db()
        assert hook.status == "active"  # 3 failures, but over 23 h 59 min

        Webhook.objects.filter(pk=hook.pk).update(status=Webhook.Status.PAUSED)
        waiting = publish(org, "person.updated", {}).event  # parked: still pending
        Webhook.objects.filter(pk=hook.pk).update(status=Webhook.Status.ACTIVE)
        self.deliver_at(org, start + timedelta(hours=24))

        hook.refresh_from_db()
        assert hook.status == "disabled"
        assert hook.disabled_reason.startswith("4 deliveries in a row failed")
        assert Delivery.objects.get(event=waiting, webhook=hook).status == "failed"
        alert = Alert.objects.get()
        assert alert.kind == "webhook_disabled" and alert.state == "open"
        assert alert.webhook == hook and alert.rule is None
        assert alert.value == 4 and alert.threshold == 3
        assert alert.opened_at == start + timedelta(hours=24)
        assert alert.message == hook.disabled_reason

        with django_capture_on_commit_callbacks(execute=True):
            deliver_due()
        # With the exhausted events of the four deliveries, written with their attempts.
        types = sorted(e["type"] for e in ops_received(receiver))
        exhausted = ["herald.delivery.exhausted"] * 4
        assert types == ["herald.alert.opened", *exhausted, "herald.webhook.disabled"]
        disabled = next(e for e in ops_received(receiver) if e["type"] == "herald.webhook.disabled")
        assert disabled["data"]["webhook"]["id"] == hook.public_id
        assert disabled["data"]["reason"] == hook.disabled_reason
        assert disabled["data"]["alert"]["id"] == alert.public_id
        assert not Delivery.objects.filter(webhook=hook, event__type__startswith="herald.").exists()
        # While disabled it gets nothing new.
        assert publish(org, "person.deleted", {}).delivery_count == 0

        actions.resume_webhook(hook)
        hook.refresh_from_db()
        assert hook.status == "active" and hook.disabled_reason == ""
        assert hook.consecutive_failed_deliveries == 0 and hook.failed_deliveries_since is None
        alert.refresh_from_db()
        assert alert.state == "resolved" and alert.resolved_at is not None
        resolved = Event.objects.get(type="herald.alert.resolved")
        assert json.loads(resolved.data_json)["reason"] == "webhook_enabled"

    def test_410_gone_disables_at_once_with_an_alert(self, org, ops, receiver):
        hook = failing_hook(org, receiver, path="/gone", status=410, max_attempts=5)
        publish(org, "person.created", {})
        dispatch.record([dispatch.attempt(c) for c in dispatch.claim(10)])
        hook.refresh_from_db()
        assert hook.status == "disabled" and "410" in hook.disabled_reason
        alert = Alert.objects.get()
        assert (alert.kind, alert.value, alert.threshold) == ("webhook_disabled", None, None)
        assert {e.type for e in Event.objects.filter(type__startswith="herald.webhook")} == {
            "herald.webhook.disabled"
        }

        # Through the API's status change, like a person re-enabling it.
        actions.set_status(hook, "active")
        alert.refresh_from_db()
        assert alert.state == "resolved"

    def test_disabling_twice_opens_one_alert(self, org, hook):
        actions.disable_webhook(hook, "first")
        actions.disable_webhook(Webhook.objects.get(pk=hook.pk), "second")
        assert Alert.objects.count() == 1
        assert Event.objects.filter(type="herald.webhook.disabled").count() == 1

"""Finding events, resending deliveries and replaying ranges through the API
(SPEC §8: `GET /events`, `POST /deliveries/{id}/resend`, `POST
/webhooks/{id}/replay`)."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event, Replay, Trigger
from deliveries.publishing import Outgoing, publish, publish_many
from deliveries.replay import Criteria, progress, start
from tests.conftest import deliver_due, error_of
from tests.factories import OrganizationFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Webhook

EVENTS = "/api/v1/events"


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def published_at(org, event_type: str, when, data=None) -> Event:
    event = publish(org, event_type, data or {}).event
    Event.objects.filter(pk=event.pk).update(created_at=when)
    return event


# --- GET /events ------------------------------------------------------------------


class TestListingEvents:
    def test_newest_first_with_a_cursor_and_nothing_of_other_organizations(self, api, org):
        OrganizationFactory()  # its events never show
        events = [publish(org, "order.created", {"n": i}).event for i in range(5)]
        publish(OrganizationFactory(), "order.created", {})

        first = api.get(EVENTS, {"limit": 3}).json()
        second = api.get(EVENTS, {"limit": 3, "cursor": first["next_cursor"]}).json()

        ids = [item["id"] for item in first["items"] + second["items"]]
        assert ids == [e.public_id for e in reversed(events)]
        assert second["next_cursor"] is None
        assert first["items"][0] == {
            "id": events[-1].public_id,
            "type": "order.created",
            "timestamp": first["items"][0]["timestamp"],
            "deliveries": 0,
        }

    def test_type_is_exact_or_a_pattern(self, api, org):
        publish(org, "order.created", {})
        publish(org, "order.paid", {})
        publish(org, "person.created", {})

        def types(**params):
            return sorted(i["type"] for i in api.get(EVENTS, params).json()["items"])

        assert types(type="order.paid") == ["order.paid"]
        assert types(type="order.*") == ["order.created", "order.paid"]
        assert types(type="*.created") == ["order.created", "person.created"]
        assert types(type="nothing.here") == []

    def test_a_time_range_is_since_inclusive_until_exclusive(self, api, org):
        now = timezone.now().replace(microsecond=0)
        old = published_at(org, "order.created", now - timedelta(days=3))
        middle = published_at(org, "order.created", now - timedelta(days=2))
        published_at(org, "order.created", now - timedelta(days=1))

        items = api.get(
            EVENTS, {"since": iso(now - timedelta(days=3)), "until": iso(now - timedelta(days=1))}
        ).json()["items"]

        assert [i["id"] for i in items] == [middle.public_id, old.public_id]

    def test_herald_events_only_when_asked_for(self, api, org):
        mine = publish(org, "order.created", {}).event
        publish(org, "order.created", {})
        (operational,) = publish_many([Outgoing(org.pk, "herald.alert.opened", {"x": 1})])

        default = {i["id"] for i in api.get(EVENTS).json()["items"]}
        everything = {
            i["id"] for i in api.get(EVENTS, {"include_operational": "true"}).json()["items"]
        }
        named = {i["id"] for i in api.get(EVENTS, {"type": "herald.*"}).json()["items"]}

        assert operational.public_id not in default and mine.public_id in default
        assert operational.public_id in everything
        assert named == {operational.public_id}

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
            ({"since": "2026-11-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
            ({"type": "Order.*"}, "type"),
            ({"type": "order..created"}, "type"),
            ({"type": "**"}, "type"),
            ({"since": "yesterday"}, "since"),
            ({"limit": "0"}, "limit"),
            ({"cursor": "nonsense"}, "cursor"),
            ({"include_operational": "perhaps"}, "include_operational"),
            ({"types": "order.*"}, "types"),
        ],
    )
    def test_bad_input_is_an_error_naming_the_field(self, api, org, params, field):
        publish(org, "order.created", {})
        response = api.get(EVENTS, params)
        assert response.status_code in (400, 422), response.content
        error_of(response, response.status_code, field=field)


# --- POST /deliveries/{id}/resend ---------------------------------------------------


class TestResend:
    def test_a_succeeded_delivery_is_sent_again_with_the_same_id(self, api, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url("/ok"))
        event = publish(org, "order.created", {"n": 1}).event
        deliver_due()
        delivery = Delivery.objects.get(event=event)
        assert delivery.status == Delivery.Status.SUCCEEDED

        response = api.post(f"/api/v1/deliveries/{delivery.public_id}/resend")

        assert response.status_code == 202, response.content
        assert response.json()["status"] == "pending"
        deliver_due()
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.SUCCEEDED
        assert list(delivery.attempt_set.order_by("number").values_list("trigger", flat=True)) == [
            Trigger.AUTO,
            Trigger.MANUAL,
        ]
        first, second = receiver.to("/ok")
        assert first.header("webhook-id") == second.header("webhook-id") == event.public_id
        assert webhook.deliveries.count() == 1

    def test_retry_still_refuses_a_succeeded_delivery_and_points_to_resend(
        self, api, org, receiver
    ):
        WebhookFactory(organization=org, url=receiver.url("/ok"))
        event = publish(org, "order.created", {}).event
        deliver_due()
        delivery = Delivery.objects.get(event=event)
        error = error_of(
            api.post(f"/api/v1/deliveries/{delivery.public_id}/retry"), 409, field="status"
        )
        assert "resend" in error["message"]

    def test_a_paused_webhooks_delivery_is_a_409_and_unchanged(self, api, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url("/ok"))
        event = publish(org, "order.created", {}).event
        deliver_due()
        Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.PAUSED)
        delivery = Delivery.objects.get(event=event)

        error_of(api.post(f"/api/v1/deliveries/{delivery.public_id}/resend"), 409, field="status")

        assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.SUCCEEDED

    def test_another_organizations_delivery_is_a_404(self, api, org):
        other = OrganizationFactory()
        WebhookFactory(organization=other)
        event = publish(other, "order.created", {}).event
        delivery = Delivery.objects.get(event=event)
        error_of(api.post(f"/api/v1/deliveries/{delivery.public_id}/resend"), 404)
        assert Delivery.objects.get(pk=delivery.pk).next_trigger == Trigger.AUTO


# --- POST /webhooks/{id}/replay -----------------------------------------------------


@pytest.fixture
def history(org, receiver):
    """Four events of last week to an endpoint that took the first two and
    refused the third; the fourth came while another webhook existed only."""
    receiver.always("/flaky", Answer(status=200))
    now = timezone.now()
    webhook = WebhookFactory(
        organization=org, url=receiver.url("/flaky"), event_patterns=["order.*"], max_attempts=1
    )
    events = [
        published_at(org, "order.created", now - timedelta(days=7 - i), {"n": i}) for i in range(3)
    ]
    deliver_due()
    # The third failed.
    Delivery.objects.filter(event=events[2]).update(status=Delivery.Status.FAILED)
    Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.DISABLED)
    events.append(published_at(org, "order.created", now - timedelta(days=3), {"n": 3}))
    published_at(org, "person.created", now - timedelta(days=3))  # not subscribed
    Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.ACTIVE)
    webhook.refresh_from_db()
    receiver.requests.clear()
    return webhook, events, now


def replay_url(webhook) -> str:
    return f"/api/v1/webhooks/{webhook.public_id}/replay"


class TestReplay:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [("any", [0, 1, 2, 3]), ("failed", [2]), ("succeeded", [0, 1]), ("none", [3])],
    )
    def test_status_picks_events_by_this_webhooks_delivery(
        self, api, receiver, history, status, expected
    ):
        webhook, events, now = history
        body = {"since": iso(now - timedelta(days=8)), "status": status}

        dry = api.post(replay_url(webhook), {**body, "dry_run": True})
        assert dry.status_code == 200, dry.content
        assert dry.json()["count"] == len(expected)
        assert receiver.to("/flaky") == []

        response = api.post(replay_url(webhook), body)
        assert response.status_code == 202, response.content
        assert response.json()["count"] == len(expected)
        assert response.json()["duplicate"] is False
        deliver_due()
        sent = sorted(json.loads(r.body)["data"]["n"] for r in receiver.to("/flaky"))
        assert sent == expected

    def test_a_backfill_reaches_events_from_before_the_webhook_existed(self, api, org, receiver):
        now = timezone.now()
        old = published_at(org, "order.created", now - timedelta(days=5), {"n": 1})
        receiver.always("/new", Answer(status=200))
        webhook = WebhookFactory(organization=org, url=receiver.url("/new"), event_patterns=["*"])

        response = api.post(
            replay_url(webhook), {"since": iso(now - timedelta(days=7)), "status": "none"}
        )

        assert response.json()["count"] == 1
        deliver_due()
        (request,) = receiver.to("/new")
        assert request.header("webhook-id") == old.public_id

    def test_no_other_webhook_sees_a_replayed_event(self, api, org, receiver, history):
        webhook, _, now = history
        receiver.always("/other", Answer(status=200))
        other = WebhookFactory(organization=org, url=receiver.url("/other"), event_patterns=["*"])
        before = Delivery.objects.filter(webhook=other).count()

        api.post(replay_url(webhook), {"since": iso(now - timedelta(days=8))})
        deliver_due()

        assert receiver.to("/other") == []
        assert Delivery.objects.filter(webhook=other).count() == before

    def test_asking_twice_while_it_runs_sends_nothing_twice(self, api, receiver, history):
        webhook, _, now = history
        body = {"since": iso(now - timedelta(days=8)), "until": iso(now)}

        first = api.post(replay_url(webhook), body).json()
        second = api.post(replay_url(webhook), body).json()
        # A different range overlapping it: what is still pending is not queued again.
        overlapping = api.post(
            replay_url(webhook), {"since": iso(now - timedelta(days=9)), "until": iso(now)}
        ).json()
        deliver_due()

        assert second == {**first, "duplicate": True}
        assert overlapping["count"] == 0
        assert len(receiver.to("/flaky")) == first["count"] == 4

    def test_the_event_type_narrows_within_what_the_webhook_subscribes_to(self, api, org, history):
        webhook, _, now = history
        published_at(org, "order.paid", now - timedelta(days=2))
        deliver_due()
        body = {"since": iso(now - timedelta(days=8)), "dry_run": True}
        assert (
            api.post(replay_url(webhook), {**body, "event_type": "order.paid"}).json()["count"] == 1
        )
        assert (
            api.post(replay_url(webhook), {**body, "event_type": "person.*"}).json()["count"] == 0
        )

    def test_progress_counts_what_has_been_sent(self, org, history):
        webhook, _, now = history
        replay, created = start(webhook, Criteria(since=now - timedelta(days=8)))
        assert created and progress(replay).sent == 0 and progress(replay).remaining == 4
        deliver_due()
        done = progress(Replay.objects.get(pk=replay.pk))
        assert (done.sent, done.remaining, done.succeeded, done.done) == (4, 0, 4, True)

    def test_replays_keep_to_the_webhooks_rate_limit(self, api, org, receiver):
        now = timezone.now()
        for i in range(6):
            published_at(org, "order.created", now - timedelta(hours=1), {"n": i})
        receiver.always("/slow", Answer(status=200))
        webhook = WebhookFactory(
            organization=org, url=receiver.url("/slow"), event_patterns=["*"], rate_limit=2
        )

        api.post(replay_url(webhook), {"since": iso(now - timedelta(days=1)), "status": "none"})
        deliver_due()

        times = sorted(r.at for r in receiver.to("/slow"))
        assert len(times) == 6
        # Never more than 2 starts in any one-second window.
        assert all(times[i + 2] - times[i] >= 1.0 for i in range(len(times) - 2))

    def test_a_paused_webhook_is_a_409_and_nothing_is_queued(self, api, history):
        webhook, _, now = history
        Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.PAUSED)
        error_of(
            api.post(replay_url(webhook), {"since": iso(now - timedelta(days=8))}),
            409,
            field="status",
        )
        assert not Replay.objects.exists()
        assert not Delivery.objects.filter(status=Delivery.Status.PENDING).exists()

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "until"),
            ({"since": "2026-11-01T00:00:00Z", "status": "lost"}, "status"),
            ({"since": "2026-11-01T00:00:00Z", "event_type": "Order.*"}, "event_type"),
            ({"since": "2026-11-01T00:00:00Z", "event_type": "order.**"}, "event_type"),
            ({"since": "last week"}, "since"),
            ({}, "since"),
            ({"since": "2026-11-01T00:00:00Z", "dry_run": "yes"}, "dry_run"),
            ({"since": "2026-11-01T00:00:00Z", "until": None}, "until"),
            ({"since": "2026-11-01T00:00:00Z", "speed": 10}, "speed"),
        ],
    )
    def test_bad_input_is_a_422_naming_the_field_and_queues_nothing(
        self, api, history, body, field
    ):
        webhook, _, _ = history
        error_of(api.post(replay_url(webhook), body), 422, field=field)
        assert not Replay.objects.exists()

    def test_a_range_too_long_is_refused(self, api, history, settings):
        webhook, _, now = history
        settings.HERALD_REPLAY_MAX_EVENTS = 3
        error_of(
            api.post(replay_url(webhook), {"since": iso(now - timedelta(days=8))}),
            422,
            field="since",
        )
        assert not Replay.objects.exists()
        assert not DeliveryAttempt.objects.filter(trigger=Trigger.MANUAL).exists()

    def test_another_organizations_webhook_is_a_404(self, api, history):
        other = WebhookFactory(organization=OrganizationFactory())
        error_of(api.post(replay_url(other), {"since": "2026-11-01T00:00:00Z"}), 404)

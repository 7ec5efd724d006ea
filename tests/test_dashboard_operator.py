"""The operator's everyday tasks on the dashboard (SPEC §7): find an event,
page through lists whose state lives in the URL, resend a delivery, replay a
range. Through Django's test client; the browser tests walk the same paths."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deliveries.models import Delivery, Event, Replay, Trigger
from deliveries.publishing import Outgoing, publish, publish_many
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, OrganizationFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Membership, Webhook


@pytest.fixture
def admin(client, org):
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.ADMIN).user)
    return client


@pytest.fixture
def viewer(org):
    client = Client()
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.VIEWER).user)
    return client


def published_at(org, event_type, when, data=None) -> Event:
    event = publish(org, event_type, data or {}).event
    Event.objects.filter(pk=event.pk).update(created_at=when)
    return event


def listed(response) -> list[str]:
    """The event ids in the events page's table, top to bottom."""
    html = response.content.decode()
    return [part.split('"')[0] for part in html.split('<tr id="event-')[1:]]


class TestEventsPage:
    def test_herald_events_are_hidden_unless_asked_for(self, admin, org):
        mine = publish(org, "order.created", {}).event
        (operational,) = publish_many([Outgoing(org.pk, "herald.alert.opened", {})])
        assert listed(admin.get("/events/")) == [mine.public_id]
        assert listed(admin.get("/events/", {"herald": "1"})) == [
            operational.public_id,
            mine.public_id,
        ]

    def test_type_filters_exactly_or_by_pattern(self, admin, org):
        created = publish(org, "order.created", {}).event
        paid = publish(org, "order.paid", {}).event
        publish(org, "person.created", {})
        assert listed(admin.get("/events/", {"type": "order.paid"})) == [paid.public_id]
        assert listed(admin.get("/events/", {"type": "order.*"})) == [
            paid.public_id,
            created.public_id,
        ]

    def test_a_date_range_takes_whole_utc_days(self, admin, org):
        day = datetime(2026, 11, 20, tzinfo=UTC)
        before = published_at(org, "order.created", day - timedelta(seconds=1))
        first = published_at(org, "order.created", day)
        last = published_at(org, "order.created", day + timedelta(days=2, hours=23))
        after = published_at(org, "order.created", day + timedelta(days=3))
        shown = listed(admin.get("/events/", {"since": "2026-11-20", "until": "2026-11-22"}))
        assert shown == [last.public_id, first.public_id]
        assert before.public_id not in shown and after.public_id not in shown

    def test_only_events_with_a_failed_delivery(self, admin, org, receiver):
        receiver.always("/down", Answer(status=500))
        WebhookFactory(
            organization=org, url=receiver.url("/down"), max_attempts=1, event_patterns=["order.*"]
        )
        failing = publish(org, "order.created", {}).event
        publish(org, "person.created", {})  # no delivery at all
        deliver_due()
        assert listed(admin.get("/events/", {"failed": "1"})) == [failing.public_id]
        assert len(listed(admin.get("/events/"))) == 2

    @pytest.mark.parametrize("typed", ["{id}", "  {id}  ", "'{id}'", "<{id}>", "{delivery}"])
    def test_search_finds_an_event_by_its_id_or_a_deliverys_pasted_any_way(self, admin, org, typed):
        WebhookFactory(organization=org)
        event = publish(org, "order.created", {}).event
        publish(org, "order.created", {})
        delivery = Delivery.objects.get(event=event)
        q = typed.format(id=event.public_id, delivery=delivery.public_id)
        assert listed(admin.get("/events/", {"q": q})) == [event.public_id]

    def test_an_id_of_another_organization_finds_nothing(self, admin, org):
        other = publish(OrganizationFactory(), "order.created", {}).event
        response = admin.get("/events/", {"q": other.public_id})
        assert listed(response) == []
        assert "Nothing with that id" in response.content.decode()

    @pytest.mark.parametrize(
        ("params", "shown"),
        [
            ({"type": "Order.*"}, "Type:"),
            ({"since": "20/11/2026"}, "From:"),
            ({"since": "2026-11-22", "until": "2026-11-20"}, "To:"),
        ],
    )
    def test_bad_filters_say_which_field_and_list_nothing(self, admin, org, params, shown):
        publish(org, "order.created", {})
        response = admin.get("/events/", params)
        assert response.status_code == 422
        assert shown in response.content.decode()
        assert listed(response) == []

    def test_a_range_backwards_says_so_in_the_pages_words_and_nothing_else(self, admin, org):
        response = admin.get("/events/", {"since": "2026-11-22", "until": "2026-11-20"})
        html = response.content.decode()
        assert "Must be the same day as From or later." in html
        assert "since" not in html.split('id="event-filter-errors"')[1].split("</div>")[0]
        # Not also "No events match": the filters were not run.
        assert 'id="events-empty"' not in html

    def test_pages_go_older_and_newer_and_survive_new_events(self, admin, org, settings):
        from dashboard import queries

        events = [publish(org, "order.created", {"i": i}).event for i in range(7)]
        queries.PAGE_SIZE, saved = 3, queries.PAGE_SIZE
        try:
            first = admin.get("/events/")
            older_link = _link(first, "events-older")
            second = admin.get("/events/" + older_link)
            publish(org, "order.created", {"late": True})  # shifts nothing
            assert listed(admin.get("/events/" + older_link)) == listed(second)
            newer = admin.get("/events/" + _link(second, "events-newer"))
        finally:
            queries.PAGE_SIZE = saved
        ids = [e.public_id for e in reversed(events)]
        assert listed(first) == ids[:3]
        assert listed(second) == ids[3:6]
        assert listed(newer) == ids[:3]


def _link(response, element_id: str) -> str:
    html = response.content.decode()
    tag = html.split(f'id="{element_id}" href="', 1)[1]
    return tag.split('"', 1)[0].replace("&amp;", "&")


class TestDeliveryLog:
    @pytest.fixture
    def deliveries(self, org):
        webhook = WebhookFactory(organization=org)
        events = [publish(org, "order.created", {"i": i}).event for i in range(3)]
        return webhook, [Delivery.objects.get(event=e) for e in events]

    @pytest.mark.parametrize("kind", ["event", "delivery"])
    def test_search_takes_either_id_with_spaces_around(self, admin, deliveries, kind):
        webhook, found = deliveries
        wanted = found[1]
        typed = f"  {wanted.event.public_id if kind == 'event' else wanted.public_id} "
        html = admin.get(f"/webhooks/{webhook.public_id}/log/", {"event_id": typed}).content
        assert html.decode().count('<tr id="delivery-') == 1
        assert f'id="delivery-{wanted.public_id}"' in html.decode()

    def test_filtering_pushes_the_page_address_polling_does_not(self, admin, deliveries):
        webhook, _ = deliveries
        url = f"/webhooks/{webhook.public_id}/log/"
        filtered = admin.get(
            url, {"status": "pending"}, headers={"HX-Request": "true", "HX-Trigger": "log-filters"}
        )
        polled = admin.get(
            url, {"status": "pending"}, headers={"HX-Request": "true", "HX-Trigger": "delivery-log"}
        )
        assert filtered["HX-Push-Url"] == f"/webhooks/{webhook.public_id}/?status=pending"
        assert "HX-Push-Url" not in polled

    def test_the_page_shows_what_its_address_says(self, admin, deliveries):
        webhook, found = deliveries
        page = admin.get(f"/webhooks/{webhook.public_id}/", {"event_id": found[0].public_id})
        assert page.content.decode().count('<tr id="delivery-') == 1

    def test_a_pending_row_polls_itself_a_finished_one_does_not(self, admin, deliveries):
        _, found = deliveries
        pending = admin.get(f"/deliveries/{found[0].public_id}/row/").content.decode()
        Delivery.objects.filter(pk=found[0].pk).update(status=Delivery.Status.SUCCEEDED)
        finished = admin.get(f"/deliveries/{found[0].public_id}/row/").content.decode()
        assert 'hx-trigger="every 2s"' in pending
        assert "hx-trigger" not in finished


class TestResend:
    def test_a_succeeded_row_offers_resend_and_gets_a_manual_attempt(self, admin, org, receiver):
        WebhookFactory(organization=org, url=receiver.url("/ok"))
        event = publish(org, "order.created", {}).event
        deliver_due()
        delivery = Delivery.objects.get(event=event)
        row = admin.get(f"/deliveries/{delivery.public_id}/row/").content.decode()
        assert "Resend" in row

        response = admin.post(f"/deliveries/{delivery.public_id}/resend/", HTTP_HX_REQUEST="true")

        assert response.status_code == 200
        assert "herald:retried" in response["HX-Trigger"]
        deliver_due()
        attempts = Delivery.objects.get(pk=delivery.pk).attempt_set.order_by("number")
        assert [a.trigger for a in attempts] == [Trigger.AUTO, Trigger.MANUAL]
        assert len(receiver.to("/ok")) == 2

    def test_a_delivery_page_follows_an_attempt_due_now_and_stops_when_it_ends(
        self, admin, org, receiver
    ):
        WebhookFactory(organization=org, url=receiver.url("/ok"))
        event = publish(org, "order.created", {}).event
        delivery = Delivery.objects.get(event=event)
        page = admin.get(f"/deliveries/{delivery.public_id}/").content.decode()
        assert 'id="delivery-page" hx-get=' in page and "data-following" in page

        deliver_due()
        page = admin.get(f"/deliveries/{delivery.public_id}/").content.decode()
        assert 'id="delivery-page"' in page and "data-following" not in page

    def test_a_viewer_cannot_resend(self, viewer, org):
        WebhookFactory(organization=org)
        event = publish(org, "order.created", {}).event
        delivery = Delivery.objects.get(event=event)
        assert viewer.post(f"/deliveries/{delivery.public_id}/resend/").status_code == 403
        assert Delivery.objects.get(pk=delivery.pk).next_trigger == Trigger.AUTO


class TestReplayDialog:
    @pytest.fixture
    def webhook(self, org, receiver):
        receiver.always("/r", Answer(status=200))
        now = timezone.now()
        for i in range(3):
            published_at(org, "order.created", now - timedelta(days=2), {"i": i})
        return WebhookFactory(organization=org, url=receiver.url("/r"))

    def form(self, **changes):
        since = (timezone.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
        return {"since": since, "until": "", "status": "none", "event_type": "", **changes}

    def test_counting_sends_nothing_and_offers_to_replay_that_many(self, admin, webhook, receiver):
        response = admin.post(f"/webhooks/{webhook.public_id}/replay/", self.form(count="1"))
        html = response.content.decode()
        assert response.status_code == 200
        assert "<strong>3</strong> events will be sent" in html
        assert "Replay 3 events" in html
        assert not Replay.objects.exists()
        assert receiver.to("/r") == []

    def test_counting_up_to_now_pins_now_so_confirming_sends_what_was_counted(
        self, admin, webhook, org
    ):
        counted = admin.post(f"/webhooks/{webhook.public_id}/replay/", self.form(count="1"))
        html = counted.content.decode()
        until = html.split('name="until" value="')[1].split('"')[0]
        assert datetime.strptime(until, "%Y-%m-%dT%H:%M:%S")  # the moment counted, shown
        # An event published after the count is not part of the replay.
        publish(org, "order.created", {"late": True})
        form = self.form(confirm="1", until=until)
        admin.post(f"/webhooks/{webhook.public_id}/replay/", form)
        assert Replay.objects.get().total == 3

    def test_confirming_starts_it_and_shows_progress_until_done(self, admin, webhook, receiver):
        started = admin.post(f"/webhooks/{webhook.public_id}/replay/", self.form(confirm="1"))
        replay = Replay.objects.get()
        assert 'data-done="no"' in started.content.decode()
        assert 'hx-trigger="every 1s"' in started.content.decode()

        deliver_due()
        done = admin.get(f"/webhooks/{webhook.public_id}/replays/{replay.public_id}/")

        html = done.content.decode()
        assert 'data-done="yes"' in html and "every 1s" not in html
        assert '<strong id="replay-sent">3</strong>' in html
        assert len(receiver.to("/r")) == 3

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"since": "yesterday"}, "Enter a valid date/time"),
            ({"until": "2020-01-01T00:00"}, "Must be later than From"),
            ({"status": "lost"}, "Select a valid choice"),
            ({"event_type": "Order.*"}, "must be an event type like"),
        ],
    )
    def test_bad_input_is_shown_on_its_field_and_starts_nothing(
        self, admin, webhook, changes, message
    ):
        response = admin.post(
            f"/webhooks/{webhook.public_id}/replay/", self.form(confirm="1", **changes)
        )
        assert response.status_code == 422
        assert message in response.content.decode()
        assert not Replay.objects.exists()

    def test_a_paused_webhook_says_so_and_starts_nothing(self, admin, webhook):
        Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.PAUSED)
        response = admin.post(f"/webhooks/{webhook.public_id}/replay/", self.form(confirm="1"))
        assert response.status_code == 422
        assert "resume it before replaying" in response.content.decode()
        assert not Replay.objects.exists()

    def test_a_viewer_sees_no_replay_button_and_cannot_post(self, viewer, webhook):
        page = viewer.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert 'id="replay-open"' not in page
        response = viewer.post(f"/webhooks/{webhook.public_id}/replay/", self.form(confirm="1"))
        assert response.status_code == 403
        assert not Replay.objects.exists()

    def test_another_organizations_replay_is_a_404(self, admin, webhook):
        other = WebhookFactory(organization=OrganizationFactory())
        replay = Replay.objects.create(
            organization=other.organization, webhook=other, since=timezone.now()
        )
        url = f"/webhooks/{webhook.public_id}/replays/{replay.public_id}/"
        assert admin.get(url).status_code == 404

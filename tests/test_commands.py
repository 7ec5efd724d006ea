"""Management commands print their result as the last line (SPEC §9)."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event
from deliveries.publishing import publish
from monitoring.models import WebhookStats
from monitoring.retention import purge
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from tests.receiver import Answer
from webhooks.keys import find_api_key
from webhooks.models import Membership, Organization, Webhook


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()[-1]


def test_createorganization_prints_the_org_id_and_makes_the_owner(db):
    org_id = run("createorganization", "Acme", "--owner", "alice")
    org = Organization.objects.get(public_id=org_id)
    assert org.name == "Acme" and org_id.startswith("org_")
    membership = Membership.objects.get(organization=org)
    assert membership.user.username == "alice" and membership.role == "owner"
    assert not membership.user.has_usable_password()


def test_createorganization_keeps_an_existing_users_password(db):
    user = get_user_model().objects.create_user("bob", password="s3cret-pass-word")
    run("createorganization", "Beta", "--owner", "bob")
    user.refresh_from_db()
    assert user.check_password("s3cret-pass-word")


def test_createapikey_prints_a_key_that_authenticates(org):
    key = run("createapikey", org.public_id)
    assert key.startswith("hk_")
    assert find_api_key(key).organization == org


def test_createapikey_refuses_an_unknown_organization(db):
    with pytest.raises(CommandError, match="No organization"):
        run("createapikey", "org_nope")


def test_publish_prints_the_event_id(org, receiver):
    WebhookFactory(organization=org, url=receiver.url())
    event_id = run("publish", org.public_id, "person.created", '{"name": "Zoë"}')
    event = Event.objects.get(public_id=event_id)
    assert event.data == {"name": "Zoë"} and event.delivery_count == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (("person.created", "{not json"), "not valid JSON"),
        (("person.created", "[1, 2]"), "must be a JSON object"),
        (("Person", "{}"), "type"),
        (("person.created", '{"x": NaN}'), "not valid JSON"),
    ],
)
def test_publish_refuses_bad_input_and_stores_nothing(org, args, message):
    with pytest.raises(CommandError, match=message):
        run("publish", org.public_id, *args)
    assert not Event.objects.exists()


def test_retryfailed_prints_the_count(org, receiver):
    webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
    receiver.script("/hook", Answer(status=500), Answer(status=500))
    publish(org, "person.created", {})
    publish(org, "person.created", {})
    deliver_due()
    assert run("retryfailed", webhook.public_id) == "2"
    assert Delivery.objects.filter(status="pending", next_trigger="manual").count() == 2
    assert run("retryfailed", webhook.public_id, "--since", "2999-01-01T00:00:00") == "0"


def test_retrydelivery_queues_one_manual_attempt(org, receiver):
    WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
    receiver.script("/hook", Answer(status=500))
    publish(org, "person.created", {})
    deliver_due()
    delivery = Delivery.objects.get()
    assert run("retrydelivery", delivery.public_id) == delivery.public_id
    deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    with pytest.raises(CommandError, match="already succeeded"):
        run("retrydelivery", delivery.public_id)
    with pytest.raises(CommandError, match="No delivery"):
        run("retrydelivery", "dlv_nope")


def test_retryfailed_refuses_a_bad_since(org):
    webhook = WebhookFactory(organization=org)
    with pytest.raises(CommandError, match="ISO 8601"):
        run("retryfailed", webhook.public_id, "--since", "yesterday")


def test_demo_seeds_once_and_prints_the_org_id(db):
    first = run("demo", "--receiver-url", "http://127.0.0.1:8001")
    second = run("demo", "--receiver-url", "http://127.0.0.1:8002")
    assert first == second
    org = Organization.objects.get(public_id=first)
    webhooks = Webhook.objects.filter(organization=org)
    assert webhooks.count() == 6
    assert {w.url.rsplit("/", 1)[-1] for w in webhooks} >= {"healthy", "flaky", "slow"}
    assert webhooks.filter(url__startswith="http://127.0.0.1:8002").count() == 5
    assert webhooks.filter(event_patterns=["herald.*"]).count() == 1
    demo_user = get_user_model().objects.get(username="demo")
    assert demo_user.check_password("demo-password")
    # An owner with an address: alert e-mails (console backend under make run) reach someone.
    assert demo_user.email == "demo@example.com"
    assert Membership.objects.get(user=demo_user, organization=org).role == "owner"


def test_demo_labels_every_line_for_make_run(db):
    out, err = StringIO(), StringIO()
    call_command(
        "demo",
        "--labelled",
        "--receiver-url",
        "http://127.0.0.1:8001",
        "--app-url",
        "http://127.0.0.1:8000",
        stdout=out,
        stderr=err,
    )
    lines = out.getvalue().splitlines()
    assert err.getvalue() == ""
    assert [line.split(": ", 1)[0] for line in lines] == [
        "demo organization",
        "API key (shown once)",
        "dashboard",
        "API docs",
        "alert e-mails",
    ]
    org_id = re.fullmatch(
        r"demo organization: (org_\w+) \(Demo Co, 6 webhooks → http://127.0.0.1:8001\)", lines[0]
    ).group(1)
    assert Organization.objects.filter(public_id=org_id).exists()
    assert "dashboard: http://127.0.0.1:8000/   login: demo / demo-password" in lines
    assert lines[-1].startswith("alert e-mails: to demo@example.com")


class TestRetention:
    def test_purge_deletes_old_attempts_and_events_and_keeps_the_rest(self, org, receiver):
        WebhookFactory(organization=org, url=receiver.url())
        old = publish(org, "person.created", {"old": True}).event
        new = publish(org, "person.created", {"new": True}).event
        deliver_due()
        long_ago = timezone.now() - timedelta(days=40)
        Event.objects.filter(pk=old.pk).update(created_at=long_ago)
        DeliveryAttempt.objects.filter(delivery__event=old).update(started_at=long_ago)
        stats_rows = WebhookStats.objects.count()

        assert run("purge") == "purged 1 attempts, 1 events, 0 stats rows, 0 hourly stats rows"
        assert list(Event.objects.values_list("pk", flat=True)) == [new.pk]
        assert DeliveryAttempt.objects.count() == 1
        assert WebhookStats.objects.count() == stats_rows  # the dashboard's figures stay

    def test_events_still_waiting_to_be_delivered_are_kept(self, org):
        paused = WebhookFactory(organization=org, status=Webhook.Status.PAUSED)
        event = publish(org, "person.created", {}).event
        Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(days=90))
        assert purge(days=30).events == 0
        assert Delivery.objects.filter(webhook=paused).exists()

    def test_purge_works_in_small_batches(self, org):
        WebhookFactory(organization=org, status=Webhook.Status.DISABLED)
        for i in range(7):
            publish(org, "person.created", {"i": i})
        Event.objects.update(created_at=timezone.now() - timedelta(days=31))
        assert purge(batch_size=8).events == 7
        assert not Event.objects.exists()

    def test_purge_refuses_nonsense_days(self, db):
        with pytest.raises(CommandError):
            run("purge", "--days", "0")

"""Publishing: one transaction writes the event and one delivery per
subscribed webhook; bad input writes nothing."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import jobs
from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from deliveries.wakeup import wake_dispatcher
from tests.factories import OrganizationFactory, WebhookFactory
from webhooks.errors import InvalidInput, MalformedInput, TooLarge
from webhooks.models import EventType, Webhook


def subscribed(org, *patterns, **fields):
    return WebhookFactory(organization=org, event_patterns=list(patterns), **fields)


def test_an_event_fans_out_to_every_matching_pattern(org):
    exact = subscribed(org, "person.created")
    wildcard = subscribed(org, "person.*")
    everything = subscribed(org, "*")
    other_type = subscribed(org, "company.created")
    other_resource = subscribed(org, "company.*")

    published = publish(org, "person.created", {"id": 1})

    targets = set(
        Delivery.objects.filter(event=published.event).values_list("webhook_id", flat=True)
    )
    assert targets == {exact.id, wildcard.id, everything.id}
    assert other_type.id not in targets and other_resource.id not in targets
    assert published.delivery_count == 3
    assert published.event.delivery_count == 3


def test_other_organizations_webhooks_never_receive_the_event(org):
    stranger = WebhookFactory(organization=OrganizationFactory(), event_patterns=["*"])
    publish(org, "person.created", {})
    assert not Delivery.objects.filter(webhook=stranger).exists()


def test_deliveries_are_due_now_and_pending(org):
    webhook = subscribed(org, "*")
    before = timezone.now()
    publish(org, "person.created", {})
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempts == 0
    assert before <= delivery.next_attempt_at <= timezone.now()
    assert delivery.event_type == "person.created"
    assert delivery.organization_id == org.id


def test_paused_webhooks_get_a_parked_delivery_and_disabled_ones_none(org):
    paused = subscribed(org, "*", status=Webhook.Status.PAUSED)
    disabled = subscribed(org, "*", status=Webhook.Status.DISABLED)
    publish(org, "person.created", {})
    parked = Delivery.objects.get(webhook=paused)
    assert parked.status == Delivery.Status.PENDING and parked.next_attempt_at is None
    assert not Delivery.objects.filter(webhook=disabled).exists()


def test_the_data_is_stored_as_compact_json_exactly_as_sent(org):
    published = publish(org, "person.created", {"name": "Zoë", "tags": ["a", "b"], "n": 1.5})
    assert published.event.data_json == '{"name":"Zoë","tags":["a","b"],"n":1.5}'


def test_a_new_type_joins_the_catalog_with_its_example(org):
    publish(org, "invoice.paid", {"amount": 10})
    publish(org, "invoice.paid", {"amount": 20})
    entry = EventType.objects.get(organization=org, name="invoice.paid")
    assert entry.example == {"amount": 10}
    assert EventType.objects.filter(organization=org).count() == 1


def catalog_inserts(queries) -> int:
    table = EventType._meta.db_table
    # INSERT … ON CONFLICT DO NOTHING, or SQLite's INSERT OR IGNORE
    return sum(1 for q in queries if q["sql"].startswith("INSERT") and f'"{table}"' in q["sql"])


def test_a_type_this_process_catalogued_costs_no_statement(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        publish(org, "invoice.paid", {"amount": 10})
    with CaptureQueriesContext(connection) as queries:
        publish(org, "invoice.paid", {"amount": 20})
        publish(org, "invoice.sent", {"amount": 20})
    assert catalog_inserts(queries.captured_queries) == 1  # invoice.sent only


def test_a_rolled_back_publish_leaves_its_type_to_the_next_one(
    org, django_capture_on_commit_callbacks
):
    with pytest.raises(RuntimeError), transaction.atomic():
        publish(org, "invoice.paid", {"amount": 10})
        raise RuntimeError("the caller's transaction fails")
    with django_capture_on_commit_callbacks(execute=True):
        publish(org, "invoice.paid", {"amount": 20})
    assert EventType.objects.get(organization=org, name="invoice.paid").example == {"amount": 20}


class TestIdempotency:
    def test_a_repeated_key_returns_the_first_event_and_creates_nothing(self, org):
        subscribed(org, "*")
        first = publish(org, "person.created", {"v": 1}, idempotency_key="abc")
        again = publish(org, "person.created", {"v": 2}, idempotency_key="abc")
        assert first.created and not again.created
        assert again.event.pk == first.event.pk
        assert Event.objects.count() == 1
        assert Delivery.objects.count() == 1

    def test_keys_are_per_organization(self, org):
        other = OrganizationFactory()
        a = publish(org, "person.created", {}, idempotency_key="same")
        b = publish(other, "person.created", {}, idempotency_key="same")
        assert a.event.pk != b.event.pk and b.created

    def test_a_key_older_than_24_hours_starts_a_new_event(self, org):
        first = publish(org, "person.created", {}, idempotency_key="k")
        Event.objects.filter(pk=first.event.pk).update(
            created_at=timezone.now() - timedelta(hours=25)
        )
        later = publish(org, "person.created", {}, idempotency_key="k")
        assert later.created and later.event.pk != first.event.pk
        assert Event.objects.count() == 2


class TestBadInputWritesNothing:
    @pytest.mark.parametrize(
        "event_type",
        [
            "",
            "person",
            "Person.created",
            "person..created",
            "person.created.",
            "pérson.created",
            "a." + "b" * 100,
            "person created",
            42,
            None,
        ],
    )
    def test_invalid_type_names(self, org, event_type):
        subscribed(org, "*")
        with pytest.raises(InvalidInput) as error:
            publish(org, event_type, {})
        assert error.value.field == "type"
        assert not Event.objects.exists() and not Delivery.objects.exists()

    @pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
    def test_nan_and_infinity_are_refused(self, org, value):
        with pytest.raises(MalformedInput) as error:
            publish(org, "person.created", {"x": value})
        assert error.value.field == "data" and error.value.status == 400
        assert not Event.objects.exists()

    def test_lone_surrogates_are_refused(self, org):
        with pytest.raises(MalformedInput) as error:
            publish(org, "person.created", {"x": "\ud800"})
        assert "surrogate" in error.value.message
        assert not Event.objects.exists()

    def test_a_body_over_one_mebibyte_is_refused_with_413(self, org):
        with pytest.raises(TooLarge) as error:
            publish(org, "person.created", {"blob": "x" * (1024 * 1024)})
        assert error.value.status == 413 and error.value.field == "data"
        assert not Event.objects.exists()

    def test_a_body_just_under_the_limit_is_accepted(self, org):
        from deliveries.envelope import envelope_overhead

        room = 1024 * 1024 - envelope_overhead("person.created") - len('{"blob":""}')
        published = publish(org, "person.created", {"blob": "x" * room})
        assert published.created

    @pytest.mark.parametrize("key", ["x" * 256, 12, "tab\there"])
    def test_bad_idempotency_keys(self, org, key):
        with pytest.raises(InvalidInput) as error:
            publish(org, "person.created", {}, idempotency_key=key)
        assert error.value.field == "idempotency_key"
        assert not Event.objects.exists()


class TestWakingTheDispatcher:
    def test_one_job_is_queued_on_commit_however_many_events(
        self, org, redis_conn, django_capture_on_commit_callbacks
    ):
        subscribed(org, "*")
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(5):
                publish(org, "person.created", {"i": i})
        assert jobs.queue().count == 1

    def test_nothing_is_queued_before_the_transaction_commits(
        self, org, redis_conn, django_capture_on_commit_callbacks
    ):
        subscribed(org, "*")
        with django_capture_on_commit_callbacks(execute=False):
            publish(org, "person.created", {})
            assert jobs.queue().count == 0

    def test_only_parked_deliveries_do_not_wake_it(
        self, org, redis_conn, django_capture_on_commit_callbacks
    ):
        subscribed(org, "*", status=Webhook.Status.PAUSED)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            publish(org, "person.created", {})
        assert wake_dispatcher not in callbacks
        assert jobs.queue().count == 0


def test_deliveries_publish_is_the_public_entry_point(org):
    import deliveries

    published = deliveries.publish(org, "person.created", {"a": 1}, idempotency_key="x")
    assert published.event.type == "person.created"

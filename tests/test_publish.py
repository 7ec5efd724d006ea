"""Publishing: one transaction writes the event and one delivery per
subscribed webhook; bad input writes nothing."""

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import actions, jobs, publishing
from deliveries.models import Delivery, Event, Lane
from deliveries.publishing import BatchItem, Outgoing, publish, publish_batch, publish_many
from deliveries.wakeup import wake_dispatcher
from tests.factories import OrganizationFactory, WebhookFactory
from webhooks.errors import HeraldError, InvalidInput, MalformedInput, TooLarge
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


# With a key, publish looks it up first, in a transaction (on SQLite always).
@pytest.mark.parametrize("key", [None, "k"], ids=["no key", "a key"])
def test_deliveries_are_due_now_and_pending_and_their_lane_woken(org, key):
    webhook = subscribed(org, "*")
    before = timezone.now()
    event = publish(org, "person.created", {}, idempotency_key=key).event
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempts == 0
    assert before <= delivery.next_attempt_at <= timezone.now()
    assert delivery.event_type == "person.created"
    assert delivery.organization_id == org.id
    assert Lane.objects.get(webhook=webhook).due_at == delivery.next_attempt_at == event.created_at


def test_a_test_event_goes_to_its_webhook_only_and_stays_out_of_the_catalog(org):
    tested = WebhookFactory(organization=org, event_patterns=["*"])
    WebhookFactory(organization=org, event_patterns=["*"])  # subscribed to everything too

    published = actions.send_test(tested)

    (delivery,) = Delivery.objects.filter(event=published.event)
    assert (delivery.webhook_id, delivery.next_trigger) == (tested.pk, "test")
    assert published.event.type == "webhook.test"
    assert not EventType.objects.filter(organization=org, name="webhook.test").exists()


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


@pytest.mark.parametrize("key", [None, "k"], ids=["no key", "a key"])
def test_a_new_type_joins_the_catalog_with_its_example(org, key):
    publish(org, "invoice.paid", {"amount": 10}, idempotency_key=key)
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
    def test_a_repeated_key_is_answered_without_fanning_out(self, org):
        subscribed(org, "*")
        publish(org, "person.created", {}, idempotency_key="k")
        with CaptureQueriesContext(connection) as queries:
            assert not publish(org, "person.created", {}, idempotency_key="k").created
        assert not [q for q in queries.captured_queries if Webhook._meta.db_table in q["sql"]]

    def test_an_empty_key_is_no_key(self, org):
        first = publish(org, "person.created", {}, idempotency_key="")
        second = publish(org, "person.created", {}, idempotency_key="")
        assert first.created and second.created and first.event.pk != second.event.pk
        assert Event.objects.get(pk=first.event.pk).idempotency_key is None

    @pytest.mark.parametrize(
        "key, message",
        [
            (5, "must be a string"),
            ("k" * (publishing.MAX_IDEMPOTENCY_KEY_LENGTH + 1), "must be at most"),
            ("line\nbreak", "must be printable text"),
        ],
    )
    def test_a_bad_key_is_refused_by_name_and_says_why(self, org, key, message):
        with pytest.raises(InvalidInput) as refused:
            publish(org, "person.created", {}, idempotency_key=key)
        assert refused.value.field == "idempotency_key"
        assert str(refused.value).startswith(message)
        assert not Event.objects.exists()

    def test_an_event_and_its_deliveries_are_dated_one_instant(self, org):
        WebhookFactory(organization=org, event_patterns=["*"])
        event = publish(org, "person.created", {}, idempotency_key="k").event
        (delivery,) = Delivery.objects.filter(event=event)
        assert Event.objects.get(pk=event.pk).created_at == delivery.created_at

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

    def test_another_key_is_another_event(self, org):
        first = publish(org, "person.created", {}, idempotency_key="a")
        second = publish(org, "person.created", {}, idempotency_key="b")
        assert second.created and second.event.pk != first.event.pk
        assert Event.objects.count() == 2

    def test_a_key_is_remembered_for_exactly_the_idempotency_window(
        self, org, settings, monkeypatch
    ):
        first = publish(org, "person.created", {}, idempotency_key="k")
        window = timedelta(hours=settings.HERALD_IDEMPOTENCY_HOURS)
        clock(monkeypatch, first.event.created_at + window - timedelta(microseconds=1))
        again = publish(org, "person.created", {}, idempotency_key="k")
        assert not again.created and again.event.pk == first.event.pk
        clock(monkeypatch, first.event.created_at + window)
        later = publish(org, "person.created", {}, idempotency_key="k")
        assert later.created and later.event.pk != first.event.pk
        # The expired key went to the new event.
        assert Event.objects.get(pk=first.event.pk).idempotency_key is None
        assert Event.objects.get(pk=later.event.pk).idempotency_key == "k"


def clock(monkeypatch, at):
    """Publishing's clock reads `at` (the rest of Herald keeps the real one)."""
    monkeypatch.setattr(publishing, "timezone", SimpleNamespace(now=lambda: at))


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


# --- batches (publish_batch: POST /events/batch) -----------------------------------


def targets_of(event) -> set[int]:
    return set(Delivery.objects.filter(event=event).values_list("webhook_id", flat=True))


class TestBatch:
    def test_each_event_fans_out_as_one_publish_would_and_answers_come_in_order(self, org):
        people = subscribed(org, "person.*")
        everything = subscribed(org, "*")
        paused = subscribed(org, "*", status=Webhook.Status.PAUSED)
        subscribed(org, "*", status=Webhook.Status.DISABLED)
        subscribed(org, "invoice.*")
        WebhookFactory(organization=OrganizationFactory(), event_patterns=["*"])
        before = timezone.now()
        answers = publish_batch(
            org,
            [
                BatchItem("person.created", {"n": 1}),
                BatchItem("company.created", {"n": 2}),
                BatchItem("person.created", {"n": 3}),
            ],
        )
        assert [a.created for a in answers] == [True, True, True]
        assert [a.delivery_count for a in answers] == [3, 2, 3]
        events = [Event.objects.get(pk=a.event.pk) for a in answers]
        assert [(e.type, e.data_json, e.delivery_count) for e in events] == [
            ("person.created", '{"n":1}', 3),
            ("company.created", '{"n":2}', 2),
            ("person.created", '{"n":3}', 3),
        ]
        assert {(e.organization_id, e.idempotency_key) for e in events} == {(org.pk, None)}
        (now,) = {e.created_at for e in events}
        assert before <= now <= timezone.now()
        assert [targets_of(e) for e in events] == [
            {people.pk, everything.pk, paused.pk},
            {everything.pk, paused.pk},
            {people.pk, everything.pk, paused.pk},
        ]
        for delivery in Delivery.objects.all():
            assert delivery.organization_id == org.pk
            assert delivery.event_type == delivery.event.type
            assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 0
            assert delivery.created_at == now
            # Due now, but a paused webhook's waits parked.
            expected = None if delivery.webhook_id == paused.pk else now
            assert delivery.next_attempt_at == expected
        # The lanes of the webhooks with due deliveries are woken, as of now.
        assert dict(Lane.objects.filter(due_at__isnull=False).values_list("webhook", "due_at")) == {
            people.pk: now,
            everything.pk: now,
        }

    def test_a_batch_wakes_the_dispatcher_once_it_commits(
        self, org, redis_conn, django_capture_on_commit_callbacks
    ):
        subscribed(org, "*")
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            publish_batch(org, [BatchItem("person.created", {"i": i}) for i in range(3)])
        assert callbacks.count(wake_dispatcher) == 1
        assert jobs.queue().count == 1

    def test_a_batch_for_paused_webhooks_only_does_not_wake_it(
        self, org, redis_conn, django_capture_on_commit_callbacks
    ):
        subscribed(org, "*", status=Webhook.Status.PAUSED)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            publish_batch(org, [BatchItem("person.created", {})])
        assert wake_dispatcher not in callbacks
        assert jobs.queue().count == 0
        assert not Lane.objects.filter(due_at__isnull=False).exists()

    def test_new_types_join_the_catalog_with_their_first_example(self, org):
        publish(org, "invoice.paid", {"amount": 10})
        publish_batch(
            org,
            [
                BatchItem("person.created", {"n": 1}),
                BatchItem("invoice.paid", {"amount": 20}),
                BatchItem("person.created", {"n": 2}),
                BatchItem("blob.stored", {"raw": "a\u0000b"}),
            ],
        )
        catalog = dict(EventType.objects.filter(organization=org).values_list("name", "example"))
        # A type already catalogued keeps its example; U+0000 stays out of it.
        assert catalog == {
            "invoice.paid": {"amount": 10},
            "person.created": {"n": 1},
            "blob.stored": None,
        }

    def test_idempotency_keys_hold_per_item(self, org):
        subscribed(org, "*")
        earlier = publish(org, "person.created", {"v": 0}, idempotency_key="seen")
        answers = publish_batch(
            org,
            [
                BatchItem("person.created", {"v": 1}, idempotency_key="seen"),
                BatchItem("person.created", {"v": 2}, idempotency_key="new"),
                BatchItem("person.created", {"v": 3}, idempotency_key="new"),
                BatchItem("person.created", {"v": 4}),
                BatchItem("person.created", {"v": 5}, idempotency_key=""),
            ],
        )
        assert [a.created for a in answers] == [False, True, False, True, True]
        assert answers[0].event.pk == earlier.event.pk
        assert answers[2].event is answers[1].event
        assert Event.objects.get(pk=answers[1].event.pk).idempotency_key == "new"
        assert [Event.objects.get(pk=a.event.pk).data_json for a in answers] == [
            '{"v":0}',
            '{"v":2}',
            '{"v":2}',
            '{"v":4}',
            '{"v":5}',
        ]
        assert Event.objects.count() == 4 and Delivery.objects.count() == 4

    def test_keys_are_per_organization(self, org):
        other = publish(OrganizationFactory(), "person.created", {}, idempotency_key="same")
        (answer,) = publish_batch(org, [BatchItem("person.created", {}, idempotency_key="same")])
        assert answer.created and answer.event.pk != other.event.pk

    def test_a_key_is_remembered_for_exactly_the_idempotency_window(
        self, org, settings, monkeypatch
    ):
        first = publish(org, "person.created", {}, idempotency_key="k")
        window = timedelta(hours=settings.HERALD_IDEMPOTENCY_HOURS)
        item = BatchItem("person.created", {}, idempotency_key="k")
        clock(monkeypatch, first.event.created_at + window - timedelta(microseconds=1))
        (again,) = publish_batch(org, [item])
        assert not again.created and again.event.pk == first.event.pk
        clock(monkeypatch, first.event.created_at + window)
        (later,) = publish_batch(org, [item])
        assert later.created and later.event.pk != first.event.pk
        assert Event.objects.get(pk=first.event.pk).idempotency_key is None
        assert Event.objects.get(pk=later.event.pk).idempotency_key == "k"

    def test_an_expired_key_is_freed_in_the_same_go_and_no_other_key_is_touched(self, org):
        expired = publish(org, "person.created", {}, idempotency_key="k")
        unrelated = publish(org, "person.created", {}, idempotency_key="other")
        Event.objects.filter(pk__in=[expired.event.pk, unrelated.event.pk]).update(
            created_at=timezone.now() - timedelta(hours=25)
        )
        with CaptureQueriesContext(connection) as queries:
            (answer,) = publish_batch(org, [BatchItem("person.created", {}, idempotency_key="k")])
        assert answer.created
        assert Event.objects.get(pk=expired.event.pk).idempotency_key is None
        assert Event.objects.get(pk=unrelated.event.pk).idempotency_key == "other"
        # Written at the first try: nothing was rolled back and done again.
        assert not [q for q in queries.captured_queries if "ROLLBACK" in q["sql"].upper()]

    def test_the_statements_do_not_grow_with_the_subscribers(self, org):
        def statements(subscribers: int) -> int:
            organization = OrganizationFactory()
            for _ in range(subscribers):
                subscribed(organization, "*")
            with CaptureQueriesContext(connection) as queries:
                publish_batch(organization, [BatchItem("person.created", {})] * 3)
            assert Delivery.objects.filter(organization=organization).count() == 3 * subscribers
            return len(queries.captured_queries)

        assert statements(4) == statements(1)

    def test_the_statements_do_not_grow_with_the_events_of_one_new_type(self, org):
        def statements(events: int) -> int:
            organization = OrganizationFactory()  # the type is new to it
            subscribed(organization, "*")
            with CaptureQueriesContext(connection) as queries:
                publish_batch(organization, [BatchItem("person.created", {})] * events)
            assert EventType.objects.filter(organization=organization).count() == 1
            return len(queries.captured_queries)

        assert statements(24) == statements(12)

    def test_at_most_the_batch_limit_is_accepted(self, org, settings):
        settings.HERALD_MAX_BATCH_EVENTS = 3
        assert len(publish_batch(org, [BatchItem("person.created", {})] * 3)) == 3
        with pytest.raises(InvalidInput) as error:
            publish_batch(org, [BatchItem("person.created", {})] * 4)
        assert (error.value.field, error.value.message) == ("events", "at most 3 events per batch")
        assert Event.objects.count() == 3

    @pytest.mark.parametrize(
        "bad, field",
        [
            (BatchItem("Bad Type", {}), "events.1.type"),
            (BatchItem("x.y", {"s": "\ud800"}), "events.1.data"),
            (BatchItem("x.y", {}, idempotency_key="k" * 256), "events.1.idempotency_key"),
        ],
    )
    def test_one_bad_item_refuses_the_batch_naming_it(self, org, bad, field):
        subscribed(org, "*")
        with pytest.raises(HeraldError) as error:
            publish_batch(org, [BatchItem("person.created", {}), bad])
        assert error.value.field == field
        assert not Event.objects.exists() and not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_batch_whose_key_another_publish_takes_meanwhile_answers_with_its_event(org, monkeypatch):
    """The batch looked its keys up and found none; before it writes, another
    publish commits an event with one of them: the batch falls back to
    publishing item by item, the way publish() settles such a race."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: no publish can commit meanwhile")
    subscribed(org, "*")
    raced: list = []
    matches_any = publishing.patterns.matches_any

    def another_publish_commits_first(*args):
        if not raced and threading.current_thread() is threading.main_thread():
            raced.append(None)

            def publisher():
                try:
                    raced.append(publish(org, "person.created", {"by": "other"}, "k"))
                finally:
                    connections.close_all()

            thread = threading.Thread(target=publisher)
            thread.start()
            thread.join(15)
        return matches_any(*args)

    monkeypatch.setattr(publishing.patterns, "matches_any", another_publish_commits_first)
    answers = publish_batch(
        org,
        [
            BatchItem("person.created", {"by": "batch"}, idempotency_key="k"),
            BatchItem("person.created", {"n": 2}, idempotency_key="other-key"),
        ],
    )
    other = raced[1]
    assert [a.created for a in answers] == [False, True]
    assert answers[0].event.pk == other.event.pk
    assert Event.objects.count() == 2 and Delivery.objects.count() == 2
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"k", "other-key"}
    assert Event.objects.get(pk=answers[1].event.pk).data_json == '{"n":2}'


# --- Herald's own events (publish_many) ---------------------------------------------


class TestOperationalEvents:
    def test_each_fans_out_to_its_organizations_subscribers_but_the_one_left_out(self, org):
        ops = subscribed(org, "herald.*")
        paused = subscribed(org, "herald.*", status=Webhook.Status.PAUSED)
        subscribed(org, "herald.*", status=Webhook.Status.DISABLED)
        subscribed(org, "person.*")
        other = OrganizationFactory()
        theirs = subscribed(other, "herald.*")
        events = publish_many(
            [
                Outgoing(org.pk, "herald.delivery.failing", {"n": 1}),
                Outgoing(other.pk, "herald.delivery.failing", {"n": 2}),
                Outgoing(org.pk, "herald.webhook.disabled", {"n": 3}, exclude_webhook_id=ops.pk),
            ]
        )
        assert [targets_of(e) for e in events] == [{ops.pk, paused.pk}, {theirs.pk}, {paused.pk}]
        assert [e.delivery_count for e in events] == [2, 1, 1]
        parked = Delivery.objects.filter(webhook=paused)
        assert set(parked.values_list("next_attempt_at", flat=True)) == {None}

    def test_events_and_deliveries_are_dated_by_the_time_given(self, org):
        ops = subscribed(org, "herald.*")
        at = timezone.now() - timedelta(minutes=5)
        (event,) = publish_many([Outgoing(org.pk, "herald.delivery.failing", {})], now=at)
        assert Event.objects.get(pk=event.pk).created_at == at
        delivery = Delivery.objects.get(webhook=ops)
        assert (delivery.created_at, delivery.next_attempt_at) == (at, at)
        assert delivery.event_type == "herald.delivery.failing"
        assert Lane.objects.get(webhook=ops).due_at == at

    def test_the_catalog_keeps_each_types_first_example_without_u0000(self, org):
        subscribed(org, "herald.*")
        publish_many(
            [
                Outgoing(org.pk, "herald.delivery.failing", {"n": 1}),
                Outgoing(org.pk, "herald.delivery.failing", {"n": 2}),
                Outgoing(org.pk, "herald.webhook.disabled", {"reason": "a\u0000b"}),
            ]
        )
        catalog = dict(EventType.objects.filter(organization=org).values_list("name", "example"))
        assert catalog == {"herald.delivery.failing": {"n": 1}, "herald.webhook.disabled": None}

    def test_the_statements_do_not_grow_with_the_subscribers(self, org):
        def statements(subscribers: int) -> int:
            organization = OrganizationFactory()
            for _ in range(subscribers):
                subscribed(organization, "herald.*")
            with CaptureQueriesContext(connection) as queries:
                publish_many([Outgoing(organization.pk, "herald.delivery.failing", {})] * 3)
            assert Delivery.objects.filter(organization=organization).count() == 3 * subscribers
            return len(queries.captured_queries)

        assert statements(4) == statements(1)

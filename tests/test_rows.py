"""deliveries/rows.py: the publish path's own INSERT and COPY, checked against
what the ORM would have written."""

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import lanes, rows
from deliveries.models import Delivery, DeliveryAttempt, Event, Lane
from deliveries.publishing import publish
from tests.factories import WebhookFactory
from webhooks import ids

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a PostgreSQL statement (COPY, one WITH statement)"
)


def orm_values(obj, fields):
    """The ORM's own preparation of every field, the reference."""
    return [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def comparable(values):
    # A JSON field's value is an adapter object (psycopg's Jsonb): compare
    # what it wraps. Under server-side binding Django wraps integers in
    # psycopg's Int2/Int4/Int8 (their parameter types): the same numbers.
    def plain(v):
        if hasattr(v, "obj"):
            return (type(v), v.obj)
        if isinstance(v, int) and not isinstance(v, bool):
            return (int, int(v))
        return (type(v), v)

    return [plain(v) for v in values]


def new_event(org, number: int = 0, **fields) -> Event:
    return Event(
        organization=org,
        type="invoice.paid",
        data_json=f'{{"n":{number}}}',
        created_at=timezone.now(),
        delivery_count=1,
        **fields,
    )


@pytest.mark.parametrize(
    "build",
    [
        lambda org, hook: new_event(org, idempotency_key="k-1"),
        lambda org, hook: new_event(org),
        lambda org, hook: Delivery(
            organization_id=org.pk,
            event_id=new_event(org).pk,
            webhook_id=hook.pk,
            event_type="invoice.paid",
            next_attempt_at=timezone.now(),
            created_at=timezone.now(),
        ),
        lambda org, hook: Delivery(
            organization=org,
            webhook=hook,
            event_type="invoice.paid",
            next_attempt_at=None,  # a paused webhook's
            created_at=timezone.now(),
        ),
        lambda org, hook: DeliveryAttempt(
            delivery_id=7,
            number=1,
            started_at=timezone.now(),
            duration_ms=12,
            request_headers={"webhook-id": "dlv_x"},
            response_status=500,
            response_body="nope",
            error_kind=DeliveryAttempt.ErrorKind.HTTP_STATUS,
        ),
    ],
    ids=["event with a key", "event", "delivery", "parked delivery", "attempt"],
)
def test_values_are_what_the_orm_would_write(org, build):
    obj = build(org, WebhookFactory(organization=org))
    fields = rows._fields(type(obj))
    assert comparable(rows._values([obj], fields)[0]) == comparable(orm_values(obj, fields))


def test_a_value_of_another_type_than_its_field_is_still_prepared(org):
    # A bool in an integer column, a str in a foreign key: as the ORM does.
    event = new_event(org)
    event.delivery_count = True
    fields = rows._fields(Event)
    prepared = dict(zip([f.attname for f in fields], rows._values([event], fields)[0], strict=True))
    assert prepared["delivery_count"] == 1 and not isinstance(prepared["delivery_count"], bool)


def test_insert_sets_each_objects_own_primary_key(org):
    for count in (1, rows.COPY_FROM_ROWS - 1, rows.COPY_FROM_ROWS, 3 * rows.COPY_FROM_ROWS):
        events = [new_event(org, n) for n in range(count)]
        rows.insert(events)
        for event in events:
            assert Event.objects.get(pk=event.pk).data_json == event.data_json
            assert event._state.adding is False
        assert [e.pk for e in events] == sorted(e.pk for e in events)


@on_postgresql
def test_many_rows_go_through_copy_without_a_long_insert(org):
    events = [new_event(org, n) for n in range(50)]
    with CaptureQueriesContext(connection) as queries:
        rows.insert(events)
    # COPY is not a cursor.execute: only the statement that took the ids shows.
    assert [q["sql"][:6] for q in queries.captured_queries] == ["SELECT"]
    assert Event.objects.filter(pk__in=[e.pk for e in events]).count() == 50


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_family_is_one_statement_and_all_or_nothing(org):
    hook = WebhookFactory(organization=org)
    now = timezone.now()

    def family():
        event = new_event(org)
        delivery = Delivery(
            organization_id=org.pk,
            webhook_id=hook.pk,
            event_type=event.type,
            next_attempt_at=now,
            created_at=now,
        )
        return event, [delivery]

    event, deliveries = family()
    with CaptureQueriesContext(connection) as queries:
        rows.insert_family(event, deliveries, "event_id", *lanes.wake_statement([hook.pk], now))
    assert len(queries.captured_queries) == 1
    stored = Delivery.objects.get(event_id=event.pk)
    assert stored.webhook_id == hook.pk
    assert Lane.objects.get(webhook_id=hook.pk).due_at == now

    # Outside any transaction (autocommit), a failing part undoes the others.
    event, deliveries = family()
    before = (Event.objects.count(), Delivery.objects.count())
    with pytest.raises(IntegrityError):
        rows.insert_family(
            event,
            deliveries,
            "event_id",
            f"INSERT INTO {lanes.LANES} (webhook_id, due_at) VALUES (NULL, NULL)",
            [],
        )
    assert (Event.objects.count(), Delivery.objects.count()) == before


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_publish_without_a_key_is_two_statements_on_postgresql(org):
    WebhookFactory(organization=org, event_patterns=["*"])
    WebhookFactory(organization=org, event_patterns=["invoice.*"])
    publish(org, "invoice.paid", {"n": 0})  # the type joins the catalog
    Lane.objects.update(due_at=None)  # as a claim that drained them leaves them
    with CaptureQueriesContext(connection) as queries:
        published = publish(org, "invoice.paid", {"n": 1})
    # The webhooks that may receive it, then the event, its deliveries and
    # their lanes' wake as one statement: no BEGIN, no COMMIT.
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["SELECT", "WITH"]
    deliveries = list(published.event.deliveries.all())
    assert len(deliveries) == 2
    # Each lane is due exactly when its new delivery is.
    for delivery in deliveries:
        assert Lane.objects.get(webhook_id=delivery.webhook_id).due_at == delivery.next_attempt_at


def reference_base32(value: int, length: int) -> str:
    digits = "0123456789abcdefghjkmnpqrstvwxyz"
    return "".join(digits[(value >> (5 * i)) & 31] for i in reversed(range(length)))


@pytest.mark.parametrize(
    "value", [0, 1, 31, 32, 2**80 - 1, 2**80, 2**128 - 1, 0x0123456789ABCDEF << 64]
)
def test_public_ids_are_the_values_base32_digits(value):
    assert ids._base32(value) == reference_base32(value, 26)


def test_public_ids_are_time_ordered_and_well_formed():
    made = [ids.event_id() for _ in range(200)]
    assert all(ids.looks_like(public_id, "evt") for public_id in made)
    times = [public_id[4:14] for public_id in made]
    assert times == sorted(times)

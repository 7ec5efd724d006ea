"""Publishing events and reading deliveries through the API (SPEC §3, §8):
fan-out, idempotency, the 1 MiB limit, manual retries, attempts as sent."""

import json
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event, Trigger
from deliveries.publishing import publish
from tests.conftest import ApiClient, deliver_due, error_of
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from tests.receiver import Answer
from webhooks.models import EventType, Webhook

EVENTS = "/api/v1/events"
DELIVERIES = "/api/v1/deliveries"
MIB = 1024 * 1024
ISO_MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_nothing_published() -> None:
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert not EventType.objects.exists()


def failing_webhook(org, receiver, **fields) -> Webhook:
    """A webhook whose endpoint answers 500 and that gives up after one attempt."""
    receiver.always("/fail", Answer(status=500, headers={"X-Reason": "down"}, body=b"boom"))
    return WebhookFactory(organization=org, url=receiver.url("/fail"), max_attempts=1, **fields)


def failed_delivery(org, webhook) -> Delivery:
    event = publish(org, "person.created", {"name": "Ada"}).event
    deliver_due()
    delivery = Delivery.objects.get(event=event, webhook=webhook)
    assert delivery.status == Delivery.Status.FAILED
    return delivery


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


# --- publish ----------------------------------------------------------------------


def test_publish_answers_202_and_fans_out_to_every_subscribed_webhook(api, org, other_org):
    everything = WebhookFactory(organization=org, event_patterns=["*"])
    people = WebhookFactory(organization=org, event_patterns=["person.*"])
    exact = WebhookFactory(organization=org, event_patterns=["person.created"])
    WebhookFactory(organization=org, event_patterns=["invoice.paid"])
    paused = WebhookFactory(organization=org, event_patterns=["*"], status="paused")
    WebhookFactory(organization=org, event_patterns=["*"], status="disabled")
    WebhookFactory(organization=other_org, event_patterns=["*"])

    before = timezone.now()
    response = api.post(EVENTS, {"type": "person.created", "data": {"name": "Ada"}})

    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"id", "type", "timestamp", "deliveries"}
    assert body["id"].startswith("evt_")
    assert body["type"] == "person.created"
    assert ISO_MILLIS.match(body["timestamp"])
    assert body["deliveries"] == 4
    event = Event.objects.get(public_id=body["id"])
    assert event.organization == org
    assert event.data == {"name": "Ada"}
    assert event.created_at >= before - timedelta(milliseconds=1)
    deliveries = {d.webhook_id: d for d in Delivery.objects.filter(event=event)}
    assert set(deliveries) == {everything.pk, people.pk, exact.pk, paused.pk}
    assert all(d.status == Delivery.Status.PENDING for d in deliveries.values())
    # A paused webhook's delivery waits for it to be resumed.
    assert deliveries[paused.pk].next_attempt_at is None
    assert deliveries[everything.pk].next_attempt_at is not None


def test_publish_with_no_subscriber_records_the_event(api, org):
    response = api.post(EVENTS, {"type": "nobody.listens", "data": {}})

    assert response.status_code == 202
    assert response.json()["deliveries"] == 0
    assert Event.objects.filter(type="nobody.listens").count() == 1


def test_publish_adds_the_type_to_the_catalog_once(api, org):
    api.post(EVENTS, {"type": "person.created", "data": {"name": "Ada"}})
    api.post(EVENTS, {"type": "person.created", "data": {"name": "Grace"}})

    assert list(EventType.objects.filter(organization=org).values_list("name", "example")) == [
        ("person.created", {"name": "Ada"})
    ]


def test_published_data_reaches_the_receiver_unchanged(api, org, webhook, receiver):
    data = {"name": "Zoë", "tags": ["a", "b"], "n": 1, "x": 1.5, "ok": True, "none": None}

    event_id = api.post(EVENTS, {"type": "person.created", "data": data}).json()["id"]
    deliver_due()

    received = receiver.wait_for(1, "/hook")[0]
    assert received.header("webhook-id") == event_id
    envelope = json.loads(received.body)
    assert envelope["id"] == event_id
    assert envelope["type"] == "person.created"
    assert envelope["webhookId"] == webhook.public_id
    assert envelope["organizationId"] == org.public_id
    assert envelope["data"] == data


# --- idempotency ------------------------------------------------------------------


def test_a_repeated_idempotency_key_answers_200_with_the_first_event(api, org, webhook):
    first = api.post(
        EVENTS, {"type": "person.created", "data": {"n": 1}, "idempotency_key": "order-1"}
    )
    repeat = api.post(
        EVENTS, {"type": "person.created", "data": {"n": 2}, "idempotency_key": "order-1"}
    )

    assert first.status_code == 202
    assert repeat.status_code == 200
    assert repeat.json() == first.json()
    assert Event.objects.count() == 1
    assert Delivery.objects.count() == 1
    assert Event.objects.get().data == {"n": 1}


def test_the_idempotency_key_header_works_like_the_body_field(api, org, webhook):
    headers = {"Idempotency-Key": "order-2"}

    first = api.post(EVENTS, {"type": "person.created", "data": {}}, headers=headers)
    by_header = api.post(EVENTS, {"type": "person.created", "data": {}}, headers=headers)
    by_body = api.post(EVENTS, {"type": "person.created", "data": {}, "idempotency_key": "order-2"})

    assert first.status_code == 202
    assert (by_header.status_code, by_body.status_code) == (200, 200)
    assert by_header.json()["id"] == by_body.json()["id"] == first.json()["id"]
    assert Event.objects.count() == 1
    assert Delivery.objects.count() == 1


def test_the_same_key_in_header_and_body_is_one_key(api, org):
    body = {"type": "person.created", "data": {}, "idempotency_key": "k"}

    response = api.post(EVENTS, body, headers={"Idempotency-Key": "k"})

    assert response.status_code == 202
    assert Event.objects.get().idempotency_key == "k"


def test_different_keys_in_header_and_body_are_refused(api, org):
    body = {"type": "person.created", "data": {}, "idempotency_key": "a"}

    response = api.post(EVENTS, body, headers={"Idempotency-Key": "b"})

    error_of(response, 422, field="idempotency_key")
    assert_nothing_published()


def test_idempotency_keys_belong_to_one_organization(api, client, org, other_org):
    body = {"type": "person.created", "data": {}, "idempotency_key": "shared"}
    theirs = ApiClient(client, api_key_for(other_org))

    assert api.post(EVENTS, body).status_code == 202
    assert theirs.post(EVENTS, body).status_code == 202
    assert Event.objects.count() == 2


def test_an_idempotency_key_expires_after_24_hours(api, org):
    body = {"type": "person.created", "data": {}, "idempotency_key": "old"}
    first = api.post(EVENTS, body).json()
    Event.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = api.post(EVENTS, body)

    assert again.status_code == 202
    assert again.json()["id"] != first["id"]
    assert Event.objects.count() == 2


def test_events_without_a_key_are_never_deduplicated(api, org):
    body = {"type": "person.created", "data": {}}

    assert [api.post(EVENTS, body).status_code for _ in range(2)] == [202, 202]
    assert Event.objects.count() == 2


# --- bad input --------------------------------------------------------------------

VALID = {"type": "person.created", "data": {"name": "Ada"}}


@pytest.mark.parametrize(
    "changes, field, status",
    [
        ({"type": "Person.Created"}, "type", 422),
        ({"type": "person"}, "type", 422),
        ({"type": "a..b"}, "type", 422),
        ({"type": ".person.created"}, "type", 422),
        ({"type": "person.created."}, "type", 422),
        ({"type": "person.*"}, "type", 422),
        ({"type": "*"}, "type", 422),
        ({"type": "person created"}, "type", 422),
        ({"type": "person.created\n"}, "type", 422),  # `$` would let a trailing newline in
        ({"type": "1person.created"}, "type", 422),
        ({"type": "a." + "b" * 99}, "type", 422),  # 101 characters
        ({"type": ""}, "type", 422),
        ({"type": 5}, "type", 422),
        ({"type": None}, "type", 422),
        ({"data": []}, "data", 422),
        ({"data": "text"}, "data", 422),
        ({"data": 5}, "data", 422),
        ({"data": None}, "data", 422),
        ({"data": {"s": "\ud800"}}, "data", 400),  # a lone surrogate
        ({"idempotency_key": "k" * 256}, "idempotency_key", 422),
        ({"idempotency_key": 5}, "idempotency_key", 422),
        ({"idempotency_key": "line\nbreak"}, "idempotency_key", 422),
        ({"webhook": "wh_x"}, "webhook", 422),
        ({"timestamp": "2026-01-01T00:00:00Z"}, "timestamp", 422),
    ],
)
def test_publish_refuses_a_bad_field_and_stores_nothing(api, webhook, changes, field, status):
    response = api.post(EVENTS, VALID | changes)

    # 400 for what is not JSON-able (a lone surrogate, SPEC §3), 422 for the rest.
    error_of(response, status, field=field)
    assert_nothing_published()


@pytest.mark.parametrize("missing", ["type", "data"])
def test_publish_names_a_missing_field(api, webhook, missing):
    body = {k: v for k, v in VALID.items() if k != missing}

    error = error_of(api.post(EVENTS, body), 422, field=missing)

    assert "required" in error["message"]
    assert_nothing_published()


def test_an_idempotency_key_header_that_is_too_long_is_refused(api, webhook):
    response = api.post(EVENTS, VALID, headers={"Idempotency-Key": "k" * 256})

    error_of(response, 422, field="idempotency_key")
    assert_nothing_published()


def test_an_idempotency_key_of_255_characters_is_accepted(api, webhook):
    response = api.post(EVENTS, VALID | {"idempotency_key": "k" * 255})

    assert response.status_code == 202


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "person.created", "data": {"n": NaN}}',
        '{"type": "person.created", "data": {"n": Infinity}}',
        '{"type": "person.created", "data": {"n": -Infinity}}',
        '{"type": "person.created", "data": {"n": 1}',
        '{"type": "person.created", "data": {},}',
        "{'type': 'person.created', 'data': {}}",
        b'{"type": "person.created", "data": {"s": "\xff"}}',
    ],
)
def test_publish_refuses_malformed_json_with_400(api, webhook, raw):
    error_of(api.post(EVENTS, raw=raw), 400, code="malformed_json")
    assert_nothing_published()


@pytest.mark.parametrize("raw", ["", "[]", '[{"type": "person.created", "data": {}}]', "null", "1"])
def test_publish_refuses_a_body_that_is_not_an_object_with_400(api, webhook, raw):
    error_of(api.post(EVENTS, raw=raw), 400)
    assert_nothing_published()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_publish_refuses_a_body_not_declared_json_with_415(api, webhook, content_type):
    response = api.post(EVENTS, raw=json.dumps(VALID), content_type=content_type)

    error_of(response, 415, code="unsupported_media_type")
    assert_nothing_published()


def test_publish_refuses_an_event_over_1_mib_with_413(api, webhook):
    response = api.post(EVENTS, {"type": "person.created", "data": {"blob": "x" * MIB}})

    error = error_of(response, 413, code="too_large", field="data")
    assert "1 MiB" in error["message"]
    assert_nothing_published()


def test_publish_refuses_a_request_body_far_over_1_mib_with_413(api, webhook):
    response = api.post(EVENTS, {"type": "person.created", "data": {"blob": "x" * (3 * MIB)}})

    error_of(response, 413, code="too_large")
    assert_nothing_published()


def test_the_limit_counts_bytes_not_characters(api, webhook):
    # 360 Ki characters (well under 1 Mi) of three UTF-8 bytes each: 1.05 MiB.
    data = {"blob": "€" * 360 * 1024}
    raw = json.dumps({"type": "person.created", "data": data}, ensure_ascii=False)

    response = api.post(EVENTS, raw=raw.encode())

    error_of(response, 413, code="too_large", field="data")
    assert_nothing_published()


def test_an_event_just_under_1_mib_is_published_and_delivered(api, webhook, receiver):
    response = api.post(EVENTS, {"type": "person.created", "data": {"blob": "x" * (MIB - 1024)}})

    assert response.status_code == 202, response.content[:200]
    deliver_due()
    body = receiver.wait_for(1, "/hook")[0].body
    assert MIB - 1024 < len(body) <= MIB


@pytest.mark.parametrize("depth, field", [(127, "data"), (500, "data"), (100_000, None)])
def test_publish_refuses_data_nested_too_deeply(api, webhook, depth, field):
    raw = '{"type": "person.created", "data": {"x": ' + "[" * depth + "]" * depth + "}}"

    error_of(api.post(EVENTS, raw=raw), 400, code="too_deep", field=field)
    assert_nothing_published()


def test_data_nested_128_levels_deep_is_published_and_read_back(api, webhook):
    # The body object, `data` and 126 nested lists: the most allowed.
    nested = []
    for _ in range(125):
        nested = [nested]

    response = api.post(EVENTS, {"type": "person.created", "data": {"x": nested}})

    assert response.status_code == 202, response.content
    event = api.get(f"{EVENTS}/{response.json()['id']}").json()
    assert event["data"] == {"x": nested}


@pytest.mark.parametrize("data", [{"s": "nul\x00byte"}, {"nul\x00key": 1}])
def test_data_with_a_nul_character_is_published(api, webhook, data):
    response = api.post(EVENTS, {"type": "person.created", "data": data})

    assert response.status_code == 202
    assert Event.objects.get().data == data


def test_a_rejected_publish_keeps_earlier_events(api, webhook):
    first = api.post(EVENTS, VALID | {"idempotency_key": "k1"}).json()

    api.post(EVENTS, VALID | {"data": []})
    api.post(EVENTS, VALID | {"type": "Bad", "idempotency_key": "k1"})

    assert list(Event.objects.values_list("public_id", flat=True)) == [first["id"]]
    assert Delivery.objects.count() == 1


# --- read an event ----------------------------------------------------------------


def test_get_event_shows_its_deliveries(api, org, receiver):
    healthy = WebhookFactory(organization=org, url=receiver.url("/hook"))
    broken = failing_webhook(org, receiver)
    event_id = api.post(EVENTS, {"type": "person.created", "data": {"n": 1}}).json()["id"]
    deliver_due()

    response = api.get(f"{EVENTS}/{event_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == event_id
    assert body["type"] == "person.created"
    assert ISO_MILLIS.match(body["timestamp"])
    assert body["data"] == {"n": 1}
    by_webhook = {d["webhook"]: d for d in body["deliveries"]}
    assert set(by_webhook) == {healthy.public_id, broken.public_id}
    assert by_webhook[healthy.public_id]["status"] == "succeeded"
    assert by_webhook[healthy.public_id]["last_status_code"] == 200
    assert by_webhook[broken.public_id]["status"] == "failed"
    assert by_webhook[broken.public_id]["last_status_code"] == 500
    for delivery in body["deliveries"]:
        assert delivery["id"].startswith("dlv_")
        assert delivery["event"] == event_id
        assert delivery["event_type"] == "person.created"
        assert delivery["attempt_count"] == 1


@pytest.mark.parametrize("event_id", ["evt_doesnotexist", "evt_%00", "%ED%A0%80"])
def test_get_of_an_unknown_event_is_404(api, db, event_id):
    error_of(api.get(f"{EVENTS}/{event_id}"), 404, code="not_found")


# --- list deliveries --------------------------------------------------------------


def test_list_deliveries_filters_by_webhook_status_and_event_type(api, org, receiver):
    healthy = WebhookFactory(organization=org, url=receiver.url("/hook"))
    broken = failing_webhook(org, receiver)
    publish(org, "person.created", {})
    publish(org, "invoice.paid", {})
    deliver_due()
    other = OrganizationFactory()
    WebhookFactory(organization=other)
    publish(other, "person.created", {})

    def ids(**params):
        response = api.get(DELIVERIES, params)
        assert response.status_code == 200, response.content
        return {(d["webhook"], d["event_type"], d["status"]) for d in response.json()["items"]}

    h, b = healthy.public_id, broken.public_id
    assert ids() == {
        (h, "person.created", "succeeded"),
        (h, "invoice.paid", "succeeded"),
        (b, "person.created", "failed"),
        (b, "invoice.paid", "failed"),
    }
    assert ids(webhook=b) == {(b, "person.created", "failed"), (b, "invoice.paid", "failed")}
    assert ids(status="succeeded") == {
        (h, "person.created", "succeeded"),
        (h, "invoice.paid", "succeeded"),
    }
    assert ids(event_type="invoice.paid", status="failed") == {(b, "invoice.paid", "failed")}
    assert ids(status="pending") == set()
    assert ids(since=(timezone.now() + timedelta(hours=1)).isoformat()) == set()


def test_list_deliveries_pages_newest_first(api, org, webhook):
    events = [publish(org, "person.created", {"n": n}).event for n in range(5)]

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = api.get(DELIVERIES, params).json()
        assert len(body["items"]) <= 2
        seen += [d["event"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == [e.public_id for e in reversed(events)]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": "lost"}, "status"),
        ({"webhook": "wh_doesnotexist"}, "webhook"),
        ({"webhook": "wh_\x00"}, "webhook"),
        ({"event_type": "Not A Type"}, "event_type"),
        ({"event_type": "person.\x00"}, "event_type"),
        ({"since": "last tuesday"}, "since"),
        ({"limit": 0}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ],
)
def test_list_deliveries_refuses_bad_filters(api, webhook, params, field):
    response = api.get(DELIVERIES, params)

    assert 400 <= response.status_code < 500
    error_of(response, response.status_code, field=field)


def test_pages_stay_correct_while_deliveries_are_added_between_fetches(api, org, receiver):
    webhook = WebhookFactory(organization=org, url=receiver.url("/hook"))
    first = [publish(org, "person.created", {"n": n}).event for n in range(7)]
    expected = [e.public_id for e in reversed(first)]

    seen, cursor, added = [], None, []
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = api.get(DELIVERIES, params).json()
        seen += [d["event"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        # New deliveries arrive between page fetches, a burst each time.
        added += [publish(org, "person.created", {"new": n}).event for n in range(4)]

    # Every delivery that existed at the start, once each, newest first; none
    # of those added meanwhile on a later page.
    assert seen == expected
    assert len(added) == 8
    # A fresh listing starts with the newest.
    newest = api.get(DELIVERIES, {"limit": 1}).json()["items"][0]["event"]
    assert newest == added[-1].public_id
    assert Delivery.objects.filter(webhook=webhook).count() == 15


def test_pages_stay_correct_while_deliveries_change_status(api, org, webhook):
    events = [publish(org, "person.created", {"n": n}).event for n in range(6)]

    page_one = api.get(DELIVERIES, {"limit": 3, "status": "pending"}).json()
    # Deliveries on the next page finish meanwhile: they leave the filter.
    Delivery.objects.filter(event=events[0]).update(status="succeeded")
    page_two = api.get(
        DELIVERIES, {"limit": 3, "status": "pending", "cursor": page_one["next_cursor"]}
    ).json()

    assert [d["event"] for d in page_one["items"]] == [e.public_id for e in events[:2:-1]]
    assert [d["event"] for d in page_two["items"]] == [events[2].public_id, events[1].public_id]
    assert page_two["next_cursor"] is None


def test_list_deliveries_filters_by_time(api, org, webhook):
    now = timezone.now()
    ages = {"old": timedelta(days=3), "mid": timedelta(hours=5), "new": timedelta(minutes=1)}
    for name, age in ages.items():
        delivery = Delivery.objects.get(event=publish(org, "person.created", {"age": name}).event)
        Delivery.objects.filter(pk=delivery.pk).update(created_at=now - age)

    def names(**params):
        response = api.get(DELIVERIES, params)
        assert response.status_code == 200, response.content
        ids = [d["event"] for d in response.json()["items"]]
        return [Event.objects.get(public_id=i).data["age"] for i in ids]

    iso = lambda moment: moment.isoformat()  # noqa: E731
    assert names() == ["new", "mid", "old"]
    assert names(since=iso(now - timedelta(days=1))) == ["new", "mid"]
    assert names(until=iso(now - timedelta(days=1))) == ["old"]
    assert names(since=iso(now - timedelta(hours=6)), until=iso(now - timedelta(hours=1))) == [
        "mid"
    ]
    # Offsets are honoured; a time without one is UTC; a date is its midnight.
    in_tokyo = (now - timedelta(hours=6)).astimezone(ZoneInfo("Asia/Tokyo"))
    assert names(since=in_tokyo.isoformat()) == ["new", "mid"]
    naive_utc = (now - timedelta(hours=6)).replace(tzinfo=None).isoformat()
    assert names(since=naive_utc) == ["new", "mid"]
    assert names(since=(now + timedelta(days=1)).date().isoformat()) == []
    assert names(until=(now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")) == []


@pytest.mark.parametrize(
    "params, field, status",
    [
        ({"since": "1700000000"}, "since", 422),  # not taken for a Unix time
        ({"since": "0.5"}, "since", 422),
        ({"until": "2026-02-30T00:00:00Z"}, "until", 422),
        ({"until": "yesterday"}, "until", 422),
        ({"since": "0001-01-01T00:00:00+05:00"}, "since", 422),  # before year 1 in UTC
        ({"since": "9999-12-31T23:59:59-05:00"}, "since", 422),  # after 9999 in UTC
        ({"limit": 201}, "limit", 422),
        ({"limit": 10**30}, "limit", 422),
        ({"limit": -1}, "limit", 422),
        ({"limit": "1.5"}, "limit", 422),
        ({"webhook": "evt_01m816mknkm8cbbqf28bzwmby0"}, "webhook", 422),  # wrong prefix
        ({"cursor": "cGs6MA"}, "cursor", 400),  # "pk:0"
        ({"cursor": "=" * 3}, "cursor", 400),
        ({"cursor": "\x00"}, "cursor", 400),
        ({"stauts": "failed"}, "stauts", 422),  # a misspelt filter is not ignored
    ],
)
def test_list_deliveries_refuses_bad_times_pages_and_unknown_parameters(
    api, webhook, params, field, status
):
    response = api.get(DELIVERIES, params)

    # 400 for a cursor this API did not hand out, 422 for a bad parameter.
    error_of(response, status, field=field)


def test_empty_filters_are_no_filters(api, org, webhook):
    publish(org, "person.created", {})

    body = api.get(DELIVERIES, {"webhook": "", "event_type": ""}).json()

    assert len(body["items"]) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/wh_01m816mknkm8cbbqf28bzwmby0",
        "/api/v1/events/dlv_01m816mknkm8cbbqf28bzwmby0",
        "/api/v1/deliveries/evt_01m816mknkm8cbbqf28bzwmby0",
        "/api/v1/webhooks/dlv_01m816mknkm8cbbqf28bzwmby0",
    ],
)
def test_an_id_of_the_wrong_prefix_is_404(api, db, path):
    error_of(api.get(path), 404, code="not_found")


def test_the_id_of_an_existing_object_of_another_kind_is_404(api, org, webhook):
    event = publish(org, "person.created", {}).event
    delivery = Delivery.objects.get(event=event)

    error_of(api.get(f"{DELIVERIES}/{event.public_id}"), 404, code="not_found")
    error_of(api.get(f"{EVENTS}/{delivery.public_id}"), 404, code="not_found")
    error_of(api.get(f"/api/v1/webhooks/{event.public_id}"), 404, code="not_found")


# --- read a delivery --------------------------------------------------------------


def test_get_delivery_shows_each_attempt_as_sent_and_answered(api, org, receiver):
    webhook = failing_webhook(org, receiver, headers={"X-Team": "growth"})
    delivery = failed_delivery(org, webhook)

    response = api.get(f"{DELIVERIES}/{delivery.public_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == delivery.public_id
    assert body["webhook"] == webhook.public_id
    assert body["status"] == "failed"
    assert body["attempt_count"] == 1
    assert body["last_status_code"] == 500
    assert body["last_error_kind"] == "http_status"
    (attempt,) = body["attempts"]
    assert set(attempt) == {
        "number",
        "trigger",
        "started_at",
        "duration_ms",
        "request_headers",
        "request_body",
        "response_status",
        "response_headers",
        "response_body",
        "error_kind",
        "error_message",
    }
    assert attempt["number"] == 1
    assert attempt["trigger"] == "auto"
    assert attempt["duration_ms"] >= 0
    sent = receiver.to("/fail")[0]
    assert attempt["request_body"] == sent.body.decode()
    headers = {k.lower(): v for k, v in attempt["request_headers"].items()}
    assert headers["webhook-id"] == delivery.event.public_id
    assert headers["webhook-signature"] == sent.header("webhook-signature")
    assert headers["content-type"] == "application/json"
    assert headers["x-team"] == "growth"
    assert attempt["response_status"] == 500
    assert {k.lower(): v for k, v in attempt["response_headers"].items()}["x-reason"] == "down"
    assert attempt["response_body"] == "boom"
    assert attempt["error_kind"] == "http_status"


@pytest.mark.parametrize("delivery_id", ["dlv_doesnotexist", "dlv_%00", "%ED%A0%80", "x" * 500])
def test_get_of_an_unknown_delivery_is_404(api, db, delivery_id):
    error_of(api.get(f"{DELIVERIES}/{delivery_id}"), 404, code="not_found")
    error_of(api.post(f"{DELIVERIES}/{delivery_id}/retry"), 404, code="not_found")


# --- retry a delivery -------------------------------------------------------------


def test_retry_of_a_failed_delivery_makes_one_manual_attempt(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    delivery = failed_delivery(org, webhook)

    response = api.post(f"{DELIVERIES}/{delivery.public_id}/retry")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["id"] == delivery.public_id
    assert body["status"] == "pending"
    assert body["completed_at"] is None
    receiver.always("/fail", Answer(status=200))
    deliver_due()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SUCCEEDED
    attempts = list(delivery.attempt_set.order_by("number").values_list("number", "trigger"))
    assert attempts == [(1, Trigger.AUTO), (2, Trigger.MANUAL)]
    detail = api.get(f"{DELIVERIES}/{delivery.public_id}").json()
    assert [a["trigger"] for a in detail["attempts"]] == ["auto", "manual"]
    assert len(receiver.to("/fail")) == 2


def test_a_manual_retry_that_fails_again_ends_failed(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    delivery = failed_delivery(org, webhook)

    api.post(f"{DELIVERIES}/{delivery.public_id}/retry")
    deliver_due()

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_set.count() == 2


def test_retry_of_a_pending_delivery_makes_it_due_now(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    event = publish(org, "person.created", {}).event
    delivery = Delivery.objects.get(event=event, webhook=webhook)
    later = timezone.now() + timedelta(hours=1)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=later)

    response = api.post(f"{DELIVERIES}/{delivery.public_id}/retry")

    assert response.status_code == 202
    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= timezone.now()
    assert delivery.next_trigger == Trigger.MANUAL


def test_retry_of_a_succeeded_delivery_is_409_and_changes_nothing(api, org, webhook):
    publish(org, "person.created", {})
    deliver_due()
    delivery = Delivery.objects.get(webhook=webhook)
    assert delivery.status == Delivery.Status.SUCCEEDED
    before = Delivery.objects.filter(pk=delivery.pk).values().get()

    response = api.post(f"{DELIVERIES}/{delivery.public_id}/retry")

    error_of(response, 409, code="conflict", field="status")
    assert Delivery.objects.filter(pk=delivery.pk).values().get() == before


def test_retry_for_a_paused_webhook_is_409(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    delivery = failed_delivery(org, webhook)
    Webhook.objects.filter(pk=webhook.pk).update(status="paused")

    error_of(api.post(f"{DELIVERIES}/{delivery.public_id}/retry"), 409, field="status")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED


# --- tenant isolation -------------------------------------------------------------


def test_another_organizations_event_and_deliveries_are_404(api, org, other_org, receiver):
    theirs = failing_webhook(other_org, receiver)
    event = publish(other_org, "person.created", {"secret": "theirs"}).event
    deliver_due()
    delivery = Delivery.objects.get(webhook=theirs)
    before = Delivery.objects.filter(pk=delivery.pk).values().get()

    for response in (
        api.get(f"{EVENTS}/{event.public_id}"),
        api.get(f"{DELIVERIES}/{delivery.public_id}"),
        api.post(f"{DELIVERIES}/{delivery.public_id}/retry"),
    ):
        error_of(response, 404, code="not_found")
        assert b"theirs" not in response.content

    assert api.get(DELIVERIES).json()["items"] == []
    # Filtering by their webhook reads like a webhook that does not exist.
    assert error_of(api.get(DELIVERIES, {"webhook": theirs.public_id}), 422, field="webhook") == (
        error_of(api.get(DELIVERIES, {"webhook": "wh_doesnotexist"}), 422, field="webhook")
    )
    assert Delivery.objects.filter(pk=delivery.pk).values().get() == before
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_a_publish_only_reaches_the_callers_organization(api, org, other_org):
    mine = WebhookFactory(organization=org)
    WebhookFactory(organization=other_org)

    event_id = api.post(EVENTS, VALID).json()["id"]

    assert list(Delivery.objects.values_list("webhook_id", flat=True)) == [mine.pk]
    assert Event.objects.get(public_id=event_id).organization == org


def test_a_request_refused_before_the_api_saw_it_gets_the_envelope_too(api, db, client):
    # Django refuses a Host it does not serve before any route: still JSON.
    error = error_of(api.get("/api/v1/events", headers={"Host": "."}), 400, code="bad_request")
    assert "Host" in error["message"]
    # Outside the API, Django's own page.
    page = client.get("/", HTTP_HOST=".")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")

"""The webhooks API (SPEC §8), its authentication, its error envelope and its
OpenAPI schema, through the real Django test client."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as Verifier

from deliveries import rows
from deliveries.models import Delivery, DeliveryAttempt, Event, Trigger
from deliveries.publishing import publish
from tests.conftest import ApiClient, deliver_due, error_of
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from tests.receiver import Answer
from webhooks.models import ApiKey, Webhook

WEBHOOKS = "/api/v1/webhooks"


def url_of(webhook: Webhook, action: str = "") -> str:
    return f"{WEBHOOKS}/{webhook.public_id}{action}"


def stored(webhook: Webhook) -> dict:
    return Webhook.objects.filter(pk=webhook.pk).values().get()


def failing_webhook(org, receiver, **fields) -> Webhook:
    """A webhook whose endpoint answers 500 and that gives up after one attempt."""
    receiver.always("/fail", Answer(status=500, body=b"boom"))
    return WebhookFactory(organization=org, url=receiver.url("/fail"), max_attempts=1, **fields)


def failed_delivery(org, webhook, data=None) -> Delivery:
    event = publish(org, "person.created", data or {"name": "Ada"}).event
    deliver_due()
    delivery = Delivery.objects.get(event=event, webhook=webhook)
    assert delivery.status == Delivery.Status.FAILED
    return delivery


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def other_webhook(other_org):
    return WebhookFactory(organization=other_org, url="https://other.example/hook")


# --- create -------------------------------------------------------------------


def test_create_answers_201_with_the_secret_and_the_defaults(api, org):
    response = api.post(
        WEBHOOKS, {"url": "https://example.com/hooks", "events": ["person.created"]}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    webhook = Webhook.objects.get(public_id=body["id"])
    assert webhook.organization == org
    assert body["id"].startswith("wh_")
    assert body["secret"] == webhook.secret
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["url"] == "https://example.com/hooks"
    assert body["events"] == ["person.created"]
    assert body["status"] == "active"
    assert body["disabled_reason"] == ""
    assert body["name"] == ""
    assert body["description"] == ""
    assert body["headers"] == {}
    assert body["timeout_seconds"] == 10
    assert body["max_attempts"] == 5
    assert body["verify_tls"] is True
    assert body["signature_style"] == ""
    assert body["signature_header"] == "X-Webhook-Signature"
    assert body["consecutive_failures"] == 0
    assert body["last_delivery_at"] is None
    assert body["created_at"] and body["updated_at"]


def test_create_accepts_every_optional_field(api):
    response = api.post(
        WEBHOOKS,
        {
            "url": "https://example.com/crm",
            "events": ["person.*", "invoice.paid", "*"],
            "name": "CRM sync",
            "description": "People into the CRM",
            "headers": {"X-Team": "growth", "Authorization": "Basic abc"},
            "timeout_seconds": 300,
            "max_attempts": 10,
            "verify_tls": False,
            "signature_style": "timestamped",
            "signature_header": "X-Twenty-Signature",
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["events"] == ["person.*", "invoice.paid", "*"]
    assert body["name"] == "CRM sync"
    assert body["description"] == "People into the CRM"
    assert body["headers"] == {"X-Team": "growth", "Authorization": "Basic abc"}
    assert body["timeout_seconds"] == 300
    assert body["max_attempts"] == 10
    assert body["verify_tls"] is False
    assert body["signature_style"] == "timestamped"
    assert body["signature_header"] == "X-Twenty-Signature"
    webhook = Webhook.objects.get(public_id=body["id"])
    assert webhook.timeout_seconds == 300
    assert webhook.headers == {"X-Team": "growth", "Authorization": "Basic abc"}


def test_a_pattern_may_name_a_type_never_published(api):
    response = api.post(WEBHOOKS, {"url": "https://example.com/h", "events": ["nobody.ever"]})

    assert response.status_code == 201
    assert response.json()["events"] == ["nobody.ever"]


def test_a_url_of_exactly_2048_characters_is_accepted(api):
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))

    response = api.post(WEBHOOKS, {"url": url, "events": ["*"]})

    assert response.status_code == 201, response.content
    assert response.json()["url"] == url


def test_plain_http_and_private_targets_are_accepted_when_allowed(api, settings):
    settings.HERALD_ALLOW_HTTP = True
    settings.HERALD_ALLOW_PRIVATE_TARGETS = True

    response = api.post(WEBHOOKS, {"url": "http://127.0.0.1:8000/hook", "events": ["*"]})

    assert response.status_code == 201, response.content


# --- list, get ------------------------------------------------------------------


def test_list_pages_newest_first_with_a_cursor(api, org, other_webhook):
    created = [WebhookFactory(organization=org) for _ in range(5)]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = api.get(WEBHOOKS, params)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"items", "next_cursor"}
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == [w.public_id for w in reversed(created)]
    assert other_webhook.public_id not in seen


def test_list_never_shows_secrets(api, webhook):
    item = api.get(WEBHOOKS).json()["items"][0]

    assert item["id"] == webhook.public_id
    assert "secret" not in item
    assert webhook.secret not in json.dumps(item)


def test_list_without_more_pages_has_no_next_cursor(api, webhook):
    body = api.get(WEBHOOKS).json()

    assert [item["id"] for item in body["items"]] == [webhook.public_id]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"pk:-1").decode()}, "cursor"),
    ],
)
def test_list_refuses_a_bad_limit_or_cursor(api, webhook, params, field):
    response = api.get(WEBHOOKS, params)

    assert 400 <= response.status_code < 500
    error_of(response, response.status_code, field=field)


def test_get_returns_the_webhook_without_its_secret(api, webhook):
    response = api.get(url_of(webhook))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == webhook.public_id
    assert body["url"] == webhook.url
    assert body["events"] == ["*"]
    assert "secret" not in body


@pytest.mark.parametrize(
    "webhook_id", ["wh_doesnotexist", "wh_01m816mknkm8cbbqf28bzwmby0", "wh_%00", "%ED%A0%80"]
)
def test_get_of_an_unknown_id_is_404(api, db, webhook_id):
    error_of(api.get(f"{WEBHOOKS}/{webhook_id}"), 404, code="not_found")
    error_of(api.patch(f"{WEBHOOKS}/{webhook_id}", {"name": "x"}), 404, code="not_found")


# --- patch ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, attribute, expected",
    [
        ({"url": "https://example.org/new"}, "url", "https://example.org/new"),
        ({"events": ["invoice.*", "person.created"]}, "event_patterns", None),
        ({"name": "Renamed"}, "name", "Renamed"),
        ({"description": "Now with words"}, "description", "Now with words"),
        ({"headers": {"X-Tenant": "42"}}, "headers", {"X-Tenant": "42"}),
        ({"timeout_seconds": 1}, "timeout_seconds", 1),
        ({"max_attempts": 10}, "max_attempts", 10),
        ({"verify_tls": False}, "verify_tls", False),
        ({"signature_style": "hex"}, "signature_style", "hex"),
        ({"signature_header": "X-Twig-Signature"}, "signature_header", "X-Twig-Signature"),
    ],
)
def test_patch_changes_one_field_and_leaves_the_others(api, webhook, change, attribute, expected):
    before = stored(webhook)
    ((name, value),) = change.items()
    expected = value if expected is None else expected

    response = api.patch(url_of(webhook), change)

    assert response.status_code == 200, response.content
    assert response.json()[name] == value
    after = stored(webhook)
    assert after[attribute] == expected
    unchanged = {k for k in before if k not in (attribute, "updated_at")}
    assert {k: after[k] for k in unchanged} == {k: before[k] for k in unchanged}


def test_patch_with_an_empty_body_changes_nothing(api, webhook):
    before = stored(webhook)

    response = api.patch(url_of(webhook), {})

    assert response.status_code == 200
    assert stored(webhook) == before


def test_pausing_parks_pending_deliveries_and_resuming_makes_them_due(api, org, webhook):
    event = publish(org, "person.created", {"n": 1}).event
    delivery = Delivery.objects.get(event=event, webhook=webhook)
    assert delivery.next_attempt_at is not None

    response = api.patch(url_of(webhook), {"status": "paused"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "paused"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.next_attempt_at is None
    # Events published while paused wait too.
    later = Delivery.objects.get(event=publish(org, "person.updated", {}).event)
    assert later.status == Delivery.Status.PENDING and later.next_attempt_at is None
    assert deliver_due() == 0

    before_resume = timezone.now()
    response = api.patch(url_of(webhook), {"status": "active"})

    assert response.status_code == 200
    assert response.json()["status"] == "active"
    for parked in (delivery, later):
        parked.refresh_from_db()
        assert parked.status == Delivery.Status.PENDING
        assert before_resume <= parked.next_attempt_at <= timezone.now()


def test_resuming_delivers_what_waited(api, org, webhook, receiver):
    api.patch(url_of(webhook), {"status": "paused"})
    event = publish(org, "person.created", {"n": 1}).event

    api.patch(url_of(webhook), {"status": "active"})
    deliver_due()

    assert receiver.wait_for(1, "/hook")[0].header("webhook-id") == event.public_id
    assert Delivery.objects.get(event=event).status == Delivery.Status.SUCCEEDED


def test_setting_a_disabled_webhook_active_re_enables_it(api, webhook):
    Webhook.objects.filter(pk=webhook.pk).update(
        status="disabled", disabled_reason="410 Gone", consecutive_failures=50
    )

    response = api.patch(url_of(webhook), {"status": "active"})

    assert response.status_code == 200, response.content
    webhook.refresh_from_db()
    assert (webhook.status, webhook.disabled_reason, webhook.consecutive_failures) == (
        "active",
        "",
        0,
    )


def test_patch_changes_fields_and_status_together(api, webhook):
    response = api.patch(url_of(webhook), {"name": "Quiet", "status": "paused"})

    assert response.status_code == 200
    webhook.refresh_from_db()
    assert (webhook.name, webhook.status) == ("Quiet", "paused")


# --- delete ---------------------------------------------------------------------


def test_delete_answers_204_then_the_webhook_is_gone(api, org, webhook):
    publish(org, "person.created", {})

    response = api.delete(url_of(webhook))

    assert response.status_code == 204
    assert response.content == b""
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert not Delivery.objects.filter(webhook_id=webhook.pk).exists()
    error_of(api.get(url_of(webhook)), 404, code="not_found")
    error_of(api.delete(url_of(webhook)), 404, code="not_found")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's limit (Django batches SQLite's)"
)
def test_delete_takes_more_deliveries_than_a_statement_has_parameters(api, org, webhook):
    # PostgreSQL binds at most 65,535 parameters to a statement, and a
    # cascade would name every delivery of the webhook in one.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Event._meta.db_table} (public_id, type, data_json, created_at, "
            "delivery_count, organization_id) SELECT 'evt_' || n, 'person.created', '{}', "
            "now(), 1, %s FROM generate_series(1, 70000) n",
            [org.pk],
        )
        cursor.execute(
            f"INSERT INTO {Delivery._meta.db_table} (public_id, event_type, status, attempts, "
            "next_trigger, last_error_kind, created_at, organization_id, webhook_id, event_id, "
            "manual_attempts) SELECT 'msg_' || id, type, 'succeeded', 1, 'auto', '', now(), "
            f"organization_id, %s, id, 0 FROM {Event._meta.db_table} WHERE organization_id = %s",
            [webhook.pk, org.pk],
        )
    rows.append(
        [
            DeliveryAttempt(delivery=d, number=1, started_at=timezone.now(), duration_ms=5)
            for d in Delivery.objects.filter(webhook=webhook)[:10]
        ]
    )

    assert api.delete(url_of(webhook)).status_code == 204

    assert not Webhook.objects.filter(pk=webhook.pk).exists()
    assert not Delivery.objects.filter(webhook_id=webhook.pk).exists()
    assert not DeliveryAttempt.objects.exists()
    assert Event.objects.filter(organization=org).count() == 70_000  # the organization's


# --- rotate-secret --------------------------------------------------------------


def test_rotate_secret_returns_a_new_secret_and_keeps_the_old_one_for_the_grace(
    api, webhook, settings
):
    settings.HERALD_SECRET_GRACE_HOURS = 24
    old = webhook.secret

    response = api.post(url_of(webhook, "/rotate-secret"))

    assert response.status_code == 200, response.content
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    webhook.refresh_from_db()
    assert webhook.secret == new
    assert webhook.previous_secrets[0]["secret"] == old
    assert webhook.signing_secrets() == [new, old]
    assert webhook.signing_secrets(timezone.now() + timedelta(hours=25)) == [new]


def test_both_secrets_sign_during_the_grace_period(api, webhook, org, receiver):
    old = webhook.secret
    new = api.post(url_of(webhook, "/rotate-secret")).json()["secret"]

    publish(org, "person.created", {})
    deliver_due()

    signatures = receiver.wait_for(1, "/hook")[0].header("webhook-signature").split(" ")
    assert len(signatures) == 2
    request = receiver.requests[0]
    for secret in (new, old):
        Verifier(secret).verify(request.body, request.headers)


# --- test -----------------------------------------------------------------------


def test_test_sends_webhook_test_to_this_webhook_only(api, org, webhook, receiver):
    # Whatever the webhook subscribes to; and no other webhook gets it.
    Webhook.objects.filter(pk=webhook.pk).update(event_patterns=["invoice.paid"])
    bystander = WebhookFactory(organization=org, url=receiver.url("/other"), event_patterns=["*"])

    response = api.post(url_of(webhook, "/test"))

    assert response.status_code == 202, response.content
    body = response.json()
    event = Event.objects.get(public_id=body["event_id"])
    assert event.type == "webhook.test"
    assert body["deliveries"] == 1
    delivery = Delivery.objects.get(event=event)
    assert delivery.webhook == webhook
    assert not Delivery.objects.filter(webhook=bystander).exists()

    deliver_due()
    received = receiver.wait_for(1, "/hook")[0]
    assert json.loads(received.body)["type"] == "webhook.test"
    assert receiver.to("/other") == []
    assert DeliveryAttempt.objects.get(delivery=delivery).trigger == Trigger.TEST


def test_test_of_a_paused_webhook_is_409(api, webhook):
    Webhook.objects.filter(pk=webhook.pk).update(status="paused")

    error_of(api.post(url_of(webhook, "/test")), 409, code="conflict", field="status")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


# --- retry-failed ---------------------------------------------------------------


def test_retry_failed_retries_every_failed_delivery(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    receiver.script("/fail", Answer(status=200))
    publish(org, "person.created", {"n": 0})
    deliver_due()
    succeeded = Delivery.objects.get(webhook=webhook, status=Delivery.Status.SUCCEEDED)
    failed = [failed_delivery(org, webhook, {"n": n}) for n in (1, 2)]

    response = api.post(url_of(webhook, "/retry-failed"))

    assert response.status_code == 202, response.content
    assert response.json() == {"count": 2}
    for delivery in failed:
        delivery.refresh_from_db()
        assert delivery.status == Delivery.Status.PENDING
        assert delivery.next_trigger == Trigger.MANUAL
        assert delivery.next_attempt_at <= timezone.now()
    succeeded.refresh_from_db()
    assert succeeded.status == Delivery.Status.SUCCEEDED

    receiver.always("/fail", Answer(status=200))
    deliver_due()
    assert Delivery.objects.filter(pk__in=[d.pk for d in failed], status="succeeded").count() == 2


def test_retry_failed_since_only_retries_newer_deliveries(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    old, new = failed_delivery(org, webhook), failed_delivery(org, webhook)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    since = (timezone.now() - timedelta(days=1)).isoformat()

    response = api.post(url_of(webhook, "/retry-failed"), {"since": since})

    assert response.status_code == 202, response.content
    assert response.json() == {"count": 1}
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == ("failed", "pending")


def test_retry_failed_with_nothing_failed_counts_zero(api, webhook):
    response = api.post(url_of(webhook, "/retry-failed"), {})

    assert response.status_code == 202
    assert response.json() == {"count": 0}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"since": "yesterday"}, "since"),
        ({"since": 5}, "since"),  # not taken for a Unix time
        ({"since": "1700000000"}, "since"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # before year 1 in UTC
        ({"since": None, "x": 1}, "x"),
        ({"until": None}, "until"),
    ],
)
def test_retry_failed_refuses_bad_input_and_changes_nothing(api, org, receiver, body, field):
    webhook = failing_webhook(org, receiver)
    delivery = failed_delivery(org, webhook)

    response = api.post(url_of(webhook, "/retry-failed"), body)

    error_of(response, 422, field=field)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED


def test_retry_failed_of_a_paused_webhook_is_409(api, org, receiver):
    webhook = failing_webhook(org, receiver)
    delivery = failed_delivery(org, webhook)
    Webhook.objects.filter(pk=webhook.pk).update(status="paused")

    error_of(api.post(url_of(webhook, "/retry-failed")), 409, code="conflict", field="status")
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED


# --- stats ----------------------------------------------------------------------

STATS_KEYS = {
    "window",
    "attempts",
    "succeeded_attempts",
    "failed_deliveries",
    "success_rate",
    "avg_latency_ms",
    "p95_latency_ms",
    "last_delivery_at",
}


def test_stats_of_a_webhook_without_attempts(api, webhook):
    response = api.get(url_of(webhook, "/stats"))

    assert response.status_code == 200
    assert response.json() == {
        "window": "24h",
        "attempts": 0,
        "succeeded_attempts": 0,
        "failed_deliveries": 0,
        "success_rate": None,
        "avg_latency_ms": None,
        "p95_latency_ms": None,
        "last_delivery_at": None,
    }


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d"])
def test_stats_count_attempts_over_the_window(api, org, receiver, window):
    webhook = WebhookFactory(organization=org, url=receiver.url("/flaky"), max_attempts=1)
    receiver.script("/flaky", Answer(status=200), Answer(status=500))
    publish(org, "person.created", {"n": 1})
    deliver_due()
    publish(org, "person.created", {"n": 2})
    deliver_due()

    response = api.get(url_of(webhook, "/stats"), {"window": window})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == STATS_KEYS
    assert body["window"] == window
    assert body["attempts"] == 2
    assert body["succeeded_attempts"] == 1
    assert body["failed_deliveries"] == 1
    assert body["success_rate"] == 0.5
    assert body["avg_latency_ms"] >= 0
    assert body["p95_latency_ms"] >= 0
    assert body["last_delivery_at"] is not None


def test_stats_refuses_an_unknown_window(api, webhook):
    error_of(api.get(url_of(webhook, "/stats"), {"window": "2d"}), 422, field="window")


# --- authentication -------------------------------------------------------------

ENDPOINTS = [
    ("post", WEBHOOKS),
    ("get", WEBHOOKS),
    ("get", WEBHOOKS + "/{id}"),
    ("patch", WEBHOOKS + "/{id}"),
    ("delete", WEBHOOKS + "/{id}"),
    ("post", WEBHOOKS + "/{id}/rotate-secret"),
    ("post", WEBHOOKS + "/{id}/test"),
    ("post", WEBHOOKS + "/{id}/retry-failed"),
    ("get", WEBHOOKS + "/{id}/stats"),
    ("post", "/api/v1/events"),
    ("get", "/api/v1/events/evt_x"),
    ("get", "/api/v1/deliveries"),
    ("get", "/api/v1/deliveries/dlv_x"),
    ("post", "/api/v1/deliveries/dlv_x/retry"),
]


def call(client, method: str, path: str, headers: dict):
    if method in ("post", "patch"):
        return getattr(client, method)(path, "{}", content_type="application/json", headers=headers)
    return getattr(client, method)(path, headers=headers)


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "hk_without_scheme",
        "Basic dXNlcjpwYXNz",
        "Bearer hk_unknownkeyunknownkeyunknownkeyunknownkey",
        "Bearer not-a-herald-key",
        "Bearer hk_" + "x" * 500,
    ],
)
def test_a_missing_malformed_or_unknown_key_is_401(client, webhook, authorization):
    before = stored(webhook)
    headers = {} if authorization is None else {"Authorization": authorization}

    for method, path in ENDPOINTS:
        response = call(client, method, path.format(id=webhook.public_id), headers)
        error = error_of(response, 401, code="unauthorized")
        assert response["WWW-Authenticate"] == "Bearer"
        assert "Bearer" in error["message"]

    assert stored(webhook) == before
    assert Webhook.objects.count() == 1


def test_a_revoked_key_is_401(client, org, api_key, webhook):
    ApiKey.objects.filter(organization=org).update(revoked_at=timezone.now())

    response = ApiClient(client, api_key).get(url_of(webhook))

    error_of(response, 401, code="unauthorized")


def test_keys_are_stored_hashed(org, api_key):
    key = ApiKey.objects.get(organization=org)

    assert api_key.startswith("hk_")
    assert api_key not in {key.key_hash, key.prefix}
    assert not ApiKey.objects.filter(key_hash=api_key).exists()


def test_a_valid_key_records_when_it_was_last_used(api, org):
    assert ApiKey.objects.get(organization=org).last_used_at is None

    api.get(WEBHOOKS)

    assert ApiKey.objects.get(organization=org).last_used_at is not None


# --- tenant isolation -------------------------------------------------------------


@pytest.mark.parametrize(
    "method, action, body",
    [
        ("get", "", None),
        ("patch", "", {"name": "mine now"}),
        ("patch", "", {"status": "paused"}),
        ("delete", "", None),
        ("post", "/rotate-secret", None),
        ("post", "/test", None),
        ("post", "/retry-failed", {}),
        ("get", "/stats", None),
    ],
)
def test_another_organizations_webhook_is_404(api, other_webhook, method, action, body):
    before = stored(other_webhook)
    path = url_of(other_webhook, action)
    unknown = f"{WEBHOOKS}/wh_doesnotexist{action}"

    if method == "patch":
        response, control = api.patch(path, body), api.patch(unknown, body)
    elif method == "post":
        response, control = api.post(path, body), api.post(unknown, body)
    else:
        response, control = getattr(api, method)(path), getattr(api, method)(unknown)

    # Indistinguishable from an id that does not exist.
    assert error_of(response, 404, code="not_found") == error_of(control, 404, code="not_found")
    assert stored(other_webhook) == before
    assert not Event.objects.exists()


def test_the_other_organizations_key_sees_only_its_own(client, org, webhook, other_webhook):
    theirs = ApiClient(client, api_key_for(other_webhook.organization))

    assert [w["id"] for w in theirs.get(WEBHOOKS).json()["items"]] == [other_webhook.public_id]
    error_of(theirs.get(url_of(webhook)), 404)


# --- bad input --------------------------------------------------------------------

VALID = {"url": "https://example.com/hook", "events": ["person.created"]}

# (body changes, the field the error names); each is refused on create and on patch.
BAD_FIELDS = [
    ({"url": 123}, "url"),
    ({"url": None}, "url"),
    ({"url": ""}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "ftp://example.com/hook"}, "url"),
    ({"url": "https://"}, "url"),
    ({"url": "https://example.com/" + "a" * 2029}, "url"),  # 2049 characters
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://example.com/a\x00b"}, "url"),
    ({"url": "https://example.com/\ud800"}, "url"),
    ({"url": "https://example.com/a\x7fb"}, "url"),
    ({"events": []}, "events"),
    ({"events": "person.created"}, "events"),
    ({"events": None}, "events"),
    ({"events": [123]}, "events.0"),
    ({"events": ["Person.Created"]}, "events.0"),
    ({"events": ["person.created", "a..b"]}, "events.1"),
    ({"events": ["person"]}, "events.0"),
    ({"events": [".person.created"]}, "events.0"),
    ({"events": ["person.*x"]}, "events.0"),
    ({"events": ["person created"]}, "events.0"),
    ({"events": ["person.*\n"]}, "events.0"),
    ({"headers": {"X-Line\n": "x"}}, "headers.X-Line\n"),
    ({"signature_header": "X-Sig\n"}, "signature_header"),
    ({"name": " " + "n" * 200}, "name"),  # counted as sent
    ({"events": ["a." + "b" * 99]}, "events.0"),  # 101 characters
    ({"events": [f"t.n{i}" for i in range(101)]}, "events"),
    ({"headers": {"webhook-signature": "v1,forged"}}, "headers.webhook-signature"),
    ({"headers": {"Content-Type": "text/plain"}}, "headers.Content-Type"),
    ({"headers": {"Host": "evil.example"}}, "headers.Host"),
    ({"headers": {"X-Webhook-Signature": "x"}}, "headers.X-Webhook-Signature"),
    ({"headers": {"X-Split": "a\r\nX-Injected: 1"}}, "headers.X-Split"),
    ({"headers": {"X-Newline": "a\nb"}}, "headers.X-Newline"),
    ({"headers": {"X-Number": 5}}, "headers.X-Number"),
    ({"headers": {"X-Null": None}}, "headers.X-Null"),
    ({"headers": {"Bad Name": "x"}}, "headers.Bad Name"),
    ({"headers": {"X-Twice": "1", "x-twice": "2"}}, "headers.x-twice"),
    ({"headers": {"X-Surrogate": "\ud800"}}, "headers.X-Surrogate"),
    ({"headers": {"X-Long": "v" * 1001}}, "headers.X-Long"),
    ({"headers": ["X-A: b"]}, "headers"),
    ({"headers": {f"X-H{i}": "v" for i in range(21)}}, "headers"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
    ({"timeout_seconds": 301}, "timeout_seconds"),
    ({"timeout_seconds": "10"}, "timeout_seconds"),
    ({"timeout_seconds": True}, "timeout_seconds"),
    ({"timeout_seconds": 10.5}, "timeout_seconds"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 11}, "max_attempts"),
    ({"max_attempts": "5"}, "max_attempts"),
    ({"verify_tls": "yes"}, "verify_tls"),
    ({"verify_tls": 1}, "verify_tls"),
    ({"signature_style": "md5"}, "signature_style"),
    ({"signature_header": "Content-Type"}, "signature_header"),
    ({"signature_header": "webhook-signature"}, "signature_header"),
    ({"signature_header": "Webhook"}, "signature_header"),  # → Webhook-Timestamp
    ({"signature_header": "X Sig"}, "signature_header"),
    ({"name": "n" * 201}, "name"),
    ({"name": 7}, "name"),
    ({"name": "nul\x00byte"}, "name"),
    ({"name": "lone \udc00 surrogate"}, "name"),
    ({"description": "d" * 2001}, "description"),
    ({"description": "nul\x00byte"}, "description"),
    ({"secret": "whsec_mine"}, "secret"),
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize("changes, field", BAD_FIELDS)
def test_create_refuses_a_bad_field_and_stores_nothing(api, changes, field):
    response = api.post(WEBHOOKS, VALID | changes)

    error_of(response, 422, field=field)
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "body, field", [({"events": ["*"]}, "url"), ({"url": "https://example.com/h"}, "events")]
)
def test_create_names_a_missing_required_field(api, body, field):
    error = error_of(api.post(WEBHOOKS, body), 422, field=field)

    assert "required" in error["message"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:192.168.1.1]/hook",
        "https://0.0.0.0/hook",
    ],
)
def test_create_refuses_private_ip_literals_unless_allowed(api, settings, url):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False

    error_of(api.post(WEBHOOKS, VALID | {"url": url}), 422, field="url")
    assert not Webhook.objects.exists()


def test_create_refuses_plain_http_unless_allowed(api, settings):
    settings.HERALD_ALLOW_HTTP = False

    error = error_of(
        api.post(WEBHOOKS, VALID | {"url": "http://example.com/hook"}), 422, field="url"
    )

    assert "https://" in error["message"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("changes, field", [*BAD_FIELDS, ({"status": "disabled"}, "status")])
def test_patch_refuses_a_bad_field_and_changes_nothing(api, org, webhook, changes, field):
    publish(org, "person.created", {})
    before = stored(webhook)
    deliveries_before = list(Delivery.objects.values())

    # A valid change alongside the bad one is not applied either.
    response = api.patch(
        url_of(webhook), {"name": "should not stick", "status": "paused"} | changes
    )

    error_of(response, 422, field=field)
    assert stored(webhook) == before
    assert list(Delivery.objects.values()) == deliveries_before


@pytest.mark.parametrize("field", ["url", "events", "headers", "timeout_seconds", "name"])
def test_patch_refuses_null_for_a_field(api, webhook, field):
    before = stored(webhook)

    error_of(api.patch(url_of(webhook), {field: None}), 422, field=field)
    assert stored(webhook) == before


def test_patch_refuses_plain_http_and_private_ips_when_not_allowed(api, webhook, settings):
    settings.HERALD_ALLOW_HTTP = False
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False
    before = stored(webhook)

    error_of(api.patch(url_of(webhook), {"url": "http://example.com/h"}), 422, field="url")
    error_of(api.patch(url_of(webhook), {"url": "https://192.168.0.1/h"}), 422, field="url")
    assert stored(webhook) == before


def test_patch_refuses_a_signature_header_that_a_custom_header_already_uses(api, org):
    webhook = WebhookFactory(organization=org, headers={"X-Custom-Signature": "static"})
    before = stored(webhook)

    response = api.patch(url_of(webhook), {"signature_header": "X-Custom-Signature"})

    error_of(response, 422, field="headers.X-Custom-Signature")
    assert stored(webhook) == before


@pytest.mark.parametrize(
    "raw, status, code",
    [
        ("{", 400, "malformed_json"),
        ('{"url": "https://example.com/h", "events": ["*"],}', 400, "malformed_json"),
        ('{"url": "https://example.com/h", "events": ["*"], "timeout_seconds": NaN}', 400, None),
        (
            '{"url": "https://example.com/h", "events": ["*"], "timeout_seconds": Infinity}',
            400,
            None,
        ),
        ("", 400, None),
        ("[]", 400, None),
        ('[{"url": "https://example.com/h", "events": ["*"]}]', 400, None),
        ('"https://example.com/h"', 400, None),
        ("null", 400, None),
        (b'{"url": "https://example.com/\xff", "events": ["*"]}', 400, None),
    ],
)
def test_create_refuses_a_body_that_is_not_a_json_object(api, raw, status, code):
    error = error_of(api.post(WEBHOOKS, raw=raw), status)

    if code:
        assert error["code"] == code
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("depth, field", [(200, "headers"), (100_000, None)])
def test_create_refuses_json_nested_too_deeply(api, depth, field):
    raw = '{"url": "https://example.com/h", "events": ["*"], "headers": {"X-A": '
    raw += "[" * depth + "]" * depth + "}}"

    error_of(api.post(WEBHOOKS, raw=raw), 400, code="too_deep", field=field)
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("raw", ["{", "[]", '{"name": NaN}', "null"])
def test_patch_refuses_a_body_that_is_not_a_json_object(api, client, webhook, api_key, raw):
    before = stored(webhook)

    response = client.patch(
        url_of(webhook),
        raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {api_key}"},
    )

    error_of(response, 400)
    assert stored(webhook) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""],
)
def test_a_body_that_is_not_declared_json_is_415(api, content_type):
    response = api.post(WEBHOOKS, raw=json.dumps(VALID), content_type=content_type)

    error_of(response, 415, code="unsupported_media_type")
    assert not Webhook.objects.exists()


def test_a_body_over_the_upload_limit_is_413(api):
    response = api.post(WEBHOOKS, VALID | {"description": "d" * 2 * 1024 * 1024})

    error_of(response, 413, code="too_large")
    assert not Webhook.objects.exists()


def test_json_with_a_charset_is_accepted(api):
    response = api.post(
        WEBHOOKS, raw=json.dumps(VALID), content_type="application/json; charset=utf-8"
    )

    assert response.status_code == 201, response.content


def test_patch_with_the_wrong_content_type_is_415_and_changes_nothing(client, webhook, api_key):
    before = stored(webhook)

    response = client.patch(
        url_of(webhook),
        json.dumps({"name": "x"}),
        content_type="text/plain",
        headers={"Authorization": f"Bearer {api_key}"},
    )

    error_of(response, 415, code="unsupported_media_type")
    assert stored(webhook) == before


def test_an_unknown_path_under_the_api_is_404(api):
    assert api.get("/api/v1/nothing-here").status_code == 404


def test_a_wrong_method_is_405(api, webhook):
    response = api.client.put(
        url_of(webhook),
        "{}",
        content_type="application/json",
        headers={"Authorization": f"Bearer {api.key}"},
    )

    error_of(response, 405, code="method_not_allowed")
    assert set(response["Allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


def test_the_api_root_answers_in_the_envelope(api, db):
    error_of(api.get("/api/"), 404, code="not_found")


@pytest.mark.parametrize("action", ["", "/stats"])
def test_an_unknown_query_parameter_is_refused_naming_it(api, webhook, action):
    response = api.get(url_of(webhook, action), {"windw": "7d"})

    error = error_of(response, 422, code="invalid", field="windw")
    assert "unknown" in error["message"]


def test_an_unknown_query_parameter_is_refused_after_the_key_is_checked(client, webhook):
    response = client.get(url_of(webhook), {"x": "1"})

    error_of(response, 401, code="unauthorized")


def test_actions_need_no_body_and_no_content_type(api, client, webhook):
    headers = {"Authorization": f"Bearer {api.key}"}

    for action, status in (("/retry-failed", 202), ("/test", 202), ("/rotate-secret", 200)):
        response = client.generic("POST", url_of(webhook, action), b"", headers=headers)
        assert response.status_code == status, (action, response.content)


# --- OpenAPI ----------------------------------------------------------------------

API_PATHS = {
    "/api/v1/webhooks": {"get", "post"},
    "/api/v1/webhooks/{webhook_id}": {"get", "patch", "delete"},
    "/api/v1/webhooks/{webhook_id}/rotate-secret": {"post"},
    "/api/v1/webhooks/{webhook_id}/test": {"post"},
    "/api/v1/webhooks/{webhook_id}/stats": {"get"},
    "/api/v1/webhooks/{webhook_id}/retry-failed": {"post"},
    "/api/v1/events": {"post"},
    "/api/v1/events/{event_id}": {"get"},
    "/api/v1/deliveries": {"get"},
    "/api/v1/deliveries/{delivery_id}": {"get"},
    "/api/v1/deliveries/{delivery_id}/retry": {"post"},
}


def test_the_openapi_schema_lists_every_endpoint(client, db):
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "Herald API"
    for path, methods in API_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path
    for path, operations in schema["paths"].items():
        assert path.startswith("/api/v1/")
        for operation in operations.values():
            assert operation.get("security"), path  # every endpoint needs the key


def test_the_openapi_schema_describes_bearer_keys_and_the_error_envelope(client, db):
    schema = client.get("/api/openapi.json").json()

    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    create = schema["paths"]["/api/v1/webhooks"]["post"]
    assert "201" in create["responses"]
    body_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"url", "events"}
    assert body.get("additionalProperties") is False
    assert "ErrorOut" in schema["components"]["schemas"]


def test_every_operation_documents_its_errors_with_the_envelope(client, db):
    schema = client.get("/api/openapi.json").json()
    envelope = schema["components"]["schemas"]["ErrorDetail"]
    assert set(envelope["required"]) == {"code", "message"}

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            assert operation.get("summary"), where
            if set(operation["tags"]) & {"webhooks", "events", "deliveries"}:
                assert operation.get("description"), where
            responses = operation["responses"]
            errors = {int(status) for status in responses if int(status) >= 400}
            assert {401, 422, 429} <= errors, where
            if "{" in path:
                assert 404 in errors, where
            if "requestBody" in operation:
                assert {400, 413, 415, 422} <= errors, where
            for status in errors:
                response = responses[str(status)]
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorOut", (where, status)
                # Herald's own words, not just the HTTP reason phrase.
                assert "`" in response["description"], (where, status)
            assert "Retry-After" in responses["429"]["headers"], where
            assert "WWW-Authenticate" in responses["401"]["headers"], where


def test_the_schema_states_the_rules_validation_enforces(client, db):
    components = client.get("/api/openapi.json").json()["components"]["schemas"]
    create, patch = components["WebhookIn"], components["WebhookPatch"]

    events = create["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, 100)
    assert events["items"]["pattern"].startswith("^")
    assert create["properties"]["url"]["maxLength"] == 2048
    assert create["properties"]["headers"]["maxProperties"] == 20
    # A partial update: every field optional, none nullable but the style and the rate limit.
    assert "required" not in patch
    for name, field in patch["properties"].items():
        nullable = "anyOf" in field and {"type": "null"} in field["anyOf"]
        assert nullable == (name in {"signature_style", "rate_limit"}), name
        assert "default" not in field, name
    assert components["EventIn"]["properties"]["type"]["maxLength"] == 100


def test_the_docs_page_renders_without_a_cdn(client, db):
    response = client.get("/api/docs")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/openapi.json" in page
    assert "cdn.jsdelivr" not in page
    assert "unpkg.com" not in page
    # Swagger UI itself is served from Herald's own static files.
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert client.get(asset).status_code == 200, asset

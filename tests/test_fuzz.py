"""The API fuzzed against its own OpenAPI schema (schemathesis).

Every operation in /api/openapi.json gets a bounded number of generated
requests, valid and invalid by the schema, sent in-process to the real Django
WSGI application with a real API key. Each answer must not be a 5xx, must have
a status the operation declares, and must match the declared content type,
headers and body schema (the error envelope included); requests the schema
calls invalid must be refused with a 4xx.

Checks: schemathesis's defaults (not_a_server_error, status_code_conformance,
content_type_conformance, response_headers_conformance,
response_schema_conformance, negative_data_rejection, missing_required_header,
unsupported_method, …) except positive_data_acceptance. The schema states the
syntax; validation also enforces what no JSON Schema says (a URL's syntax and
that it is no private address, reserved header names, that a `webhook` filter
names an existing webhook, that the Idempotency-Key header and body field
agree, that a cursor is one the API returned), so schema-valid input may
rightly be a 422.

Database: the requests run in this thread on the test's own connection, so the
`db` fixture's transaction wraps them all (and rolls everything back), like
Django's test client. `InProcessApp` keeps Django's per-request
`close_old_connections` off for that reason, as the test client does: it
would otherwise drop the connection in the middle of the test's transaction.
"""

import os
import zlib

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from deliveries.models import Delivery, DeliveryAttempt
from deliveries.publishing import publish
from monitoring.models import AlertRule
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from webhooks.models import PlatformKey

# Examples per operation: 50, the same ones every run (about 25 s in all), so
# that the suite is reproducible. HERALD_FUZZ_EXAMPLES=500 hunts longer, with
# fresh random examples each time.
HUNT = os.environ.get("HERALD_FUZZ_EXAMPLES")
MAX_EXAMPLES = int(HUNT or 50)


class InProcessApp:
    """Django's WSGI handler for in-process calls inside a test transaction."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


schema = schemathesis.openapi.from_wsgi("/api/openapi.json", InProcessApp())


@pytest.fixture
def fuzz_world(db, settings):
    """An organization with a key, webhooks, an event and deliveries in every
    state, and the ids the path parameters can point at."""
    # The fuzzer sends hundreds of requests with one key within seconds.
    settings.HERALD_API_RATE_LIMIT = 0
    settings.HERALD_API_PUBLISH_RATE_LIMIT = 0
    settings.HERALD_PLATFORM_RATE_LIMIT = 0
    org = OrganizationFactory()
    webhook = WebhookFactory(organization=org, headers={"X-Team": "growth"})
    paused = WebhookFactory(organization=org, status="paused")
    event = publish(org, "person.created", {"name": "Zoë", "tags": ["a"], "n": 1.5}).event
    failed = Delivery.objects.get(event=event, webhook=webhook)
    Delivery.objects.filter(pk=failed.pk).update(
        status="failed", attempts=1, last_status_code=500, completed_at=timezone.now()
    )
    DeliveryAttempt.objects.create(
        delivery=failed,
        number=1,
        started_at=timezone.now(),
        duration_ms=12,
        request_headers={"content-type": "application/json", "webhook-id": event.public_id},
        request_body='{"id":"x"}',
        response_status=500,
        response_headers={"content-type": "text/plain"},
        response_body="boom",
        error_kind="http_status",
        error_message="HTTP 500",
    )
    DeliveryAttempt.objects.create(
        delivery=failed,
        number=2,
        trigger="manual",
        started_at=timezone.now(),
        duration_ms=5000,
        error_kind="timeout",
        error_message="timed out",
    )
    pending = Delivery.objects.get(event=event, webhook=paused)
    rule = AlertRule.objects.create(
        organization=org, webhook=webhook, metric="success_rate", threshold=0.9
    )
    # The other organization's objects: never reachable with this key.
    other = OrganizationFactory()
    WebhookFactory(organization=other)
    publish(other, "person.created", {})
    # The organizations the platform operations may name (and delete), by
    # either id: not the one whose key the other operations use.
    customers = [OrganizationFactory(external_id=f"cust-{i}") for i in range(2)]
    return {
        "key": api_key_for(org),
        "platform_key": PlatformKey.issue("fuzz")[1],
        "ids": {
            "org": [customers[0].public_id, customers[1].external_id],
            "webhook_id": [webhook.public_id, paused.public_id],
            "event_id": [event.public_id],
            "delivery_id": [failed.public_id, pending.public_id],
            "rule_id": [rule.public_id],
        },
    }


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=not HUNT,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_the_api_conforms_to_its_schema(case, fuzz_world):
    # Generated ids name nothing (a 404): point two thirds of them at real
    # objects, chosen by the generated value so a failure replays the same way.
    for name, known in fuzz_world["ids"].items():
        generated = (case.path_parameters or {}).get(name)
        if generated is not None:
            choice = zlib.crc32(str(generated).encode("utf-8", "surrogatepass")) % (len(known) + 1)
            if choice < len(known):
                case.path_parameters[name] = known[choice]

    # The key replaces the generated bearer token; a case that leaves the
    # header out on purpose (a negative case) must get its 401.
    if "Authorization" in (case.headers or {}):
        platform = case.path.startswith("/api/v1/organizations")
        key = fuzz_world["platform_key" if platform else "key"]
        case.headers["Authorization"] = f"Bearer {key}"

    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_every_path_parameter_can_name_a_real_object(fuzz_world):
    """A new route's ids must point at real objects too, or the fuzzer only
    ever sees its 404: add them to fuzz_world."""
    names = {
        parameter["name"]
        for operations in schema.raw_schema["paths"].values()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path"
    }
    assert names <= set(fuzz_world["ids"]), sorted(names - set(fuzz_world["ids"]))

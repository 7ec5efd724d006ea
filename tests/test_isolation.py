"""Tenant isolation, proven over every route (SPEC §5).

The walker reads the URL configuration (django.urls.get_resolver), so a new
route is covered the day it is added. It fills each path parameter, by its
name, with an object of organization B, and calls the route with several
methods as

- organization A: its API key for /api/ routes, a logged-in owner of A for
  every other route (the dashboard);
- a platform key acting for organization A (`Herald-Organization`), for the
  organization-scoped /api/ routes;
- a portal session of organization A (a browser that opened a portal link),
  for every route: the portal's pages, and the API it must not open;
- an anonymous caller;
- for /api/ routes, a logged-in member of A without a key (a dashboard
  session must not open the API).

The platform-only routes (/api/v1/organizations…) reach every organization
by design: there, an organization key gets a 403 and anything without a
platform key a 401 (their own tests: tests/test_platform.py).

Organization A must get a 404 (or a 405 for a method the route does not
take) for any route that names one of B's objects, and never a page or an
answer that contains B's data anywhere; anonymous callers get a 401 from the
API and a redirect to the login page from the dashboard. Afterwards B's rows,
in every table that belongs to an organization, are exactly as before.

A route whose path parameter has no entry in OBJECTS fails the test: give the
walker a way to make one of B's objects for it.
"""

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.db import models
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Replay
from deliveries.publishing import publish
from monitoring.models import Alert, AlertRule
from tests.factories import MembershipFactory, OrganizationFactory, WebhookFactory, api_key_for
from webhooks import ids, portal
from webhooks.models import ApiKey, Membership, Organization, PlatformKey

# What the walker leaves out, each with the reason: whole includes...
EXCLUDED_INCLUDES = {
    "admin/": "Django's admin: staff only, with its own login; not tenant-scoped by design",
    "admin/rq/": "the queue admin (django-rq) inside the admin: staff only",
}
# ...and single routes.
EXCLUDED = {
    "api/openapi.json": "the API schema: public by design, holds no data",
    "api/docs": "the API's browsable docs: public by design, holds no data",
    "api/": "the API root: a JSON 404 pointing at the docs, holds no data",
    "^api/(?P<rest>.*)$": "the JSON 404 for unknown /api/ paths: answers everyone alike",
    "login/": "the login page itself: public by design",
    "favicon.ico": "a redirect to the static icon: public by design, holds no data",
    "healthz": "the health check: public by design, holds no data (tests/test_health.py)",
    "metrics": "Prometheus metrics: installation-wide totals, no per-organization labels, "
    "behind their own token (tests/test_metrics.py)",
    "portal/theme.css": "the portal's colours: public by design, holds no data",
    "portal/<str:token>/": "a portal link: whoever holds it is signed in, by design "
    "(tests/test_portal.py)",
    "staff/": "the staff console: Django staff only, installation-wide by design "
    "(tests/test_staff.py)",
    "staff/orgs/<str:org>/": "the staff console: Django staff only (tests/test_staff.py)",
    "staff/leave/": "the staff console: Django staff only (tests/test_staff.py)",
}
# Static files are not routes: whitenoise serves them as middleware.

API_METHODS = ("GET", "POST", "PATCH", "DELETE")
DASHBOARD_METHODS = ("GET", "POST")


@dataclass
class World:
    org_a: Organization
    org_b: Organization
    key_a: str
    platform_key: str
    member_a: object
    objects: dict  # path parameter name -> one of B's ids
    markers: list  # strings that only B's data contains


def make_world() -> World:
    org_a = OrganizationFactory(name="Alpha Org")
    org_b = OrganizationFactory(name="Bravo Org Zq9")
    member_a = MembershipFactory(organization=org_a, role=Membership.Role.OWNER).user
    MembershipFactory(organization=org_b, role=Membership.Role.OWNER)
    WebhookFactory(organization=org_a, name="Alpha hook", url="https://alpha.example/hook")
    publish(org_a, "alpha.created", {"n": 1})

    webhook_b = WebhookFactory(
        organization=org_b,
        name="Bravo hook Zq9",
        url="https://bravo-zq9.example/hook",
        description="Bravo's endpoint",
    )
    event_b = publish(org_b, "bravo_zq9.created", {"secret": "bravo-payload-zq9"}).event
    delivery_b = Delivery.objects.get(event=event_b)
    Delivery.objects.filter(pk=delivery_b.pk).update(
        status="failed", attempts=1, last_status_code=500, completed_at=timezone.now()
    )
    DeliveryAttempt.objects.create(
        delivery=delivery_b,
        number=1,
        started_at=timezone.now(),
        duration_ms=20,
        request_headers={"webhook-id": event_b.public_id},
        request_body='{"secret":"bravo-payload-zq9"}',
        response_status=500,
        response_body="bravo-response-zq9",
        error_kind="http_status",
    )
    key_b, raw_key_b = ApiKey.issue(org_b, name="Bravo key Zq9")
    replay_b = Replay.objects.create(
        organization=org_b, webhook=webhook_b, since=timezone.now() - timedelta(days=1)
    )
    rule_b = AlertRule.objects.create(
        organization=org_b, webhook=webhook_b, metric="failed_deliveries", threshold=3
    )
    alert_b = Alert.objects.create(
        organization=org_b,
        rule=rule_b,
        webhook=webhook_b,
        metric="failed_deliveries",
        value=9,
        threshold=3,
        message="Bravo alert Zq9",
    )
    return World(
        org_a=org_a,
        org_b=org_b,
        key_a=api_key_for(org_a),
        platform_key=PlatformKey.issue("walker")[1],
        member_a=member_a,
        objects={
            "webhook_id": webhook_b.public_id,
            "event_id": event_b.public_id,
            "delivery_id": delivery_b.public_id,
            "key_id": key_b.public_id,
            "rule_id": rule_b.public_id,
            "alert_id": alert_b.public_id,
            "replay_id": replay_b.public_id,
            "org_id": org_b.public_id,
            "organization_id": org_b.public_id,
            "org": org_b.public_id,
        },
        markers=[
            org_b.public_id,
            org_b.name,
            webhook_b.public_id,
            webhook_b.name,
            webhook_b.url,
            webhook_b.secret,
            event_b.public_id,
            "bravo_zq9.created",
            "bravo-payload-zq9",
            "bravo-response-zq9",
            delivery_b.public_id,
            key_b.public_id,
            key_b.prefix,
            raw_key_b,
            rule_b.public_id,
            alert_b.public_id,
            alert_b.message,
            replay_b.public_id,
        ],
    )


# --- the routes -------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    pattern: str  # the whole route, as the URL configuration spells it
    params: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.pattern.lstrip("^").startswith("api/")

    @property
    def is_platform_only(self) -> bool:
        return self.pattern.startswith("api/v1/organizations")

    def url(self, values: dict) -> str:
        def fill(match):
            return values[match.group("name")]

        path = re.sub(r"<(?:[^>:]+:)?(?P<name>[^>]+)>", fill, self.pattern)
        path = re.sub(r"\(\?P<(?P<name>\w+)>[^)]*\)", fill, path)
        path = path.removeprefix("^").removesuffix("$").replace("^", "")
        assert not re.search(r"[()\[\]*+?\\|$]", path), f"cannot build a URL from {self.pattern}"
        return "/" + path


def _params(pattern) -> list[str]:
    regex = pattern.regex.pattern
    return re.findall(r"\(\?P<(\w+)>", regex)


def walk(patterns, prefix: str = "", params: tuple = ()):
    for entry in patterns:
        text = prefix + str(entry.pattern)
        found = params + tuple(_params(entry.pattern))
        if isinstance(entry, URLResolver) and text not in EXCLUDED_INCLUDES:
            yield from walk(entry.url_patterns, text, found)
        elif isinstance(entry, URLPattern) and text not in EXCLUDED:
            yield Route(text, found)


def all_routes() -> list[Route]:
    unique = {}
    for route in walk(get_resolver().url_patterns):
        unique.setdefault(route.pattern, route)
    return list(unique.values())


ROUTES = all_routes()


def test_the_walker_sees_the_api_and_everything_else():
    patterns = {route.pattern for route in ROUTES}
    assert "api/v1/webhooks/<webhook_id>" in patterns
    assert "api/v1/deliveries/<delivery_id>/retry" in patterns
    assert "api/v1/events/<event_id>" in patterns
    assert not patterns & set(EXCLUDED)
    assert not any(p.startswith(tuple(EXCLUDED_INCLUDES)) for p in patterns)
    # Everything outside /api/ is walked as a dashboard page (session login).
    assert {route.is_api for route in ROUTES} == {True, False}
    assert all(route.is_api == route.pattern.startswith("api/") for route in ROUTES)


def test_every_path_parameter_has_an_object_to_point_at(db):
    world = make_world()
    missing = {
        (route.pattern, name)
        for route in ROUTES
        for name in route.params
        if name not in world.objects
    }
    assert not missing, (
        "these routes take parameters the isolation walker cannot fill; add them to "
        f"make_world()'s objects (or to EXCLUDED with a reason): {sorted(missing)}"
    )


# --- what B owns ------------------------------------------------------------------


def _organization_path(model, depth: int = 0) -> str | None:
    """The lookup from `model` to its Organization, e.g. 'delivery__organization'."""
    if model is Organization:
        return "pk"
    if depth > 2:
        return None
    for field in model._meta.get_fields():
        if isinstance(field, models.ForeignKey) and field.related_model is Organization:
            return field.name
    for field in model._meta.get_fields():
        if isinstance(field, models.ForeignKey) and not field.null:
            deeper = _organization_path(field.related_model, depth + 1)
            if deeper is not None:
                return f"{field.name}__{deeper}"
    return None


def snapshot(org: Organization) -> dict:
    """Every row that belongs to the organization, in every installed model,
    and its members' user rows."""
    rows = {}
    for model in apps.get_models():
        path = _organization_path(model)
        if path is None:
            continue
        lookup = {"pk": org.pk} if path == "pk" else {path: org}
        rows[model._meta.label] = list(model.objects.filter(**lookup).order_by("pk").values())
    users = Membership.objects.filter(organization=org).values_list("user", flat=True)
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    rows["users"] = list(user_model.objects.filter(pk__in=users).order_by("pk").values())
    return rows


# --- the walk ---------------------------------------------------------------------


# The least body an operation takes, where `{}` is not enough.
ACCEPTED_BODIES = {"api/v1/webhooks/<webhook_id>/replay": {"since": "2026-01-01T00:00:00Z"}}


def attack_body(world: World) -> dict:
    """Sent with every POST and PATCH: B's ids under the names a form or a
    body might read them from, as an attacker would try."""
    names = {name.removesuffix("_id"): value for name, value in world.objects.items()}
    return {**names, **world.objects, "organization": world.org_b.public_id}


def call(client: Client, method: str, url: str, body: dict, **extra):
    if method == "GET":
        return client.get(url, **extra)
    if method == "DELETE":
        return client.delete(url, **extra)
    if url.startswith("/api/"):
        return client.generic(
            method, url, json.dumps(body), content_type="application/json", **extra
        )
    if method == "POST":
        return client.post(url, body, **extra)
    return client.generic(method, url, "", **extra)


def leaked(response, request_text: str, markers: list[str]) -> list[str]:
    """B's strings in the answer, other than those the request itself sent
    (a 404 page may repeat the path it was asked for)."""
    text = response.content.decode("utf-8", "replace") + json.dumps(dict(response.headers))
    return [m for m in markers if m and m in text and m not in request_text]


def check(route: Route, method: str, who: str, response, request_text: str, world, login_url):
    where = f"{who}: {method} {route.pattern} → {response.status_code}"
    assert response.status_code < 500, where
    assert not leaked(response, request_text, world.markers), where
    status = response.status_code
    without_api_key = ("anonymous", "session without key", "portal session of A")
    if who in without_api_key and route.is_api:
        assert status in (401, 405), where
        if status == 401:
            assert response.json()["error"]["code"] == "unauthorized", where
    elif who == "anonymous":
        assert status in (302, 405), where
        if status == 302:
            location = urlsplit(response["Location"]).path
            assert location == login_url, (where, response["Location"])
    elif route.is_platform_only:
        # An organization key where only a platform key may go.
        assert status in (403, 405), where
        if status == 403:
            assert response.json()["error"]["code"] == "forbidden", where
    elif route.params:
        # Organization A asking for one of B's objects: exactly as if it
        # did not exist; never a 403 that would confirm that it does.
        assert status in (404, 405), where


@pytest.fixture
def world(db, settings):
    settings.HERALD_API_RATE_LIMIT = 0
    settings.HERALD_PLATFORM_RATE_LIMIT = 0
    settings.HERALD_API_PUBLISH_RATE_LIMIT = 0
    settings.HERALD_PLATFORM_PUBLISH_RATE_LIMIT = 0
    return make_world()


def portal_client(organization: Organization) -> Client:
    """A browser that opened a portal link of `organization`."""
    _, token = portal.create(organization)
    client = Client()
    response = client.get(f"/portal/{token}/")
    assert response.status_code == 302, response.content
    return client


def nonexistent(objects: dict) -> dict:
    """Ids of the same kinds as B's that name nothing."""
    return {name: ids.new_public_id(value.partition("_")[0]) for name, value in objects.items()}


def test_no_route_shows_or_changes_another_organizations_data(world):
    login_url = urlsplit(resolve_url(settings.LOGIN_URL)).path
    before = snapshot(world.org_b)
    attack = attack_body(world)
    attack_text = json.dumps(attack)
    anonymous, member = Client(), Client()
    portal_a = portal_client(world.org_a)
    key_a = {"headers": {"Authorization": f"Bearer {world.key_a}"}}
    platform_a = {
        "headers": {
            "Authorization": f"Bearer {world.platform_key}",
            "Herald-Organization": world.org_a.public_id,
        }
    }
    assert ROUTES

    walked = 0
    for route in ROUTES:
        missing = [name for name in route.params if name not in world.objects]
        if missing:
            pytest.fail(f"{route.pattern}: no object for {missing}; see make_world()")
        url = route.url(world.objects)
        methods = API_METHODS if route.is_api else DASHBOARD_METHODS
        for method in methods:
            member.force_login(world.member_a)
            sent = url + attack_text if method in ("POST", "PATCH") else url
            if route.is_api and route.params and not route.is_platform_only:
                for who, credentials in (
                    ("organization A", key_a),
                    ("platform key for A", platform_a),
                ):
                    # A body the operation accepts, so that the id is looked up...
                    accepted = ACCEPTED_BODIES.get(route.pattern, {})
                    as_a = call(anonymous, method, url, accepted, **credentials)
                    check(route, method, who, as_a, url, world, login_url)
                    # ...and one it may refuse first: then exactly as for an
                    # id that names nothing.
                    attacked = call(anonymous, method, url, attack, **credentials)
                    control_url = route.url(nonexistent(world.objects))
                    control = call(anonymous, method, control_url, attack, **credentials)
                    where = f"{who}: {method} {route.pattern}"
                    assert attacked.status_code == control.status_code, where
                    assert attacked.content == control.content, where
            elif route.is_api:
                as_a = call(anonymous, method, url, attack, **key_a)
                check(route, method, "organization A", as_a, sent, world, login_url)
                if not route.is_platform_only:
                    as_platform = call(anonymous, method, url, attack, **platform_a)
                    check(route, method, "platform key for A", as_platform, sent, world, login_url)
            else:
                as_a = call(member, method, url, attack)
                check(route, method, "organization A", as_a, sent, world, login_url)
            as_portal = call(portal_a, method, url, attack)
            check(route, method, "portal session of A", as_portal, sent, world, login_url)
            if route.is_api:
                session = call(member, method, url, attack)
                check(route, method, "session without key", session, sent, world, login_url)
            anon = call(anonymous, method, url, attack)
            check(route, method, "anonymous", anon, sent, world, login_url)
            walked += 1
        if route.pattern == "logout/":
            portal_a = portal_client(world.org_a)  # signing out ended the portal session too

    # After everything A did (an organization switch included), A's pages
    # still show nothing of B's, and B's data is as it was.
    member.force_login(world.member_a)
    for route in ROUTES:
        if not route.is_api and not route.params:
            for client in (member, portal_a):
                response = client.get(route.url({}))
                assert response.status_code < 500, route.pattern
                assert not leaked(response, "", world.markers), route.pattern
    assert snapshot(world.org_b) == before
    assert walked >= len(ROUTES) * 2

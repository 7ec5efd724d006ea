"""Every page at phone width (SPEC §7: from 360 px wide no page scrolls
sideways; wide tables scroll inside their card; the header keeps the
organization and sign-out reachable), in Debian's chromium, at 390 px and at
360 px, with a demo-like organization: long URLs, long names, every kind of
row. Screenshots land in var/screenshots/phone-*.png."""

import os

import pytest
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event
from deliveries.publishing import Outgoing, publish, publish_many
from monitoring.models import Alert, AlertRule
from tests.browser import PASSWORD, SCREENSHOTS, sign_in, skip_without_chromium
from tests.factories import WebhookFactory
from webhooks.models import ApiKey

skip_without_chromium()

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WIDTHS = (390, 360)


@pytest.fixture
def busy_org(admin):
    """An organization with something on every page."""
    org = admin.organization
    admin.user.is_staff = True
    admin.user.email = "owner-with-a-rather-long-address@customer-example.com"
    admin.user.save()
    long_url = "https://hooks.a-rather-long-customer-domain-name.example.com/webhooks/herald/" + (
        "x" * 60
    )
    webhook = WebhookFactory(
        organization=org,
        name="Orders and invoices for the accounting system",
        url=long_url,
        event_patterns=["order.*", "invoice.*", "customer.subscription.*"],
        headers={"X-Customer-Tenant-Identifier": "t" * 40},
    )
    event = publish(
        org, "customer.subscription.trial_will_end", {"customer": {"id": "c" * 80}}
    ).event
    delivery = Delivery.objects.get(event=event)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempts=1, last_status_code=503, last_latency_ms=10234
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=timezone.now(),
        duration_ms=10234,
        request_headers={"webhook-id": event.public_id, "webhook-signature": "v1," + "s" * 88},
        request_body='{"data":{"customer":{"id":"' + "c" * 300 + '"}}}',
        response_status=503,
        response_headers={"Retry-After": "120", "X-Upstream": "u" * 120},
        response_body="<html>" + "Service Unavailable " * 30 + "</html>",
        error_kind="http_status",
        error_message="HTTP 503",
    )
    publish_many([Outgoing(org.pk, "herald.delivery.failing", {"delivery": delivery.public_id})])
    rule = AlertRule.objects.create(
        organization=org, webhook=webhook, metric="failed_deliveries", threshold=3
    )
    Alert.objects.create(
        organization=org,
        rule=rule,
        webhook=webhook,
        metric="failed_deliveries",
        value=12,
        threshold=3,
        message="Orders and invoices for the accounting system: 12 failed deliveries in 1 h",
    )
    ApiKey.issue(org, name="the billing service's production key, rotated yearly")
    return webhook, event, delivery, rule


def pages(webhook, event, delivery, rule) -> dict[str, str]:
    return {
        "overview": "/",
        "webhook": f"/webhooks/{webhook.public_id}/",
        "webhook-new": "/webhooks/new/",
        "webhook-edit": f"/webhooks/{webhook.public_id}/edit/",
        "webhook-delete": f"/webhooks/{webhook.public_id}/delete/",
        "delivery": f"/deliveries/{delivery.public_id}/",
        "events": "/events/?herald=1",
        "event": f"/events/{event.public_id}/",
        "alerts": "/alerts/",
        "rule": f"/alerts/rules/{rule.public_id}/",
        "api-keys": "/api-keys/",
        "staff": "/staff/",
        "not-found": "/no-such-page/",
    }


def overflow(tab) -> tuple[int, int]:
    return tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_no_page_scrolls_sideways_on_a_phone(chromium, live_server, admin, busy_org):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    too_wide = []
    for width in WIDTHS:
        context = chromium.new_context(viewport={"width": width, "height": 844})
        tab = context.new_page()
        tab.goto(f"{live_server.url}/login/")
        record(too_wide, tab, width, "login")
        tab.fill("#id_username", admin.user.username)
        tab.fill("#id_password", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(f"{live_server.url}/")
        for name, path in pages(*busy_org).items():
            tab.goto(f"{live_server.url}{path}")
            record(too_wide, tab, width, name)
        # The replay dialog, open.
        tab.goto(f"{live_server.url}/webhooks/{busy_org[0].public_id}/")
        tab.click("#replay-open")
        record(too_wide, tab, width, "replay-dialog")
        # The header keeps the organization and sign-out in reach.
        tab.goto(f"{live_server.url}/")
        assert tab.locator(".topbar").get_by_text("Sign out").is_visible()
        assert tab.locator(".topbar").get_by_text(admin.organization.name).is_visible()
        context.close()
    assert too_wide == [], "\n".join(too_wide)


def record(too_wide: list, tab, width: int, name: str) -> None:
    tab.screenshot(path=SCREENSHOTS / f"phone-{width}-{name}.png", full_page=True)
    scroll_width, inner_width = overflow(tab)
    if scroll_width > inner_width:
        too_wide.append(f"{name} at {width}px: {scroll_width} > {inner_width}")


def test_a_wide_table_scrolls_inside_its_card(chromium, live_server, admin, busy_org):
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    tab = context.new_page()
    sign_in(tab, live_server, admin.user)
    tab.goto(f"{live_server.url}/events/?herald=1")
    scroller = tab.locator("#events").locator(
        "xpath=ancestor::div[contains(@class,'table-scroll')]"
    )
    inner, outer = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert inner > outer  # the table is wider than the phone, and scrolls where it is
    assert overflow(tab)[0] <= overflow(tab)[1]
    assert Event.objects.exists()
    context.close()


def test_the_staff_console_shows_each_organization_as_a_card(
    chromium, live_server, admin, busy_org
):
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    tab = context.new_page()
    sign_in(tab, live_server, admin.user)
    tab.goto(f"{live_server.url}/staff/")
    table = tab.locator("#organizations")
    # Every figure within the phone's width, under its label: nothing to scroll to.
    inner, outer = table.evaluate("e => [e.scrollWidth, e.parentElement.clientWidth]")
    assert inner <= outer
    row = table.locator("tbody tr").filter(has_text=admin.organization.name)
    pending = row.locator("td[data-label=Pending]")
    assert pending.is_visible()
    label = pending.evaluate("e => getComputedStyle(e, '::before').content")
    assert label == '"Pending"'
    assert row.get_by_role("button", name="Open").is_visible()
    tab.screenshot(path=SCREENSHOTS / "phone-390-staff-cards.png", full_page=True)
    context.close()

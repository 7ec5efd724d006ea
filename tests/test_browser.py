"""The dashboard in a real browser: Debian's chromium driven by Playwright,
against a live server, with deliveries going to a real local receiver."""

import os
import re

import pytest
from playwright.sync_api import expect

from deliveries.models import Delivery
from deliveries.publishing import publish
from tests.browser import shot, sign_in, skip_without_chromium
from tests.factories import MembershipFactory
from tests.receiver import Answer
from webhooks.models import Membership, Webhook

skip_without_chromium()

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_day_with_herald(page, live_server, admin, receiver, pump):
    org = admin.organization
    sign_in(page, live_server, admin.user)
    assert page.locator("text=No webhooks yet").is_visible()
    shot(page, "01-empty-overview")

    # Create a webhook through the form; a bad URL first.
    page.click("text=Create your first webhook")
    page.fill("#id_name", "Orders")
    page.fill("#id_url", "ftp://nope")
    page.fill("#id_patterns", "order.*")
    page.fill("#id_max_attempts", "1")
    page.click("button:has-text('Create webhook')")
    assert "not a valid http(s) URL" in page.locator("#url-error").inner_text()
    shot(page, "02-form-error")
    page.fill("#id_url", receiver.url("/hook"))
    page.click("button:has-text('Create webhook')")
    page.wait_for_url(re.compile(r"/webhooks/wh_\w+/$"))
    webhook = Webhook.objects.get(organization=org)
    assert webhook.event_patterns == ["order.*"] and webhook.max_attempts == 1

    # Events published while no worker runs: the log shows them pending and polls.
    receiver.script("/hook", Answer(status=500))
    for i, event_type in enumerate(["order.created", "order.created", "order.paid"]):
        publish(org, event_type, {"order": {"id": i}})
    page.reload()
    assert page.locator("#delivery-log[data-pending=yes]").count() == 1
    assert page.locator("#delivery-log tr[data-status=pending]").count() == 3
    page.evaluate("window.__noReload = true")

    pump.start()
    page.wait_for_selector("#delivery-log tr[data-status=failed]")
    # Locators, not wait_for_function: its string is eval'd in the page, which
    # the pages' Content-Security-Policy forbids.
    expect(page.locator("#delivery-log tr[data-status=succeeded]")).to_have_count(2)
    page.wait_for_selector("#delivery-log[data-pending=no]")
    assert page.evaluate("window.__noReload") is True  # arrived without a reload
    shot(page, "03-deliveries-arrived")

    # Metrics appear.
    page.reload()
    assert page.locator("#stat-success").inner_text() == "66.7%"
    assert page.locator("#stat-failed").inner_text() == "1"
    assert page.locator("svg.chart").count() == 1

    # Filter the log (each change replaces any filter request still in flight).
    def rows_shown(count):
        expect(page.locator("#delivery-log tbody tr")).to_have_count(count)
        expect(page.locator(".filters.htmx-request")).to_have_count(0)

    page.select_option("#filter-status", "failed")
    rows_shown(1)
    assert page.locator("#delivery-log tbody tr").get_attribute("data-status") == "failed"
    page.select_option("#filter-status", "")
    rows_shown(3)
    page.select_option("#filter-type", "order.paid")
    rows_shown(1)
    page.select_option("#filter-type", "")
    rows_shown(3)

    # Retry the failed delivery: the row turns succeeded in place.
    page.evaluate("window.__noReload = true")
    failed = Delivery.objects.get(status="failed")
    row = f"#delivery-{failed.public_id}"
    page.click(f"{row} button:has-text('Retry')")
    page.wait_for_selector(f"{row}[data-status=succeeded]")
    assert page.evaluate("window.__noReload") is True
    shot(page, "04-retried")

    # Reveal and rotate the secret.
    old_secret = webhook.secret
    page.click("#reveal-secret")
    page.wait_for_selector("#rotate-secret:not(.htmx-request)")
    expect(page.locator("#secret-value")).not_to_contain_text("•")
    assert page.locator("#secret-value").inner_text() == old_secret
    page.click("#rotate-secret")
    expect(page.locator("#secret-value")).not_to_have_text(old_secret)
    webhook.refresh_from_db()
    assert page.locator("#secret-value").inner_text() == webhook.secret != old_secret

    # Pause and resume.
    page.click("#pause")
    page.wait_for_selector("#webhook-status:has-text('paused')")
    assert Webhook.objects.get(pk=webhook.pk).status == "paused"
    shot(page, "05-paused")
    page.click("#resume")
    page.wait_for_selector("#webhook-status:has-text('active')")

    # The overview shows the webhook with its figures.
    page.click("nav.mainnav >> text=Webhooks")
    assert page.locator("#webhooks tbody tr").count() == 1
    assert "75%" in page.locator("#webhooks tbody tr").inner_text()  # 3 of 4 attempts
    shot(page, "06-overview")


def test_a_viewer_sees_no_controls(page, live_server, admin, receiver):
    viewer = MembershipFactory(organization=admin.organization, role=Membership.Role.VIEWER)
    webhook = Webhook.objects.create(
        organization=admin.organization, url=receiver.url(), event_patterns=["*"]
    )
    sign_in(page, live_server, viewer.user)
    page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
    assert page.locator("#pause").count() == 0
    assert page.locator("#reveal-secret").count() == 0
    assert page.locator("text=Create webhook").count() == 0

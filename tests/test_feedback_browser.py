"""What the dashboard tells people, in a real browser (Debian's chromium):
flash messages in view with the action that caused them, the 404 page in
the layout, attempt errors as sentences, and the signing secret's hide and
copy. The page fixture fails a test on any Content-Security-Policy refusal."""

import os
import re
import socket

import pytest
from playwright.sync_api import expect

from deliveries.models import Delivery
from deliveries.publishing import publish
from tests.browser import shot, sign_in, skip_without_chromium
from tests.conftest import deliver_due
from webhooks.models import Webhook

skip_without_chromium()

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def in_viewport(page, selector: str) -> bool:
    """Whether the element is entirely within the visible part of the page."""
    box = page.locator(selector).bounding_box()
    height, width = page.viewport_size["height"], page.viewport_size["width"]
    return (
        box is not None
        and box["y"] >= 0
        and box["y"] + box["height"] <= height
        and box["x"] >= 0
        and box["x"] + box["width"] <= width
    )


@pytest.fixture
def webhook(admin, receiver):
    return Webhook.objects.create(
        organization=admin.organization, name="Orders", url=receiver.url(), event_patterns=["*"]
    )


def open_webhook(page, live_server, admin, webhook):
    sign_in(page, live_server, admin.user)
    page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
    page.evaluate("window.__noReload = true")  # gone if the page reloads


def test_an_htmx_actions_message_shows_in_view_at_once(page, live_server, admin, webhook):
    page.set_viewport_size({"width": 1360, "height": 600})
    open_webhook(page, live_server, admin, webhook)
    # The secret's panel is below the fold: scroll to it, as a person would.
    page.locator("#rotate-secret").scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 0

    page.click("#rotate-secret")
    flash = "#messages .flash-success"
    expect(page.locator(flash)).to_contain_text("The previous secret keeps signing until")
    assert in_viewport(page, flash)
    assert page.evaluate("window.__noReload") is True  # with the response, not a page later
    webhook.refresh_from_db()
    expect(page.locator("#secret-value")).to_have_text(webhook.secret)
    expect(page.locator("#previous-secrets")).to_contain_text("keeps signing until")
    shot(page, "feedback-01-rotated")

    # Dismissed with its button.
    page.click(f"{flash} .flash-close")
    expect(page.locator("#messages .flash")).to_have_count(0)

    # Good news also leaves by itself (after data-hide-after seconds).
    page.evaluate("document.getElementById('messages').dataset.hideAfter = '1'")
    page.click("#send-test")
    expect(page.locator(f"{flash} .flash-text")).to_have_text(
        "Test event sent: watch it arrive in the log below."
    )
    assert in_viewport(page, flash)
    expect(page.locator("#delivery-log tbody tr")).to_have_count(1)  # the log refreshed
    expect(page.locator("#messages .flash")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True


def test_a_form_posts_message_shows_once_on_the_page_it_leads_to(page, live_server, admin, webhook):
    open_webhook(page, live_server, admin, webhook)
    page.click("#pause")
    expect(page.locator("#webhook-status")).to_have_text("paused")
    flash = page.locator("#messages .flash-info .flash-text")
    expect(flash).to_have_text("Paused. New events wait as pending until you resume.")
    assert in_viewport(page, "#messages .flash-info")
    page.reload()
    expect(page.locator("#messages .flash")).to_have_count(0)


def test_the_404_page_is_in_the_layout(page, live_server, admin):
    sign_in(page, live_server, admin.user)
    response = page.goto(f"{live_server.url}/webhooks/wh_00000000000000000000000000/")
    assert response.status == 404
    expect(page.locator("#not-found h1")).to_have_text("Page not found")
    expect(page.locator("header.topbar .mainnav")).to_be_visible()
    assert page.locator("link[rel=stylesheet]").count() >= 1
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"
    shot(page, "feedback-02-not-found")
    page.click("text=Back to your webhooks")
    expect(page).to_have_url(f"{live_server.url}/")


def test_the_secret_can_be_copied_and_hidden_again(page, live_server, admin, webhook):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    open_webhook(page, live_server, admin, webhook)
    assert page.locator("#copy-secret").count() == 0  # nothing to copy while masked

    page.click("#reveal-secret")
    expect(page.locator("#secret-value")).to_have_text(webhook.secret)
    page.click("#copy-secret")
    expect(page.locator("#copy-secret")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == webhook.secret
    shot(page, "feedback-03-copied")

    page.click("#hide-secret")
    expect(page.locator("#secret-value")).to_have_text(webhook.masked_secret)
    assert webhook.secret not in page.content()
    expect(page.locator("#reveal-secret")).to_be_visible()
    assert page.locator("#hide-secret, #copy-secret").count() == 0


def test_attempt_errors_read_as_sentences_with_the_raw_text_a_click_away(page, live_server, admin):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook = Webhook.objects.create(
        organization=admin.organization,
        url=f"http://127.0.0.1:{port}/hook",
        event_patterns=["*"],
        max_attempts=1,
    )
    publish(admin.organization, "order.paid", {"id": 1})
    deliver_due()
    delivery = Delivery.objects.get(webhook=webhook)
    sign_in(page, live_server, admin.user)

    page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
    row = page.locator(f"#delivery-{delivery.public_id}")
    expect(row.locator(".failure-sentence")).to_have_text(f"Could not connect to 127.0.0.1:{port}")

    row.locator("a.strong").click()
    attempt = page.locator("#attempt-1")
    expect(attempt.locator(".failure-sentence")).to_have_text(
        f"Connection refused by 127.0.0.1:{port}"
    )
    raw = attempt.locator(".raw-error .error-message")
    expect(raw).to_have_count(1)
    assert not raw.is_visible()  # one click away
    attempt.locator(".raw-error summary").click()
    expect(raw).to_be_visible()
    assert re.search(r"\[Errno 111\] Connection refused", raw.inner_text())
    shot(page, "feedback-04-attempt-error")

"""The portal in a real browser, inside the product's page (SPEC §10): the
README's example page, served from another loopback origin, embeds a portal
link in an iframe; the customer works inside it."""

import os
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deliveries.publishing import publish
from tests.browser import shot, skip_without_chromium
from tests.receiver import Answer
from tests.test_api_client_guide import code_blocks
from webhooks import portal
from webhooks.models import PortalSession, Webhook
from webhooks.organizations import create_organization

skip_without_chromium()
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class ProductPage:
    """The product's webhooks page (README's example), on its own origin:
    GET /?src=URL answers it with URL in the iframe."""

    def __init__(self) -> None:
        (template,) = code_blocks("html", "Use Herald from your product")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                src = parse_qs(urlsplit(self.path).query).get("src", [""])[0]
                body = template.replace("PORTAL_URL", src).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Another origin on the live server's host (another port): the same
        # site, as a product and its Herald under one domain are. Across
        # sites, the portal's cookies need HTTPS (SameSite=None; Secure).
        self.origin = f"http://localhost:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, src: str) -> str:
        return f"{self.origin}/?src={quote(src, safe='')}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def product(settings):
    page = ProductPage()
    settings.HERALD_PORTAL_FRAME_ANCESTORS = [page.origin]
    settings.HERALD_PORTAL_TITLE = "Globex Webhooks"
    yield page
    page.close()


@pytest.fixture
def customer(db):
    return create_organization("Globex", external_id="cus_1234")


def link(live_server, organization, **options) -> str:
    _, token = portal.create(organization, **options)
    return f"{live_server.url}/portal/{token}/"


def test_a_customer_works_in_the_portal_inside_the_products_page(
    page, live_server, product, customer, receiver, pump
):
    url = link(live_server, customer)
    page.goto(product.url(url))
    frame = page.frame_locator("iframe")
    expect(frame.locator("text=No webhooks yet")).to_be_visible()
    expect(frame.locator(".brand")).to_have_text("Globex Webhooks")
    expect(frame.locator("text=API keys")).to_have_count(0)
    shot(page, "portal-01-empty")

    # Create a webhook.
    frame.locator("text=Create your first webhook").click()
    frame.locator("#id_name").fill("Order sync")
    frame.locator("#id_url").fill(receiver.url("/hook"))
    frame.locator("#id_patterns").fill("order.*")
    frame.locator("#id_max_attempts").fill("1")
    frame.locator("button:has-text('Create webhook')").click()
    expect(frame.locator("#webhook-status")).to_have_text("active")
    assert Webhook.objects.get(organization=customer).name == "Order sync"

    # Deliveries arrive, one fails; retry it in place.
    receiver.script("/hook", Answer(status=500))
    for i, event_type in enumerate(["order.created", "order.paid"]):
        publish(customer, event_type, {"order": i})
    inside = page.frames[1]
    inside.goto(inside.url)  # the log now has pending deliveries, and polls
    pump.start()
    expect(frame.locator("#delivery-log tr[data-status=failed]")).to_have_count(1)
    expect(frame.locator("#delivery-log tr[data-status=succeeded]")).to_have_count(1)
    frame.locator("#delivery-log tr[data-status=failed] button:has-text('Retry')").click()
    expect(frame.locator("#delivery-log tr[data-status=succeeded]")).to_have_count(2)
    shot(page, "portal-02-retried")

    # The same link again, in the same iframe: refused, and signed out.
    page.goto(product.url(url))
    expect(page.frame_locator("iframe").locator("h1")).to_have_text("This link has been used")
    shot(page, "portal-03-used")
    page.goto(product.url(f"{live_server.url}/"))
    expect(page.frame_locator("iframe").locator("text=Order sync")).to_have_count(0)


def test_an_expired_link_shows_why(page, live_server, product, customer):
    url = link(live_server, customer)
    PortalSession.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    page.goto(product.url(url))
    expect(page.frame_locator("iframe").locator("h1")).to_have_text("This link has expired")


def test_a_read_only_session_shows_no_buttons_that_change_anything(
    page, live_server, product, customer, receiver
):
    webhook = Webhook.objects.create(
        organization=customer, name="Order sync", url=receiver.url(), event_patterns=["*"]
    )
    publish(customer, "order.created", {})
    page.goto(product.url(link(live_server, customer, read_only=True)))
    frame = page.frame_locator("iframe")
    frame.locator("text=Order sync").click()
    expect(frame.locator("#webhook-status")).to_have_text("active")
    for control in ("#pause", "#reveal-secret", "#retry-all", "text=Send test event", "text=Edit"):
        expect(frame.locator(control)).to_have_count(0)
    # A POST made anyway (the form is not there to submit) is refused.
    status = page.frames[1].evaluate(
        """async (url) => {
            const token = document.body.getAttribute('hx-headers').match(/"X-CSRFToken": "([^"]+)"/)[1];
            const response = await fetch(url, {method: 'POST', headers: {'X-CSRFToken': token}});
            return response.status;
        }""",
        f"/webhooks/{webhook.public_id}/pause/",
    )
    assert status == 403
    assert Webhook.objects.get(pk=webhook.pk).status == Webhook.Status.ACTIVE
    shot(page, "portal-04-read-only")


def test_a_page_outside_the_portal_refuses_to_be_framed(page, live_server, product):
    page.goto(product.url(f"{live_server.url}/login/"))
    page.wait_for_load_state("load")
    frame = page.frames[1]
    assert frame.url != f"{live_server.url}/login/" or frame.locator("#id_username").count() == 0
    expect(page.frame_locator("iframe").locator("#id_username")).to_have_count(0)

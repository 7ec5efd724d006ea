"""Browser tests' plumbing (a pytest plugin, see conftest): Debian's chromium
driven by Playwright, a dispatcher pumping deliveries in the background,
sign-in and screenshots (var/screenshots/)."""

import os
import shutil
import threading
from pathlib import Path

import pytest
from django.db import close_old_connections, connection

from deliveries import dispatch
from tests.factories import MembershipFactory, OrganizationFactory
from webhooks.models import Membership

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
PASSWORD = "correct horse battery"

# Playwright's sync API runs an event loop in this thread; the ORM calls the
# test makes between browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


class DeliveryPump:
    """Runs the dispatcher in a background thread, like a worker would."""

    def __init__(self):
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        try:
            while not self.stopped.is_set():
                if self.running.is_set():
                    dispatch.run(concurrency=4, max_seconds=0.5)
                self.stopped.wait(0.2)
        finally:
            connection.close()

    def start(self):
        self.running.set()

    def pause(self):
        self.running.clear()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)


@pytest.fixture
def pump():
    running = DeliveryPump()
    yield running
    running.stop()
    close_old_connections()


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialog.accept())  # hx-confirm prompts
    # What the pages' Content-Security-Policy refused (an inline script or
    # style that slipped in, an eval) shows in the console: none may. (A
    # refused frame is a test's own business.)
    refused = []
    tab.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text and "frame-ancestors" not in message.text
            else None
        ),
    )
    yield tab
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=SCREENSHOTS / f"{request.node.name}-end.png", full_page=True)
    context.close()
    assert refused == []


def shot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.fixture
def admin(db):
    org = OrganizationFactory(name="Acme")
    membership = MembershipFactory(organization=org, role=Membership.Role.OWNER)
    return membership


def sign_in(page, live_server, user):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def skip_without_chromium() -> None:
    """For a browser test module: skip it where chromium is missing (CI installs it)."""
    if not shutil.which(CHROMIUM) and not os.environ.get("HERALD_REQUIRE_BROWSER"):
        pytest.skip(
            "Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True
        )

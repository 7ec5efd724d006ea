"""The operator's day in a real browser (SPEC §7; Debian's chromium through
Playwright against a live server, deliveries to a real local receiver):
find an event, lists whose state lives in the URL, resend, replay, and a
retried row that follows its delivery to the end."""

import os
import re
import sys
import time
import traceback
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from deliveries.models import Delivery, Event, Lane
from deliveries.publishing import publish
from tests.browser import shot, sign_in, skip_without_chromium
from tests.factories import WebhookFactory
from tests.receiver import Answer

skip_without_chromium()

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def rows(page, selector="#events tbody tr"):
    return page.locator(selector)


def test_finding_an_event_and_the_filters_surviving_reload_and_back(page, live_server, admin):
    org = admin.organization
    WebhookFactory(organization=org, event_patterns=["order.*"])
    wanted = publish(org, "order.created", {"n": 1}).event
    for i in range(3):
        publish(org, "person.created", {"n": i})
    delivery = Delivery.objects.get(event=wanted)
    sign_in(page, live_server, admin.user)

    # A delivery id pasted with spaces around it finds its event.
    page.goto(f"{live_server.url}/events/")
    expect(rows(page)).to_have_count(4)
    page.fill("#event-search", f"   {delivery.public_id}  ")
    page.press("#event-search", "Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_have_attribute("id", f"event-{wanted.public_id}")
    shot(page, "operator-01-search")

    # A pattern, in the URL: reload and back show the same rows.
    page.fill("#event-search", "")
    page.fill("#event-type", "person.*")
    page.press("#event-type", "Enter")
    expect(rows(page)).to_have_count(3)
    assert "type=person.%2A" in page.url or "type=person.*" in page.url
    page.reload()
    expect(rows(page)).to_have_count(3)
    assert page.input_value("#event-type") == "person.*"
    page.go_back()
    expect(rows(page)).to_have_count(1)
    page.go_forward()
    expect(rows(page)).to_have_count(3)

    # A bad pattern names its field and lists nothing.
    page.fill("#event-type", "Person.*")
    page.press("#event-type", "Enter")
    expect(page.locator("#event-filter-errors")).to_contain_text("Type:")
    expect(rows(page)).to_have_count(0)


def test_the_logs_filters_and_pages_live_in_the_url(page, live_server, admin, settings):
    from dashboard import queries

    org = admin.organization
    webhook = WebhookFactory(organization=org, name="Orders")
    for i in range(5):
        publish(org, "order.created", {"n": i})
    Delivery.objects.filter(webhook=webhook).update(status=Delivery.Status.SUCCEEDED)
    failed = Delivery.objects.filter(webhook=webhook).order_by("pk").first()
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED)
    saved, queries.PAGE_SIZE = queries.PAGE_SIZE, 2
    try:
        sign_in(page, live_server, admin.user)
        page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
        log_rows = rows(page, "#delivery-log tbody tr")
        expect(log_rows).to_have_count(2)

        page.select_option("#filter-status", "failed")
        expect(log_rows).to_have_count(1)
        expect(page).to_have_url(re.compile(r"status=failed"))
        page.reload()
        expect(log_rows).to_have_count(1)
        assert page.locator("#filter-status").input_value() == "failed"

        page.select_option("#filter-status", "")
        expect(log_rows).to_have_count(2)
        first_page = log_rows.evaluate_all("rows => rows.map(r => r.id)")
        page.click("#log-older")
        expect(page).to_have_url(re.compile(r"cursor="))
        expect(page.locator("#log-newer")).to_be_visible()
        expect(log_rows.first).not_to_have_attribute("id", first_page[0])
        second_page = log_rows.evaluate_all("rows => rows.map(r => r.id)")
        assert not set(first_page) & set(second_page)
        page.reload()
        assert log_rows.evaluate_all("rows => rows.map(r => r.id)") == second_page
        page.click("#log-newer")
        expect(log_rows.first).to_have_attribute("id", first_page[0])
        assert log_rows.evaluate_all("rows => rows.map(r => r.id)") == first_page
    finally:
        queries.PAGE_SIZE = saved


def test_resend_from_the_log_and_from_the_delivery_page(page, live_server, admin, receiver, pump):
    org = admin.organization
    receiver.always("/ok", Answer(status=200))
    webhook = WebhookFactory(organization=org, url=receiver.url("/ok"))
    event = publish(org, "order.created", {"n": 1}).event
    pump.start()
    receiver.wait_for(1, "/ok")
    sign_in(page, live_server, admin.user)
    page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
    delivery = Delivery.objects.get(event=event)
    row = page.locator(f"#delivery-{delivery.public_id}")
    expect(row).to_have_attribute("data-status", "succeeded")

    row.locator("button:has-text('Resend')").click()
    receiver.wait_for(2, "/ok")
    # The row, pending for a moment, follows the attempt to its end.
    expect(page.locator(f"#delivery-{delivery.public_id}")).to_have_attribute(
        "data-status", "succeeded"
    )

    page.goto(f"{live_server.url}/deliveries/{delivery.public_id}/")
    page.click("#resend")
    receiver.wait_for(3, "/ok")
    first, *_, last = receiver.to("/ok")
    assert first.header("webhook-id") == last.header("webhook-id") == event.public_id
    assert first.header("webhook-signature") != last.header("webhook-signature")
    shot(page, "operator-02-resent")


def test_the_replay_dialog_counts_then_shows_progress_without_a_reload(
    page, live_server, admin, receiver, pump
):
    org = admin.organization
    receiver.always("/new", Answer(status=200, delay=0.2))
    for i in range(6):
        event = publish(org, "order.created", {"n": i}).event
        Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(hours=5))
    webhook = WebhookFactory(
        organization=org, name="New", url=receiver.url("/new"), max_in_flight=1
    )
    sign_in(page, live_server, admin.user)
    page.goto(f"{live_server.url}/webhooks/{webhook.public_id}/")
    page.evaluate("window.__noReload = true")

    page.click("#replay-open")
    expect(page.locator("#replay-dialog")).to_be_visible()
    page.select_option("#id_status", "none")
    page.click("#replay-count-button")
    expect(page.locator("#replay-count")).to_contain_text("6 events will be sent")
    assert receiver.to("/new") == []
    shot(page, "operator-03-replay-count")

    page.click("#replay-confirm")
    expect(page.locator("#replay-remaining")).to_have_text("6")
    pump.start()
    expect(page.locator("#replay-done")).to_be_visible(timeout=20_000)
    expect(page.locator("#replay-sent")).to_have_text("6")
    assert page.evaluate("window.__noReload") is True
    assert len(receiver.to("/new")) == 6
    # One at a time: the webhook's cap held.
    assert receiver.max_in_flight_by_path["/new"] == 1
    shot(page, "operator-04-replay-done")


def test_a_retried_row_reaches_succeeded_while_the_worker_is_busy(
    page, live_server, admin, receiver, pump
):
    org = admin.organization
    receiver.script("/flaky", Answer(status=500))
    receiver.always("/flaky", Answer(status=200))
    receiver.always("/slow", Answer(status=200, delay=0.3))
    flaky = WebhookFactory(
        organization=org,
        name="Flaky",
        url=receiver.url("/flaky"),
        max_attempts=1,
        event_patterns=["order.*"],
    )
    WebhookFactory(
        organization=org, name="Busy", url=receiver.url("/slow"), event_patterns=["load.*"]
    )
    event = publish(org, "order.created", {}).event
    pump.start()
    receiver.wait_for(1, "/flaky")
    delivery = Delivery.objects.get(event=event, webhook=flaky)
    sign_in(page, live_server, admin.user)
    page.goto(f"{live_server.url}/webhooks/{flaky.public_id}/")
    row = page.locator(f"#delivery-{delivery.public_id}")
    expect(row).to_have_attribute("data-status", "failed")

    # The worker gets busy with another webhook's backlog, then the retry.
    for i in range(120):
        publish(org, "load.tick", {"i": i})
    row.locator("button:has-text('Retry')").click()

    try:
        expect(page.locator(f"#delivery-{delivery.public_id}")).to_have_attribute(
            "data-status", "succeeded", timeout=30_000
        )
    except AssertionError as failure:
        # Say where the delivery got stuck, should it.
        state = Delivery.objects.filter(pk=delivery.pk).values().first()
        lanes = list(Lane.objects.values())
        frame = sys._current_frames().get(pump.thread.ident)
        where = "".join(traceback.format_stack(frame)) if frame else "the pump thread ended"
        raise AssertionError(
            f"{failure}\ndelivery: {state}\nlanes: {lanes}\npump thread:\n{where}"
        ) from None
    shot(page, "operator-05-retried-in-place")


def test_the_overview_refreshes_itself(page, live_server, admin, receiver, pump):
    org = admin.organization
    receiver.always("/ok", Answer(status=200))
    WebhookFactory(organization=org, name="Orders", url=receiver.url("/ok"))
    page.clock.install()
    sign_in(page, live_server, admin.user)
    page.evaluate("window.__noReload = true")
    cell = page.locator("#webhooks tbody tr").first
    expect(cell).to_contain_text("—")  # no attempts yet

    event = publish(org, "order.created", {}).event
    pump.start()
    receiver.wait_for(1, "/ok")
    deadline = time.monotonic() + 10
    while Delivery.objects.get(event=event).status != Delivery.Status.SUCCEEDED:
        assert time.monotonic() < deadline, "the delivery was not recorded"
        time.sleep(0.1)
    page.clock.run_for(16_000)  # the overview's poll comes round

    expect(cell).to_contain_text("100%")
    assert page.evaluate("window.__noReload") is True

"""What the dashboard tells people (SPEC §7, issue 12 item 5): flash messages
with the response of the action that caused them, attempt errors as
sentences with the raw text a click away, 404 and 500 pages in the layout,
a favicon, and the signing secret's hide, copy and grace period."""

import json
import re
import socket
from datetime import UTC, datetime, timedelta

import pytest
from django.template import loader
from django.test import Client, RequestFactory
from django.views.defaults import server_error

from dashboard import queries, signing
from deliveries.models import Delivery
from deliveries.publishing import publish
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Membership, Webhook

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def browser(client, org):
    client.force_login(MembershipFactory(organization=org, role=Membership.Role.ADMIN).user)
    return client


def sent_messages(response) -> list[dict]:
    """The messages an htmx response carries (dashboard/flash.py)."""
    trigger = json.loads(response.get("HX-Trigger") or "{}")
    return trigger.get("herald:messages", {}).get("messages", [])


def flashes(response) -> list[str]:
    """The flash messages a full page shows in #messages."""
    return re.findall(r'<span class="flash-text">([^<]*)</span>', response.content.decode())


class TestMessagesWithTheirAction:
    def test_an_htmx_action_sends_its_message_with_its_answer_and_only_once(self, browser, org):
        webhook = WebhookFactory(organization=org)
        response = browser.post(f"/webhooks/{webhook.public_id}/rotate-secret/", **HTMX)
        assert response.status_code == 200 and 'id="secret"' in response.content.decode()
        [message] = sent_messages(response)
        assert message["level"] == "success"
        assert message["text"].startswith("Secret rotated. The previous secret keeps signing until")
        # Shown with the action: the next page does not show it again.
        assert flashes(browser.get(f"/webhooks/{webhook.public_id}/")) == []

    def test_send_test_and_retry_all_answer_without_a_reload(self, browser, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url())
        response = browser.post(f"/webhooks/{webhook.public_id}/test/", **HTMX)
        assert response.status_code == 204 and "HX-Refresh" not in response
        assert "herald:retried" in json.loads(response["HX-Trigger"])  # the log refreshes
        assert sent_messages(response) == [
            {"text": "Test event sent: watch it arrive in the log below.", "level": "success"}
        ]
        assert Delivery.objects.get(webhook=webhook).event_type == "webhook.test"

    def test_an_action_that_fails_says_why_as_an_error(self, browser, org):
        webhook = WebhookFactory(organization=org, status=Webhook.Status.PAUSED)
        response = browser.post(f"/webhooks/{webhook.public_id}/test/", **HTMX)
        [message] = sent_messages(response)
        assert message["level"] == "error" and "paused" in message["text"].lower()
        assert not Delivery.objects.exists()

    def test_a_form_post_that_redirects_shows_its_message_once(self, browser, org):
        webhook = WebhookFactory(organization=org)
        response = browser.post(f"/webhooks/{webhook.public_id}/pause/", follow=True)
        assert flashes(response) == ["Paused. New events wait as pending until you resume."]
        assert 'class="flash flash-info" role="status" data-flash' in response.content.decode()
        assert "data-dismiss" in response.content.decode()
        assert flashes(browser.get(f"/webhooks/{webhook.public_id}/")) == []

    def test_a_poll_leaves_a_waiting_message_to_the_page_it_belongs_to(self, browser, org):
        webhook = WebhookFactory(organization=org)
        browser.post(f"/webhooks/{webhook.public_id}/resume/")  # its redirect not yet followed
        poll = browser.get(f"/webhooks/{webhook.public_id}/log/", **HTMX)
        assert poll.status_code == 200 and sent_messages(poll) == []
        page = browser.get(f"/webhooks/{webhook.public_id}/")
        assert flashes(page) == ["Resumed. Waiting deliveries are on their way."]

    def test_a_row_retry_says_so_with_the_row(self, browser, org, receiver):
        WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        deliver_due()
        failed = Delivery.objects.get(status="failed")
        response = browser.post(f"/deliveries/{failed.public_id}/retry/", **HTMX)
        assert response.content.decode().strip().startswith("<tr")
        assert sent_messages(response) == [{"text": "Retrying now.", "level": "success"}]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TestAttemptErrorsAsSentences:
    @pytest.fixture
    def refused(self, org):
        port = closed_port()
        webhook = WebhookFactory(organization=org, url=f"http://127.0.0.1:{port}/hook")
        publish(org, "person.created", {})
        deliver_due()
        return port, Delivery.objects.get(webhook=webhook)

    def test_the_delivery_page_says_it_in_a_sentence_with_the_raw_text_a_click_away(
        self, browser, refused
    ):
        port, delivery = refused
        page = browser.get(f"/deliveries/{delivery.public_id}/").content.decode()
        assert (
            f'<span class="failure-sentence">Connection refused by 127.0.0.1:{port}</span>' in page
        )
        raw = re.search(r'<details class="raw-error">(.*?)</details>', page, re.S).group(1)
        assert "<summary>Raw error</summary>" in raw and "[Errno 111] Connection refused" in raw

    def test_the_log_rows_say_the_last_failure_in_a_sentence(self, browser, refused):
        port, delivery = refused
        log = browser.get(f"/webhooks/{delivery.webhook.public_id}/log/").content.decode()
        row = re.search(rf'<tr id="delivery-{delivery.public_id}".*?</tr>', log, re.S).group(0)
        assert f"Could not connect to 127.0.0.1:{port}</div>" in row

    def test_the_api_keeps_the_raw_text(self, api, refused):
        _, delivery = refused
        attempt = api.get(f"/api/v1/deliveries/{delivery.public_id}").json()["attempts"][0]
        assert attempt["error_kind"] == "connection"
        assert attempt["error_message"].startswith("ConnectionError: ")
        assert "Connection refused by" not in attempt["error_message"]


class TestErrorPages:
    def test_a_404_is_in_the_dashboards_layout(self, browser, org):
        response = browser.get("/webhooks/wh_00000000000000000000000000/")
        page = response.content.decode()
        assert response.status_code == 404
        assert 'id="not-found"' in page and 'class="topbar"' in page
        assert 'class="mainnav"' in page and "css/herald.css" in page

    def test_a_404_for_someone_signed_out_still_has_the_layout(self, client, db):
        response = client.get("/no/such/page/")
        page = response.content.decode()
        assert response.status_code == 404
        assert 'id="not-found"' in page and 'class="brand"' in page

    def test_the_500_page_renders_without_a_request_or_the_database(self):
        # No `db` fixture: a query here would fail the test.
        page = loader.get_template("500.html").render()
        assert 'id="server-error"' in page and 'class="topbar"' in page
        assert "css/herald.css" in page and "js/herald.js" in page
        response = server_error(RequestFactory().get("/"))
        assert response.status_code == 500 and b'id="server-error"' in response.content

    def test_a_page_that_fails_answers_500_in_the_layout(self, org, monkeypatch):
        def broken(*args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(queries, "overview", broken)
        client = Client(raise_request_exception=False)
        client.force_login(MembershipFactory(organization=org).user)
        response = client.get("/")
        assert response.status_code == 500 and b'id="server-error"' in response.content

    def test_favicon(self, client, db):
        response = client.get("/favicon.ico")
        assert response.status_code == 302 and response["Location"].endswith("img/favicon.ico")
        icon = client.get(response["Location"])
        assert icon.status_code == 200
        assert b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO file
        login = client.get("/login/").content.decode()
        assert 'rel="icon" href="/static/img/favicon.ico"' in login


class TestSigningSecret:
    def test_a_revealed_secret_can_be_copied_and_hidden_again(self, browser, org):
        webhook = WebhookFactory(organization=org)
        revealed = browser.post(f"/webhooks/{webhook.public_id}/secret/", **HTMX).content.decode()
        assert f'id="secret-value" data-revealed>{webhook.secret}<' in revealed
        assert 'id="copy-secret" data-copy="#secret-value"' in revealed
        assert 'id="hide-secret"' in revealed and 'hx-vals=\'{"hide": "1"}\'' in revealed
        hidden = browser.post(
            f"/webhooks/{webhook.public_id}/secret/", {"hide": "1"}, **HTMX
        ).content.decode()
        assert webhook.secret not in hidden and webhook.masked_secret in hidden
        assert 'id="reveal-secret"' in hidden and 'id="copy-secret"' not in hidden

    def test_the_rotation_notice_says_until_when_the_old_secret_signs(self, browser, org, settings):
        settings.HERALD_SECRET_GRACE_HOURS = 30
        webhook = WebhookFactory(organization=org)
        before = datetime.now(UTC)
        response = browser.post(f"/webhooks/{webhook.public_id}/rotate-secret/", **HTMX)
        [message] = sent_messages(response)
        said = re.fullmatch(
            r"Secret rotated\. The previous secret keeps signing until (.+) UTC\.", message["text"]
        )
        until = datetime.strptime(said.group(1), "%d %b %Y, %H:%M").replace(tzinfo=UTC)
        assert abs(until - (before + timedelta(hours=30))) < timedelta(minutes=1)
        # The secret's panel says it too, for as long as it holds.
        assert f"The previous secret keeps signing until {said.group(1)} UTC." in (
            response.content.decode()
        )

    def test_without_a_grace_period_the_notice_says_the_old_secret_stopped(
        self, browser, org, settings
    ):
        settings.HERALD_SECRET_GRACE_HOURS = 0
        webhook = WebhookFactory(organization=org)
        response = browser.post(f"/webhooks/{webhook.public_id}/rotate-secret/", **HTMX)
        assert sent_messages(response)[0]["text"] == (
            "Secret rotated. The previous secret no longer signs (no grace period is set)."
        )
        assert 'id="previous-secrets"' not in response.content.decode()

    def test_the_notice_names_the_day_and_minute_in_utc(self):
        webhook = Webhook(
            secret="whsec_new",
            previous_secrets=[
                {"secret": "whsec_older", "expires_at": "2026-12-01T09:00:00+00:00"},
                {"secret": "whsec_old", "expires_at": "2026-12-02T19:04:59+01:00"},
                {"secret": "whsec_gone", "expires_at": "2026-11-01T00:00:00+00:00"},
            ],
        )
        now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
        assert signing.rotation_notice(webhook, now) == (
            "Secret rotated. The previous secret keeps signing until 2 Dec 2026, 18:04 UTC."
        )
        assert len(signing.previous_secrets_until(webhook, now)) == 2

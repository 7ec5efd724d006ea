"""The dashboard through Django's test client: scoping, roles, forms,
htmx endpoints, escaping, and a fixed number of queries per page."""

import json
import re

import pytest
from django.test import Client

from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from monitoring.models import Alert, AlertRule
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.keys import find_api_key
from webhooks.models import ApiKey, Membership, Webhook


@pytest.fixture
def admin_user(org):
    return MembershipFactory(organization=org, role=Membership.Role.ADMIN).user


@pytest.fixture
def browser(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def viewer(org):
    user = MembershipFactory(organization=org, role=Membership.Role.VIEWER).user
    client = Client()
    client.force_login(user)
    return client


def valid_form(**changes):
    data = {
        "name": "Orders",
        "url": "https://hooks.example.com/orders",
        "patterns": "order.*",
        "timeout_seconds": "10",
        "max_attempts": "5",
        "verify_tls": "on",
        "max_in_flight": "10",
        "signature_style": "",
        "signature_header": "X-Webhook-Signature",
        "headers": "",
    }
    data.update(changes)
    return data


class TestSignIn:
    def test_pages_need_a_login(self, client, db):
        response = client.get("/")
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=/")

    def test_signing_in_with_a_password(self, client, admin_user):
        response = client.post(
            "/login/", {"username": admin_user.username, "password": "correct horse battery"}
        )
        assert response.status_code == 302 and response["Location"] == "/"
        assert client.get("/").status_code == 200

    def test_a_wrong_password_is_refused(self, client, admin_user):
        response = client.post("/login/", {"username": admin_user.username, "password": "nope"})
        assert response.status_code == 200 and b"correct username and password" in response.content

    def test_a_user_without_organization_is_told_what_to_do(self, client, db):
        client.force_login(UserFactory())
        response = client.get("/")
        assert response.status_code == 403 and b"createorganization" in response.content

    def test_signing_out_is_a_post(self, browser):
        assert browser.post("/logout/").status_code == 302
        assert browser.get("/").status_code == 302


class TestOrganizations:
    def test_the_overview_shows_only_the_current_organizations_webhooks(self, browser, org):
        mine = WebhookFactory(organization=org, name="Mine")
        theirs = WebhookFactory(organization=OrganizationFactory(), name="Theirs")
        page = browser.get("/").content.decode()
        assert mine.public_id in page and theirs.public_id not in page

    def test_switching_organization(self, browser, admin_user):
        other = OrganizationFactory(name="Second Org")
        MembershipFactory(organization=other, user=admin_user, role=Membership.Role.VIEWER)
        WebhookFactory(organization=other, name="Over there")
        assert b"Second Org" in browser.get("/").content  # the switcher lists it
        response = browser.post("/orgs/switch/", {"organization": other.public_id})
        assert response.status_code == 302
        page = browser.get("/").content.decode()
        assert "Over there" in page and "viewer" in page

    def test_switching_to_an_organization_you_are_not_in_is_a_404(self, browser):
        stranger = OrganizationFactory()
        assert (
            browser.post("/orgs/switch/", {"organization": stranger.public_id}).status_code == 404
        )

    def test_another_organizations_objects_are_404(self, browser, receiver):
        other = OrganizationFactory()
        webhook = WebhookFactory(organization=other, url=receiver.url())
        event = publish(other, "person.created", {}).event
        deliver_due()
        delivery = Delivery.objects.get()
        for url in [
            f"/webhooks/{webhook.public_id}/",
            f"/webhooks/{webhook.public_id}/edit/",
            f"/deliveries/{delivery.public_id}/",
            f"/events/{event.public_id}/",
        ]:
            assert browser.get(url).status_code == 404, url
        assert browser.post(f"/webhooks/{webhook.public_id}/pause/").status_code == 404
        assert browser.post(f"/deliveries/{delivery.public_id}/retry/").status_code == 404
        webhook.refresh_from_db()
        assert webhook.status == Webhook.Status.ACTIVE


class TestViewers:
    def test_viewers_read_everything(self, viewer, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url())
        publish(org, "person.created", {})
        deliver_due()
        delivery = Delivery.objects.get()
        for url in [
            "/",
            f"/webhooks/{webhook.public_id}/",
            f"/deliveries/{delivery.public_id}/",
            "/events/",
            "/api-keys/",
        ]:
            assert viewer.get(url).status_code == 200, url
        page = viewer.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert "Pause" not in page and "Reveal" not in page and webhook.secret not in page

    def test_viewers_cannot_change_anything(self, viewer, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500))
        publish(org, "person.created", {})
        deliver_due()
        delivery = Delivery.objects.get()
        for url in [
            "/webhooks/new/",
            f"/webhooks/{webhook.public_id}/edit/",
            f"/webhooks/{webhook.public_id}/pause/",
            f"/webhooks/{webhook.public_id}/test/",
            f"/webhooks/{webhook.public_id}/retry-failed/",
            f"/webhooks/{webhook.public_id}/secret/",
            f"/webhooks/{webhook.public_id}/rotate-secret/",
            f"/webhooks/{webhook.public_id}/delete/",
            f"/deliveries/{delivery.public_id}/retry/",
        ]:
            assert viewer.post(url, valid_form()).status_code == 403, url
        assert viewer.post("/api-keys/", {"name": "mine"}).status_code == 403
        webhook.refresh_from_db()
        delivery.refresh_from_db()
        assert webhook.status == "active" and delivery.status == "failed"
        assert not ApiKey.objects.exists()


class TestWebhookForms:
    def test_creating_a_webhook(self, browser, org):
        publish(org, "person.created", {})
        response = browser.post(
            "/webhooks/new/",
            valid_form(known_types=["person.created"], patterns="order.*", headers="X-Env: prod"),
        )
        webhook = Webhook.objects.get(organization=org)
        assert (
            response.status_code == 302
            and response["Location"] == f"/webhooks/{webhook.public_id}/"
        )
        assert webhook.event_patterns == ["person.created", "order.*"]
        assert webhook.headers == {"X-Env": "prod"}
        assert webhook.secret.startswith("whsec_")

    @pytest.mark.parametrize(
        "changes, field, message",
        [
            ({"url": "ftp://x.example.com"}, "url", "not a valid http(s) URL"),
            ({"url": "http://hooks.example.com/x"}, "url", "must start with https://"),
            ({"url": "https://x.example.com/" + "a" * 2048}, "url", "2048"),
            ({"url": "https://10.0.0.1/hook"}, "url", "private"),
            ({"patterns": "Person.Created"}, "patterns", "not an event type"),
            ({"patterns": ""}, "patterns", "at least one"),
            ({"timeout_seconds": "0"}, "timeout_seconds", "greater than or equal to 1"),
            ({"timeout_seconds": "301"}, "timeout_seconds", "less than or equal to 300"),
            ({"max_attempts": "11"}, "max_attempts", "less than or equal to 10"),
            ({"headers": "no colon here"}, "headers", "Name: value"),
            ({"headers": "Content-Type: text/plain"}, "headers", "set by Herald"),
            ({"signature_header": "bad header"}, "signature_header", "header name"),
            ({"signature_style": "md5"}, "signature_style", "valid choice"),
            ({"name": "n" * 201}, "name", "at most 200"),
        ],
    )
    def test_invalid_input_is_shown_next_to_the_field_and_nothing_is_saved(
        self, browser, org, settings, changes, field, message
    ):
        settings.HERALD_ALLOW_HTTP = False
        settings.HERALD_ALLOW_PRIVATE_TARGETS = False
        response = browser.post("/webhooks/new/", valid_form(**changes))
        assert response.status_code == 200
        page = response.content.decode()
        errors = re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page)
        assert any(message in e for e in errors), errors
        assert f'id="{field}-error"' in page or field == "patterns"
        assert not Webhook.objects.exists()

    def test_editing_keeps_the_old_values_when_the_input_is_bad(self, browser, org):
        webhook = WebhookFactory(organization=org, url="https://a.example.com/x", name="Before")
        response = browser.post(
            f"/webhooks/{webhook.public_id}/edit/", valid_form(name="After", url="nope")
        )
        assert response.status_code == 200
        webhook.refresh_from_db()
        assert webhook.name == "Before" and webhook.url == "https://a.example.com/x"

    def test_editing(self, browser, org):
        webhook = WebhookFactory(organization=org)
        secret = webhook.secret
        response = browser.post(
            f"/webhooks/{webhook.public_id}/edit/",
            valid_form(
                name="Renamed",
                max_attempts="3",
                signature_style="hex",
                signature_header="X-Twig-Signature",
            ),
        )
        assert response.status_code == 302
        webhook.refresh_from_db()
        assert webhook.name == "Renamed" and webhook.max_attempts == 3
        assert webhook.signature_style == "hex" and webhook.secret == secret

    def test_the_form_shows_current_values(self, browser, org):
        webhook = WebhookFactory(organization=org, headers={"X-A": "1"}, event_patterns=["a.*"])
        page = browser.get(f"/webhooks/{webhook.public_id}/edit/").content.decode()
        assert "X-A: 1" in page and "a.*" in page

    def test_the_pattern_preview_lists_matching_known_types(self, browser, org):
        publish(org, "person.created", {})
        publish(org, "order.paid", {})
        page = browser.get("/webhooks/preview/", {"patterns": "person.*\nBad..x"}).content.decode()
        assert "person.created" in page and "order.paid" not in page and "Bad..x" in page


class TestWebhookActions:
    def test_pause_and_resume(self, browser, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url())
        assert browser.post(f"/webhooks/{webhook.public_id}/pause/").status_code == 302
        webhook.refresh_from_db()
        assert webhook.status == "paused"
        browser.post(f"/webhooks/{webhook.public_id}/resume/")
        webhook.refresh_from_db()
        assert webhook.status == "active"

    def test_send_test_event(self, browser, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url())
        browser.post(f"/webhooks/{webhook.public_id}/test/")
        assert Delivery.objects.get(webhook=webhook).event_type == "webhook.test"

    def test_retry_all_failed(self, browser, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500), Answer(status=500))
        publish(org, "person.created", {})
        publish(org, "person.created", {})
        deliver_due()
        response = browser.post(
            f"/webhooks/{webhook.public_id}/retry-failed/", HTTP_HX_REQUEST="true"
        )
        # No reload: the log refreshes itself, the message comes with the answer.
        assert response.status_code == 204 and "HX-Refresh" not in response
        trigger = json.loads(response["HX-Trigger"])
        assert "herald:retried" in trigger
        assert trigger["herald:messages"]["messages"] == [
            {"text": "Retrying 2 failed deliveries.", "level": "success"}
        ]
        assert Delivery.objects.filter(status="pending").count() == 2

    def test_reveal_and_rotate_the_secret(self, browser, org):
        webhook = WebhookFactory(organization=org)
        page = browser.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert webhook.secret not in page and webhook.masked_secret in page
        revealed = browser.post(f"/webhooks/{webhook.public_id}/secret/", HTTP_HX_REQUEST="true")
        assert webhook.secret in revealed.content.decode()
        rotated = browser.post(
            f"/webhooks/{webhook.public_id}/rotate-secret/", HTTP_HX_REQUEST="true"
        )
        old = webhook.secret
        webhook.refresh_from_db()
        assert webhook.secret != old and webhook.secret in rotated.content.decode()
        assert webhook.previous_secrets[0]["secret"] == old

    def test_delete_asks_first(self, browser, org):
        webhook = WebhookFactory(organization=org)
        assert b"Delete webhook" in browser.get(f"/webhooks/{webhook.public_id}/delete/").content
        assert Webhook.objects.exists()
        assert browser.post(f"/webhooks/{webhook.public_id}/delete/").status_code == 302
        assert not Webhook.objects.exists()

    def test_forms_enforce_csrf(self, admin_user, org):
        webhook = WebhookFactory(organization=org)
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(admin_user)
        assert strict.post(f"/webhooks/{webhook.public_id}/pause/").status_code == 403
        assert strict.post("/webhooks/new/", valid_form()).status_code == 403
        webhook.refresh_from_db()
        assert webhook.status == "active" and Webhook.objects.count() == 1


class TestDeliveryLog:
    @pytest.fixture
    def history(self, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
        receiver.script("/hook", Answer(status=500))
        publish(org, "order.paid", {"n": 0})
        for i in range(1, 4):
            publish(org, "person.created", {"n": i})
        deliver_due()
        return webhook

    def log(self, browser, webhook, **params):
        return browser.get(f"/webhooks/{webhook.public_id}/log/", params).content.decode()

    def test_filters_by_status_type_and_event_id(self, browser, history):
        assert self.log(browser, history, status="failed").count('data-status="failed"') == 1
        assert self.log(browser, history, status="failed").count('data-status="succeeded"') == 0
        assert self.log(browser, history, event_type="person.created").count("<tr id=") == 3
        event = Event.objects.filter(type="order.paid").get()
        found = self.log(browser, history, event_id=event.public_id)
        assert found.count("<tr id=") == 1 and event.public_id in found
        assert "No deliveries match" in self.log(browser, history, event_id="evt_nothing")
        assert self.log(browser, history, since="1h").count("<tr id=") == 4

    def test_pages_with_a_cursor(self, browser, history, monkeypatch):
        from dashboard import queries

        monkeypatch.setattr(queries, "PAGE_SIZE", 3)
        first = self.log(browser, history)
        assert first.count("<tr id=") == 3
        cursor = re.search(r"cursor=([\w-]+)", first).group(1)
        second = self.log(browser, history, cursor=cursor)
        assert second.count("<tr id=") == 1
        assert "not valid any more" in self.log(browser, history, cursor="garbage!")

    def test_the_log_polls_only_while_deliveries_are_pending(self, browser, history, org):
        assert "every 3s" not in self.log(browser, history)
        publish(org, "person.created", {})
        log = self.log(browser, history)
        assert 'hx-trigger="every 3s, herald:retried from:body"' in log
        assert "data-poll-visible" in log  # herald.js: only while the tab is visible

    def test_retry_updates_the_row_and_wakes_the_log(self, browser, history):
        failed = Delivery.objects.get(status="failed")
        response = browser.post(f"/deliveries/{failed.public_id}/retry/", HTTP_HX_REQUEST="true")
        row = response.content.decode()
        assert row.strip().startswith(f'<tr id="delivery-{failed.public_id}"')
        assert 'data-status="pending"' in row
        assert "herald:retried" in json.loads(response["HX-Trigger"])

    def test_retry_of_a_succeeded_delivery_reports_the_error(self, browser, history):
        done = Delivery.objects.filter(status="succeeded").first()
        response = browser.post(f"/deliveries/{done.public_id}/retry/", HTTP_HX_REQUEST="true")
        assert "already succeeded" in response["HX-Trigger"]


class TestEscaping:
    def test_payload_text_is_inert(self, browser, org, receiver):
        WebhookFactory(organization=org, url=receiver.url())
        publish(org, "person.created", {"name": "<script>alert('x')</script>"})
        deliver_due()
        delivery = Delivery.objects.get()
        for url in [f"/deliveries/{delivery.public_id}/", f"/events/{delivery.event.public_id}/"]:
            page = browser.get(url).content.decode()
            assert "<script>alert(" not in page
            assert "&lt;script&gt;alert(" in page


class TestApiKeys:
    def test_a_new_key_is_shown_once_and_works(self, browser, org):
        response = browser.post("/api-keys/", {"name": "billing"})
        raw = re.search(r'id="new-key">(hk_[^<]+)<', response.content.decode()).group(1)
        assert find_api_key(raw).organization == org
        assert raw not in browser.get("/api-keys/").content.decode()

    def test_a_key_needs_a_name(self, browser):
        response = browser.post("/api-keys/", {"name": ""})
        assert b"field-error" in response.content and not ApiKey.objects.exists()

    def test_revoking(self, browser, org):
        key, raw = ApiKey.issue(org, name="old")
        browser.post(f"/api-keys/{key.public_id}/revoke/")
        assert find_api_key(raw) is None


class TestQueryBudget:
    """Pages cost the same number of queries however much history there is."""

    @pytest.fixture
    def busy(self, org, receiver):
        webhooks = [WebhookFactory(organization=org, url=receiver.url(f"/h{i}")) for i in range(12)]
        for i in range(30):
            publish(org, f"thing.happened{i % 3}", {"i": i})
        deliver_due(concurrency=16)
        return webhooks

    def test_pages(self, browser, busy, django_assert_max_num_queries):
        webhook = busy[0]
        delivery = Delivery.objects.filter(webhook=webhook).first()
        event = Event.objects.first()
        budgets = {
            "/": 9,  # + the ragged ends of the 24 h window, from the minutes (one each)
            # the tiles (hours, ragged minutes), the chart, in flight and waiting
            f"/webhooks/{webhook.public_id}/": 14,
            f"/webhooks/{webhook.public_id}/log/": 6,
            f"/deliveries/{delivery.public_id}/": 6,
            "/events/": 6,
            f"/events/{event.public_id}/": 6,
            "/api-keys/": 5,
        }
        browser.get("/")  # the first visit stores the chosen organization in the session
        for url, budget in budgets.items():
            with django_assert_max_num_queries(budget):
                assert browser.get(url).status_code == 200, url


class TestAlertsPage:
    def test_every_organization_starts_with_twigs_rules(self, browser):
        page = browser.get("/alerts/").content.decode()
        assert "more than 10 failed deliveries" in page
        assert "average latency over 5.0 s" in page
        assert "success rate under 95%" in page

    def test_adding_a_rule_in_percent(self, browser, org):
        webhook = WebhookFactory(organization=org)
        response = browser.post(
            "/alerts/rules/new/",
            {
                "webhook": webhook.public_id,
                "metric": "success_rate",
                "threshold": "90",
                "window_minutes": "30",
                "min_attempts": "20",
                "enabled": "on",
            },
        )
        assert response.status_code == 302
        rule = AlertRule.objects.get(organization=org, webhook=webhook)
        assert rule.threshold == 0.9 and rule.window_minutes == 30 and rule.min_attempts == 20

    @pytest.mark.parametrize(
        "changes, field, message",
        [
            ({"metric": "failed_deliveries", "threshold": "-5"}, "threshold", "from 1 to"),
            ({"metric": "success_rate", "threshold": "150"}, "threshold", "percentage"),
            ({"metric": "avg_latency_ms", "threshold": "1e12"}, "threshold", "from 1 to"),
            ({"window_minutes": "0"}, "window_minutes", "1"),
            ({"window_minutes": "100000"}, "window_minutes", "1,440"),
            ({"min_attempts": "0"}, "min_attempts", "1"),
            ({"webhook": "wh_not_mine"}, "webhook", "valid choice"),
        ],
    )
    def test_nonsense_rules_are_refused_with_a_message(self, browser, org, changes, field, message):
        before = AlertRule.objects.count()
        data = {
            "webhook": "",
            "metric": "failed_deliveries",
            "threshold": "5",
            "window_minutes": "60",
            "min_attempts": "10",
            "enabled": "on",
            **changes,
        }
        response = browser.post("/alerts/rules/new/", data)
        assert response.status_code == 422
        page = response.content.decode()
        error = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page)
        assert error and message in error.group(1), page
        assert AlertRule.objects.count() == before

    def test_a_rule_on_another_organizations_webhook_is_refused(self, browser, org):
        foreign = WebhookFactory(organization=OrganizationFactory())
        response = browser.post(
            "/alerts/rules/new/",
            {
                "webhook": foreign.public_id,
                "metric": "failed_deliveries",
                "threshold": "5",
                "window_minutes": "60",
                "min_attempts": "10",
            },
        )
        assert response.status_code == 422
        assert not AlertRule.objects.filter(webhook=foreign).exists()

    def test_editing_and_deleting_a_rule(self, browser, org):
        rule = AlertRule.objects.filter(organization=org, metric="success_rate").get()
        page = browser.get(f"/alerts/rules/{rule.public_id}/").content.decode()
        assert 'value="95.0"' in page or 'value="95"' in page
        response = browser.post(
            f"/alerts/rules/{rule.public_id}/",
            {
                "webhook": "",
                "metric": "success_rate",
                "threshold": "99",
                "window_minutes": "15",
                "min_attempts": "5",
            },
        )
        assert response.status_code == 302
        rule.refresh_from_db()
        assert rule.threshold == 0.99 and rule.window_minutes == 15 and not rule.enabled
        browser.post(f"/alerts/rules/{rule.public_id}/delete/")
        assert not AlertRule.objects.filter(pk=rule.pk).exists()

    def test_viewers_cannot_change_rules(self, viewer, org):
        rule = AlertRule.objects.filter(organization=org).first()
        assert viewer.get("/alerts/").status_code == 200
        assert viewer.post(f"/alerts/rules/{rule.public_id}/delete/").status_code == 403
        assert viewer.post("/alerts/rules/new/", {"metric": "failed_deliveries"}).status_code == 403
        assert AlertRule.objects.filter(pk=rule.pk).exists()

    def test_an_open_alert_shows_on_the_overview_the_webhook_and_the_alerts_page(
        self, browser, org
    ):
        webhook = WebhookFactory(organization=org, name="Billing")
        rule = AlertRule.objects.filter(organization=org, metric="failed_deliveries").get()
        Alert.objects.create(
            organization=org,
            rule=rule,
            webhook=webhook,
            metric="failed_deliveries",
            value=14,
            threshold=10,
            window_minutes=60,
            message="14 failed deliveries in the last 60 minutes, more than 10 (30 attempts).",
        )
        assert 'class="badge badge-alert"' in browser.get("/").content.decode()
        assert (
            "14 failed deliveries"
            in browser.get(f"/webhooks/{webhook.public_id}/").content.decode()
        )
        page = browser.get("/alerts/").content.decode()
        assert 'id="open-alerts"' in page and "Billing" in page

    def test_the_alerts_page_has_a_query_budget(self, browser, org, django_assert_max_num_queries):
        webhook = WebhookFactory(organization=org)
        rule = AlertRule.objects.filter(organization=org).first()
        for i in range(20):
            Alert.objects.create(
                organization=org,
                rule=rule,
                webhook=webhook,
                state="resolved",
                value=i,
                threshold=1,
                message=f"number {i}",
            )
        browser.get("/")
        with django_assert_max_num_queries(7):
            assert browser.get("/alerts/").status_code == 200


def test_the_chart_and_the_tiles_agree(browser, org, receiver):
    """The 24-hour tiles come from the chart's own buckets: the same figures
    as a separate window query gives."""
    from datetime import timedelta

    from django.utils import timezone

    from monitoring import stats as metrics

    webhook = WebhookFactory(organization=org, url=receiver.url(), max_attempts=1)
    receiver.script("/hook", Answer(status=500))
    for i in range(4):
        publish(org, "person.created", {"i": i})
    deliver_due(concurrency=1)
    now = timezone.now()
    points = metrics.series([webhook.pk], now - timedelta(hours=24), now, timedelta(hours=1))
    assert (
        metrics.combine(points[webhook.pk])
        == metrics.window_stats([webhook.pk], now - timedelta(hours=24))[webhook.pk]
    )
    page = browser.get(f"/webhooks/{webhook.public_id}/").content.decode()
    assert 'id="stat-success">75%<' in page and 'id="stat-failed">1<' in page


@pytest.mark.parametrize(
    "failures, text", [(1, "1 failed attempt in a row"), (3, "3 failed attempts in a row")]
)
def test_the_last_delivery_tile_counts_failed_attempts_in_words(client, org, failures, text):
    webhook = WebhookFactory(organization=org, consecutive_failures=failures)
    owner = MembershipFactory(organization=org, role="owner").user
    client.force_login(owner)
    assert text in client.get(f"/webhooks/{webhook.public_id}/").content.decode()

"""The customer portal (SPEC §10): one-time links, what a portal visitor sees
and may do, framing; and the Content-Security-Policy of every page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from deliveries.publishing import publish
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, WebhookFactory
from webhooks import portal
from webhooks.models import Membership, PortalSession, Webhook


def open_link(client: Client, organization, **options):
    _, token = portal.create(organization, **options)
    return client.get(f"/portal/{token}/"), token


@pytest.fixture
def visitor(client, org):
    response, _ = open_link(client, org)
    assert response.status_code == 302 and response["Location"] == "/"
    return client


class TestLinks:
    def test_the_first_visit_signs_the_browser_into_the_organization(self, visitor, org, settings):
        settings.HERALD_PORTAL_TITLE = "Acme Webhooks"
        WebhookFactory(organization=org, name="Orders endpoint")
        page = visitor.get("/").content.decode()
        assert "Orders endpoint" in page and "Acme Webhooks" in page
        assert "API keys" not in page and "Sign out" not in page
        assert 'href="/portal/theme.css"' in page

    def test_a_second_visit_is_refused_and_signs_nobody_in(self, client, org):
        first, token = open_link(client, org)
        again = Client().get(f"/portal/{token}/")
        assert again.status_code == 410
        assert "This link has been used" in again.content.decode()
        # The browser that reopened it is signed in to nothing.
        reused = Client()
        reused.get(f"/portal/{token}/")
        assert reused.get("/").status_code == 302

    def test_reopening_it_in_the_same_browser_signs_that_browser_out(self, client, org):
        _, token = open_link(client, org)
        assert client.get(f"/portal/{token}/").status_code == 410
        assert client.get("/").status_code == 302

    def test_an_expired_link_is_refused(self, client, org):
        session, token = portal.create(org, minutes=5)
        PortalSession.objects.filter(pk=session.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        response = client.get(f"/portal/{token}/")
        assert response.status_code == 410 and "expired" in response.content.decode()
        assert client.get("/").status_code == 302

    @pytest.mark.parametrize("change", ["tamper", "truncate", "other-nonce"])
    def test_an_altered_link_is_refused(self, client, org, change):
        _, token = portal.create(org)
        _, other = portal.create(org)
        altered = {
            "tamper": token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
            "truncate": token[: len(token) // 2],
            "other-nonce": token.split(":")[0] + ":" + other.split(":", 1)[1],
        }[change]
        response = client.get(f"/portal/{altered}/")
        assert response.status_code == 410
        assert client.get("/").status_code == 302
        assert PortalSession.objects.filter(used_at__isnull=False).count() == 0

    def test_the_session_ends_when_the_link_said(self, visitor, org):
        session = visitor.session
        grant = session["herald_portal"]
        grant["ends_at"] = (timezone.now() - timedelta(seconds=1)).isoformat()
        session["herald_portal"] = grant
        session.save()
        response = visitor.get("/")
        assert response.status_code == 410 and "session has ended" in response.content.decode()
        assert visitor.get("/").status_code == 302

    def test_a_signed_in_user_who_opens_a_link_is_signed_out_first(self, client, org):
        other = OrganizationFactory(name="Users own org")
        client.force_login(MembershipFactory(organization=other, role=Membership.Role.OWNER).user)
        open_link(client, org)
        page = client.get("/").content.decode()
        assert org.name in page and "Users own org" not in page
        assert "_auth_user_id" not in client.session


class TestWhatAVisitorMayDo:
    def test_it_sees_its_pages_and_no_others(self, visitor, org):
        webhook = WebhookFactory(organization=org)
        for path in ("/", "/events/", "/alerts/", f"/webhooks/{webhook.public_id}/"):
            assert visitor.get(path).status_code == 200, path
        for path in ("/api-keys/", "/staff/"):
            assert visitor.get(path).status_code == 404, path
        assert visitor.post("/orgs/switch/", {"organization": org.public_id}).status_code == 404
        stranger = WebhookFactory(organization=OrganizationFactory())
        assert visitor.get(f"/webhooks/{stranger.public_id}/").status_code == 404

    def test_it_changes_things_unless_read_only(self, visitor, org):
        response = visitor.post(
            "/webhooks/new/",
            {
                "url": "https://example.com/h",
                "patterns": "*",
                "timeout_seconds": "10",
                "max_attempts": "5",
                "max_in_flight": "10",
                "signature_header": "X-Webhook-Signature",
            },
        )
        assert response.status_code == 302
        assert Webhook.objects.filter(organization=org).count() == 1

    def test_a_read_only_visitor_sees_no_buttons_and_cannot_post(self, client, org, receiver):
        webhook = WebhookFactory(organization=org, url=receiver.url())
        publish(org, "person.created", {})
        open_link(client, org, read_only=True)
        page = client.get(f"/webhooks/{webhook.public_id}/").content.decode()
        for control in (
            "Create webhook",
            "Send test event",
            "Pause",
            "Edit",
            "Rotate",
            "Retry all",
        ):
            assert control not in page, control
        assert "read-only" in page
        assert client.post(f"/webhooks/{webhook.public_id}/pause/").status_code == 403
        assert Webhook.objects.get(pk=webhook.pk).status == Webhook.Status.ACTIVE

    def test_a_portal_session_does_not_open_the_api(self, visitor):
        response = visitor.get("/api/v1/webhooks")
        assert response.status_code == 401


class TestFraming:
    def test_portal_pages_may_be_framed_by_the_product(self, visitor, settings):
        settings.HERALD_PORTAL_FRAME_ANCESTORS = ["https://app.example.com"]
        response = visitor.get("/")
        assert "frame-ancestors https://app.example.com" in response["Content-Security-Policy"]
        assert "X-Frame-Options" not in response

    def test_the_link_and_its_refusal_may_be_framed_too(self, client, org, settings):
        settings.HERALD_PORTAL_FRAME_ANCESTORS = ["https://app.example.com"]
        _, token = portal.create(org)
        client.get(f"/portal/{token}/")
        refused = Client().get(f"/portal/{token}/")
        assert "frame-ancestors https://app.example.com" in refused["Content-Security-Policy"]
        assert "X-Frame-Options" not in refused

    def test_every_other_page_refuses_frames(self, client, org):
        user = MembershipFactory(organization=org, role=Membership.Role.OWNER).user
        client.force_login(user)
        for path in ("/", "/login/", "/api/docs", "/healthz"):
            response = client.get(path)
            assert "frame-ancestors 'none'" in response["Content-Security-Policy"], path
            assert response["X-Frame-Options"] == "DENY", path


class TestContentSecurityPolicy:
    def test_every_page_forbids_inline_script_and_style(self, client, org):
        staff = UserFactory(is_staff=True, is_superuser=True)
        MembershipFactory(organization=org, user=staff, role=Membership.Role.OWNER)
        client.force_login(staff)
        webhook = WebhookFactory(organization=org)
        for path in (
            "/",
            "/events/",
            "/alerts/",
            "/api-keys/",
            f"/webhooks/{webhook.public_id}/",
            "/webhooks/new/",
            "/staff/",
            "/admin/",
            "/api/docs",
            "/no-such-page/",
        ):
            policy = client.get(path)["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, path

    def test_no_page_carries_inline_script_or_style(self, client, org, receiver):
        client.force_login(MembershipFactory(organization=org, role=Membership.Role.OWNER).user)
        webhook = WebhookFactory(organization=org, url=receiver.url())
        event = publish(org, "person.created", {"x": "<script>alert(1)</script>"}).event
        for path in (
            "/",
            "/events/",
            "/alerts/",
            f"/webhooks/{webhook.public_id}/",
            f"/events/{event.public_id}/",
        ):
            page = client.get(path).content.decode()
            assert "<script>alert(1)</script>" not in page, path
            for tag in page.split("<script")[1:]:
                assert (
                    tag.lstrip().startswith("src=")
                    or 'type="application/json"' in tag.split(">")[0]
                ), path
            assert " style=" not in page and " onclick=" not in page and " onchange=" not in page, (
                path
            )

    def test_the_portals_colours_come_as_a_stylesheet(self, client, settings):
        settings.HERALD_PORTAL_ACCENT = "#0a7f5a"
        css = client.get("/portal/theme.css")
        assert css["Content-Type"].startswith("text/css") and "#0a7f5a" in css.content.decode()
        settings.HERALD_PORTAL_ACCENT = "red;} body{display:none"
        assert "display:none" not in client.get("/portal/theme.css").content.decode()

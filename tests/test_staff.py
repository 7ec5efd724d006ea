"""The staff console (SPEC §10) and sign-in throttling (issue: security for
pages customers reach)."""

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from dashboard import console, signin
from deliveries.publishing import Outgoing, publish, publish_many
from tests.conftest import deliver_due
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory, WebhookFactory
from tests.receiver import Answer
from webhooks.models import Membership
from webhooks.organizations import create_organization


@pytest.fixture
def staff(client, db):
    client.force_login(UserFactory(is_staff=True))
    return client


class TestConsole:
    def test_pending_and_event_counts_are_each_organizations_own_up_to_the_cap(
        self, db, monkeypatch
    ):
        monkeypatch.setattr(console, "COUNT_LIMIT", 5)
        busy, some, quiet = (create_organization(name) for name in ("Busy", "Some", "Quiet"))
        WebhookFactory(organization=busy, event_patterns=["*"])
        WebhookFactory(organization=some, event_patterns=["*"])
        for _ in range(7):
            publish(busy, "order.created", {})
        for _ in range(3):
            publish(some, "order.created", {})
        publish_many([Outgoing(some.pk, "herald.webhook.disabled", {})])  # not the product's
        rows, _ = console.organizations_page(None, timezone.now())
        by_org = {r.organization.pk: r for r in rows}
        assert (by_org[busy.pk].pending, by_org[busy.pk].events) == (5, 5)  # capped
        assert by_org[busy.pk].pending_capped and by_org[busy.pk].events_capped
        assert (by_org[some.pk].pending, by_org[some.pk].events) == (3, 3)
        assert (by_org[quiet.pk].pending, by_org[quiet.pk].events) == (0, 0)

    def test_it_lists_every_organization_with_its_figures(self, staff, receiver):
        acme = create_organization("Acme", external_id="acme-42")
        WebhookFactory(organization=acme, url=receiver.url("/ok"))
        failing = WebhookFactory(organization=acme, url=receiver.url("/fail"), max_attempts=1)
        receiver.always("/fail", Answer(status=500))
        for i in range(3):
            publish(acme, "person.created", {"i": i})
        deliver_due()
        WebhookFactory(organization=acme, status="disabled")
        create_organization("Quiet Co")
        page = staff.get("/staff/").content.decode()
        assert "Acme" in page and "acme-42" in page and "Quiet Co" in page
        rows, _ = console.organizations_page(None, timezone.now())
        acme_row = next(r for r in rows if r.organization == acme)
        assert (acme_row.webhooks, acme_row.disabled, acme_row.events) == (3, 1, 3)
        assert (acme_row.attempts, acme_row.succeeded_attempts, acme_row.failed_deliveries) == (
            6,
            3,
            3,
        )
        assert acme_row.failing == 1 and failing.consecutive_failures == 0  # (its row is fresh)
        assert acme_row.success_rate == 0.5

    def test_the_pipeline(self, staff, org):
        WebhookFactory(organization=org, status="active")
        publish(org, "person.created", {})
        page = staff.get("/staff/").content.decode()
        assert 'id="pipe-due">1<' in page

    def test_a_fixed_number_of_queries_whatever_the_organizations(
        self, staff, receiver, django_assert_max_num_queries
    ):
        for i in range(30):
            org = create_organization(f"Org {i}")
            WebhookFactory(organization=org, url=receiver.url())
            publish(org, "person.created", {})
        deliver_due()
        with django_assert_max_num_queries(14):
            assert staff.get("/staff/").status_code == 200

    def test_staff_open_any_organization_read_only(self, staff, org):
        webhook = WebhookFactory(organization=org, name="Their hook")
        assert staff.post(f"/staff/orgs/{org.public_id}/").status_code == 302
        page = staff.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert "Their hook" in page and "as staff, read-only" in page
        assert "Pause" not in page
        assert staff.post(f"/webhooks/{webhook.public_id}/pause/").status_code == 403
        staff.post("/staff/leave/")
        assert (
            staff.get(f"/webhooks/{webhook.public_id}/").status_code == 403
        )  # no organization of their own

    def test_only_staff(self, client, org):
        assert client.get("/staff/").status_code == 302  # anonymous: sign in
        client.force_login(MembershipFactory(organization=org, role=Membership.Role.OWNER).user)
        assert client.get("/staff/").status_code == 403
        assert client.post(f"/staff/orgs/{org.public_id}/").status_code == 403


# --- sign-in throttling -------------------------------------------------------------


@pytest.fixture
def accounts(db, redis_conn):
    cache.clear()
    user = UserFactory(username="ada")
    MembershipFactory(organization=OrganizationFactory(), user=user)
    yield user
    cache.clear()


def sign_in(password: str, address: str = "10.0.0.1", username: str = "ada"):
    client = Client(REMOTE_ADDR=address)
    response = client.post("/login/", {"username": username, "password": password})
    return response, client


PASSWORD = "correct horse battery"


class TestSignInThrottle:
    def test_a_right_password_signs_in(self, accounts):
        response, _ = sign_in(PASSWORD)
        assert response.status_code == 302

    def test_five_failures_from_one_address_stop_that_address_for_that_account(self, accounts):
        for _ in range(signin.PER_ACCOUNT_AND_ADDRESS):
            assert sign_in("wrong")[0].status_code == 200
        response, client = sign_in(PASSWORD)
        assert (
            response.status_code == 200 and "Too many failed sign-ins" in response.content.decode()
        )
        assert "_auth_user_id" not in client.session
        # The account's owner, elsewhere, still gets in: no lock-out aimed at them.
        assert sign_in(PASSWORD, address="10.0.0.2")[0].status_code == 302

    def test_many_failures_from_one_address_stop_it_for_every_account(self, accounts):
        for i in range(signin.PER_ADDRESS):
            sign_in("wrong", username=f"guess{i}")
        response, _ = sign_in(PASSWORD)
        assert "Too many failed sign-ins" in response.content.decode()

    def test_an_account_attacked_from_everywhere_stays_open_to_a_clean_address(self, accounts):
        for i in range(signin.PER_ACCOUNT):
            sign_in("wrong", address=f"10.1.{i // 250}.{i % 250}")
        attacker, _ = sign_in(PASSWORD, address="10.1.0.0")
        assert "Too many failed sign-ins" in attacker.content.decode()
        owner, _ = sign_in(PASSWORD, address="192.168.7.7")
        assert owner.status_code == 302

    def test_without_its_cache_sign_in_still_works(self, accounts, monkeypatch):
        class Unreachable:
            def __getattr__(self, name):
                def fail(*args, **kwargs):
                    raise ConnectionError("the cache is away")

                return fail

        monkeypatch.setattr(signin, "cache", Unreachable())
        assert sign_in(PASSWORD)[0].status_code == 302
        assert sign_in("wrong")[0].status_code == 200

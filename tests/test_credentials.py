"""What the API remembers of a token and an organization header
(api/credentials.py): never longer than the credentials stay as they were."""

import json

import pytest
from django.core.management import call_command
from django.test import Client

from api import auth, credentials
from deliveries.wakeup import queue
from tests.factories import MembershipFactory, OrganizationFactory, api_key_for
from webhooks.deletion import delete_organization
from webhooks.models import ApiKey, Membership, PlatformKey
from webhooks.organizations import update_organization

WEBHOOKS = "/api/v1/webhooks"


def get(client, key, organization=None):
    headers = {"Authorization": f"Bearer {key}"}
    if organization:
        headers["Herald-Organization"] = organization
    return client.get(WEBHOOKS, headers=headers)


@pytest.fixture
def count_lookups(monkeypatch):
    """How many times the API looked a key or an organization up in the database."""
    counts = {"key": 0, "platform key": 0, "organization": 0}

    def counting(kind, original):
        def counted(*args):
            counts[kind] += 1
            return original(*args)

        return counted

    for kind, name in (
        ("key", "find_api_key"),
        ("platform key", "find_platform_key"),
        ("organization", "find_organization"),
    ):
        monkeypatch.setattr(auth, name, counting(kind, getattr(auth, name)))
    return counts


class TestRemembering:
    def test_a_key_and_an_organization_are_looked_up_once(self, client, db, count_lookups):
        org = OrganizationFactory(external_id="cust-1")
        key = api_key_for(org)
        _, platform_key = PlatformKey.issue("billing")
        for _ in range(3):
            assert get(client, key).status_code == 200
            assert get(client, platform_key, "cust-1").status_code == 200
        assert count_lookups == {"key": 1, "platform key": 1, "organization": 1}

    def test_a_new_epoch_from_another_process_makes_it_look_again(
        self, client, db, count_lookups, monkeypatch
    ):
        key = api_key_for(OrganizationFactory())
        assert get(client, key).status_code == 200
        # Another process revokes the key: its row changes, and so does the epoch.
        ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
        queue().connection.set(credentials.EPOCH_KEY, "set-by-another-process")
        monkeypatch.setattr(credentials, "EPOCH_SECONDS", 0.0)
        assert get(client, key).status_code == 401

    def test_without_redis_every_request_looks_up(self, client, db, count_lookups, monkeypatch):
        key = api_key_for(OrganizationFactory())

        def unavailable():
            raise credentials.redis.ConnectionError("down")

        monkeypatch.setattr(credentials, "queue", unavailable)
        for _ in range(2):
            assert get(client, key).status_code == 200
        assert count_lookups["key"] == 2


class TestForgetting:
    def test_a_key_revoked_on_the_dashboard_stops_at_once(self, client, org):
        key = api_key_for(org)
        assert get(client, key).status_code == 200
        owner = Client()
        owner.force_login(MembershipFactory(organization=org, role=Membership.Role.OWNER).user)
        stored = ApiKey.objects.get(organization=org)
        assert owner.post(f"/api-keys/{stored.public_id}/revoke/").status_code == 302
        assert ApiKey.objects.get(pk=stored.pk).revoked_at is not None
        assert get(client, key).status_code == 401

    def test_a_platform_key_revoked_by_the_command_stops_at_once(self, client, db):
        OrganizationFactory(external_id="cust-1")
        stored, raw = PlatformKey.issue("billing")
        assert get(client, raw, "cust-1").status_code == 200
        call_command("revokeplatformkey", stored.public_id)
        assert get(client, raw, "cust-1").status_code == 401

    def test_a_changed_external_id_names_nobody_at_once(self, client, db):
        org = OrganizationFactory(external_id="cust-1")
        _, raw = PlatformKey.issue("billing")
        assert get(client, raw, "cust-1").status_code == 200
        update_organization(org, external_id="cust-2")
        assert get(client, raw, "cust-1").status_code == 404
        assert get(client, raw, "cust-2").status_code == 200

    def test_a_deleted_organization_is_a_404_at_once(self, client, db):
        org = OrganizationFactory(external_id="cust-1")
        _, raw = PlatformKey.issue("billing")
        assert get(client, raw, "cust-1").status_code == 200
        delete_organization(org)
        response = get(client, raw, "cust-1")
        assert response.status_code == 404
        assert json.loads(response.content)["error"]["code"] == "not_found"

"""Platform use (SPEC §10, §8): platform keys, the organizations API, batch
publishing and the API's rate-limit buckets."""

import json

import pytest
from django.core.management import call_command

from deliveries.models import Delivery, Event
from deliveries.publishing import publish
from monitoring.models import WebhookHourlyStats, WebhookStats
from tests.conftest import deliver_due, error_of
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from webhooks.models import Organization, PlatformKey, PortalSession, Webhook
from webhooks.organizations import create_organization

ORGS = "/api/v1/organizations"
EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"


@pytest.fixture
def platform_key(db):
    return PlatformKey.issue("billing")[1]


class Platform:
    """A test client speaking JSON with a platform key, optionally for an organization."""

    def __init__(self, client, key: str, organization: str | None = None):
        self.client, self.key, self.organization = client, key, organization

    def headers(self, extra=None):
        headers = {"Authorization": f"Bearer {self.key}"}
        if self.organization:
            headers["Herald-Organization"] = self.organization
        return {**headers, **(extra or {})}

    def for_(self, organization: str | None) -> "Platform":
        return Platform(self.client, self.key, organization)

    def get(self, path, params=None):
        return self.client.get(path, params or {}, headers=self.headers())

    def post(self, path, body=None):
        data = "" if body is None else json.dumps(body)
        return self.client.post(path, data, content_type="application/json", headers=self.headers())

    def patch(self, path, body):
        return self.client.patch(
            path, json.dumps(body), content_type="application/json", headers=self.headers()
        )

    def delete(self, path):
        return self.client.delete(path, headers=self.headers())


@pytest.fixture
def platform(client, platform_key):
    return Platform(client, platform_key)


# --- platform keys ---------------------------------------------------------------


class TestPlatformKeys:
    def test_the_command_prints_a_key_it_stores_only_hashed(self, db, capsys):
        call_command("createplatformkey", "billing service")
        raw = capsys.readouterr().out.strip().splitlines()[-1]
        assert raw.startswith("hp_") and len(raw) > 40
        key = PlatformKey.objects.get()
        assert raw not in (key.key_hash, key.prefix) and key.prefix == raw[:10]

    def test_it_acts_for_the_organization_it_names_by_either_id(self, platform, receiver):
        org = OrganizationFactory(external_id="cust-42")
        WebhookFactory(organization=org, url=receiver.url())
        for named in (org.public_id, "cust-42"):
            response = platform.for_(named).post(EVENTS, {"type": "person.created", "data": {}})
            assert response.status_code == 202, response.content
        assert Event.objects.filter(organization=org).count() == 2

    def test_without_the_header_an_organization_call_is_a_400_naming_it(self, platform, db):
        error_of(
            platform.get("/api/v1/webhooks"), 400, "organization_required", "Herald-Organization"
        )

    def test_an_unknown_organization_is_a_404(self, platform, db):
        for named in ("org_01m8s8e95a9kmwzyp7ypdc0m50", "no-such-customer", "org_bad", "x" * 101):
            error_of(platform.for_(named).get("/api/v1/webhooks"), 404, "not_found")

    def test_a_revoked_key_is_a_401(self, platform, db, capsys):
        org = OrganizationFactory()
        key = PlatformKey.objects.get()
        call_command("revokeplatformkey", key.public_id)
        assert capsys.readouterr().out.strip().splitlines()[-1] == key.public_id
        error_of(platform.for_(org.public_id).get("/api/v1/webhooks"), 401, "unauthorized")

    def test_an_organization_key_gets_403_on_platform_operations(self, client, org):
        headers = {"Authorization": f"Bearer {api_key_for(org)}"}
        error_of(client.get(ORGS, headers=headers), 403, "forbidden")
        error_of(client.get(f"{ORGS}/{org.public_id}", headers=headers), 403, "forbidden")

    def test_an_organization_key_keeps_working_as_before(self, api, webhook):
        assert api.get("/api/v1/webhooks").status_code == 200
        assert api.post(EVENTS, {"type": "person.created", "data": {}}).status_code == 202


# --- organizations ---------------------------------------------------------------


class TestOrganizations:
    def test_create_get_list_update_by_either_id(self, platform):
        created = platform.post(ORGS, {"name": "Acme", "external_id": "acme-1"})
        assert created.status_code == 201, created.content
        body = created.json()
        assert set(body) == {"id", "name", "external_id", "created_at"}
        assert body["id"].startswith("org_") and body["external_id"] == "acme-1"
        assert platform.get(f"{ORGS}/acme-1").json()["id"] == body["id"]
        assert platform.get(f"{ORGS}/{body['id']}").json()["name"] == "Acme"
        listed = platform.get(ORGS, {"external_id": "acme-1"}).json()
        assert [o["id"] for o in listed["items"]] == [body["id"]]
        assert platform.get(ORGS, {"external_id": "nobody"}).json()["items"] == []
        patched = platform.patch(f"{ORGS}/acme-1", {"name": "Acme Inc", "external_id": "acme-2"})
        assert patched.json()["name"] == "Acme Inc" and patched.json()["external_id"] == "acme-2"
        error_of(platform.get(f"{ORGS}/acme-1"), 404, "not_found")
        # New organizations start with the default alert rules, however made.
        assert Organization.objects.get(public_id=body["id"]).alert_rules.count() == 3

    def test_pages_by_cursor(self, platform):
        for i in range(5):
            create_organization(f"Org {i}")
        first = platform.get(ORGS, {"limit": 3}).json()
        second = platform.get(ORGS, {"limit": 3, "cursor": first["next_cursor"]}).json()
        assert len(first["items"]) == 3 and len(second["items"]) == 2
        assert second["next_cursor"] is None

    def test_a_duplicate_external_id_is_a_409_and_stores_nothing(self, platform):
        platform.post(ORGS, {"name": "Acme", "external_id": "acme"})
        error_of(
            platform.post(ORGS, {"name": "Other", "external_id": "acme"}),
            409,
            "conflict",
            "external_id",
        )
        other = platform.post(ORGS, {"name": "Other"}).json()
        error_of(
            platform.patch(f"{ORGS}/{other['id']}", {"external_id": "acme"}),
            409,
            "conflict",
            "external_id",
        )
        assert Organization.objects.filter(external_id="acme").count() == 1
        assert Organization.objects.get(public_id=other["id"]).external_id is None

    @pytest.mark.parametrize(
        "body, field",
        [
            ({"name": "X", "external_id": "org_123"}, "external_id"),
            ({"name": "X", "external_id": ""}, "external_id"),
            ({"name": "X", "external_id": "x" * 101}, "external_id"),
            ({"name": "X", "external_id": " padded "}, "external_id"),
            ({"name": "X", "external_id": 5}, "external_id"),
            ({"name": ""}, "name"),
            ({"name": "x" * 201}, "name"),
            ({}, "name"),
            ({"name": "X", "colour": "red"}, "colour"),
        ],
    )
    def test_bad_input_names_the_field_and_stores_nothing(self, platform, body, field):
        error_of(platform.post(ORGS, body), 422, "invalid", field)
        assert not Organization.objects.exists()

    def test_delete_takes_the_organizations_history_with_it(self, platform, receiver):
        org = create_organization("Doomed", external_id="doomed")
        keep = create_organization("Kept")
        for organization in (org, keep):
            WebhookFactory(organization=organization, url=receiver.url())
            for i in range(3):
                publish(organization, "person.created", {"i": i})
        deliver_due()
        assert WebhookStats.objects.filter(webhook__organization=org).exists()
        response = platform.delete(f"{ORGS}/doomed")
        assert response.status_code == 204
        assert not Organization.objects.filter(pk=org.pk).exists()
        for model in (Webhook, Event, Delivery):
            assert not model.objects.filter(organization_id=org.pk).exists(), model
            assert model.objects.filter(organization=keep).exists(), model
        assert not WebhookHourlyStats.objects.filter(webhook__organization_id=org.pk).exists()
        error_of(platform.get(f"{ORGS}/doomed"), 404, "not_found")

    def test_the_command_takes_an_external_id(self, db, capsys):
        call_command("createorganization", "Acme", "--external-id", "acme-7")
        org_id = capsys.readouterr().out.strip().splitlines()[-1]
        assert Organization.objects.get(public_id=org_id).external_id == "acme-7"


# --- batch publishing ------------------------------------------------------------


def event(i: int, **extra) -> dict:
    return {"type": "person.created", "data": {"i": i}, **extra}


class TestBatch:
    def test_a_batch_is_written_at_once_and_answers_in_order(self, api, webhook, max_statements):
        with max_statements(30):  # however many events: one statement per table
            response = api.post(BATCH, {"events": [event(i) for i in range(100)]})
        assert response.status_code == 202, response.content
        items = response.json()["items"]
        assert len(items) == 100
        assert all(set(i) == {"id", "type", "timestamp", "deliveries", "duplicate"} for i in items)
        assert [i["duplicate"] for i in items] == [False] * 100
        stored = dict(Event.objects.values_list("public_id", "data_json"))
        assert [stored[i["id"]] for i in items] == [f'{{"i":{n}}}' for n in range(100)]
        assert Delivery.objects.filter(webhook=webhook).count() == 100

    def test_idempotency_keys_hold_per_item(self, api, webhook):
        first = api.post(EVENTS, event(0, idempotency_key="a")).json()
        items = api.post(
            BATCH,
            {
                "events": [
                    event(1, idempotency_key="a"),
                    event(2, idempotency_key="b"),
                    event(3, idempotency_key="b"),
                    event(4),
                ]
            },
        ).json()["items"]
        assert [i["duplicate"] for i in items] == [True, False, True, False]
        assert items[0]["id"] == first["id"] and items[1]["id"] == items[2]["id"]
        assert Event.objects.count() == 3

    @pytest.mark.parametrize(
        "events, status, field",
        [
            ([event(0), {"type": "Bad Type", "data": {}}], 422, "events.1.type"),
            ([event(0), event(1), event(2), {"type": "x.y"}], 422, "events.3.data"),
            ([event(0), {"type": "herald.alert.opened", "data": {}}], 422, "events.1.type"),
            ([event(0), event(1, idempotency_key="k" * 256)], 422, "events.1.idempotency_key"),
            ([event(0), {"type": "x.y", "data": {"s": "\ud800"}}], 400, "events.1.data"),
            ([event(i) for i in range(501)], 422, "events"),
            ([], 422, "events"),
        ],
    )
    def test_one_bad_item_refuses_the_batch_and_stores_nothing(
        self, api, webhook, events, status, field
    ):
        error_of(api.post(BATCH, {"events": events}), status, field=field)
        assert not Event.objects.exists() and not Delivery.objects.exists()

    def test_a_platform_key_publishes_a_batch_for_a_customer(self, platform, receiver):
        org = create_organization("Acme", external_id="acme")
        WebhookFactory(organization=org, url=receiver.url())
        response = platform.for_("acme").post(BATCH, {"events": [event(i) for i in range(3)]})
        assert response.status_code == 202
        assert Delivery.objects.filter(organization=org).count() == 3


def test_portal_sessions_are_made_for_either_id_and_stored_hashed(platform, db, settings):
    settings.HERALD_PUBLIC_URL = "https://webhooks.example.com"
    org = create_organization("Acme", external_id="acme")
    response = platform.post(
        f"{ORGS}/acme/portal-sessions", {"expires_in_minutes": 30, "read_only": True}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"].startswith("https://webhooks.example.com/portal/")
    session = PortalSession.objects.get(organization=org)
    token = body["url"].rstrip("/").rsplit("/", 1)[-1]
    assert session.read_only and token.split(":")[-1] not in session.nonce_hash
    assert 29 * 60 <= (session.expires_at - session.created_at).total_seconds() <= 30 * 60
    for bad, field in (
        ({"expires_in_minutes": 4}, "expires_in_minutes"),
        ({"expires_in_minutes": 1441}, "expires_in_minutes"),
        ({"read_only": "yes"}, "read_only"),
    ):
        error_of(platform.post(f"{ORGS}/acme/portal-sessions", bad), 422, "invalid", field)
    assert PortalSession.objects.count() == 1

"""The alerting API (SPEC §6, §8): /api/v1/alert-rules and /api/v1/alerts."""

from datetime import timedelta

import pytest
from django.test import Client

from deliveries import actions
from monitoring import alerts
from monitoring.models import Alert, AlertRule
from tests.conftest import ApiClient, error_of
from tests.factories import OrganizationFactory, WebhookFactory, api_key_for
from tests.test_alerts import NOW, traffic

RULES = "/api/v1/alert-rules"
ALERTS = "/api/v1/alerts"


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def hook(org):
    return WebhookFactory(organization=org)


def rule_url(rule_id: str) -> str:
    return f"{RULES}/{rule_id}"


# --- rules ----------------------------------------------------------------------


def test_a_new_organization_lists_its_default_rules(api, org):
    response = api.get(RULES)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next_cursor"] is None
    assert {(r["metric"], r["threshold"]) for r in body["items"]} == {
        ("failed_deliveries", 10),
        ("avg_latency_ms", 5000),
        ("success_rate", 0.95),
    }
    for rule in body["items"]:
        assert rule["id"].startswith("rule_") and rule["webhook"] is None
        assert (rule["window_minutes"], rule["min_attempts"], rule["enabled"]) == (60, 10, True)


def test_create_answers_201_with_the_rule(api, org, hook):
    response = api.post(
        RULES,
        {"metric": "avg_latency_ms", "threshold": 2500, "webhook": hook.public_id},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    rule = AlertRule.objects.get(public_id=body["id"])
    assert rule.organization == org and rule.webhook == hook
    assert body == {
        "id": rule.public_id,
        "webhook": hook.public_id,
        "metric": "avg_latency_ms",
        "threshold": 2500.0,
        "window_minutes": 60,
        "min_attempts": 10,
        "enabled": True,
        "created_at": body["created_at"],
        "updated_at": body["updated_at"],
    }


def test_get_patch_and_delete(api, org, hook):
    rule = alerts.create_rule(org, metric="success_rate", threshold=0.9)
    assert api.get(rule_url(rule.public_id)).json()["threshold"] == 0.9

    response = api.patch(
        rule_url(rule.public_id),
        {"threshold": 0.99, "window_minutes": 15, "webhook": hook.public_id, "enabled": False},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["threshold"], body["window_minutes"], body["enabled"]) == (0.99, 15, False)
    assert body["webhook"] == hook.public_id and body["min_attempts"] == 10

    response = api.patch(rule_url(rule.public_id), {"webhook": None})
    assert response.json()["webhook"] is None

    assert api.delete(rule_url(rule.public_id)).status_code == 204
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    error_of(api.get(rule_url(rule.public_id)), 404, "not_found")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"metric": "failed_deliveries", "threshold": -5}, "threshold"),
        ({"metric": "failed_deliveries", "threshold": 1e12}, "threshold"),
        ({"metric": "avg_latency_ms", "threshold": 0}, "threshold"),
        ({"metric": "success_rate", "threshold": 95}, "threshold"),
        ({"metric": "success_rate", "threshold": "0.9"}, "threshold"),
        ({"metric": "success_rate", "threshold": True}, "threshold"),
        ({"metric": "success_rate"}, "threshold"),
        ({"metric": "p95", "threshold": 1}, "metric"),
        ({"metric": "success_rate", "threshold": 0.9, "window_minutes": 0}, "window_minutes"),
        ({"metric": "success_rate", "threshold": 0.9, "window_minutes": 99999}, "window_minutes"),
        ({"metric": "success_rate", "threshold": 0.9, "window_minutes": "60"}, "window_minutes"),
        ({"metric": "success_rate", "threshold": 0.9, "min_attempts": -1}, "min_attempts"),
        ({"metric": "success_rate", "threshold": 0.9, "min_attempts": 10**20}, "min_attempts"),
        ({"metric": "success_rate", "threshold": 0.9, "enabled": 1}, "enabled"),
        ({"metric": "success_rate", "threshold": 0.9, "webhook": "wh_nope"}, "webhook"),
        ({"metric": "success_rate", "threshold": 0.9, "webhook": 7}, "webhook"),
        ({"metric": "success_rate", "threshold": 0.9, "organization": "org_x"}, "organization"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(api, org, body, field):
    error_of(api.post(RULES, body), 422, "invalid", field)
    assert AlertRule.objects.filter(organization=org).count() == 3


def test_a_threshold_that_overflows_to_infinity_is_refused(api, org):
    response = api.post(RULES, raw='{"metric": "avg_latency_ms", "threshold": 1e309}')
    error_of(response, 422, "invalid", "threshold")


def test_the_threshold_message_explains_the_fraction(api):
    error = error_of(
        api.post(RULES, {"metric": "success_rate", "threshold": 95}), 422, "invalid", "threshold"
    )
    assert "0.95 means 95 %" in error["message"]


def test_a_rule_on_another_organizations_webhook_is_refused(api, org, other_org):
    theirs = WebhookFactory(organization=other_org)
    body = {"metric": "success_rate", "threshold": 0.9, "webhook": theirs.public_id}
    error = error_of(api.post(RULES, body), 422, "invalid", "webhook")
    assert error["message"] == "no webhook with this id in this organization"
    rule = AlertRule.objects.filter(organization=org).first()
    error_of(
        api.patch(rule_url(rule.public_id), {"webhook": theirs.public_id}), 422, field="webhook"
    )
    rule.refresh_from_db()
    assert rule.webhook is None


def test_a_bad_patch_changes_nothing(api, org):
    rule = AlertRule.objects.get(organization=org, metric="avg_latency_ms")
    error_of(api.patch(rule_url(rule.public_id), {"threshold": 0}), 422, field="threshold")
    error_of(api.patch(rule_url(rule.public_id), {"enabled": None}), 422, field="enabled")
    error_of(api.patch(rule_url(rule.public_id), {"colour": "red"}), 422, field="colour")
    # A metric whose scale the threshold does not fit: say which.
    error_of(
        api.patch(rule_url(rule.public_id), {"metric": "success_rate"}), 422, field="threshold"
    )
    rule.refresh_from_db()
    assert (rule.metric, rule.threshold, rule.enabled) == ("avg_latency_ms", 5000.0, True)


def test_another_organizations_rules_are_404(api, other_org):
    theirs = AlertRule.objects.filter(organization=other_org).first()
    for response in (
        api.get(rule_url(theirs.public_id)),
        api.patch(rule_url(theirs.public_id), {"threshold": 20}),
        api.delete(rule_url(theirs.public_id)),
        api.get(rule_url("rule_nope")),
        api.get(rule_url("wh_01m818pk10g6w8rgjwrvytrnf2")),
    ):
        error_of(response, 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.threshold != 20
    assert api.get(RULES).json()["items"] and all(
        r["id"] != theirs.public_id for r in api.get(RULES).json()["items"]
    )


def test_rules_are_paginated(api, org):
    for threshold in range(1, 8):
        alerts.create_rule(org, metric="failed_deliveries", threshold=threshold)
    seen, cursor = [], None
    while True:
        body = api.get(RULES, {"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        seen += [r["id"] for r in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10


def test_rules_need_an_api_key(client, org):
    error_of(client.get(RULES), 401, "unauthorized")
    error_of(client.get(ALERTS), 401, "unauthorized")


# --- alerts ---------------------------------------------------------------------


@pytest.fixture
def some_alerts(org, hook):
    """hook: a resolved and an open alert; quiet: one disabled alert."""
    quiet = WebhookFactory(organization=org)
    AlertRule.objects.filter(organization=org).exclude(metric="success_rate").delete()
    traffic(hook, NOW, failed=20)
    alerts.evaluate(NOW)
    alerts.evaluate(NOW + timedelta(minutes=61))
    traffic(hook, NOW + timedelta(minutes=62), failed=20)
    alerts.evaluate(NOW + timedelta(minutes=62))
    actions.disable_webhook(quiet, "test")
    return quiet


def test_alerts_list_newest_first_with_filters(api, org, hook, some_alerts):
    quiet = some_alerts
    body = api.get(ALERTS).json()
    assert [(a["webhook"], a["kind"], a["state"]) for a in body["items"]] == [
        (quiet.public_id, "webhook_disabled", "open"),
        (hook.public_id, "threshold", "open"),
        (hook.public_id, "threshold", "resolved"),
    ]
    newest_threshold = body["items"][1]
    alert = Alert.objects.get(public_id=newest_threshold["id"])
    assert newest_threshold == {
        "id": alert.public_id,
        "rule": alert.rule.public_id,
        "webhook": hook.public_id,
        "kind": "threshold",
        "state": "open",
        "metric": "success_rate",
        "value": 0.0,
        "current_value": 0.0,
        "threshold": 0.95,
        "window_minutes": 60,
        "message": alert.message,
        "opened_at": "2026-01-15T13:02:30Z",
        "resolved_at": None,
    }
    disabled = body["items"][0]
    assert disabled["rule"] is None and disabled["metric"] is None

    def states(params):
        return [(a["webhook"], a["state"]) for a in api.get(ALERTS, params).json()["items"]]

    assert states({"state": "open"}) == [(quiet.public_id, "open"), (hook.public_id, "open")]
    assert states({"state": "resolved"}) == [(hook.public_id, "resolved")]
    assert states({"webhook": hook.public_id, "state": "open"}) == [(hook.public_id, "open")]
    assert states({"kind": "webhook_disabled"}) == [(quiet.public_id, "open")]


def test_alerts_are_paginated(api, some_alerts):
    first = api.get(ALERTS, {"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = api.get(ALERTS, {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    error_of(api.get(ALERTS, {"cursor": "nonsense"}), 400, "invalid_cursor", "cursor")


def test_alert_filters_are_checked(api, other_org, some_alerts):
    error_of(api.get(ALERTS, {"state": "closed"}), 422, "invalid", "state")
    error_of(api.get(ALERTS, {"webhook": "wh_nope"}), 422, "invalid", "webhook")
    theirs = WebhookFactory(organization=other_org)
    error_of(api.get(ALERTS, {"webhook": theirs.public_id}), 422, "invalid", "webhook")


def test_another_organizations_alerts_are_not_listed(org, other_org, some_alerts):
    theirs = ApiClient(Client(), api_key_for(other_org))
    assert theirs.get(ALERTS).json() == {"items": [], "next_cursor": None}


def test_the_openapi_schema_describes_the_endpoints(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    assert set(paths[RULES]) == {"get", "post"}
    assert set(paths[f"{RULES}/{{rule_id}}"]) == {"get", "patch", "delete"}
    assert set(paths[ALERTS]) == {"get"}

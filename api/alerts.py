"""Alerting API (SPEC §6, §8): alert rules and the alerts they opened.

Mounted at /api/v1 (one router for /alert-rules and /alerts); the work is
done by monitoring.alerts, which the dashboard calls too.
"""

from datetime import datetime
from typing import Literal

from ninja import Field, Query, Router, Schema, Status
from ninja.responses import codes_4xx

from api.auth import OrganizationAuth
from api.errors import ErrorOut
from api.pagination import get_by_public_id, page
from api.parsing import StrictSchema
from monitoring import alerts
from monitoring.models import MIN_ATTEMPTS_RANGE, WINDOW_MINUTES_RANGE, AlertRule
from webhooks import ids
from webhooks.errors import InvalidInput
from webhooks.models import Webhook

router = Router(auth=OrganizationAuth())

Metric = Literal["failed_deliveries", "avg_latency_ms", "success_rate"]
WINDOW = WINDOW_MINUTES_RANGE
MIN_ATTEMPTS = MIN_ATTEMPTS_RANGE
THRESHOLD_HELP = (
    "failed_deliveries: a whole number 1–1,000,000 (fires when more fail); "
    "avg_latency_ms: 1–600,000 ms (fires above); "
    "success_rate: a fraction over 0, at most 1 (fires under; 0.95 is 95 %)"
)


class RuleIn(StrictSchema):
    metric: Metric
    threshold: float = Field(description=THRESHOLD_HELP)
    webhook: str | None = Field(None, description="a wh_… id; null: every webhook")
    window_minutes: int = Field(alerts.DEFAULT_WINDOW_MINUTES, ge=WINDOW[0], le=WINDOW[1])
    min_attempts: int = Field(
        alerts.DEFAULT_MIN_ATTEMPTS,
        ge=MIN_ATTEMPTS[0],
        le=MIN_ATTEMPTS[1],
        description="attempts the window must hold before the rule can fire",
    )
    enabled: bool = True


class RulePatch(StrictSchema):
    metric: Metric | None = None
    threshold: float | None = Field(None, description=THRESHOLD_HELP)
    webhook: str | None = Field(None, description="a wh_… id; null: every webhook")
    window_minutes: int | None = Field(None, ge=WINDOW[0], le=WINDOW[1])
    min_attempts: int | None = Field(None, ge=MIN_ATTEMPTS[0], le=MIN_ATTEMPTS[1])
    enabled: bool | None = None


class RuleOut(Schema):
    id: str
    webhook: str | None
    metric: str
    threshold: float
    window_minutes: int
    min_attempts: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RuleListOut(Schema):
    items: list[RuleOut]
    next_cursor: str | None


class AlertOut(Schema):
    id: str
    rule: str | None
    webhook: str
    kind: str
    state: str
    metric: str | None
    value: float | None = Field(description="the metric when the alert opened")
    current_value: float | None = Field(
        description="the metric at the latest evaluation while open (the value it opened "
        "with until one; null: nothing left to measure)"
    )
    threshold: float | None
    window_minutes: int | None
    message: str
    opened_at: datetime
    resolved_at: datetime | None


class AlertListOut(Schema):
    items: list[AlertOut]
    next_cursor: str | None


def _rules(request):
    return AlertRule.objects.filter(organization=request.organization).select_related("webhook")


def _get_rule(request, rule_id: str) -> AlertRule:
    return get_by_public_id(_rules(request), rule_id, "rule")


@router.post(
    "/alert-rules",
    response={201: RuleOut, codes_4xx: ErrorOut},
    summary="Create an alert rule",
    tags=["alerts"],
)
def create_rule(request, payload: RuleIn):
    rule = alerts.create_rule(request.organization, **payload.model_dump())
    return Status(201, alerts.rule_data(rule))


@router.get(
    "/alert-rules",
    response={200: RuleListOut, codes_4xx: ErrorOut},
    summary="List alert rules, newest first",
    tags=["alerts"],
)
def list_rules(request, cursor: str | None = None, limit: int = Query(50, ge=1, le=200)):
    items, next_cursor = page(_rules(request), cursor, limit)
    return {"items": [alerts.rule_data(r) for r in items], "next_cursor": next_cursor}


@router.get(
    "/alert-rules/{rule_id}",
    response={200: RuleOut, codes_4xx: ErrorOut},
    summary="Get an alert rule",
    tags=["alerts"],
)
def get_rule(request, rule_id: str):
    return alerts.rule_data(_get_rule(request, rule_id))


@router.patch(
    "/alert-rules/{rule_id}",
    response={200: RuleOut, codes_4xx: ErrorOut},
    summary="Update an alert rule",
    tags=["alerts"],
)
def update_rule(request, rule_id: str, payload: RulePatch):
    rule = alerts.update_rule(_get_rule(request, rule_id), **payload.model_dump(exclude_unset=True))
    return alerts.rule_data(rule)


@router.delete(
    "/alert-rules/{rule_id}",
    response={204: None, codes_4xx: ErrorOut},
    summary="Delete an alert rule (its alerts stay, resolved)",
    tags=["alerts"],
)
def delete_rule(request, rule_id: str):
    alerts.delete_rule(_get_rule(request, rule_id))
    return Status(204, None)


@router.get(
    "/alerts",
    response={200: AlertListOut, codes_4xx: ErrorOut},
    summary="List alerts, newest first",
    tags=["alerts"],
)
def list_alerts(
    request,
    state: Literal["open", "resolved"] | None = None,
    kind: Literal["threshold", "webhook_disabled"] | None = None,
    webhook: str | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=200),
):
    found = None
    if webhook is not None:
        if ids.looks_like(webhook, "wh"):
            found = Webhook.objects.filter(
                organization=request.organization, public_id=webhook
            ).first()
        if found is None:
            raise InvalidInput("no webhook with this id", "webhook")
    queryset = alerts.list_alerts(request.organization, state=state, kind=kind, webhook=found)
    items, next_cursor = page(queryset, cursor, limit)
    return {"items": [alerts.alert_data(a) for a in items], "next_cursor": next_cursor}

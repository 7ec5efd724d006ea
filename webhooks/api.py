"""Webhooks API (SPEC §8): create, list, read, update, delete, rotate the
secret, send a test event, retry failed deliveries, stats."""

from datetime import datetime
from typing import Literal

from django.db import transaction
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status
from ninja.responses import codes_4xx

from config.api import ErrorOut, StrictSchema, get_by_public_id, page
from deliveries import actions, metrics
from webhooks.auth import ApiKeyAuth
from webhooks.errors import InvalidInput
from webhooks.models import Webhook
from webhooks.validation import clean_webhook_fields

router = Router(auth=ApiKeyAuth(), tags=["webhooks"])

SignatureStyle = Literal["", "hex", "timestamped", "timestamped-ms"]


class WebhookIn(StrictSchema):
    url: str = Field(description="https:// endpoint, at most 2048 characters")
    events: list[str] = Field(
        description="event types or patterns: 'person.created', 'person.*', '*'"
    )
    name: str = ""
    description: str = ""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: int = Field(10, ge=1, le=300)
    max_attempts: int = Field(5, ge=1, le=10)
    verify_tls: bool = True
    signature_style: SignatureStyle | None = ""
    signature_header: str = "X-Webhook-Signature"


class WebhookPatch(StrictSchema):
    url: str | None = None
    events: list[str] | None = None
    name: str | None = None
    description: str | None = None
    headers: dict[str, str] | None = None
    timeout_seconds: int | None = Field(None, ge=1, le=300)
    max_attempts: int | None = Field(None, ge=1, le=10)
    verify_tls: bool | None = None
    signature_style: SignatureStyle | None = None
    signature_header: str | None = None
    status: Literal["active", "paused"] | None = None


class WebhookOut(Schema):
    id: str
    name: str
    description: str
    url: str
    events: list[str]
    status: str
    disabled_reason: str
    headers: dict[str, str]
    timeout_seconds: int
    max_attempts: int
    verify_tls: bool
    signature_style: str
    signature_header: str
    consecutive_failures: int
    last_delivery_at: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecretOut(WebhookOut):
    secret: str


class WebhookListOut(Schema):
    items: list[WebhookOut]
    next_cursor: str | None


class TestOut(Schema):
    event_id: str
    deliveries: int


class RetryFailedIn(StrictSchema):
    since: datetime | None = Field(None, strict=False, description="ISO 8601 time")


class CountOut(Schema):
    count: int


class StatsOut(Schema):
    window: str
    attempts: int
    succeeded_attempts: int
    failed_deliveries: int
    success_rate: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None
    last_delivery_at: datetime | None


def webhook_out(webhook: Webhook, *, with_secret: bool = False) -> dict:
    out = {
        "id": webhook.public_id,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "events": webhook.event_patterns,
        "status": webhook.status,
        "disabled_reason": webhook.disabled_reason,
        "headers": webhook.headers,
        "timeout_seconds": webhook.timeout_seconds,
        "max_attempts": webhook.max_attempts,
        "verify_tls": webhook.verify_tls,
        "signature_style": webhook.signature_style,
        "signature_header": webhook.signature_header,
        "consecutive_failures": webhook.consecutive_failures,
        "last_delivery_at": webhook.last_delivery_at,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
    }
    if with_secret:
        out["secret"] = webhook.secret
    return out


def _get(request, webhook_id: str) -> Webhook:
    return get_by_public_id(
        Webhook.objects.filter(organization=request.organization), webhook_id, "wh"
    )


@router.post(
    "", response={201: WebhookWithSecretOut, codes_4xx: ErrorOut}, summary="Create a webhook"
)
def create_webhook(request, payload: WebhookIn):
    fields = clean_webhook_fields(payload.model_dump())
    webhook = Webhook.objects.create(organization=request.organization, **fields)
    return Status(201, webhook_out(webhook, with_secret=True))


@router.get("", response={200: WebhookListOut, codes_4xx: ErrorOut}, summary="List webhooks")
def list_webhooks(request, cursor: str | None = None, limit: int = Query(50, ge=1, le=200)):
    items, next_cursor = page(
        Webhook.objects.filter(organization=request.organization), cursor, limit
    )
    return {"items": [webhook_out(w) for w in items], "next_cursor": next_cursor}


@router.get(
    "/{webhook_id}", response={200: WebhookOut, codes_4xx: ErrorOut}, summary="Get a webhook"
)
def get_webhook(request, webhook_id: str):
    return webhook_out(_get(request, webhook_id))


@router.patch(
    "/{webhook_id}", response={200: WebhookOut, codes_4xx: ErrorOut}, summary="Update a webhook"
)
def update_webhook(request, webhook_id: str, payload: WebhookPatch):
    changes = payload.model_dump(exclude_unset=True)
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=_get(request, webhook_id).pk)
        status = changes.pop("status", None)
        for field, value in changes.items():
            if value is None:
                raise InvalidInput("may not be null", field)
        fields = clean_webhook_fields(changes, current=webhook)
        for name, value in fields.items():
            setattr(webhook, name, value)
        if fields:
            webhook.save(update_fields=[*fields, "updated_at"])
        if status is not None:
            actions.set_status(webhook, status)
    webhook.refresh_from_db()
    return webhook_out(webhook)


@router.delete(
    "/{webhook_id}", response={204: None, codes_4xx: ErrorOut}, summary="Delete a webhook"
)
def delete_webhook(request, webhook_id: str):
    _get(request, webhook_id).delete()
    return Status(204, None)


@router.post(
    "/{webhook_id}/rotate-secret",
    response={200: WebhookWithSecretOut, codes_4xx: ErrorOut},
    summary="Rotate the signing secret; the old one keeps signing for the grace period",
)
def rotate_secret(request, webhook_id: str):
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=_get(request, webhook_id).pk)
        webhook.rotate_secret()
        webhook.save(update_fields=["secret", "previous_secrets", "updated_at"])
    return webhook_out(webhook, with_secret=True)


@router.post(
    "/{webhook_id}/test",
    response={202: TestOut, codes_4xx: ErrorOut},
    summary="Send a webhook.test event to this webhook only",
)
def send_test(request, webhook_id: str):
    published = actions.send_test(_get(request, webhook_id))
    return Status(
        202, {"event_id": published.event.public_id, "deliveries": published.delivery_count}
    )


@router.post(
    "/{webhook_id}/retry-failed",
    response={202: CountOut, codes_4xx: ErrorOut},
    summary="Retry every failed delivery (optionally only those created since a time)",
)
def retry_failed(request, webhook_id: str, payload: RetryFailedIn | None = None):
    since = payload.since if payload else None
    return Status(202, {"count": actions.retry_failed(_get(request, webhook_id), since=since)})


@router.get(
    "/{webhook_id}/stats",
    response={200: StatsOut, codes_4xx: ErrorOut},
    summary="Success rate, latency and failures over a window",
)
def webhook_stats(request, webhook_id: str, window: Literal["1h", "24h", "7d", "30d"] = "24h"):
    webhook = _get(request, webhook_id)
    stats = metrics.window_stats([webhook.pk], timezone.now() - metrics.WINDOWS[window])[webhook.pk]
    return {
        "window": window,
        "attempts": stats.attempts,
        "succeeded_attempts": stats.succeeded_attempts,
        "failed_deliveries": stats.failed_deliveries,
        "success_rate": stats.success_rate,
        "avg_latency_ms": stats.avg_latency_ms,
        "p95_latency_ms": stats.p95_latency_ms,
        "last_delivery_at": webhook.last_delivery_at,
    }

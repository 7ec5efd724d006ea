"""Webhooks API (SPEC §8): create, list, read, update, delete, rotate the
secret, send a test event, retry failed deliveries, replay, stats."""

from datetime import datetime
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from api.auth import OrganizationAuth
from api.openapi import WITH_BODY, WITH_ID, WITH_QUERY, responses
from api.pagination import get_by_public_id, page
from api.parsing import IsoTime, StrictSchema, optional
from deliveries import actions, replay
from monitoring.stats import WINDOWS, window_stats
from webhooks import deletion, validation
from webhooks.models import Webhook
from webhooks.validation import clean_webhook_fields

router = Router(auth=OrganizationAuth(), tags=["webhooks"])

SignatureStyle = Literal["", "hex", "timestamped", "timestamped-ms"]

# What the schema tells clients (and the fuzzer) about each field. Only rules
# that validation.py enforces exactly are stated as JSON Schema; the rest
# (URL syntax, private addresses, reserved header names) are in the words.
# JSON Schema patterns are ECMAScript: `$` is the end of the text.
_HEADER_NAME = "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
_EVENT_PATTERN = "^(\\*|([a-z][a-z0-9_]*|\\*)(\\.([a-z][a-z0-9_]*|\\*))+)$"
FIELDS = {
    "url": (
        "the endpoint: an http(s) URL of at most 2048 characters; https:// only unless "
        "HERALD_ALLOW_HTTP, and not a private, loopback or reserved address unless "
        "HERALD_ALLOW_PRIVATE_TARGETS",
        {"maxLength": settings.HERALD_MAX_URL_LENGTH},
    ),
    "events": (
        "event types ('person.created') or patterns ('person.*', '*'), 1 to 100; a pattern "
        "may name types never published",
        {
            "minItems": 1,
            "maxItems": validation.MAX_PATTERNS,
            "items": {"type": "string", "maxLength": 100, "pattern": _EVENT_PATTERN},
        },
    ),
    "name": ("at most 200 characters", {"maxLength": 200}),
    "description": ("at most 2000 characters", {"maxLength": 2000}),
    "headers": (
        "custom headers sent with every request: at most 20, one line of at most 1000 "
        "characters each; not Content-Type, Host, User-Agent, webhook-* or the signature "
        "headers",
        {
            "maxProperties": validation.MAX_HEADERS,
            "propertyNames": {"pattern": _HEADER_NAME},
            "additionalProperties": {"type": "string", "maxLength": validation.MAX_HEADER_VALUE},
        },
    ),
    "timeout_seconds": ("seconds to wait for the response (1 to 300)", {}),
    "max_attempts": ("attempts before a delivery fails (1 to 10)", {}),
    "verify_tls": ("check the endpoint's TLS certificate", {}),
    "max_in_flight": (
        "at most this many of its requests in flight at once, across all workers (1 to 100); "
        "1 for an ordered webhook",
        {},
    ),
    "rate_limit": (
        "at most this many requests starting in any one second (1 to 1000); null for no limit",
        {},
    ),
    "ordered": (
        "deliver one at a time in publish order: a failing delivery holds the later ones "
        "until it ends (max_in_flight is then 1)",
        {},
    ),
    "signature_style": (
        "an extra signature for receivers written for other platforms: 'hex', "
        "'timestamped' or 'timestamped-ms'; empty or null for Standard Webhooks only",
        {},
    ),
    "signature_header": (
        "the header carrying the extra signature; empty for X-Webhook-Signature",
        {"pattern": _HEADER_NAME.replace("{1,100}", "{0,100}")},
    ),
}


def field(name: str, default=..., **kwargs):
    description, schema = FIELDS[name]
    return Field(default, description=description, json_schema_extra=schema or None, **kwargs)


def optional_field(name: str, **kwargs):
    description, schema = FIELDS[name]
    return optional(description, schema, **kwargs)


class WebhookIn(StrictSchema):
    url: str = field("url", examples=["https://example.com/webhooks"])
    events: list[str] = field("events", examples=[["person.created", "invoice.*"]])
    name: str = field("name", "")
    description: str = field("description", "")
    headers: dict[str, str] = field(
        "headers", default_factory=dict, examples=[{"X-Team": "growth"}]
    )
    timeout_seconds: int = field("timeout_seconds", 10, ge=1, le=300)
    max_attempts: int = field("max_attempts", 5, ge=1, le=10)
    verify_tls: bool = field("verify_tls", True)
    signature_style: SignatureStyle | None = field("signature_style", "")
    signature_header: str = field("signature_header", "X-Webhook-Signature")
    max_in_flight: int = field("max_in_flight", 10, ge=1, le=100)
    rate_limit: int | None = field("rate_limit", None, ge=1, le=1000)
    ordered: bool = field("ordered", False)


class WebhookPatch(StrictSchema):
    """Every field is optional; a field left out is unchanged. Only
    `signature_style` (none) and `rate_limit` (no limit) may be null."""

    url: str = optional_field("url")
    events: list[str] = optional_field("events")
    name: str = optional_field("name")
    description: str = optional_field("description")
    headers: dict[str, str] = optional_field("headers")
    timeout_seconds: int = optional_field("timeout_seconds", ge=1, le=300)
    max_attempts: int = optional_field("max_attempts", ge=1, le=10)
    verify_tls: bool = optional_field("verify_tls")
    signature_style: SignatureStyle | None = optional_field("signature_style")
    signature_header: str = optional_field("signature_header")
    max_in_flight: int = optional_field("max_in_flight", ge=1, le=100)
    rate_limit: int | None = optional_field("rate_limit", ge=1, le=1000)
    ordered: bool = optional_field("ordered")
    status: Literal["active", "paused"] = optional(
        "'paused' stops sending (deliveries wait); 'active' resumes, and re-enables a "
        "webhook Herald disabled"
    )


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
    max_in_flight: int
    rate_limit: int | None
    ordered: bool
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
    since: IsoTime | None = Field(
        None, description="only deliveries created at or after this time; all when left out"
    )


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
        "max_in_flight": webhook.max_in_flight,
        "rate_limit": webhook.rate_limit,
        "ordered": webhook.ordered,
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
    "", response=responses({201: WebhookWithSecretOut}, *WITH_BODY), summary="Create a webhook"
)
def create_webhook(request, payload: WebhookIn):
    """Subscribe an endpoint to event types. The answer is the only time (with
    rotate-secret) that the signing `secret` is shown."""
    # Only what was sent: the model's defaults are the API's, and an ordered
    # webhook's cap follows from `ordered` unless one was given.
    fields = clean_webhook_fields(payload.model_dump(exclude_unset=True))
    webhook = Webhook.objects.create(organization=request.organization, **fields)
    return Status(201, webhook_out(webhook, with_secret=True))


@router.get(
    "", response=responses({200: WebhookListOut}, 400, *WITH_QUERY), summary="List webhooks"
)
def list_webhooks(
    request,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=200, description="items per page"),
):
    """The organization's webhooks, newest first, without their secrets."""
    items, next_cursor = page(
        Webhook.objects.filter(organization=request.organization), cursor, limit
    )
    return {"items": [webhook_out(w) for w in items], "next_cursor": next_cursor}


@router.get(
    "/{webhook_id}", response=responses({200: WebhookOut}, *WITH_ID), summary="Get a webhook"
)
def get_webhook(request, webhook_id: str):
    """One webhook, without its secret."""
    return webhook_out(_get(request, webhook_id))


@router.patch(
    "/{webhook_id}",
    response=responses({200: WebhookOut}, *WITH_ID, *WITH_BODY),
    summary="Update a webhook",
)
def update_webhook(request, webhook_id: str, payload: WebhookPatch):
    """Change any field; only those sent change, and a refused change changes
    nothing. `status` pauses (`paused`) or resumes (`active`): pending deliveries
    wait while paused and go out on resume; resuming a webhook Herald disabled
    re-enables it."""
    changes = payload.model_dump(exclude_unset=True)
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=_get(request, webhook_id).pk)
        status = changes.pop("status", None)
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
    "/{webhook_id}", response=responses({204: None}, *WITH_ID), summary="Delete a webhook"
)
def delete_webhook(request, webhook_id: str):
    """Delete the webhook with its deliveries and their attempts."""
    deletion.delete_webhook(_get(request, webhook_id))
    return Status(204, None)


@router.post(
    "/{webhook_id}/rotate-secret",
    response=responses({200: WebhookWithSecretOut}, *WITH_ID),
    summary="Rotate the signing secret; the old one keeps signing for the grace period",
)
def rotate_secret(request, webhook_id: str):
    """A new `secret`, shown once. Requests are signed with both the new and the
    old secret (space-separated signatures) for `HERALD_SECRET_GRACE_HOURS`."""
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=_get(request, webhook_id).pk)
        webhook.rotate_secret()
        webhook.save(update_fields=["secret", "previous_secrets", "updated_at"])
    return webhook_out(webhook, with_secret=True)


@router.post(
    "/{webhook_id}/test",
    response=responses({202: TestOut}, *WITH_ID, 409),
    summary="Send a webhook.test event to this webhook only",
)
def send_test(request, webhook_id: str):
    """Whatever the webhook subscribes to; 409 when it is not active."""
    published = actions.send_test(_get(request, webhook_id))
    return Status(
        202, {"event_id": published.event.public_id, "deliveries": published.delivery_count}
    )


@router.post(
    "/{webhook_id}/retry-failed",
    response=responses({202: CountOut}, *WITH_ID, 409, *WITH_BODY),
    summary="Retry every failed delivery (optionally only those created since a time)",
)
def retry_failed(request, webhook_id: str, payload: RetryFailedIn | None = None):
    """One immediate manual attempt for each failed delivery of the webhook
    (created at or after `since`, when given); `count` says how many. The body
    is optional. 409 when the webhook is not active."""
    since = payload.since if payload else None
    return Status(202, {"count": actions.retry_failed(_get(request, webhook_id), since=since)})


class ReplayIn(StrictSchema):
    since: IsoTime = Field(description="events published at or after this time")
    until: IsoTime = optional("events published before this time; now when left out")
    status: Literal["any", "failed", "succeeded", "none"] = Field(
        "any",
        description="which of them, by this webhook's delivery of each: `any`; `failed`; "
        "`succeeded`; `none`, the events it never got (a backfill of a new webhook)",
    )
    event_type: str = optional(
        "only this type or the types of this pattern (`order.*`), among those the webhook "
        "subscribes to",
        {"maxLength": 100},
    )
    dry_run: bool = Field(False, description="count the events, send nothing")


class ReplayOut(Schema):
    id: str | None = Field(description="the replay's id (`rpl_…`); null for a dry run")
    count: int = Field(description="events it sends (or would send, in a dry run)")
    sent: int = Field(description="of those, how many have been sent (ended) so far")
    duplicate: bool = Field(
        description="true when the same replay was still running: that one is returned, "
        "and nothing more is sent"
    )


@router.post(
    "/{webhook_id}/replay",
    response=responses({202: ReplayOut, 200: ReplayOut}, *WITH_ID, 409, *WITH_BODY),
    summary="Send the webhook the events of a time range again, or for the first time",
)
def replay_events(request, webhook_id: str, payload: ReplayIn):
    """Every event published in the range whose type the webhook subscribes
    to, events from before the webhook existed included, selected by this
    webhook's delivery of it (`status`). Only this webhook gets them, no faster
    than its `rate_limit` and `max_in_flight` allow. A delivery still pending
    is not queued twice, and the same replay asked for while it runs answers
    with the first (`duplicate`), so a retried request sends nothing twice.
    202 `{count}`; with `dry_run`, 200 and nothing is sent. 409 when the webhook
    is not active; 422 when `until` is not after `since`, or the range holds
    more than `HERALD_REPLAY_MAX_EVENTS` events to send."""
    webhook = _get(request, webhook_id)
    criteria = replay.Criteria(
        since=payload.since,
        until=payload.until,
        status=payload.status,
        event_type=payload.event_type or "",
    )
    if payload.dry_run:
        return Status(
            200,
            {"id": None, "count": replay.count(webhook, criteria), "sent": 0, "duplicate": False},
        )
    started, is_new = replay.start(webhook, criteria)
    return Status(
        202,
        {
            "id": started.public_id,
            "count": started.total,
            "sent": replay.progress(started).sent,
            "duplicate": not is_new,
        },
    )


@router.get(
    "/{webhook_id}/stats",
    response=responses({200: StatsOut}, *WITH_ID, *WITH_QUERY),
    summary="Success rate, latency and failures over a window",
)
def webhook_stats(
    request,
    webhook_id: str,
    window: Literal["1h", "24h", "7d", "30d"] = Query(
        "24h", description="the last 1h, 24h, 7d or 30d"
    ),
):
    """`success_rate` is 2xx attempts / attempts (a fraction, null without
    attempts); latencies are over attempts that got a response; `failed_deliveries`
    counts deliveries that ended failed in the window."""
    webhook = _get(request, webhook_id)
    stats = window_stats([webhook.pk], timezone.now() - WINDOWS[window])[webhook.pk]
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

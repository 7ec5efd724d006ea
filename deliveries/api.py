"""Events and deliveries API (SPEC §8)."""

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Header, Query, Router, Schema, Status

from config.api import (
    WITH_BODY,
    WITH_ID,
    WITH_QUERY,
    IsoTime,
    StrictSchema,
    get_by_public_id,
    page,
    responses,
)
from deliveries import actions
from deliveries.envelope import iso_millis
from deliveries.models import Delivery, DeliveryAttempt, Event
from deliveries.publishing import publish
from webhooks import ids, patterns
from webhooks.auth import ApiKeyAuth
from webhooks.errors import InvalidInput
from webhooks.models import Webhook

events_router = Router(auth=ApiKeyAuth(), tags=["events"])
deliveries_router = Router(auth=ApiKeyAuth(), tags=["deliveries"])


# ECMAScript, as JSON Schema patterns are: `$` is the end of the text.
_EVENT_TYPE = "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$"


class EventIn(StrictSchema):
    type: str = Field(
        description="resource.action: lowercase segments of letters, digits and underscores, "
        "separated by dots, at most 100 characters",
        examples=["person.created"],
        json_schema_extra={"maxLength": 100, "pattern": _EVENT_TYPE},
    )
    data: dict[str, Any] = Field(
        description="any JSON object, at most 1 MiB", examples=[{"id": 42, "name": "Zoë"}]
    )
    idempotency_key: str | None = Field(
        None,
        description="printable text, at most 255 characters; a repeat within 24 h returns "
        "the first event and sends nothing",
        examples=["person-42-created"],
        json_schema_extra={"maxLength": 255},
    )


class PublishedOut(Schema):
    id: str
    type: str
    timestamp: str
    deliveries: int


class DeliverySummaryOut(Schema):
    id: str
    webhook: str
    event: str
    event_type: str
    status: str
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error_kind: str
    created_at: datetime
    completed_at: datetime | None


class EventOut(Schema):
    id: str
    type: str
    timestamp: str
    data: dict[str, Any]
    deliveries: list[DeliverySummaryOut]


class AttemptOut(Schema):
    number: int
    trigger: str
    started_at: datetime
    duration_ms: int
    request_headers: dict[str, str]
    request_body: str
    response_status: int | None
    response_headers: dict[str, str]
    response_body: str
    error_kind: str
    error_message: str


class DeliveryOut(DeliverySummaryOut):
    attempts: list[AttemptOut]


class DeliveryListOut(Schema):
    items: list[DeliverySummaryOut]
    next_cursor: str | None


def delivery_summary(delivery: Delivery) -> dict:
    return {
        "id": delivery.public_id,
        "webhook": delivery.webhook.public_id,
        "event": delivery.event.public_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempt_count": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "last_status_code": delivery.last_status_code,
        "last_latency_ms": delivery.last_latency_ms,
        "last_error_kind": delivery.last_error_kind,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at,
    }


def attempt_out(attempt: DeliveryAttempt) -> dict:
    return {
        "number": attempt.number,
        "trigger": attempt.trigger,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "request_headers": attempt.request_headers,
        "request_body": attempt.request_body,
        "response_status": attempt.response_status,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "error_kind": attempt.error_kind,
        "error_message": attempt.error_message,
    }


def delivery_detail(delivery: Delivery) -> dict:
    out = delivery_summary(delivery)
    out["attempts"] = [attempt_out(a) for a in delivery.attempt_set.order_by("number")]
    return out


def _deliveries(request):
    return Delivery.objects.filter(organization=request.organization).select_related(
        "webhook", "event"
    )


@events_router.post(
    "",
    response=responses({202: PublishedOut, 200: PublishedOut}, *WITH_BODY),
    summary="Publish an event to every subscribed webhook",
)
def publish_event(
    request,
    payload: EventIn,
    idempotency_key_header: str | None = Header(
        None,
        alias="Idempotency-Key",
        description="same as the body's `idempotency_key` (at most 255 characters); if both "
        "are sent they must be equal",
    ),
):
    """Records the event and one delivery per active or paused webhook of the
    organization whose patterns match its type (`deliveries` counts them), in
    one transaction, and answers 202. A repeat of an idempotency key within 24 h
    answers 200 with the first event and sends nothing."""
    key = payload.idempotency_key
    if idempotency_key_header is not None:
        if key is not None and key != idempotency_key_header:
            raise InvalidInput(
                "differs from the Idempotency-Key header; send one or make them equal",
                "idempotency_key",
            )
        key = idempotency_key_header
    published = publish(request.organization, payload.type, payload.data, idempotency_key=key)
    event = published.event
    body = {
        "id": event.public_id,
        "type": event.type,
        "timestamp": iso_millis(event.created_at),
        "deliveries": event.delivery_count,
    }
    return Status((202 if published.created else 200), body)


@events_router.get(
    "/{event_id}",
    response=responses({200: EventOut}, *WITH_ID),
    summary="Get an event and its deliveries",
)
def get_event(request, event_id: str):
    """The event as published, with one entry per webhook it fanned out to."""
    event = get_by_public_id(
        Event.objects.filter(organization=request.organization), event_id, "evt"
    )
    deliveries = event.deliveries.select_related("webhook", "event").order_by("id")
    return {
        "id": event.public_id,
        "type": event.type,
        "timestamp": iso_millis(event.created_at),
        "data": json.loads(event.data_json),
        "deliveries": [delivery_summary(d) for d in deliveries],
    }


@deliveries_router.get(
    "",
    response=responses({200: DeliveryListOut}, 400, *WITH_QUERY),
    summary="List deliveries, newest first",
)
def list_deliveries(
    request,
    webhook: str | None = Query(None, description="only this webhook's (`wh_…`); empty for all"),
    status: Literal["pending", "succeeded", "failed"] | None = Query(
        None, description="only deliveries in this state"
    ),
    event_type: str | None = Query(
        None, description="only events of this exact type; empty for all"
    ),
    since: Annotated[
        IsoTime | None, Query(description="only deliveries created at or after this time")
    ] = None,
    until: Annotated[
        IsoTime | None, Query(description="only deliveries created before this time")
    ] = None,
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=200, description="items per page"),
):
    """Filters combine. Pages are stable: deliveries created while you page
    through appear on no later page (start again to see them), and none is
    repeated or skipped. A time without an offset is UTC."""
    deliveries = _deliveries(request)
    if webhook:
        found = None
        if ids.looks_like(webhook, "wh"):
            found = Webhook.objects.filter(
                organization=request.organization, public_id=webhook
            ).first()
        if found is None:
            raise InvalidInput("no webhook with this id", "webhook")
        deliveries = deliveries.filter(webhook=found)
    if status is not None:
        deliveries = deliveries.filter(status=status)
    if event_type:
        if not patterns.is_valid_type(event_type):
            raise InvalidInput(f"must be {patterns.TYPE_RULE}", "event_type")
        deliveries = deliveries.filter(event_type=event_type)
    if since is not None:
        deliveries = deliveries.filter(created_at__gte=since)
    if until is not None:
        deliveries = deliveries.filter(created_at__lt=until)
    items, next_cursor = page(deliveries, cursor, limit)
    return {"items": [delivery_summary(d) for d in items], "next_cursor": next_cursor}


@deliveries_router.get(
    "/{delivery_id}",
    response=responses({200: DeliveryOut}, *WITH_ID),
    summary="Get a delivery with its attempts",
)
def get_delivery(request, delivery_id: str):
    """The delivery and every attempt, oldest first: the request as sent
    (headers and body) and the response as received (status, headers, the first
    4 KiB of the body) or the error."""
    return delivery_detail(get_by_public_id(_deliveries(request), delivery_id, "dlv"))


@deliveries_router.post(
    "/{delivery_id}/retry",
    response=responses({202: DeliverySummaryOut}, *WITH_ID, 409),
    summary="Make one immediate attempt of a failed or pending delivery",
)
def retry_delivery(request, delivery_id: str):
    """Queues one manual attempt now; a success marks the delivery succeeded.
    409 when it already succeeded or its webhook is not active."""
    delivery = actions.retry_delivery(get_by_public_id(_deliveries(request), delivery_id, "dlv"))
    return Status(202, delivery_summary(delivery))

"""Deliveries API (SPEC §8): list, read with attempts, retry, resend."""

from datetime import datetime
from typing import Annotated, Literal

from ninja import Query, Router, Schema, Status

from api.auth import OrganizationAuth
from api.openapi import WITH_ID, WITH_QUERY, responses
from api.pagination import get_by_public_id, page
from api.parsing import IsoTime
from deliveries import actions
from deliveries.models import Delivery, DeliveryAttempt
from webhooks import ids, patterns
from webhooks.errors import InvalidInput
from webhooks.models import Webhook

router = Router(auth=OrganizationAuth(), tags=["deliveries"])


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


@router.get(
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


@router.get(
    "/{delivery_id}",
    response=responses({200: DeliveryOut}, *WITH_ID),
    summary="Get a delivery with its attempts",
)
def get_delivery(request, delivery_id: str):
    """The delivery and every attempt, oldest first: the request as sent
    (headers and body) and the response as received (status, headers, the first
    4 KiB of the body) or the error."""
    return delivery_detail(get_by_public_id(_deliveries(request), delivery_id, "dlv"))


@router.post(
    "/{delivery_id}/retry",
    response=responses({202: DeliverySummaryOut}, *WITH_ID, 409),
    summary="Make one immediate attempt of a failed or pending delivery",
)
def retry_delivery(request, delivery_id: str):
    """Queues one manual attempt now; a success marks the delivery succeeded.
    409 when it already succeeded or its webhook is not active."""
    delivery = actions.retry_delivery(get_by_public_id(_deliveries(request), delivery_id, "dlv"))
    return Status(202, delivery_summary(delivery))


@router.post(
    "/{delivery_id}/resend",
    response=responses({202: DeliverySummaryOut}, *WITH_ID, 409),
    summary="Send any delivery again, a succeeded one included",
)
def resend_delivery(request, delivery_id: str):
    """Queues one manual attempt now, whatever the delivery's state: the same
    event and `webhook-id`, a fresh timestamp and signature. The attempt's
    outcome becomes the delivery's state. 409 when its webhook is not active."""
    delivery = actions.resend_delivery(get_by_public_id(_deliveries(request), delivery_id, "dlv"))
    return Status(202, delivery_summary(delivery))

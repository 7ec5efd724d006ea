"""Events API (SPEC §8): publish one or a batch, list them, read one with its deliveries."""

import json
from typing import Annotated, Any

from ninja import Field, Header, Query, Router, Schema, Status

from api import ratelimit
from api.auth import OrganizationAuth
from api.deliveries import DeliverySummaryOut, delivery_summary
from api.openapi import WITH_BODY, WITH_ID, WITH_QUERY, responses
from api.pagination import get_by_public_id, page
from api.parsing import IsoTime, StrictSchema
from deliveries.envelope import iso_millis
from deliveries.models import Event
from deliveries.publishing import BatchItem, Published, publish, publish_batch
from deliveries.search import EventFilters, find_events
from webhooks.errors import InvalidInput

router = Router(auth=OrganizationAuth(), tags=["events"])


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


class EventOut(Schema):
    id: str
    type: str
    timestamp: str
    data: dict[str, Any]
    deliveries: list[DeliverySummaryOut]


class EventSummaryOut(Schema):
    id: str
    type: str
    timestamp: str
    deliveries: int


class PublishedOut(EventSummaryOut):
    """An event as published: `deliveries` webhooks it fans out to."""


class EventListOut(Schema):
    items: list[EventSummaryOut]
    next_cursor: str | None


class BatchIn(StrictSchema):
    events: list[EventIn] = Field(
        description="1 to 500 events; all are checked before any is stored",
        min_length=1,
        max_length=500,
    )


class BatchItemOut(PublishedOut):
    duplicate: bool = Field(
        description="true when its idempotency key was seen within 24 h (or earlier in the "
        "batch): the first event, and nothing sent"
    )


class BatchOut(Schema):
    items: list[BatchItemOut]


def published_out(published: Published) -> dict:
    return event_summary(published.event)


@router.post(
    "",
    auth=OrganizationAuth(ratelimit.PUBLISH),
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
    return Status((202 if published.created else 200), published_out(published))


@router.post(
    "/batch",
    auth=OrganizationAuth(ratelimit.PUBLISH),
    response=responses({202: BatchOut}, *WITH_BODY),
    summary="Publish up to 500 events at once, all or nothing",
)
def publish_batch_of_events(request, payload: BatchIn):
    """Every event is checked before any is stored: one bad event refuses the
    batch (422 naming it, e.g. `events.3.type`) and stores nothing. Then all
    are written in one transaction. An idempotency key seen within 24 h, or
    earlier in the same batch, answers with the first event (`duplicate`:
    true) and sends nothing. Items answer in the order they were sent; the
    body may be up to 8 MiB (each event's data at most 1 MiB)."""
    published = publish_batch(
        request.organization,
        [BatchItem(e.type, e.data, e.idempotency_key) for e in payload.events],
    )
    return Status(
        202, {"items": [published_out(p) | {"duplicate": not p.created} for p in published]}
    )


@router.get(
    "",
    response=responses({200: EventListOut}, 400, *WITH_QUERY),
    summary="List events, newest first",
)
def list_events(
    request,
    type: str | None = Query(  # noqa: A002 (the SPEC's name for it)
        None,
        description="an exact type (`order.created`) or a pattern (`order.*`); empty for all",
        max_length=100,
    ),
    since: Annotated[
        IsoTime | None, Query(description="only events published at or after this time")
    ] = None,
    until: Annotated[
        IsoTime | None, Query(description="only events published before this time")
    ] = None,
    include_operational: bool = Query(
        False, description="include Herald's own `herald.*` events (left out by default)"
    ),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page"),
    limit: int = Query(50, ge=1, le=200, description="items per page"),
):
    """Filters combine; `until` must be later than `since` (422). A pattern
    selects among the types the organization has published. Pages are stable
    while events are added. A time without an offset is UTC."""
    events = find_events(
        request.organization,
        EventFilters(
            type=type or "",
            since=since,
            until=until,
            include_operational=include_operational,
        ),
    ).defer("data_json")
    items, next_cursor = page(events, cursor, limit)
    return {"items": [event_summary(e) for e in items], "next_cursor": next_cursor}


def event_summary(event: Event) -> dict:
    return {
        "id": event.public_id,
        "type": event.type,
        "timestamp": iso_millis(event.created_at),
        "deliveries": event.delivery_count,
    }


@router.get(
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

"""Publishing: one transaction writes the event and one delivery per matching
webhook; the dispatcher is woken once it commits."""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from deliveries import envelope, lanes, rows
from deliveries.models import Delivery, Event, Trigger
from deliveries.wakeup import wake_dispatcher
from webhooks import patterns
from webhooks.errors import HeraldError, InvalidInput, MalformedInput, TooLarge
from webhooks.models import EventType, Organization, Webhook

MAX_IDEMPOTENCY_KEY_LENGTH = 255
FANOUT_STATUSES = (Webhook.Status.ACTIVE, Webhook.Status.PAUSED)


@dataclass
class Published:
    event: Event
    created: bool  # False when an idempotency key returned an earlier event

    @property
    def delivery_count(self) -> int:
        return self.event.delivery_count


def validate_idempotency_key(key: object) -> str | None:
    if key is None or key == "":
        return None
    if not isinstance(key, str):
        raise InvalidInput("must be a string", "idempotency_key")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters", "idempotency_key"
        )
    if not key.isprintable():
        raise InvalidInput("must be printable text", "idempotency_key")
    return key


def prepare_data(event_type: str, data: object, *, operational: bool = False) -> str:
    """Validate and serialise; the result is what every request body carries."""
    if not patterns.is_valid_type(event_type):
        raise InvalidInput(f"must be {patterns.TYPE_RULE}", "type")
    if patterns.is_operational(event_type) and not operational:
        # Receivers trust herald.* events to come from Herald itself.
        raise InvalidInput(
            f"'{patterns.OPERATIONAL_PREFIX}*' types are reserved for Herald's operational events",
            "type",
        )
    try:
        data_json = envelope.serialize_data(data)
    except envelope.PayloadError as exc:
        raise MalformedInput(str(exc), "data") from exc
    size = len(data_json.encode("utf-8")) + envelope.envelope_overhead(event_type)
    if size > settings.HERALD_MAX_EVENT_BYTES:
        raise TooLarge(
            f"the request body would be {size} bytes; the limit is "
            f"{settings.HERALD_MAX_EVENT_BYTES} bytes (1 MiB)",
            "data",
        )
    return data_json


def publish(
    organization: Organization,
    event_type: str,
    data: object,
    idempotency_key: str | None = None,
    *,
    only_webhook: Webhook | None = None,
    trigger: str = Trigger.AUTO,
    add_to_catalog: bool = True,
) -> Published:
    """Record an event and fan it out to the organization's subscribed webhooks
    (or to `only_webhook`).

    Raises InvalidInput, MalformedInput or TooLarge (naming the field) and
    writes nothing when the input is bad.
    """
    data_json = prepare_data(event_type, data)
    idempotency_key = validate_idempotency_key(idempotency_key)
    now = timezone.now()

    if idempotency_key is None and connection.vendor == "postgresql":
        # Nothing to look up first: the event, its deliveries and the lanes'
        # wake go as one statement, which is a transaction of its own.
        event, deliveries = _new_rows(
            organization, event_type, data_json, None, only_webhook, trigger, now
        )
        due = [d.webhook_id for d in deliveries if d.next_attempt_at is not None]
        rows.insert_family(event, deliveries, "event_id", *lanes.wake_statement(due, now))
        if add_to_catalog:
            _add_to_catalog(organization, event_type, data, data_json)
        if due:
            transaction.on_commit(wake_dispatcher)
        return Published(event, created=True)

    with transaction.atomic():
        if idempotency_key:
            earlier = _earlier_event(organization, idempotency_key, now)
            if earlier is not None:
                return Published(earlier, created=False)

        event, deliveries = _new_rows(
            organization, event_type, data_json, idempotency_key, only_webhook, trigger, now
        )
        if idempotency_key is None:
            # Nothing unique to collide with: no savepoint (two statements fewer).
            rows.insert([event])
        else:
            try:
                with transaction.atomic():
                    rows.insert([event])
            except IntegrityError:
                # Another request with the same key committed first: answer with its event.
                return Published(
                    Event.objects.get(organization=organization, idempotency_key=idempotency_key),
                    created=False,
                )

        if add_to_catalog:
            _add_to_catalog(organization, event_type, data, data_json)

        for delivery in deliveries:
            delivery.event_id = event.pk
        rows.insert(deliveries)
        due = [d.webhook_id for d in deliveries if d.next_attempt_at is not None]
        if due:
            # Last, so the lanes' row locks are held only until the commit.
            lanes.wake(due, now)
            transaction.on_commit(wake_dispatcher)
    return Published(event, created=True)


def _targets(organization: Organization, event_type: str, only_webhook: Webhook | None) -> list:
    if only_webhook is not None:
        return [only_webhook]
    return [
        w
        for w in _fanout_candidates(organization)
        if patterns.matches_any(w.event_patterns, event_type)
    ]


def _new_rows(organization, event_type, data_json, idempotency_key, only_webhook, trigger, now):
    """The event and its deliveries to the webhooks subscribed to its type (or
    to `only_webhook`), not yet written (the deliveries' event_id is set once
    the event has its id)."""
    targets = _targets(organization, event_type, only_webhook)
    event = Event(
        organization=organization,
        type=event_type,
        data_json=data_json,
        created_at=now,
        idempotency_key=idempotency_key,
        delivery_count=len(targets),
    )
    deliveries = [
        _new_delivery(organization.pk, None, webhook, event_type, now, trigger)
        for webhook in targets
    ]
    return event, deliveries


def _new_delivery(
    organization_id: int, event_id: int | None, webhook, event_type: str, now, trigger=Trigger.AUTO
) -> Delivery:
    """A delivery of an event to one webhook: due now, or parked (no next
    attempt) when the webhook is paused."""
    return Delivery(
        organization_id=organization_id,
        event_id=event_id,
        webhook_id=webhook.pk,
        event_type=event_type,
        next_attempt_at=now if webhook.status == Webhook.Status.ACTIVE else None,
        next_trigger=trigger,
        created_at=now,
    )


class Candidate(NamedTuple):
    """A webhook as fan-out needs it."""

    pk: int
    status: str
    event_patterns: list[str]


_FANOUT_SQL = (
    f"SELECT id, status, event_patterns FROM {Webhook._meta.db_table} "
    f"WHERE organization_id = %s AND status IN ({', '.join(['%s'] * len(FANOUT_STATUSES))})"
)


def _fanout_candidates(organization: Organization) -> list[Candidate]:
    # The organization's webhooks that may receive, read with one fixed
    # statement: compiling the ORM's equivalent on every publish cost a fifth
    # of the CPU of a publish. Both databases hand back the JSON as text.
    with connection.cursor() as cursor:
        cursor.execute(_FANOUT_SQL, [organization.pk, *FANOUT_STATUSES])
        return [Candidate(pk, status, json.loads(found)) for pk, status, found in cursor]


def _earlier_event(organization: Organization, key: str, now) -> Event | None:
    earlier = Event.objects.filter(organization=organization, idempotency_key=key).first()
    if earlier is None:
        return None
    if earlier.created_at > now - timedelta(hours=settings.HERALD_IDEMPOTENCY_HOURS):
        return earlier
    # The key expired: free it for this new event.
    Event.objects.filter(pk=earlier.pk).update(idempotency_key=None)
    return None


# The (organization, type) pairs this process has put in the catalog. The
# catalog keeps the first example of each type and nothing removes an entry
# but deleting its organization, so a type seen here needs no insert: a
# statement fewer on every publish of a known type. Keyed by the public id,
# which is never reused (a rolled-back row id may be, on SQLite).
_CATALOGUED: set[tuple[str, str]] = set()
_CATALOGUED_MAX = 10_000


def _add_to_catalog(
    organization: Organization, event_type: str, example: object, data_json: str
) -> None:
    seen = (organization.public_id, event_type)
    if seen in _CATALOGUED:
        return
    EventType.objects.bulk_create(
        [
            EventType(
                organization=organization,
                name=event_type,
                # PostgreSQL's jsonb cannot hold U+0000: keep such an example out.
                example=None if "\\u0000" in data_json else example,
            )
        ],
        ignore_conflicts=True,
    )
    if len(_CATALOGUED) >= _CATALOGUED_MAX:
        _CATALOGUED.clear()
    transaction.on_commit(lambda: _CATALOGUED.add(seen))


@dataclass
class BatchItem:
    """One event of a batch (SPEC §8: POST /events/batch)."""

    event_type: str
    data: object
    idempotency_key: str | None = None


def publish_batch(organization: Organization, items: list[BatchItem]) -> list[Published]:
    """Publish many events at once, all or nothing: every item is checked
    before anything is written (an error names `events.<n>.<field>`), then
    one transaction writes them with a fixed number of statements (one per
    table), however many events and webhooks. An item whose idempotency key
    was seen (within 24 h, or earlier in the batch) answers with that event
    (`created` False) and writes nothing. Answers in the order of `items`."""
    if len(items) > settings.HERALD_MAX_BATCH_EVENTS:
        raise InvalidInput(f"at most {settings.HERALD_MAX_BATCH_EVENTS} events per batch", "events")
    prepared = []  # (item, its data as JSON, its idempotency key)
    for index, item in enumerate(items):
        try:
            prepared.append(
                (
                    item,
                    prepare_data(item.event_type, item.data),
                    validate_idempotency_key(item.idempotency_key),
                )
            )
        except HeraldError as error:
            # Each of these names the field it refused.
            error.field = f"events.{index}.{error.field}"
            raise
    now = timezone.now()
    with transaction.atomic():
        if not any(key for *_, key in prepared):
            # Nothing unique to collide with: no savepoint.
            return _write_batch(organization, prepared, now)
        try:
            with transaction.atomic():
                return _write_batch(organization, prepared, now)
        except IntegrityError:
            # A concurrent publish took one of the keys first: each item on
            # its own, the way publish() settles it.
            return [
                publish(organization, item.event_type, item.data, key) for item, _, key in prepared
            ]


def _write_batch(organization, prepared, now) -> list[Published]:
    keys = sorted({key for *_, key in prepared if key})
    earlier: dict[str, Event] = {}
    if keys:
        fresh_after = now - timedelta(hours=settings.HERALD_IDEMPOTENCY_HOURS)
        for event in Event.objects.filter(organization=organization, idempotency_key__in=keys):
            if event.created_at > fresh_after:
                earlier[event.idempotency_key] = event
            else:  # expired: free the key for this new event
                Event.objects.filter(pk=event.pk).update(idempotency_key=None)
    candidates = _fanout_candidates(organization)
    subscribed: dict[str, list[Candidate]] = {}
    answers: list[Published] = []
    new_events: dict[str, Event] = {}  # by idempotency key
    created: list[tuple[Event, object]] = []
    for item, data_json, key in prepared:
        if key and key in earlier:
            answers.append(Published(earlier[key], created=False))
            continue
        if key and key in new_events:  # a repeat within the batch
            answers.append(Published(new_events[key], created=False))
            continue
        if item.event_type not in subscribed:
            subscribed[item.event_type] = [
                w for w in candidates if patterns.matches_any(w.event_patterns, item.event_type)
            ]
        event = Event(
            organization=organization,
            type=item.event_type,
            data_json=data_json,
            created_at=now,
            idempotency_key=key,
            delivery_count=len(subscribed[item.event_type]),
        )
        created.append((event, item.data))
        answers.append(Published(event, created=True))  # its id comes with the insert
        if key:
            new_events[key] = event
    rows.insert([event for event, _ in created])
    deliveries = [
        _new_delivery(organization.pk, event.pk, webhook, event.type, now)
        for event, _ in created
        for webhook in subscribed[event.type]
    ]
    rows.append(deliveries)  # nobody needs their ids
    catalogued = set()
    for event, data in created:
        if event.type not in catalogued:
            catalogued.add(event.type)
            _add_to_catalog(organization, event.type, data, event.data_json)
    due = [d.webhook_id for d in deliveries if d.next_attempt_at is not None]
    if due:
        lanes.wake(due, now)
        transaction.on_commit(wake_dispatcher)
    return answers


@dataclass
class Outgoing:
    """One of Herald's own events, for publish_many."""

    organization_id: int
    event_type: str
    data: object
    # The webhook the event is about, when it must not hear it.
    exclude_webhook_id: int | None = None


def publish_many(items: list[Outgoing], *, now: datetime | None = None) -> list[Event]:
    """Herald's operational events (herald.*), many at once: each is fanned
    out like publish() does, but the whole batch costs a fixed number of
    queries (one per table), however many events and organizations it holds.
    No idempotency keys: each item is a new event."""
    if not items:
        return []
    now = now or timezone.now()
    prepared = [prepare_data(i.event_type, i.data, operational=True) for i in items]
    with transaction.atomic():
        candidates = defaultdict(list)
        for webhook in Webhook.objects.filter(
            organization_id__in={i.organization_id for i in items}, status__in=FANOUT_STATUSES
        ).only("id", "organization_id", "status", "event_patterns"):
            candidates[webhook.organization_id].append(webhook)
        subscribed: dict[tuple[int, str], list[Webhook]] = {}
        examples: dict[tuple[int, str], object] = {}
        events, targets_of = [], []
        for item, data_json in zip(items, prepared, strict=True):
            key = (item.organization_id, item.event_type)
            if key not in subscribed:
                examples[key] = None if "\\u0000" in data_json else item.data
                subscribed[key] = [
                    w
                    for w in candidates[item.organization_id]
                    if patterns.matches_any(w.event_patterns, item.event_type)
                ]
            targets = [w for w in subscribed[key] if w.pk != item.exclude_webhook_id]
            events.append(
                Event(
                    organization_id=item.organization_id,
                    type=item.event_type,
                    data_json=data_json,
                    created_at=now,
                    delivery_count=len(targets),
                )
            )
            targets_of.append(targets)
        Event.objects.bulk_create(events)
        deliveries = [
            _new_delivery(event.organization_id, event.pk, webhook, event.type, now)
            for event, targets in zip(events, targets_of, strict=True)
            for webhook in targets
        ]
        Delivery.objects.bulk_create(deliveries)
        EventType.objects.bulk_create(
            [
                EventType(
                    organization_id=org_id, name=event_type, example=examples[org_id, event_type]
                )
                for org_id, event_type in sorted(subscribed)
            ],
            ignore_conflicts=True,
        )
        due = [d.webhook_id for d in deliveries if d.next_attempt_at is not None]
        if due:
            lanes.wake(due, now)
            transaction.on_commit(wake_dispatcher)
    return events

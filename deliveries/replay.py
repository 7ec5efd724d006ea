"""Replay (SPEC §8 `POST /webhooks/{id}/replay`): send one webhook the events
of a time range again, or for the first time.

An event is replayed to a webhook through that webhook's one delivery of it
(one per event and webhook, a unique constraint): a delivery that ended is
opened again for one manual attempt; an event the webhook never got (it did
not exist yet, or did not subscribe) gets its delivery now, with the usual
retry schedule. Nothing is written for any other webhook, so no other
webhook sees a replayed event; the deliveries go out through the webhook's
lane like any other, within its `max_in_flight` and `rate_limit`, taking
their turn beside the other webhooks.

Idempotent: a delivery that is still pending (waiting to go, or going) is
never queued twice, and asking again for the same replay while it runs
returns it rather than starting another; so a double click, a retried
request, or a second replay of the same range sends nothing twice.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from deliveries import lanes
from deliveries.models import Delivery, Event, Replay, Trigger
from deliveries.wakeup import wake_dispatcher
from webhooks import patterns
from webhooks.errors import Conflict, InvalidInput
from webhooks.models import EventType, Webhook

CHUNK = 1000


@dataclass
class Criteria:
    since: datetime
    until: datetime | None = None
    status: str = Replay.Status.ANY
    event_type: str = ""  # an exact type or a pattern; empty for every subscribed type

    def check(self) -> None:
        """InvalidInput naming the field."""
        if self.status not in Replay.Status.values:
            raise InvalidInput(f"must be one of {', '.join(Replay.Status.values)}", "status")
        if self.event_type and not patterns.is_valid_pattern(self.event_type):
            raise InvalidInput(f"must be {patterns.PATTERN_RULE}", "event_type")
        if self.until is not None and self.since >= self.until:
            raise InvalidInput("must be later than since", "until")


@dataclass
class Progress:
    total: int
    sent: int  # ended since the replay queued them (succeeded or failed)
    succeeded: int
    failed: int

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.sent)

    @property
    def done(self) -> bool:
        return self.remaining == 0


def _events(webhook: Webhook, criteria: Criteria, until: datetime) -> QuerySet[Event]:
    """The events of the range whose type the webhook subscribes to (and that
    `criteria.event_type` selects). The types come from the catalog, which
    keeps every type published; test events, sent to one webhook and never
    catalogued, are not replayed."""
    catalog = EventType.objects.filter(organization_id=webhook.organization_id)
    types = [
        name
        for name in catalog.values_list("name", flat=True)
        if patterns.matches_any(webhook.event_patterns, name)
        and (not criteria.event_type or patterns.matches(criteria.event_type, name))
    ]
    return Event.objects.filter(
        organization_id=webhook.organization_id,
        type__in=types,
        created_at__gte=criteria.since,
        created_at__lt=until,
    )


def _selected(webhook: Webhook, criteria: Criteria, until: datetime):
    """(events to give a new delivery, deliveries to open again): what the
    replay sends, leaving out what is pending already."""
    events = _events(webhook, criteria, until)
    mine = Delivery.objects.filter(webhook=webhook)
    to_create = events.none()
    to_reopen = mine.none()
    if criteria.status in (Replay.Status.ANY, Replay.Status.NONE):
        to_create = events.exclude(pk__in=mine.values("event_id"))
    if criteria.status == Replay.Status.ANY:
        to_reopen = mine.filter(
            event__in=events, status__in=[Delivery.Status.SUCCEEDED, Delivery.Status.FAILED]
        )
    elif criteria.status in (Replay.Status.FAILED, Replay.Status.SUCCEEDED):
        to_reopen = mine.filter(event__in=events, status=criteria.status)
    return to_create, to_reopen


def count(webhook: Webhook, criteria: Criteria, now: datetime | None = None) -> int:
    """How many events the replay would send now (a dry run)."""
    criteria.check()
    to_create, to_reopen = _selected(webhook, criteria, criteria.until or now or timezone.now())
    return to_create.count() + to_reopen.count()


def running(webhook: Webhook, criteria: Criteria) -> Replay | None:
    """The same replay of this webhook, asked for earlier and not finished."""
    same = Replay.objects.filter(
        webhook=webhook,
        since=criteria.since,
        until=criteria.until,
        status=criteria.status,
        event_type=criteria.event_type,
    ).order_by("-pk")
    for replay in same[:1]:
        if not progress(replay).done:
            return replay
    return None


def start(webhook: Webhook, criteria: Criteria) -> tuple[Replay, bool]:
    """Queue the replay; (the replay, True) or, when the same one is still
    running, (that one, False) and nothing new is sent. Conflict (409) unless
    the webhook is active; InvalidInput naming the field, `since` when the
    range holds more than HERALD_REPLAY_MAX_EVENTS events to send."""
    criteria.check()
    now = timezone.now()
    limit = settings.HERALD_REPLAY_MAX_EVENTS
    with transaction.atomic():
        # One replay of a webhook at a time: the second of two identical
        # requests finds the first one running.
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        if webhook.status != Webhook.Status.ACTIVE:
            raise Conflict(
                f"The webhook is {webhook.status}; resume it before replaying.", "status"
            )
        earlier = running(webhook, criteria)
        if earlier is not None:
            return earlier, False
        to_create, to_reopen = _selected(webhook, criteria, criteria.until or now)
        new_events = list(to_create.order_by("pk").values_list("pk", "type")[: limit + 1])
        if len(new_events) + to_reopen.count() > limit:
            raise InvalidInput(
                f"the range holds more than {limit:,} events to send; replay a shorter range",
                "since",
            )
        replay = Replay.objects.create(
            organization_id=webhook.organization_id,
            webhook=webhook,
            since=criteria.since,
            until=criteria.until,
            status=criteria.status,
            event_type=criteria.event_type,
            requested_at=now,
        )
        reopened = to_reopen.update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            next_trigger=Trigger.MANUAL,
            completed_at=None,
            replay=replay,
        )
        Delivery.objects.bulk_create(
            [
                Delivery(
                    organization_id=webhook.organization_id,
                    event_id=event_id,
                    webhook=webhook,
                    event_type=event_type,
                    next_attempt_at=now,
                    created_at=now,
                    replay=replay,
                )
                for event_id, event_type in new_events
            ],
            batch_size=CHUNK,
        )
        replay.total = reopened + len(new_events)
        replay.save(update_fields=["total"])
        if replay.total:
            lanes.wake([webhook.pk], now)
            transaction.on_commit(wake_dispatcher)
    return replay, True


def progress(replay: Replay) -> Progress:
    """How far the replay got: one indexed count over its deliveries. A
    delivery another replay has taken since counts as sent for this one."""
    counts = Delivery.objects.filter(replay=replay).aggregate(
        pending=Count("pk", filter=Q(status=Delivery.Status.PENDING)),
        succeeded=Count("pk", filter=Q(status=Delivery.Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
    )
    pending = counts["pending"] or 0
    return Progress(
        total=replay.total,
        sent=max(0, replay.total - pending),
        succeeded=counts["succeeded"] or 0,
        failed=counts["failed"] or 0,
    )

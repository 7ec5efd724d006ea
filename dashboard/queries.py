"""What the pages show, each in a fixed, small number of indexed queries
whatever the length of the history: counters come from the per-minute
WebhookStats, lists are keyset-paginated on indexed columns."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, F

from deliveries.models import Delivery, Event
from monitoring import stats as metrics
from webhooks.cursors import decode_cursor, encode_cursor
from webhooks.errors import HeraldError
from webhooks.models import Organization, Webhook

OVERVIEW_WINDOW = timedelta(hours=24)
PAGE_SIZE = 50

# name → (window, bucket size) for the webhook page's chart
CHART_WINDOWS = {
    "1h": (timedelta(hours=1), timedelta(minutes=2)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=6)),
    "30d": (timedelta(days=30), timedelta(days=1)),
}
WINDOW_LABELS = {"1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d"}
LOG_SINCE = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


@dataclass
class WebhookRow:
    webhook: Webhook
    stats: metrics.WindowStats
    trend: list[metrics.Point]


def overview(organization: Organization, now: datetime) -> list[WebhookRow]:
    webhooks = list(Webhook.objects.filter(organization=organization).order_by("name", "id"))
    ids = [w.id for w in webhooks]
    since = now - OVERVIEW_WINDOW
    stats = metrics.window_stats(ids, since)
    trends = metrics.series(ids, since, now, timedelta(hours=1))
    return [WebhookRow(w, stats[w.id], trends[w.id]) for w in webhooks]


@dataclass
class LogFilters:
    status: str = ""
    event_type: str = ""
    since: str = ""
    event_id: str = ""
    cursor: str = ""

    def as_query(self, **changes) -> dict[str, str]:
        values = {**self.__dict__, **changes}
        return {k: v for k, v in values.items() if v}


@dataclass
class LogPage:
    deliveries: list[Delivery]
    next_cursor: str | None
    filters: LogFilters
    has_pending: bool
    errors: dict[str, str] = field(default_factory=dict)


def delivery_log(webhook: Webhook, filters: LogFilters, now: datetime) -> LogPage:
    deliveries = Delivery.objects.filter(webhook=webhook)
    errors: dict[str, str] = {}
    if filters.status in Delivery.Status.values:
        deliveries = deliveries.filter(status=filters.status)
    if filters.event_type:
        deliveries = deliveries.filter(event_type=filters.event_type)
    if filters.since in LOG_SINCE:
        deliveries = deliveries.filter(created_at__gte=now - LOG_SINCE[filters.since])
    if filters.event_id:
        deliveries = deliveries.filter(event__public_id=filters.event_id.strip())
    try:
        after = decode_cursor(filters.cursor)
    except HeraldError:
        errors["cursor"] = "That page link is not valid any more; showing the newest."
        after = None
    if after is not None:
        deliveries = deliveries.filter(pk__lt=after)
    page = list(
        deliveries.annotate(event_public_id=F("event__public_id")).order_by("-pk")[: PAGE_SIZE + 1]
    )
    next_cursor = encode_cursor(page[PAGE_SIZE - 1].pk) if len(page) > PAGE_SIZE else None
    has_pending = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING).exists()
    return LogPage(page[:PAGE_SIZE], next_cursor, filters, has_pending, errors)


@dataclass
class EventRow:
    event: Event
    outcome: dict[str, int]


def recent_events(
    organization: Organization, cursor: str | None
) -> tuple[list[EventRow], str | None]:
    events = Event.objects.filter(organization=organization).defer("data_json")
    after = decode_cursor(cursor)
    if after is not None:
        events = events.filter(pk__lt=after)
    page = list(events.order_by("-pk")[: PAGE_SIZE + 1])
    next_cursor = encode_cursor(page[PAGE_SIZE - 1].pk) if len(page) > PAGE_SIZE else None
    page = page[:PAGE_SIZE]
    outcome: dict[int, dict[str, int]] = defaultdict(dict)
    counts = (
        Delivery.objects.filter(event_id__in=[e.pk for e in page])
        .values("event_id", "status")
        .annotate(n=Count("id"))
    )
    for row in counts:
        outcome[row["event_id"]][row["status"]] = row["n"]
    return [EventRow(e, outcome[e.pk]) for e in page], next_cursor

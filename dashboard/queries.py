"""What the pages show, each in a fixed, small number of indexed queries
whatever the length of the history: counters come from the per-minute
WebhookStats, lists are keyset-paginated on indexed columns."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count, F

from deliveries import search as find
from deliveries.models import Delivery, Event
from monitoring import stats as metrics
from webhooks import ids
from webhooks.cursors import keyset_page
from webhooks.errors import HeraldError, InvalidInput
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
    older: str | None
    newer: str | None
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
        # An event id or a delivery id, as pasted.
        wanted = find.clean_pasted_id(filters.event_id)
        if ids.looks_like(wanted, "dlv"):
            deliveries = deliveries.filter(public_id=wanted)
        else:
            deliveries = deliveries.filter(event__public_id=wanted)
    deliveries = deliveries.annotate(event_public_id=F("event__public_id"))
    try:
        page = keyset_page(deliveries, filters.cursor, PAGE_SIZE)
    except HeraldError:
        errors["cursor"] = "That page link is not valid any more; showing the newest."
        page = keyset_page(deliveries, None, PAGE_SIZE)
    has_pending = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING).exists()
    return LogPage(page.items, page.older, page.newer, filters, has_pending, errors)


@dataclass
class EventRow:
    event: Event
    outcome: dict[str, int]


@dataclass
class EventSearch:
    """The events page's filters, as they stand in its URL."""

    q: str = ""  # an evt_… or dlv_… id, as pasted
    type: str = ""  # exact or a pattern
    since: str = ""  # YYYY-MM-DD, UTC, from the start of that day
    until: str = ""  # YYYY-MM-DD, UTC, to the end of that day
    failed: bool = False
    herald: bool = False  # include Herald's own herald.* events
    cursor: str = ""

    @classmethod
    def from_query(cls, get) -> "EventSearch":
        return cls(
            q=get.get("q", "").strip(),
            type=get.get("type", "").strip(),
            since=get.get("since", "").strip(),
            until=get.get("until", "").strip(),
            failed=get.get("failed") == "1",
            herald=get.get("herald") == "1",
            cursor=get.get("cursor", ""),
        )

    @property
    def filtering(self) -> bool:
        return bool(self.q or self.type or self.since or self.until or self.failed)


@dataclass
class EventsPage:
    rows: list[EventRow]
    older: str | None
    newer: str | None
    errors: dict[str, str] = field(default_factory=dict)
    searched: bool = False  # the list is what `q` found


def _day(text: str, field_name: str, errors: dict[str, str]) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors[field_name] = "Give a date like 2026-11-30."
        return None


def events_page(organization: Organization, search: EventSearch) -> EventsPage:
    """A page of the events page: what `q` names, or the events that pass the
    filters, newest first; each with its deliveries' outcome. Bad filters
    come back as errors by field, with no rows."""
    if search.q:
        event = find.event_for_id(organization, search.q)
        rows = [event] if event else []
        return EventsPage(_with_outcomes(rows), None, None, searched=True)
    errors: dict[str, str] = {}
    since = _day(search.since, "since", errors)
    until = _day(search.until, "until", errors)
    filters = find.EventFilters(
        type=search.type,
        since=since,
        until=until + timedelta(days=1) if until else None,
        include_operational=search.herald,
        failed_only=search.failed,
    )
    if since and until and until < since:
        # Said with the page's words (the API's check names `since`).
        errors["until"] = "Must be the same day as From or later."
    if not errors:
        try:
            filters.check()
        except InvalidInput as error:
            errors[error.field] = error.message[:1].upper() + error.message[1:] + "."
    if errors:
        return EventsPage([], None, None, errors)
    events = find.find_events(organization, filters).defer("data_json")
    try:
        page = keyset_page(events, search.cursor, PAGE_SIZE)
    except HeraldError:
        page = keyset_page(events, None, PAGE_SIZE)
        errors["cursor"] = "That page link is not valid any more; showing the newest."
    return EventsPage(_with_outcomes(page.items), page.older, page.newer, errors)


def _with_outcomes(events: list[Event]) -> list[EventRow]:
    outcome: dict[int, dict[str, int]] = defaultdict(dict)
    counts = (
        Delivery.objects.filter(event_id__in=[e.pk for e in events])
        .values("event_id", "status")
        .annotate(n=Count("id"))
    )
    for row in counts:
        outcome[row["event_id"]][row["status"]] = row["n"]
    return [EventRow(e, outcome[e.pk]) for e in events]

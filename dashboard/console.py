"""What the staff console shows (SPEC §10): every organization with its
figures over 24 hours, and the pipeline. A fixed number of indexed queries
per page, whatever the number of organizations or the history: organizations
come a page at a time; their webhooks' figures from the hourly counters;
events and pending deliveries are counted per organization through an
index, up to COUNT_LIMIT each (beyond, the page says "1,000+").
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Min, Sum

from deliveries import claiming
from deliveries.models import Delivery, Event
from monitoring import health, stats
from monitoring.models import WebhookStats
from webhooks.cursors import KeysetPage, keyset_page
from webhooks.models import Organization, Webhook

PAGE_SIZE = 100
COUNT_LIMIT = 1000
WINDOW = timedelta(hours=24)
# /metrics counts the backlog up to this too.
DUE_COUNT_LIMIT = 100_000
RATE_WINDOW = timedelta(minutes=5)


@dataclass
class OrganizationRow:
    organization: Organization
    webhooks: int = 0
    failing: int = 0  # active, with failed attempts in a row
    disabled: int = 0
    events: int = 0  # up to COUNT_LIMIT (then "1,000+")
    attempts: int = 0
    succeeded_attempts: int = 0
    failed_deliveries: int = 0
    pending: int = 0  # up to COUNT_LIMIT
    oldest_due: datetime | None = None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded_attempts / self.attempts if self.attempts else None

    @property
    def events_capped(self) -> bool:
        return self.events >= COUNT_LIMIT

    @property
    def pending_capped(self) -> bool:
        return self.pending >= COUNT_LIMIT


@dataclass
class Pipeline:
    due: int  # up to DUE_COUNT_LIMIT
    oldest_due_seconds: float | None
    deliveries_per_second: float
    attempts_per_second: float
    checks: dict[str, dict] = field(default_factory=dict)


def organizations_page(
    cursor: str | None, now: datetime
) -> tuple[list[OrganizationRow], KeysetPage]:
    """A page of organizations, newest first, with their figures; and the
    page (its Older and Newer cursors). HeraldError for a cursor not ours."""
    page = keyset_page(Organization.objects.all(), cursor, PAGE_SIZE)
    rows = {o.pk: OrganizationRow(o) for o in page.items}
    if not rows:
        return [], page
    org_ids = list(rows)

    webhooks = list(
        Webhook.objects.filter(organization_id__in=org_ids).values_list(
            "id", "organization_id", "status", "consecutive_failures"
        )
    )
    owner: dict[int, int] = {}
    for webhook_id, org_id, status, failures in webhooks:
        owner[webhook_id] = org_id
        row = rows[org_id]
        row.webhooks += 1
        row.disabled += status == Webhook.Status.DISABLED
        row.failing += status == Webhook.Status.ACTIVE and failures > 0
    for webhook_id, figures in stats.window_stats(list(owner), now - WINDOW, now).items():
        row = rows[owner[webhook_id]]
        row.attempts += figures.attempts
        row.succeeded_attempts += figures.succeeded_attempts
        row.failed_deliveries += figures.failed_deliveries

    # What the product published: Herald's own herald.* events left out.
    for org_id, events in _capped_counts(
        Event._meta.db_table,
        "created_at >= %s AND type NOT LIKE 'herald.%%'",
        [_at(now - WINDOW)],
        org_ids,
    ):
        rows[org_id].events = events
    for org_id, pending in _capped_counts(
        Delivery._meta.db_table,
        "status = 'pending'",
        [],
        org_ids,
    ):
        rows[org_id].pending = pending
    oldest = (
        Delivery.objects.filter(
            organization_id__in=org_ids,
            status=Delivery.Status.PENDING,
            next_attempt_at__isnull=False,
        )
        .values("organization_id")
        .annotate(first=Min("next_attempt_at"))
        .order_by()
    )
    for item in oldest:
        rows[item["organization_id"]].oldest_due = item["first"]
    return list(rows.values()), page


def _at(moment: datetime):
    return connection.ops.adapt_datetimefield_value(moment)


def _capped_counts(table: str, condition: str, params: list, org_ids: list[int]):
    """(organization id, rows up to COUNT_LIMIT) per organization: one
    statement, an index range of at most COUNT_LIMIT per organization.

    One subquery per organization, each with its id as its own parameter, so
    that PostgreSQL plans each for the organization it counts. A subquery
    correlated with a list of ids gets one plan for all: where a few
    organizations hold every row, that plan walked the whole pending index
    of the busiest for each of the others (1.2 s at 1 M deliveries)."""
    if not org_ids:
        return []
    count = (
        f"SELECT %s, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} t "
        f"WHERE t.organization_id = %s AND {condition} LIMIT {COUNT_LIMIT}) AS c)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            " UNION ALL ".join([count] * len(org_ids)),
            [value for org_id in org_ids for value in (org_id, org_id, *params)],
        )
        return cursor.fetchall()


def pipeline(now: datetime) -> Pipeline:
    due = claiming.due_deliveries(now)
    count = due.order_by().values("id")[:DUE_COUNT_LIMIT].count()
    oldest = due.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
    recent = WebhookStats.objects.filter(minute__gte=stats.minute_of(now - RATE_WINDOW)).aggregate(
        attempts=Sum("attempts"),
        ended=Sum("succeeded_deliveries") + Sum("failed_deliveries"),
    )
    seconds = RATE_WINDOW.total_seconds()
    return Pipeline(
        due=count,
        oldest_due_seconds=(now - oldest).total_seconds() if oldest else None,
        deliveries_per_second=int(recent["ended"] or 0) / seconds,
        attempts_per_second=int(recent["attempts"] or 0) / seconds,
        checks=health.run_checks(),
    )

"""All-time totals of the WebhookStats counters, for Prometheus.

A Prometheus counter must never go down, or `rate()` reads the drop as a
reset and reports a spike. Summing every WebhookStats row at each scrape
would be monotonic only until retention purges old minutes (or a webhook is
deleted with its rows), and it would read weeks of rows every 15 seconds.

So the minutes older than a lag are rolled up into one StatsTotals row by a
periodic job; a scrape reads that row and sums only the minutes since
(`minute >= rolled_up_to`, an index range of a few minutes per webhook).
Retention rolls up before it purges, and a webhook's recent minutes are
folded into the totals before the webhook (and its rows) are deleted.

The lag covers late writes: a batch of attempts is recorded when the
requests end, into the minute they started (at most the longest webhook
timeout, 300 s, earlier). Anything written to a minute after it was rolled
up would be left out of the totals (never subtracted from them).
"""

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Sum

from monitoring.models import StatsTotals, WebhookStats
from monitoring.stats import COUNTER_COLUMNS, minute_of

ROLL_UP_LAG = timedelta(minutes=15)
NOTHING_ROLLED_UP = datetime(2000, 1, 1, tzinfo=UTC)


def _locked_totals() -> StatsTotals:
    totals = StatsTotals.objects.select_for_update().filter(pk=1).first()
    if totals is None:  # the migration made it; a database emptied since has not
        StatsTotals.objects.get_or_create(pk=1, defaults={"rolled_up_to": NOTHING_ROLLED_UP})
        totals = StatsTotals.objects.select_for_update().get(pk=1)
    return totals


def _sums(queryset) -> dict[str, int]:
    sums = queryset.aggregate(**{c: Sum(c) for c in COUNTER_COLUMNS})
    return {c: int(sums[c] or 0) for c in COUNTER_COLUMNS}


def _add(totals: StatsTotals, sums: dict[str, int]) -> None:
    for column in COUNTER_COLUMNS:
        setattr(totals, column, getattr(totals, column) + sums[column])


def roll_up(now: datetime | None = None) -> datetime:
    """Add the minutes up to ROLL_UP_LAG ago to the totals; return the new mark."""
    mark = minute_of((now or datetime.now(UTC)) - ROLL_UP_LAG)
    with transaction.atomic():
        totals = _locked_totals()
        if mark > totals.rolled_up_to:
            _add(
                totals,
                _sums(
                    WebhookStats.objects.filter(minute__gte=totals.rolled_up_to, minute__lt=mark)
                ),
            )
            totals.rolled_up_to = mark
            totals.save()
        return totals.rolled_up_to


def rolled_up_to() -> datetime:
    """The first minute not yet in the all-time totals."""
    totals = StatsTotals.objects.filter(pk=1).values_list("rolled_up_to", flat=True).first()
    return totals or NOTHING_ROLLED_UP


def fold_in_webhook(webhook_id: int) -> None:
    """Before a webhook is deleted: add its minutes not yet rolled up, which
    its deletion is about to take with it. One statement, which locks the
    totals row against a concurrent roll-up."""
    totals, stats = StatsTotals._meta.db_table, WebhookStats._meta.db_table
    assignments = ", ".join(
        f"{c} = {c} + COALESCE((SELECT SUM(s.{c}) FROM {stats} s "
        f"WHERE s.webhook_id = %s AND s.minute >= {totals}.rolled_up_to), 0)"
        for c in COUNTER_COLUMNS
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {totals} SET {assignments} WHERE id = 1", [webhook_id] * len(COUNTER_COLUMNS)
        )


def webhook_deleted(sender, instance, **kwargs) -> None:
    """pre_delete receiver for Webhook (connected in MonitoringConfig.ready)."""
    fold_in_webhook(instance.pk)


def current() -> dict[str, int]:
    """The all-time totals: the rolled-up row plus the minutes since, read
    from one snapshot (two indexed queries), so a roll-up or a webhook
    deletion committing in between can neither count a minute twice nor
    drop one."""
    with transaction.atomic():
        if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
            # The first statement of this transaction: one snapshot for both reads.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        totals = StatsTotals.objects.filter(pk=1).first()
        if totals is None:  # a database emptied by hand (or by a test): start again
            totals = StatsTotals(rolled_up_to=NOTHING_ROLLED_UP)
        recent = _sums(WebhookStats.objects.filter(minute__gte=totals.rolled_up_to))
    return {c: getattr(totals, c) + recent[c] for c in COUNTER_COLUMNS}

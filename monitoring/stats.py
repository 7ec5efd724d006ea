"""Per-webhook counters in one-minute buckets (WebhookStats) and one-hour
buckets (WebhookHourlyStats).

Each batch of attempts adds to both in the same transaction that records the
attempts, so success rate, latency (average and p95) and failed deliveries
over any window are a sum over a few rows, however many attempts there
were: a window's whole hours from the hourly rows, its ragged ends (at most
an hour on each side) from the minutes. A day is at most 24 + 120 rows per
webhook, a month 720 + 120, where minutes alone were 1,440 and 43,200.
"""

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone

from monitoring.models import LATENCY_BUCKETS_MS, WebhookHourlyStats, WebhookStats

N_LATENCY_BUCKETS = len(LATENCY_BUCKETS_MS) + 1
COUNTER_COLUMNS = (
    "attempts",
    "succeeded_attempts",
    "succeeded_deliveries",
    "failed_deliveries",
    "responses",
    "latency_total_ms",
) + tuple(f"lat_{i}" for i in range(N_LATENCY_BUCKETS))


def minute_of(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def latency_bucket(latency_ms: int) -> int:
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


@dataclass
class Tally:
    """Counter increments for one webhook-minute."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_COLUMNS, 0))

    def add(self, column: str, amount: int = 1) -> None:
        self.counts[column] += amount


class StatsBatch:
    """Increments collected while recording a batch, written with one upsert."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[int, datetime], Tally] = defaultdict(Tally)

    def attempt(
        self,
        webhook_id: int,
        at: datetime,
        *,
        succeeded: bool,
        latency_ms: int | None,
        ended: str | None = None,
    ) -> None:
        """`latency_ms` is None when no response came; `ended` is the delivery's
        final status if this attempt ended it ("succeeded" or "failed")."""
        tally = self.tallies[(webhook_id, minute_of(at))]
        tally.add("attempts")
        if succeeded:
            tally.add("succeeded_attempts")
        if latency_ms is not None:
            tally.add("responses")
            tally.add("latency_total_ms", latency_ms)
            tally.add(f"lat_{latency_bucket(latency_ms)}")
        if ended:
            tally.add(f"{ended}_deliveries")

    def deliveries_failed(self, webhook_id: int, at: datetime, count: int) -> None:
        if count:
            self.tallies[(webhook_id, minute_of(at))].add("failed_deliveries", count)

    def write(self) -> None:
        """Two upserts: the minutes, then the hours they fall in."""
        if not self.tallies:
            return
        hours: dict[tuple[int, datetime], Tally] = defaultdict(Tally)
        for (webhook_id, minute), tally in self.tallies.items():
            into = hours[(webhook_id, hour_of(minute))]
            for column, amount in tally.counts.items():
                into.add(column, amount)
        _upsert(WebhookStats._meta.db_table, "minute", self.tallies)
        _upsert(WebhookHourlyStats._meta.db_table, "hour", hours)
        self.tallies.clear()


def _upsert(table: str, span: str, tallies: dict[tuple[int, datetime], Tally]) -> None:
    columns = ("webhook_id", span) + COUNTER_COLUMNS
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    rows = []
    params: list = []
    adapt = connection.ops.adapt_datetimefield_value  # stored as the ORM stores it
    # A fixed order keeps concurrent writers from deadlocking on rows.
    for (webhook_id, at), tally in sorted(tallies.items()):
        rows.append(row_sql)
        params.extend([webhook_id, adapt(at), *(tally.counts[c] for c in COUNTER_COLUMNS)])
    updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTER_COLUMNS)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(rows)} "
        f"ON CONFLICT (webhook_id, {span}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@dataclass
class WindowStats:
    attempts: int = 0
    succeeded_attempts: int = 0
    failed_deliveries: int = 0
    succeeded_deliveries: int = 0
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded_attempts / self.attempts if self.attempts else None

    @property
    def failed_attempts(self) -> int:
        return self.attempts - self.succeeded_attempts


def stats_from_sums(sums: dict[str, int]) -> WindowStats:
    """The figures of a window from its summed counters."""
    responses = sums["responses"]
    return WindowStats(
        attempts=sums["attempts"],
        succeeded_attempts=sums["succeeded_attempts"],
        failed_deliveries=sums["failed_deliveries"],
        succeeded_deliveries=sums["succeeded_deliveries"],
        avg_latency_ms=sums["latency_total_ms"] / responses if responses else None,
        p95_latency_ms=percentile_from_histogram(
            [sums[f"lat_{i}"] for i in range(N_LATENCY_BUCKETS)], 0.95
        ),
    )


def percentile_from_histogram(counts: list[int], fraction: float) -> float | None:
    """Interpolated percentile from the latency bucket counts."""
    total = sum(counts)
    if not total:
        return None
    rank = fraction * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(counts):
        upper = (
            float(LATENCY_BUCKETS_MS[index])
            if index < len(LATENCY_BUCKETS_MS)
            else float(LATENCY_BUCKETS_MS[-1] * 3)
        )
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return lower


def window_stats(
    webhook_ids: list[int], since: datetime, until: datetime | None = None
) -> dict[int, WindowStats]:
    """Stats per webhook over the minutes from `since`'s to `until`'s (now),
    both included: the whole hours between them from the hourly rows, the
    minutes around those from the minute rows; one grouped query each."""
    start = minute_of(since)
    end = minute_of(until or timezone.now()) + timedelta(minutes=1)  # exclusive
    hours_from = hour_of(start) if start == hour_of(start) else hour_of(start) + timedelta(hours=1)
    hours_to = hour_of(end)
    sums = {webhook_id: dict.fromkeys(COUNTER_COLUMNS, 0) for webhook_id in webhook_ids}
    if hours_from < hours_to:
        hours = WebhookHourlyStats.objects.filter(
            webhook_id__in=webhook_ids, hour__gte=hours_from, hour__lt=hours_to
        )
        _add_sums(sums, hours)
        minutes = Q(minute__gte=start, minute__lt=hours_from) | Q(
            minute__gte=hours_to, minute__lt=end
        )
    else:
        minutes = Q(minute__gte=start, minute__lt=end)
    _add_sums(sums, WebhookStats.objects.filter(minutes, webhook_id__in=webhook_ids))
    return {webhook_id: stats_from_sums(counts) for webhook_id, counts in sums.items()}


def _add_sums(sums: dict[int, dict[str, int]], rows) -> None:
    grouped = rows.values("webhook_id").annotate(**{f"s_{c}": Sum(c) for c in COUNTER_COLUMNS})
    for row in grouped.order_by():
        into = sums[row["webhook_id"]]
        for column in COUNTER_COLUMNS:
            into[column] += int(row[f"s_{column}"] or 0)  # PostgreSQL's SUM(bigint) is a Decimal


WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@dataclass
class Point:
    """One bucket of a time series (an hour, a day, or a minute)."""

    at: datetime
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_COLUMNS, 0))
    attempts: int = 0
    succeeded_attempts: int = 0
    failed_deliveries: int = 0
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded_attempts / self.attempts if self.attempts else None


def combine(points: list[Point]) -> WindowStats:
    """The figures of the whole span a series covers (no further query)."""
    total = dict.fromkeys(COUNTER_COLUMNS, 0)
    for point in points:
        for column in COUNTER_COLUMNS:
            total[column] += point.sums[column]
    return stats_from_sums(total)


def series(
    webhook_ids: list[int], since: datetime, until: datetime, step: timedelta
) -> dict[int, list[Point]]:
    """Per webhook, the counters summed into buckets of `step` from `since` to
    `until`, empty buckets included. One query, summed in the database: one
    row per webhook and bucket comes back. Steps of whole hours read the
    hourly rows, and their buckets start on the hour (`since`'s); shorter
    steps read the minutes."""
    hourly = step >= timedelta(hours=1) and step % timedelta(hours=1) == timedelta(0)
    table, column = (
        (WebhookHourlyStats._meta.db_table, "hour")
        if hourly
        else (WebhookStats._meta.db_table, "minute")
    )
    start = hour_of(since) if hourly else minute_of(since)
    count = max(1, int((until - start) / step) + 1)
    points = {
        webhook_id: [Point(at=start + i * step) for i in range(count)] for webhook_id in webhook_ids
    }
    if not webhook_ids:
        return points
    sums: dict[tuple[int, int], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COUNTER_COLUMNS, 0)
    )
    # The bucket index floor((minute - start) / step); on SQLite from julianday(),
    # which reads both "…:00" and an older raw upsert's "…:00+00:00".
    if connection.vendor == "postgresql":
        bucket_sql = f"FLOOR(EXTRACT(EPOCH FROM ({column} - %s)) / %s)"
    else:
        bucket_sql = f"CAST(ROUND((julianday({column}) - julianday(%s)) * 86400) / %s AS INTEGER)"
    # Bounds adapted as the ORM adapts them (SQLite compares the stored text).
    first, last = (connection.ops.adapt_datetimefield_value(m) for m in (start, until))
    totals = ", ".join(f"SUM({c})" for c in COUNTER_COLUMNS)
    sql = (
        f"SELECT webhook_id, {bucket_sql} AS bucket, {totals} FROM {table} "
        f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))}) "
        f"AND {column} >= %s AND {column} <= %s GROUP BY webhook_id, bucket"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, step.total_seconds(), *webhook_ids, first, last])
        rows = cursor.fetchall()
    for webhook_id, index, *counts in rows:
        bucket = sums[(webhook_id, min(count - 1, int(index)))]
        for column, value in zip(COUNTER_COLUMNS, counts, strict=True):
            bucket[column] += int(value or 0)  # PostgreSQL's SUM(bigint) is a Decimal
    for (webhook_id, index), bucket in sums.items():
        point = points[webhook_id][index]
        figures = stats_from_sums(bucket)
        point.sums = bucket
        point.attempts = figures.attempts
        point.succeeded_attempts = figures.succeeded_attempts
        point.failed_deliveries = figures.failed_deliveries
        point.avg_latency_ms = figures.avg_latency_ms
        point.p95_latency_ms = figures.p95_latency_ms
    return points

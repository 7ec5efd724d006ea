"""Per-webhook counters in one-minute buckets (WebhookStats) and one-hour
buckets (WebhookHourlyStats).

Each batch of attempts adds to both in the same transaction that records the
attempts, so success rate, latency (average and p95) and failed deliveries
over any window are a sum over a few rows, however many attempts there
were: a window's whole hours from the hourly rows, its ragged ends (at most
an hour on each side) from the minutes. A day is at most 24 + 120 rows per
webhook, a month 720 + 120, where minutes alone were 1,440 and 43,200.

Each row also keeps its fastest and slowest response: a p95 read from the
histogram is interpolated within its bucket and kept between the fastest
and the slowest attempt it summarises (a bucket's edge, 10 ms when every
attempt took 2 to 6, is no latency anyone saw).
"""

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate

from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from monitoring.models import LATENCY_BUCKETS_MS, WebhookHourlyStats, WebhookStats

N_LATENCY_BUCKETS = len(LATENCY_BUCKETS_MS) + 1
# What the last bucket (slower than the last bound) is taken to reach when
# its slowest response is unknown.
OVERFLOW_BOUND_MS = LATENCY_BUCKETS_MS[-1] * 3
# Summed over rows; the extremes (latency_min_ms, latency_max_ms) are not.
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


def bucket_bounds(index: int) -> tuple[float, float]:
    """The latencies bucket `index` holds: more than its lower bound, at most its upper."""
    low = float(LATENCY_BUCKETS_MS[index - 1]) if index else 0.0
    high = float(
        LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else OVERFLOW_BOUND_MS
    )
    return low, high


def _lower(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _higher(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


@dataclass
class Sums:
    """Counters added up over a span (a minute of a batch, a window, a bucket
    of a chart), with the fastest and slowest response in it."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_COLUMNS, 0))
    fastest_ms: int | None = None
    slowest_ms: int | None = None
    # Rows whose responses were counted before their extremes were kept:
    # while one is in the span, its extremes bound only the other responses.
    unbounded_rows: int = 0

    def add(self, column: str, amount: int = 1) -> None:
        self.counts[column] += amount

    def response(self, latency_ms: int) -> None:
        self.add("responses")
        self.add("latency_total_ms", latency_ms)
        self.add(f"lat_{latency_bucket(latency_ms)}")
        self.fastest_ms = _lower(self.fastest_ms, latency_ms)
        self.slowest_ms = _higher(self.slowest_ms, latency_ms)

    def merge(self, other: "Sums") -> None:
        for column, amount in other.counts.items():
            self.counts[column] += amount
        self.fastest_ms = _lower(self.fastest_ms, other.fastest_ms)
        self.slowest_ms = _higher(self.slowest_ms, other.slowest_ms)
        self.unbounded_rows += other.unbounded_rows

    def merge_row(
        self, counts: Iterable, fastest: int | None, slowest: int | None, unbounded: int | None
    ) -> None:
        """Add a row of SUM(each counter), MIN(fastest), MAX(slowest) and the
        unbounded rows' count, as a grouped query returns it."""
        for column, value in zip(COUNTER_COLUMNS, counts, strict=True):
            self.counts[column] += int(value or 0)  # PostgreSQL's SUM(bigint) is a Decimal
        self.fastest_ms = _lower(self.fastest_ms, fastest)
        self.slowest_ms = _higher(self.slowest_ms, slowest)
        self.unbounded_rows += int(unbounded or 0)

    def figures(self) -> "WindowStats":
        """The span's figures (success rate, latency, failed deliveries)."""
        counts = self.counts
        responses = counts["responses"]
        bounded = not self.unbounded_rows
        return WindowStats(
            attempts=counts["attempts"],
            succeeded_attempts=counts["succeeded_attempts"],
            failed_deliveries=counts["failed_deliveries"],
            succeeded_deliveries=counts["succeeded_deliveries"],
            avg_latency_ms=counts["latency_total_ms"] / responses if responses else None,
            p95_latency_ms=percentile_from_histogram(
                [counts[f"lat_{i}"] for i in range(N_LATENCY_BUCKETS)],
                0.95,
                fastest_ms=self.fastest_ms if bounded else None,
                slowest_ms=self.slowest_ms if bounded else None,
            ),
        )


class StatsBatch:
    """Increments collected while recording a batch, written with one upsert."""

    def __init__(self) -> None:
        self.tallies: dict[tuple[int, datetime], Sums] = defaultdict(Sums)

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
            tally.response(latency_ms)
        if ended:
            tally.add(f"{ended}_deliveries")

    def deliveries_failed(self, webhook_id: int, at: datetime, count: int) -> None:
        if count:
            self.tallies[(webhook_id, minute_of(at))].add("failed_deliveries", count)

    def write(self) -> None:
        """Two upserts: the minutes, then the hours they fall in."""
        if not self.tallies:
            return
        hours: dict[tuple[int, datetime], Sums] = defaultdict(Sums)
        for (webhook_id, minute), tally in self.tallies.items():
            hours[(webhook_id, hour_of(minute))].merge(tally)
        _upsert(WebhookStats._meta.db_table, "minute", self.tallies)
        _upsert(WebhookHourlyStats._meta.db_table, "hour", hours)
        self.tallies.clear()


def _keep_extreme(table: str, column: str, lowest: bool) -> str:
    """SET clause of the upsert for a row's fastest (or slowest) response:
    the lower (higher) of the row's and the batch's, either of which may be
    NULL (no response yet). A row whose responses were counted before the
    column was kept stays NULL: its extreme is unknown."""
    old, new = f"{table}.{column}", f"excluded.{column}"
    if connection.vendor == "postgresql":
        # LEAST and GREATEST ignore NULLs.
        both = f"{'LEAST' if lowest else 'GREATEST'}({old}, {new})"
    else:
        # SQLite's min() and max() of several arguments are NULL when one is.
        pick = "min" if lowest else "max"
        both = f"{pick}(COALESCE({old}, {new}), COALESCE({new}, {old}))"
    return f"{column} = CASE WHEN {table}.responses > 0 AND {old} IS NULL THEN NULL ELSE {both} END"


def _upsert(table: str, span: str, tallies: dict[tuple[int, datetime], Sums]) -> None:
    columns = ("webhook_id", span) + COUNTER_COLUMNS + ("latency_min_ms", "latency_max_ms")
    row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
    rows = []
    params: list = []
    adapt = connection.ops.adapt_datetimefield_value  # stored as the ORM stores it
    # A fixed order keeps concurrent writers from deadlocking on rows.
    for (webhook_id, at), tally in sorted(tallies.items()):
        rows.append(row_sql)
        params.extend(
            [
                webhook_id,
                adapt(at),
                *(tally.counts[c] for c in COUNTER_COLUMNS),
                tally.fastest_ms,
                tally.slowest_ms,
            ]
        )
    # Every SET expression reads the row as it was before this statement: the
    # extremes' CASE sees the responses the row had, not the sum.
    updates = ", ".join(
        [
            _keep_extreme(table, "latency_min_ms", lowest=True),
            _keep_extreme(table, "latency_max_ms", lowest=False),
            *(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTER_COLUMNS),
        ]
    )
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


def percentile_from_histogram(
    counts: list[int],
    fraction: float,
    *,
    fastest_ms: float | None = None,
    slowest_ms: float | None = None,
) -> float | None:
    """The `fraction` percentile of the latencies counted in `counts` (one
    count per LATENCY_BUCKETS_MS bucket): the bucket its rank falls in, and
    a linear interpolation across the part of that bucket the latencies can
    be in, which the fastest and slowest response narrow when they are
    known. Never below the fastest nor above the slowest."""
    total = sum(counts)
    if not total:
        return None
    rank = fraction * total  # at most total: some bucket holds it
    through = list(accumulate(counts))  # counted in this bucket or a faster one
    index = next(i for i, count in enumerate(counts) if count and through[i] >= rank)
    seen = through[index] - counts[index]
    low, high = bucket_bounds(index)
    if fastest_ms is not None:
        low = max(low, fastest_ms)
    if slowest_ms is not None:
        high = min(high, slowest_ms)
    value = low + (high - low) * (rank - seen) / counts[index]
    if slowest_ms is not None:
        value = min(value, slowest_ms)
    if fastest_ms is not None:
        value = max(value, fastest_ms)
    return value


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
    sums = {webhook_id: Sums() for webhook_id in webhook_ids}
    if hours_from < hours_to:
        hours = WebhookHourlyStats.objects.filter(
            webhook_id__in=webhook_ids, hour__gte=hours_from, hour__lt=hours_to
        )
        _add_sums(sums, hours)
        minute_ranges = [(start, hours_from), (hours_to, end)]
    else:
        minute_ranges = [(start, end)]
    # One query per range, not one with an OR: given the OR, SQLite read
    # every minute row of the webhooks (200 ms at 1 M attempts) instead of
    # searching its (webhook, minute) index for each range.
    for first, after in minute_ranges:
        if first < after:
            minutes = WebhookStats.objects.filter(
                webhook_id__in=webhook_ids, minute__gte=first, minute__lt=after
            )
            _add_sums(sums, minutes)
    return {webhook_id: span.figures() for webhook_id, span in sums.items()}


def _add_sums(sums: dict[int, Sums], rows) -> None:
    grouped = rows.values("webhook_id").annotate(
        **{f"s_{c}": Sum(c) for c in COUNTER_COLUMNS},
        fastest=Min("latency_min_ms"),
        slowest=Max("latency_max_ms"),
        unbounded=Count("pk", filter=Q(responses__gt=0, latency_min_ms__isnull=True)),
    )
    for row in grouped.order_by():
        sums[row["webhook_id"]].merge_row(
            (row[f"s_{c}"] for c in COUNTER_COLUMNS),
            row["fastest"],
            row["slowest"],
            row["unbounded"],
        )


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
    sums: Sums = field(default_factory=Sums)
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
    total = Sums()
    for point in points:
        total.merge(point.sums)
    return total.figures()


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
    sums: dict[tuple[int, int], Sums] = defaultdict(Sums)
    # The bucket index floor((minute - start) / step); on SQLite from julianday(),
    # which reads both "…:00" and an older raw upsert's "…:00+00:00".
    if connection.vendor == "postgresql":
        bucket_sql = f"FLOOR(EXTRACT(EPOCH FROM ({column} - %s)) / %s)"
    else:
        bucket_sql = f"CAST(ROUND((julianday({column}) - julianday(%s)) * 86400) / %s AS INTEGER)"
    # Bounds adapted as the ORM adapts them (SQLite compares the stored text).
    first, last = (connection.ops.adapt_datetimefield_value(m) for m in (start, until))
    totals = ", ".join(f"SUM({c})" for c in COUNTER_COLUMNS)
    extremes = (
        "MIN(latency_min_ms), MAX(latency_max_ms), "
        "SUM(CASE WHEN responses > 0 AND latency_min_ms IS NULL THEN 1 ELSE 0 END)"
    )
    sql = (
        f"SELECT webhook_id, {bucket_sql} AS bucket, {totals}, {extremes} FROM {table} "
        f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))}) "
        f"AND {column} >= %s AND {column} <= %s GROUP BY webhook_id, bucket"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [first, step.total_seconds(), *webhook_ids, first, last])
        rows = cursor.fetchall()
    n = len(COUNTER_COLUMNS)
    for webhook_id, index, *values in rows:
        fastest, slowest, unbounded = values[n:]
        sums[(webhook_id, min(count - 1, int(index)))].merge_row(
            values[:n], fastest, slowest, unbounded
        )
    for (webhook_id, index), bucket in sums.items():
        point = points[webhook_id][index]
        figures = bucket.figures()
        point.sums = bucket
        point.attempts = figures.attempts
        point.succeeded_attempts = figures.succeeded_attempts
        point.failed_deliveries = figures.failed_deliveries
        point.avg_latency_ms = figures.avg_latency_ms
        point.p95_latency_ms = figures.p95_latency_ms
    return points

"""Per-webhook counters in one-minute buckets (WebhookStats).

Each batch of attempts adds to them in the same transaction that records the
attempts, so success rate, latency (average and p95) and failed deliveries
over any window are a sum over at most one row per minute, however many
attempts there were.
"""

from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Sum

from monitoring.models import LATENCY_BUCKETS_MS, WebhookStats

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
        if not self.tallies:
            return
        table = WebhookStats._meta.db_table
        columns = ("webhook_id", "minute") + COUNTER_COLUMNS
        row_sql = "(" + ", ".join(["%s"] * len(columns)) + ")"
        rows = []
        params: list = []
        # A fixed order keeps concurrent writers from deadlocking on rows.
        for (webhook_id, minute), tally in sorted(self.tallies.items()):
            rows.append(row_sql)
            params.extend([webhook_id, minute, *(tally.counts[c] for c in COUNTER_COLUMNS)])
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in COUNTER_COLUMNS)
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(rows)} "
            f"ON CONFLICT (webhook_id, minute) DO UPDATE SET {updates}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        self.tallies.clear()


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
    """Stats per webhook over the buckets from `since` on (to `until`'s
    minute, when given), in one grouped query."""
    sums = {c: Sum(c) for c in COUNTER_COLUMNS}
    buckets = WebhookStats.objects.filter(webhook_id__in=webhook_ids, minute__gte=minute_of(since))
    if until is not None:
        # `<` the next minute rather than `<=` this one: on SQLite the raw
        # upsert stores "…:00+00:00", which sorts after the ORM's "…:00".
        buckets = buckets.filter(minute__lt=minute_of(until) + timedelta(minutes=1))
    rows = buckets.values("webhook_id").annotate(**{f"s_{c}": agg for c, agg in sums.items()})
    result = {webhook_id: WindowStats() for webhook_id in webhook_ids}
    for row in rows:
        result[row["webhook_id"]] = stats_from_sums(
            {c: int(row[f"s_{c}"] or 0) for c in COUNTER_COLUMNS}
        )
    return result


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
    `until`, empty buckets included. One query over at most one row per
    webhook-minute, summed in the database: it returns one row per webhook
    and bucket, not one per minute (14,400 for 10 webhooks over 24 h)."""
    start = minute_of(since)
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
    # which reads both "…:00" and the raw upsert's "…:00+00:00".
    if connection.vendor == "postgresql":
        bucket_sql = "FLOOR(EXTRACT(EPOCH FROM (minute - %s)) / %s)"
    else:
        bucket_sql = "CAST(ROUND((julianday(minute) - julianday(%s)) * 86400) / %s AS INTEGER)"
    # Bounds adapted as the ORM adapts them (SQLite compares the stored text).
    first, last = (connection.ops.adapt_datetimefield_value(m) for m in (start, until))
    totals = ", ".join(f"SUM({c})" for c in COUNTER_COLUMNS)
    sql = (
        f"SELECT webhook_id, {bucket_sql} AS bucket, {totals} FROM {WebhookStats._meta.db_table} "
        f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))}) "
        "AND minute >= %s AND minute <= %s GROUP BY webhook_id, bucket"
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

"""Scenario g: sustained load. Events are published at a fixed rate for
minutes with the Procfile's worker pool and scheduler running, and every
second the bench samples how far behind Herald is:

  - queue depth: pending deliveries (published, not yet delivered, in flight
    included), of which due and unclaimed (waiting for a worker), and the rq
    queue's length (dispatch wake-ups and cron jobs waiting);
  - delivery lag: the age of the oldest pending delivery;

and, from the attempts recorded, per second: attempts/s and the latency from
publish to first attempt (attempt.started_at − delivery.created_at) p50, p95,
p99. It prints one line per 10 s and plots the series to
var/bench/sustained-load.png (matplotlib: `pip install -e '.[bench]'`, which
`make bench` does; without it the table is still printed).

Knobs (environment): BENCH_G_RATE events/s (default 200), BENCH_G_SECONDS
(default 120, --quick 30), BENCH_G_DELAY_MS the receiver's delay (default 20).

The events are published by the bench process through deliveries.publish(),
in one transaction per 20 ms tick (each event its own savepoint, one
wake-up per commit; at most 50 events per transaction when catching up), the way an application publishing from many requests
at once would look to the workers.
"""

from __future__ import annotations

import csv
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import log

TITLE = "sustained load: queue depth and delivery lag over time"
OUT_DIR = harness.VAR_DIR / "bench"
PLOT = OUT_DIR / "sustained-load.png"
SAMPLES_CSV = OUT_DIR / "sustained-load.csv"
TICK_SECONDS = 0.02
# A publisher that fell behind catches up in transactions of at most this many
# events, so the backlog never hides in one long uncommitted transaction.
MAX_EVENTS_PER_TRANSACTION = 50
BUCKET_SECONDS = 10
DRAIN_SECONDS = 60


@dataclass
class Sample:
    t: float  # seconds since publishing started
    pending: int
    waiting: int  # due and unclaimed
    rq_jobs: int | None
    oldest_ms: float  # age of the oldest pending delivery (0 when none)


@dataclass
class Series:
    """Per-second figures, second i = [i, i + 1) after publishing started."""

    published: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    attempts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))


class Sampler(threading.Thread):
    """Every second: queue depth and the oldest pending delivery's age."""

    def __init__(self, webhook, start_monotonic: float) -> None:
        super().__init__(name="bench-g-sampler", daemon=True)
        self.webhook, self.start_monotonic = webhook, start_monotonic
        self.samples: list[Sample] = []
        self.stop = threading.Event()
        self.error: Exception | None = None

    def sample(self) -> Sample:
        from django.db.models import Count, Min, Q
        from django.utils import timezone

        from deliveries.jobs import queue
        from deliveries.models import Delivery, Lease

        t = time.monotonic() - self.start_monotonic
        now = timezone.now()
        pending = Delivery.objects.filter(webhook=self.webhook, status=Delivery.Status.PENDING)
        figures = pending.aggregate(
            n=Count("id"),
            oldest=Min("created_at"),
            waiting=Count(
                "id",
                filter=Q(next_attempt_at__lte=now) & ~Q(Lease.held(now)),
            ),
        )
        try:
            rq_jobs = queue().count
        except Exception:  # Redis hiccup: a gap in the plot, not a failed run
            rq_jobs = None
        oldest = figures["oldest"]
        return Sample(
            t=t,
            pending=figures["n"],
            waiting=figures["waiting"],
            rq_jobs=rq_jobs,
            oldest_ms=(now - oldest).total_seconds() * 1000 if oldest else 0.0,
        )

    def run(self) -> None:
        from django.db import connection

        try:
            next_at = time.monotonic()
            while not self.stop.is_set():
                self.samples.append(self.sample())
                next_at += 1.0
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        except Exception as exc:
            self.error = exc
        finally:
            connection.close()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def publish_steadily(organization, rate: float, seconds: float, event_type: str, event_data):
    """Publish `rate` events/s for `seconds`; returns (count, seconds taken, seconds late at worst)."""
    from django.db import transaction

    from deliveries.publishing import publish

    total = int(rate * seconds)
    start = time.monotonic()
    published = 0
    worst_behind = 0.0
    while published < total:
        elapsed = time.monotonic() - start
        due = min(total, int(elapsed * rate) + 1)
        if due > published:
            worst_behind = max(worst_behind, (due - published) / rate - TICK_SECONDS)
            due = min(due, published + MAX_EVENTS_PER_TRANSACTION)
            with transaction.atomic():
                for i in range(published, due):
                    publish(organization, event_type, event_data(i))
            published = due
        pause = start + published / rate - time.monotonic()
        time.sleep(min(TICK_SECONDS, pause) if pause > 0 else 0)
    return published, time.monotonic() - start, max(0.0, worst_behind)


def collect_series(webhook, started_wall) -> Series:
    """Published events and attempts per second, from the database."""
    from deliveries.models import DeliveryAttempt, Event

    series = Series()
    for created_at in Event.objects.filter(deliveries__webhook=webhook).values_list(
        "created_at", flat=True
    ):
        series.published[int((created_at - started_wall).total_seconds())] += 1
    for started_at, number, created_at in DeliveryAttempt.objects.filter(
        delivery__webhook=webhook
    ).values_list("started_at", "number", "delivery__created_at"):
        second = int((started_at - started_wall).total_seconds())
        series.attempts[second] += 1
        if number == 1:
            series.latencies[second].append((started_at - created_at).total_seconds() * 1000)
    return series


def bucket_rows(samples: list[Sample], series: Series, seconds: int) -> list[list[str]]:
    rows = []
    for first in range(0, seconds, BUCKET_SECONDS):
        last = min(seconds, first + BUCKET_SECONDS)
        span = range(first, last)
        width = last - first
        in_bucket = [s for s in samples if first <= s.t < last]
        latencies = [v for second in span for v in series.latencies.get(second, [])]
        rq = [s.rq_jobs for s in in_bucket if s.rq_jobs is not None]

        def most(values) -> str:
            return f"{max(values):,.0f}" if values else "-"

        rows.append(
            [
                f"{first:>4}-{last:<4}",
                f"{sum(series.published.get(i, 0) for i in span) / width:,.0f}",
                f"{sum(series.attempts.get(i, 0) for i in span) / width:,.0f}",
                most([s.pending for s in in_bucket]),
                most([s.waiting for s in in_bucket]),
                most(rq),
                most([s.oldest_ms for s in in_bucket]),
                " / ".join(f"{percentile(latencies, p):,.0f}" for p in (50, 95, 99))
                if latencies
                else "-",
            ]
        )
    return rows


BUCKET_HEADER = [
    "t (s)",
    "published/s",
    "attempts/s",
    "pending max",
    "due+unclaimed max",
    "rq jobs max",
    "oldest pending max (ms)",
    "1st attempt p50 / p95 / p99 (ms)",
]


def print_buckets(title: str, rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(BUCKET_HEADER)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(BUCKET_HEADER, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))
    print(flush=True)


def save_csv(samples: list[Sample], series: Series, until: int) -> None:
    by_second = {int(s.t): s for s in samples}
    with open(SAMPLES_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["second", "published", "attempts", "pending", "due_unclaimed", "rq_jobs",
             "oldest_pending_ms", "first_attempt_p50_ms", "first_attempt_p99_ms"]
        )  # fmt: skip
        for second in range(until):
            s = by_second.get(second)
            lat = series.latencies.get(second, [])
            writer.writerow(
                [
                    second,
                    series.published.get(second, 0),
                    series.attempts.get(second, 0),
                    *((s.pending, s.waiting, s.rq_jobs, round(s.oldest_ms)) if s else ("",) * 4),
                    round(percentile(lat, 50)) if lat else "",
                    round(percentile(lat, 99)) if lat else "",
                ]
            )


def plot(samples: list[Sample], series: Series, seconds: float, until: int, title: str,
         path: Path) -> bool:  # fmt: skip
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    xs = list(range(until))
    fig, (ax_rate, ax_depth, ax_lag) = plt.subplots(
        3, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [1, 1, 1.2]}
    )
    fig.suptitle(title, fontsize=11)
    for ax in (ax_rate, ax_depth, ax_lag):
        ax.axvspan(seconds, until, color="0.92", zorder=0)
        ax.grid(True, alpha=0.3)

    ax_rate.plot(xs, [series.published.get(i, 0) for i in xs], label="published /s", lw=1.2)
    ax_rate.plot(xs, [series.attempts.get(i, 0) for i in xs], label="attempts /s", lw=1.2)
    ax_rate.set_ylabel("per second")
    ax_rate.set_ylim(bottom=0)
    ax_rate.legend(loc="upper right", fontsize=8)
    ax_rate.set_title("throughput", fontsize=9, loc="left")

    ts = [s.t for s in samples]
    ax_depth.plot(ts, [s.pending for s in samples], label="pending deliveries (incl. in flight)")
    ax_depth.plot(ts, [s.waiting for s in samples], label="due and unclaimed")
    ax_depth.set_ylabel("deliveries")
    ax_depth.set_ylim(bottom=0)
    ax_rq = ax_depth.twinx()
    ax_rq.step(
        ts, [s.rq_jobs if s.rq_jobs is not None else float("nan") for s in samples],
        where="post", color="tab:green", lw=1, alpha=0.8, label="rq queue length (right)",
    )  # fmt: skip
    ax_rq.set_ylabel("rq jobs", color="tab:green")
    ax_rq.set_ylim(bottom=0, top=max(5, *(s.rq_jobs or 0 for s in samples)) * 1.2)
    lines = ax_depth.get_legend_handles_labels()
    more = ax_rq.get_legend_handles_labels()
    ax_depth.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize=8)
    ax_depth.set_title("queue depth (sampled every second)", fontsize=9, loc="left")

    lat_x = [i for i in xs if series.latencies.get(i)]
    for pct, style in ((50, "-"), (95, "--"), (99, ":")):
        ax_lag.plot(
            lat_x, [percentile(series.latencies[i], pct) for i in lat_x], style,
            label=f"publish → 1st attempt p{pct} (per second)", lw=1.2,
        )  # fmt: skip
    # Nothing pending: no age (a gap, not a dive to the bottom of the log scale).
    ax_lag.plot(ts, [s.oldest_ms or float("nan") for s in samples], color="tab:red", alpha=0.6,
                lw=1, label="oldest pending delivery's age (sampled)")  # fmt: skip
    ax_lag.set_yscale("log")
    plain = FuncFormatter(lambda value, _: f"{value:,.0f}")
    ax_lag.yaxis.set_major_formatter(plain)
    ax_lag.yaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:,.0f}" if str(value)[0] in "25" else "")
    )
    ax_lag.tick_params(axis="y", which="minor", labelsize=7)
    ax_lag.set_ylabel("ms (log scale)")
    ax_lag.set_xlabel(
        "seconds since publishing started (grey: publishing stopped, the backlog drains)"
    )
    ax_lag.legend(loc="upper right", fontsize=8)
    ax_lag.set_title("delivery lag", fontsize=9, loc="left")
    ax_lag.set_xlim(0, until)

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# Issue 13: publish -> first attempt p99 at 200 events/s, warm-up included.
LATENCY_P99_TARGET_MS = 100


def scenario(run):
    """Scenario g's function, built on bench/run.py's module `run` (its Row,
    helpers and constants), which registers it."""
    Row = run.Row

    def scenario_g(ctx) -> list:
        rate = float(os.environ.get("BENCH_G_RATE") or 200)
        seconds = float(os.environ.get("BENCH_G_SECONDS") or (30 if ctx.quick else 120))
        delay_ms = int(os.environ.get("BENCH_G_DELAY_MS") or 20)
        receiver = ctx.receiver(delay_ms)
        organization, webhook = run.make_webhook("bench-g", receiver.url("/g"))

        with ctx.herald("worker", "scheduler"):
            run.wait_for_rq_workers(ctx.args.workers)
            from django.utils import timezone

            log(f"g: publishing {rate:g} events/s for {seconds:g} s (receiver {delay_ms} ms)")
            started_wall = timezone.now()
            start = time.monotonic()
            sampler = Sampler(webhook, start)
            sampler.start()
            try:
                published, took, behind = publish_steadily(
                    organization, rate, seconds, run.EVENT_TYPE, run.event_data
                )
                stopped = time.monotonic() - start
                log(f"g: published {published} in {took:.1f} s; waiting for the backlog")
                drained_at = None
                deadline = time.monotonic() + DRAIN_SECONDS
                while time.monotonic() < deadline:
                    counts = run.delivery_counts(webhook)
                    if counts.get("succeeded", 0) >= published:
                        drained_at = time.monotonic() - start
                        break
                    time.sleep(0.1)
                time.sleep(2)  # a few samples of the idle tail
            finally:
                sampler.stop.set()
                sampler.join()
        if sampler.error:
            raise sampler.error

        samples = sampler.samples
        until = int(max(s.t for s in samples)) + 1 if samples else int(stopped) + 1
        series = collect_series(webhook, started_wall)
        whole = int(seconds)
        rows_10s = bucket_rows(samples, series, until)
        title = (
            f"g: {rate:g} events/s for {seconds:g} s to one webhook (Node receiver, "
            f"{delay_ms} ms), {ctx.args.workers} pool workers + scheduler; "
            f"{os.cpu_count()} CPUs shared"
        )
        print_buckets(title, rows_10s)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        save_csv(samples, series, until)
        plotted = plot(samples, series, stopped, until, title, PLOT)
        if plotted:
            log(f"g: plot saved to {PLOT}")
            print(f"plot: {PLOT}", flush=True)

        # Figures over the steady part: after a 10 s warm-up, while publishing.
        steady = [s for s in samples if 10 <= s.t < stopped]
        half = [s for s in samples if stopped / 2 <= s.t < stopped]
        latencies = [v for i in range(10, whole) for v in series.latencies.get(i, [])]
        early = [v for i in range(0, min(30, whole)) for v in series.latencies.get(i, [])]
        attempts = sum(series.attempts.get(i, 0) for i in range(10, whole))
        delivered_rate = attempts / max(1, whole - 10)
        offered = published / took
        one_second = rate  # deliveries in one second of traffic
        pending_max = max((s.pending for s in half), default=0)
        keeps_up = drained_at is not None and pending_max <= one_second
        ctx.results["g"] = {
            "rate": rate,
            "published": published,
            "delivered_rate": delivered_rate,
            "pending_max": pending_max,
            "drained_after": None if drained_at is None else drained_at - stopped,
        }
        rows = [
            Row(
                "g",
                f"sustained {rate:g} events/s for {seconds:g} s (1 webhook, {delay_ms} ms "
                "receiver): attempts/s after warm-up",
                f"{delivered_rate:,.0f} /s",
            ),
            Row(
                "g",
                "offered load: events published per second (below the rate: the publisher, "
                "not Herald, was the limit)",
                f"{offered:,.0f} /s",
                f">= {0.95 * rate:,.0f} /s",
                offered >= 0.95 * rate,
            ),
            Row(
                "g",
                "  publisher: events, seconds, worst lag behind schedule (info)",
                f"{published:,} in {took:.1f} s, {behind * 1000:.0f} ms",
            ),
            Row(
                "g",
                "pending deliveries, max over the second half (keeps up: <= 1 s of events)",
                f"{pending_max:,}",
                f"<= {one_second:,.0f}",
                pending_max <= one_second,
            ),
            Row(
                "g",
                "  pending / due+unclaimed / rq jobs, max after warm-up (info)",
                f"{max((s.pending for s in steady), default=0):,} / "
                f"{max((s.waiting for s in steady), default=0):,} / "
                f"{max((s.rq_jobs or 0 for s in steady), default=0)}",
            ),
            Row(
                "g",
                "oldest pending delivery's age, max after warm-up",
                f"{max((s.oldest_ms for s in steady), default=0):,.0f} ms",
            ),
            Row(
                "g",
                "publish -> 1st attempt p50 / p99 after warm-up",
                f"{percentile(latencies, 50):,.0f} / {percentile(latencies, 99):,.0f} ms"
                if latencies
                else "n/a",
                f"p99 <= {LATENCY_P99_TARGET_MS} ms",
                bool(latencies) and percentile(latencies, 99) <= LATENCY_P99_TARGET_MS,
            ),
            Row(
                "g",
                "publish -> 1st attempt p99 in the first 30 s (the warm-up)",
                f"{percentile(early, 99):,.0f} ms" if early else "n/a",
                f"<= {LATENCY_P99_TARGET_MS} ms",
                bool(early) and percentile(early, 99) <= LATENCY_P99_TARGET_MS,
            ),
            Row(
                "g",
                "backlog gone after publishing stopped",
                f"{drained_at - stopped:.1f} s" if drained_at is not None else "not in 60 s",
                "keeps up",
                keeps_up,
            ),
            Row(
                "g",
                "  plot / per-second CSV",
                (str(PLOT.relative_to(harness.ROOT)) if plotted else "no matplotlib")
                + f", {SAMPLES_CSV.relative_to(harness.ROOT)}",
            ),
        ]
        ctx.notes.append(
            "g: publisher = this process, one transaction per 20 ms tick (<= 50 events); queue depth sampled "
            "every second from the database (pending deliveries of the webhook; due+unclaimed = "
            "next_attempt_at passed and no live claim) and Redis (rq queue length); latency = "
            "attempt.started_at (worker clock, just before the POST) minus delivery.created_at "
            "(taken in publish(), before its commit). 2 shared CPUs run the publisher, Herald, "
            "PostgreSQL, Redis and the receiver, and other people's tests: figures are noisy."
            + ("" if plotted else " Plot skipped: pip install -e '.[bench]'.")
        )
        return rows

    return scenario_g

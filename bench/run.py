"""Herald benchmark (not part of the test suite): `make bench`, or

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/run.py [--quick] [--only a,b]

Scenarios (one function each, registered with @scenario; add new ones the same way):
  a  raw single-process signed `requests` loop to a local receiver (the baseline)
  b  Herald end to end, the Procfile's worker command (2 pool workers): burst of N events
  c  the same against a receiver that takes 200 ms per request
  d  dispatch latency (publish -> first byte at the receiver) at 100 events/s,
     workers and scheduler running
  e  peak RSS of the worker processes during b and c
  f  dashboard pages (overview, webhook page, delivery log, events) at 10 k and
     at 1 M attempts of history (--quick: 200 k), each size in a database of
     its own, timed in-process with Django's test Client, a GET of one size
     then one of the other
  g  sustained load (200 events/s for 2 min, --quick 30 s): queue depth and
     delivery lag over time, a table per 10 s and var/bench/sustained-load.png
     (bench/sustained.py)
  h  noisy neighbour: one organization's 10 s endpoint with 1,000 due
     deliveries, another's healthy one getting 40 events at 20/s: the healthy
     one's wait p50/p99/max, the slow one's requests in flight (bench/fairness.py)
  i  claim(100) with 10,000 webhooks and 1,000,000 due deliveries, against 100
     webhooks with 1,000 (bench/fairness.py)
  j  ingest through the HTTP API: the Procfile's gunicorn, 8 client threads,
     single events and batches of 100 (bench/platform_use.py)
  k  the staff console with 1,000 organizations and 1 M attempts of history
     (bench/platform_use.py)

Everything runs on an isolated database (PostgreSQL `herald_bench` on the
DATABASE_URL server, else SQLite var/bench.sqlite3; f's small history in
`herald_bench_f10k` or var/bench-f10k.sqlite3) and Redis database 14, all
wiped before use. Process logs go to var/bench-logs/.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from harness import log  # noqa: E402

EVENT_TYPE = "bench.delivery"
GIB_KIB = 1024 * 1024


# --- Results and the scenario registry -------------------------------------------


@dataclass
class Row:
    scenario: str
    measure: str
    figure: str
    target: str = ""
    ok: bool | None = None  # None: no target

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "MISS")


@dataclass
class Scenario:
    key: str
    title: str
    func: Callable[[Context], list[Row]]
    needs: tuple[str, ...] = ()


SCENARIOS: dict[str, Scenario] = {}


def scenario(key: str, title: str, needs: tuple[str, ...] = ()):
    """Register a scenario function: it takes the Context and returns table rows.
    It may leave figures for later scenarios in ctx.results[key]."""

    def register(func):
        SCENARIOS[key] = Scenario(key, title, func, needs)
        return func

    return register


@dataclass
class Context:
    args: argparse.Namespace
    storage: harness.Storage
    processes: harness.Processes
    env: dict[str, str]  # for every Herald subprocess
    results: dict[str, dict] = field(default_factory=dict)
    receivers: dict[int, harness.Receiver] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def quick(self) -> bool:
        return self.args.quick

    def receiver(self, delay_ms: int) -> harness.Receiver:
        """A Node receiver answering after `delay_ms`, started once, reset on each call."""
        if delay_ms not in self.receivers:
            self.receivers[delay_ms] = harness.start_receiver(self.processes, delay_ms)
        receiver = self.receivers[delay_ms]
        receiver.reset()
        return receiver

    @contextmanager
    def herald(self, *names: str):
        """Run the Procfile's processes `names` (e.g. "worker", "scheduler");
        yields {name: Popen}; stops them (warm shutdown, then kill) on exit."""
        started = {}
        try:
            for name in names:
                argv = harness.procfile_command(name, self.env)
                started[name] = self.processes.start(name, argv, self.env)
            yield started
        finally:
            for name in reversed(list(started)):
                self.processes.stop(name)


# --- Helpers on Herald's side (after django.setup()) ---------------------------------


def event_data(i: int) -> dict:
    """A typical small event; every i gives the same serialised size."""
    return {
        "person": {
            "id": f"per_{i:010d}",
            "name": "Ada Lovelace",
            "email": "ada.lovelace@example.com",
            "company": "Analytical Engines Ltd",
            "plan": "enterprise",
            "seats": 42,
            "tags": ["vip", "beta", "emea"],
            "createdAt": "2026-11-22T10:30:00.000Z",
        },
        "source": "bench",
    }


def make_webhook(name: str, url: str, max_in_flight: int = 10):
    from webhooks.models import Webhook
    from webhooks.organizations import create_organization

    organization = create_organization(name)
    webhook = Webhook.objects.create(
        organization=organization,
        name=name,
        url=url,
        event_patterns=["*"],
        max_in_flight=max_in_flight,
    )
    return organization, webhook


def publish_burst(organization, n: int, batch: int = 200) -> float:
    """Publish n events through Herald's publish(), `batch` per transaction
    (each publish() is its own savepoint; its wake-up runs on commit). Returns seconds."""
    from django.db import transaction

    from deliveries.publishing import publish

    start = time.perf_counter()
    for first in range(0, n, batch):
        with transaction.atomic():
            for i in range(first, min(n, first + batch)):
                publish(organization, EVENT_TYPE, event_data(i))
    return time.perf_counter() - start


def delivery_counts(webhook) -> dict[str, int]:
    from django.db.models import Count

    from deliveries.models import Delivery

    rows = Delivery.objects.filter(webhook=webhook).values_list("status").annotate(Count("id"))
    return dict(rows)


def wait_until_delivered(webhook, n: int, timeout: float, poll: float = 0.05) -> tuple[float, dict]:
    """Poll the database until n deliveries of `webhook` succeeded. Returns
    (time.monotonic() when seen, status counts); raises on failures or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        counts = delivery_counts(webhook)
        now = time.monotonic()
        if counts.get("succeeded", 0) >= n:
            return now, counts
        if counts.get("failed", 0):
            raise RuntimeError(f"deliveries failed: {counts}")
        if now > deadline:
            raise RuntimeError(f"not all delivered after {timeout:.0f} s: {counts}")
        time.sleep(poll)


def first_attempt_wall_time(webhook) -> float:
    from django.db.models import Min

    from deliveries.models import DeliveryAttempt

    first = DeliveryAttempt.objects.filter(delivery__webhook=webhook).aggregate(
        first=Min("started_at")
    )["first"]
    return first.timestamp()


def herald_body_size(webhook) -> int:
    from deliveries.models import DeliveryAttempt

    body = (
        DeliveryAttempt.objects.filter(delivery__webhook=webhook)
        .values_list("request_body", flat=True)
        .first()
    )
    return len(body.encode()) if body else 0


def wait_for_rq_workers(count: int, timeout: float = 30) -> None:
    from rq import Worker

    from deliveries.jobs import queue

    q = queue()
    deadline = time.monotonic() + timeout
    while Worker.count(connection=q.connection, queue=q) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} rq workers did not register within {timeout:.0f} s")
        time.sleep(0.05)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def fmt_rate(value: float) -> str:
    return f"{value:,.0f} /s"


# --- Scenarios --------------------------------------------------------------------


@scenario("a", "raw signed requests loop")
def scenario_a(ctx: Context) -> list[Row]:
    import requests
    from django.utils import timezone

    from deliveries import envelope, sender, signing
    from webhooks import ids
    from webhooks.models import new_signing_secret

    n = 1000 if ctx.quick else 3000
    receiver = ctx.receiver(0)
    url = receiver.url("/raw")
    secret = new_signing_secret()
    organization_id, webhook_id = ids.org_id(), ids.webhook_id()
    event_ids = [ids.event_id() for _ in range(n)]
    data_json = envelope.serialize_data(event_data(0))
    created_at = timezone.now()
    session = requests.Session()
    session.trust_env = False
    errors = 0
    size = 0

    start = time.perf_counter()
    for event_id in event_ids:
        body = envelope.build_body(
            event_id=event_id,
            event_type=EVENT_TYPE,
            timestamp=created_at,
            organization_id=organization_id,
            webhook_id=webhook_id,
            data_json=data_json,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": sender.user_agent(),
            **signing.signature_headers(
                secrets=[secret], msg_id=event_id, body=body, unix_seconds=time.time()
            ),
        }
        response = session.post(url, data=body, headers=headers, timeout=10)
        if response.status_code != 200:
            errors += 1
        size = len(body)
    elapsed = time.perf_counter() - start
    session.close()

    rate = n / elapsed
    received = receiver.stats()["received"]
    ctx.results["a"] = {"rate": rate, "body_bytes": size}
    rows = [Row("a", f"raw requests loop, deliveries/s (N={n}, body {size} B)", fmt_rate(rate))]
    if errors or received != n:
        rows.append(Row("a", "errors / received", f"{errors} / {received}", "0 / N", False))
    return rows


def burst(ctx: Context, key: str, delay_ms: int, n: int, webhooks: int = 1) -> dict:
    """Publish events for n deliveries (to `webhooks` endpoints of one
    organization, each allowed 100 requests in flight) with no worker
    running, start the Procfile's worker command and time it until the
    database shows all n deliveries succeeded."""
    from webhooks.models import Webhook

    receiver = ctx.receiver(delay_ms)
    organization, webhook = make_webhook(f"bench-{key}", receiver.url(f"/{key}"), 100)
    hooks = [webhook] + [
        Webhook.objects.create(
            organization=organization,
            name=f"bench-{key}-{i}",
            url=receiver.url(f"/{key}{i}"),
            event_patterns=["*"],
            max_in_flight=100,
        )
        for i in range(1, webhooks)
    ]
    per_webhook = n // webhooks
    published_in = publish_burst(organization, per_webhook)
    for hook in hooks:
        counts = delivery_counts(hook)
        if counts != {"pending": per_webhook}:
            raise RuntimeError(f"expected {per_webhook} pending deliveries, found {counts}")
    log(f"{key}: published {per_webhook} events × {webhooks} webhooks in {published_in:.1f} s")

    started_wall = time.time()
    started = time.monotonic()
    with ctx.herald("worker") as procs:
        with harness.RssSampler(procs["worker"].pid) as rss:
            for hook in hooks:
                done, counts = wait_until_delivered(hook, per_webhook, timeout=max(60.0, n / 50))
        done_wall = started_wall + (done - started)
    elapsed = done - started
    first = min(first_attempt_wall_time(hook) for hook in hooks)
    stats = receiver.stats()
    n = per_webhook * webhooks
    return {
        "n": n,
        "webhooks": webhooks,
        "rate": n / elapsed,
        "elapsed": elapsed,
        "startup": first - started_wall,
        "rate_after_first": n / max(1e-9, done_wall - first),
        "received": stats["received"],
        "max_in_flight": stats["maxInFlight"],
        "rss_peak_kib": rss.peak_kib,
        "rss_processes": rss.peak_processes,
        "rss_samples": rss.samples,
        "body_bytes": herald_body_size(webhook),
        "publish_seconds": published_in,
    }


def burst_rows(key: str, result: dict) -> list[Row]:
    n = result["n"]
    rows = [
        Row(
            key,
            f"first attempt after workers started (N={n})",
            f"{result['startup']:.2f} s",
        ),
        Row(
            key,
            "  deliveries/s after the first attempt (info)",
            fmt_rate(result["rate_after_first"]),
        ),
    ]
    if result["received"] != n:
        rows.append(
            Row(key, "requests received (duplicates?)", str(result["received"]), str(n), False)
        )
    return rows


@scenario("b", "Herald end to end, burst, receiver answers at once")
def scenario_b(ctx: Context) -> list[Row]:
    n = 1500 if ctx.quick else 5000
    result = burst(ctx, "b", 0, n)
    ctx.results["b"] = result
    rows = [
        Row(
            "b",
            f"Herald deliveries/s, from worker start (N={n}, body {result['body_bytes']} B)",
            fmt_rate(result["rate"]),
        ),
        *burst_rows("b", result),
    ]
    raw = ctx.results.get("a")
    if raw:
        ratio = result["rate"] / raw["rate"]
        rows.append(Row("b", "ratio b/a", f"{ratio:.2f}", ">= 0.9", ratio >= 0.9))
    else:
        rows.append(Row("b", "ratio b/a", "n/a (scenario a not run)"))
    return rows


@scenario("c", "Herald end to end, burst, receiver takes 200 ms")
def scenario_c(ctx: Context) -> list[Row]:
    n = 1500 if ctx.quick else 5000
    # Two endpoints of 100 in flight each: the workers' 2 × 100 slots, as
    # before webhooks had a cap (SPEC §3: at most 100 per webhook).
    result = burst(ctx, "c", 200, n, webhooks=2)
    ctx.results["c"] = result
    return [
        Row(
            "c",
            f"Herald deliveries/s, 200 ms receiver, 2 webhooks, from worker start (N={n})",
            fmt_rate(result["rate"]),
            ">= 900 /s",
            result["rate"] >= 900,
        ),
        Row("c", "requests in flight (receiver maxInFlight)", str(result["max_in_flight"])),
        *burst_rows("c", result),
    ]


@scenario("d", "dispatch latency at 100 events/s, workers + scheduler")
def scenario_d(ctx: Context) -> list[Row]:
    from deliveries.publishing import publish

    rate = 100
    seconds = 5 if ctx.quick else 10
    n = rate * seconds
    receiver = ctx.receiver(0)
    organization, webhook = make_webhook("bench-d", receiver.url("/record"))

    with ctx.herald("worker", "scheduler"):
        wait_for_rq_workers(ctx.args.workers)
        # Warm-up (not measured): one event through the whole path.
        publish(organization, "bench.warmup", event_data(0))
        deadline = time.monotonic() + 30
        while receiver.stats()["received"] < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the warm-up event was not delivered within 30 s")
            time.sleep(0.02)
        time.sleep(0.5)
        receiver.reset()

        published: dict[str, float] = {}
        start = time.monotonic()
        for i in range(n):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            event = publish(organization, EVENT_TYPE, event_data(i)).event
            published[event.public_id] = time.time()  # after publish() returned: committed
        publishing = time.monotonic() - start

        deadline = time.monotonic() + 15
        while receiver.stats()["received"] < n and time.monotonic() < deadline:
            time.sleep(0.05)
        arrivals = receiver.arrivals()

    first_arrival: dict[str, int] = {}
    for webhook_header_id, at_ms in arrivals:
        if webhook_header_id in published and webhook_header_id not in first_arrival:
            first_arrival[webhook_header_id] = at_ms
    latencies = [first_arrival[i] - published[i] * 1000 for i in first_arrival]
    missing = n - len(latencies)
    if not latencies:
        raise RuntimeError("no measured event reached the receiver")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    ctx.results["d"] = {"p50": p50, "p99": p99, "missing": missing}
    rows = [
        Row(
            "d",
            f"latency p50 (N={n} at {n / publishing:.0f} events/s published)",
            f"{p50:.0f} ms",
            "<= 50 ms",
            p50 <= 50,
        ),
        Row("d", "latency p99", f"{p99:.0f} ms", "<= 50 ms", p99 <= 50),
        Row(
            "d",
            "  max / mean (info)",
            f"{max(latencies):.0f} / {statistics.fmean(latencies):.0f} ms",
        ),
    ]
    if missing:
        rows.append(Row("d", "events not delivered within 15 s", str(missing), "0", False))
    ctx.notes.append(
        "d: latency = receiver's Date.now() when the request's headers arrived (first arrival "
        "per webhook-id) minus time.time() taken right after publish() returned, i.e. after "
        "its transaction committed and its wake-up was enqueued; one warm-up event excluded."
    )
    return rows


@scenario("e", "peak RSS of the worker processes", needs=("b", "c"))
def scenario_e(ctx: Context) -> list[Row]:
    rows = []
    for key, target in (("b", None), ("c", GIB_KIB)):
        result = ctx.results.get(key)
        if not result:
            rows.append(Row("e", f"peak RSS during {key}", "n/a (not run)"))
            continue
        peak = result["rss_peak_kib"]
        rows.append(
            Row(
                "e",
                f"peak RSS during {key}, pool parent + workers "
                f"({result['rss_processes']} processes, {result['rss_samples']} samples)",
                f"{peak / 1024:,.0f} MiB",
                "<= 1 GiB" if target else "",
                None if target is None else peak <= target,
            )
        )
    ctx.notes.append(
        "e: VmRSS from /proc/<pid>/status of the rqworker-pool process and all its "
        "descendants, summed, sampled every 100 ms (pages shared after the fork are "
        "counted in every process that maps them)."
    )
    return rows


def fmt_count(n: int) -> str:
    """10_000 -> "10 k", 1_000_000 -> "1 M"."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000} M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000} k"
    return f"{n:,}"


@functools.cache
def collect_static() -> None:
    """The pages as production serves them: hashed static URLs from a
    manifest that is up to date (a fresh clone has none yet). Once per run:
    it takes seconds even when nothing changed (f and k both need it)."""
    from django.core.management import call_command

    call_command("collectstatic", interactive=False, verbosity=0)


@contextmanager
def dashboard_settings():
    """The test Client's host must be allowed."""
    from django.conf import settings
    from django.test import override_settings

    changes = {}
    if not {"testserver", "*"} & set(settings.ALLOWED_HOSTS):
        changes["ALLOWED_HOSTS"] = [*settings.ALLOWED_HOSTS, "testserver"]
    with override_settings(**changes):
        yield


DASHBOARD_TARGET_RATIO = 1.2


@scenario("f", "dashboard pages at 10 k and at 1 M attempts")
def scenario_f(ctx: Context) -> list[Row]:
    import dashboard_history as history
    from django.db import connections
    from django.test import Client

    day = 24 * 3600.0
    sizes = [(10_000, day), (200_000 if ctx.quick else 1_000_000, 30 * day)]
    # (key, label, a path from the root or after the busiest webhook's page, has a target)
    pages = [
        ("overview", "overview /", "/", True),
        ("webhook", "webhook page (busiest, 24h chart)", "", True),
        ("log", "delivery-log partial .../log/", "log/", False),
        ("events", "events /events/", "/events/", False),
        ("webhook_30d", "webhook page ?chart=30d", "?chart=30d", True),
    ]
    collect_static()
    # The small history in a database of its own, the large one in the
    # bench's: both stay, and each page is loaded from one, then the other.
    small_url, small_name = harness.side_database(ctx.storage, "f10k", ctx.env)
    databases = [history.database_like_default(small_url), connections["default"]]
    notes: set[str] = set()
    fills: list[tuple[int, float, history.Fill]] = []
    sides: list[history.Side] = []
    try:
        for (size, span), database in zip(sizes, databases, strict=True):
            connections["default"] = database
            organization, webhooks, owner = history.create_organization()
            log(f"f: filling {fmt_count(size)} attempts over {span / day:.0f} day(s)")
            fills.append(
                (size, span, history.fill_history(organization, webhooks, size, span, notes))
            )
            client = Client()
            client.force_login(owner)
            hook = f"/webhooks/{webhooks[0].public_id}/"
            urls = {key: path if path.startswith("/") else hook + path for key, _, path, _ in pages}
            sides.append(history.Side(database, client, urls))
        timings: dict[str, dict[int, history.PageTiming]] = {}
        for key, _label, _path, _target in pages:
            with dashboard_settings():
                measured = history.time_pages_alternately(sides, key, percentile)
            timings[key] = {size: t for (size, _), t in zip(sizes, measured, strict=True)}
            for (size, _), side, timing in zip(sizes, sides, measured, strict=True):
                log(
                    f"f: {side.urls[key]} at {fmt_count(size)}: median {timing.median_ms:.1f} ms, "
                    f"p90 {timing.p90_ms:.1f} ms, {timing.queries} queries"
                )
    finally:
        connections["default"] = databases[1]
        databases[0].close()
    small, large = sizes[0][0], sizes[1][0]
    ctx.results["f"] = {"fills": fills, "timings": timings, "sizes": (small, large)}

    rows = []
    for size, span, fill in fills:
        rows.append(
            Row(
                "f",
                f"fill {fmt_count(size)}: {fill.attempts:,} attempts, {fill.deliveries:,} "
                f"deliveries, {fill.events:,} events, {fill.stats_rows:,} stats rows "
                f"over {span / day:.0f} d",
                f"{fill.seconds:.1f} s",
            )
        )
    for key, label, _url, has_target in pages:
        by_size = timings[key]
        for size in (small, large):
            t = by_size[size]
            rows.append(
                Row(
                    "f",
                    f"{label} at {fmt_count(size)}: median (p90), SQL queries",
                    f"{t.median_ms:.1f} ms (p90 {t.p90_ms:.1f}), {t.queries} q",
                )
            )
        ratio = by_size[large].median_ms / by_size[small].median_ms
        name = f"  ratio {fmt_count(large)} / {fmt_count(small)}"
        if has_target:
            target = f"<= {DASHBOARD_TARGET_RATIO}"
            rows.append(Row("f", name, f"{ratio:.2f}", target, ratio <= DASHBOARD_TARGET_RATIO))
        else:
            rows.append(Row("f", name + " (info)", f"{ratio:.2f}"))
    ctx.notes.append(
        f"f: one organization per size, {len(history.WEBHOOK_NAMES)} webhooks (the busiest "
        "gets ~1/3 of deliveries), history generated in the database (INSERT … SELECT); "
        f"{fmt_count(small)} spread over the last day in a database of its own "
        f"({small_name}), "
        f"{fmt_count(large)} over the last 30 days in the bench's. "
        "Pages: Django test Client in the bench process (full middleware, force_login as "
        "owner), the two sizes' GETs taking turns: 3 warm-up GETs each, then 25 timed each; "
        "queries counted on one extra GET."
        + (
            " After each fill: VACUUM (ANALYZE) and CHECKPOINT on PostgreSQL (what autovacuum "
            "and the checkpointer would have done), a WAL checkpoint on SQLite."
        )
        + (" --quick: 200 k instead of 1 M." if ctx.quick else "")
    )
    if notes:
        ctx.notes.append("f: columns the fill defaulted: " + "; ".join(sorted(notes)))
    return rows


# Scenario g lives in bench/sustained.py, h and i in bench/fairness.py; they are
# handed this module for Row and the helpers.
import fairness  # noqa: E402
import platform_use  # noqa: E402
import sustained  # noqa: E402

scenario("g", sustained.TITLE)(sustained.scenario(sys.modules[__name__]))
scenario("h", fairness.H_TITLE)(fairness.scenario_h(sys.modules[__name__]))
scenario("i", fairness.I_TITLE)(fairness.scenario_i(sys.modules[__name__]))
scenario("j", platform_use.J_TITLE)(platform_use.scenario_j(sys.modules[__name__]))
scenario("k", platform_use.K_TITLE)(platform_use.scenario_k(sys.modules[__name__]))


# --- Main -------------------------------------------------------------------------------


def select(only: str | None) -> list[str]:
    keys = list(SCENARIOS) if not only else [k.strip() for k in only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    wanted = set(keys)
    for key in keys:
        wanted.update(SCENARIOS[key].needs)
    return [k for k in SCENARIOS if k in wanted]  # registry order


def print_table(rows: list[Row], header: list[str], notes: list[str]) -> None:
    titles = ["", "measure", "figure", "target", "result"]
    cells = [[r.scenario, r.measure, r.figure, r.target, r.verdict] for r in rows]
    widths = [max([len(t), *(len(c[i]) for c in cells)]) for i, t in enumerate(titles)]
    rule = "  ".join("-" * w for w in widths)

    def line(values: list[str]) -> str:
        padded = (
            v.rjust(w) if i == 2 else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )
        return "  ".join(padded).rstrip()

    print()
    for text in header:
        print(text)
    print(rule)
    print(line(titles))
    print(rule)
    for i, cell in enumerate(cells):
        if i and cell[0] != cells[i - 1][0]:
            print()
        print(line(cell))
    print(rule)
    for note in notes:
        print(note)
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N, shorter runs")
    parser.add_argument(
        "--only", metavar="a,b,...", help="run only these scenarios (and what they need)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="HERALD_WORKERS for the worker pool (default 2)"
    )
    args = parser.parse_args(argv)
    keys = select(args.only)

    # SIGTERM ends the run like Ctrl-C does: through the cleanup below.
    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored

    processes = harness.Processes()
    storage = None
    rows: list[Row] = []
    try:
        log("preparing the bench database and Redis database")
        storage = harness.prepare_storage(dict(os.environ))
        env = dict(os.environ)
        env.update(
            DATABASE_URL=storage.database_url,
            REDIS_URL=storage.redis_url,
            HERALD_ALLOW_PRIVATE_TARGETS="1",
            HERALD_ALLOW_HTTP="1",
            HERALD_WORKERS=str(args.workers),
        )
        # This process talks to the same bench stores: set before django.setup().
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        harness.migrate(env)
        import django

        django.setup()

        ctx = Context(args=args, storage=storage, processes=processes, env=env)
        overrides = sorted(
            f"{k}={v}"
            for k, v in os.environ.items()
            if k.startswith("HERALD_")
            and k not in ("HERALD_ALLOW_PRIVATE_TARGETS", "HERALD_ALLOW_HTTP", "HERALD_WORKERS")
        )
        if args.quick:
            ctx.notes.append(
                "--quick: with small N the workers' start-up (~1 s) weighs more; "
                "the targets are meant for the full run."
            )
        started = time.monotonic()
        for key in keys:
            item = SCENARIOS[key]
            log(f"scenario {key}: {item.title}")
            try:
                rows.extend(item.func(ctx))
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                log(f"scenario {key} failed: {exc!r}")
                rows.append(Row(key, item.title, f"ERROR: {exc}"[:120], "", False))
        header = [
            f"Herald benchmark{' (--quick)' if args.quick else ''}: {storage.description}; "
            f"{os.cpu_count()} CPUs; worker: {' '.join(harness.procfile_command('worker', env)[1:])}",
            f"settings overridden from the environment: {', '.join(overrides) or 'none'}; "
            f"run took {time.monotonic() - started:.0f} s; logs in var/bench-logs/",
        ]
        print_table(rows, header, ctx.notes)
        return 0 if all(r.ok is not False for r in rows) else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        processes.stop_all()
        harness.release_storage(storage)


if __name__ == "__main__":
    sys.exit(main())

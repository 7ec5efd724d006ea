"""Scenarios j and k: platform use (SPEC §10).

j  ingest: events accepted per second through the HTTP API, the Procfile's
   web process (gunicorn, 2 workers × 4 threads), 8 client threads with a
   platform key: single `POST /api/v1/events`, then batches of 100 on
   `POST /api/v1/events/batch`. Each event fans out to one webhook; no
   worker runs (acceptance is measured, not delivery).
k  the staff console (/staff/) with 1,000 organizations, against 10, while
   1 M attempts of history lie in the database (scenario f's fill).

Handed the bench module (Row, the helpers, the context) by bench/run.py.
(Not "platform.py": bench/ comes first on sys.path, and the standard
library has a module of that name.)
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
import urllib.request

import harness
from harness import log

J_TITLE = "ingest through the HTTP API (gunicorn 2 × 4, 8 client threads)"
K_TITLE = "staff console with 1,000 organizations and 1 M attempts"

CLIENTS = 8
SECONDS = 10
BATCH = 100


def _post_loop(url: str, headers: dict, body: bytes, stop: float, counts: list, index: int):
    # http.client on one kept-alive connection: a lean client, so that the
    # CPUs this machine shares between client and server go to the server.
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    accepted = errors = 0
    while time.monotonic() < stop:
        connection.request("POST", parts.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status == 202:
            accepted += 1
        else:
            errors += 1
    connection.close()
    counts[index] = (accepted, errors)


def _hammer(url: str, headers: dict, body: bytes, seconds: float) -> tuple[int, int, float]:
    counts: list = [(0, 0)] * CLIENTS
    started = time.monotonic()
    stop = started + seconds
    threads = [
        threading.Thread(target=_post_loop, args=(url, headers, body, stop, counts, i))
        for i in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed


def scenario_j(bench):
    def run(ctx) -> list:
        import json

        from webhooks.models import PlatformKey, Webhook
        from webhooks.organizations import create_organization

        organization = create_organization("bench-j", external_id="bench-j")
        Webhook.objects.create(
            organization=organization, url="http://127.0.0.1:9/ingest", event_patterns=["*"]
        )
        _, key = PlatformKey.issue("bench-j")
        port = harness.free_port()
        env = {**ctx.env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "2"}
        base = f"http://127.0.0.1:{port}"
        headers = {
            "Authorization": f"Bearer {key}",
            "Herald-Organization": "bench-j",
            "Content-Type": "application/json",
        }
        event = {"type": bench.EVENT_TYPE, "data": bench.event_data(0)}
        seconds = 5 if ctx.quick else SECONDS
        ctx.processes.start("web", harness.procfile_command("web", env), env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=2)  # noqa: S310 (loopback)
                    break
                except urllib.error.HTTPError:
                    break  # answering (503: no worker runs here)
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the web process did not answer within 30 s") from None
                    time.sleep(0.2)
            # Warm-up: every gunicorn thread connects and loads its code.
            _hammer(f"{base}/api/v1/events", headers, json.dumps(event).encode(), 2)
            single, single_errors, single_s = _hammer(
                f"{base}/api/v1/events", headers, json.dumps(event).encode(), seconds
            )
            batch_body = json.dumps({"events": [event] * BATCH}).encode()
            batches, batch_errors, batch_s = _hammer(
                f"{base}/api/v1/events/batch", headers, batch_body, seconds
            )
        finally:
            ctx.processes.stop("web")
        single_rate = single / single_s
        batch_rate = batches * BATCH / batch_s
        ctx.results["j"] = {"single": single_rate, "batch": batch_rate}
        Row = bench.Row
        rows = [
            Row(
                "j",
                f"single POST /events, events/s ({single:,} in {single_s:.0f} s)",
                bench.fmt_rate(single_rate),
                ">= 400 /s",
                single_rate >= 400,
            ),
            Row(
                "j",
                f"batch of {BATCH}, events/s ({batches:,} batches)",
                bench.fmt_rate(batch_rate),
                ">= 5,000 /s",
                batch_rate >= 5000,
            ),
        ]
        if single_errors or batch_errors:
            rows.append(
                Row(
                    "j",
                    "answers other than 202 (single / batch)",
                    f"{single_errors} / {batch_errors}",
                    "0",
                    False,
                )
            )
        ctx.notes.append(
            f"j: the Procfile's web command (gunicorn 2 workers × 4 threads) on "
            f"{ctx.storage.description}; {CLIENTS} client threads (http.client, keep-alive) "
            "with a platform key naming the organization; each event fans out to one webhook; "
            "2 s warm-up, not counted."
        )
        return rows

    return run


def scenario_k(bench):
    def run(ctx) -> list:
        import dashboard_history as history
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from dashboard.console import PAGE_SIZE
        from deliveries.models import Event
        from webhooks.cursors import encode_cursor
        from webhooks.models import Organization, Webhook
        from webhooks.organizations import create_organization

        Row = bench.Row
        staff = get_user_model().objects.create(username="bench-staff", is_staff=True)
        client = Client()
        client.force_login(staff)
        if not ctx.results.get("f"):  # the history scenario f leaves behind
            organization, webhooks, _ = history.create_organization()
            history.fill_history(
                organization, webhooks, 200_000 if ctx.quick else 1_000_000, 30 * 86400.0, set()
            )
        history_org = Organization.objects.order_by("pk").first()

        def grow_to(count: int) -> None:
            # Customers as a platform has them: two webhooks and a few events each.
            existing = Organization.objects.count()
            for i in range(existing, count):
                customer = create_organization(f"Customer {i:04d}", external_id=f"cus_{i:04d}")
                Webhook.objects.bulk_create(
                    [
                        Webhook(organization=customer, url=f"https://hooks.example.com/{i}/{n}")
                        for n in range(2)
                    ]
                )
                Event.objects.bulk_create(
                    [
                        Event(organization=customer, type="invoice.paid", data_json="{}")
                        for _ in range(5)
                    ]
                )
            if connection.vendor == "postgresql":  # as autovacuum would
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Event._meta.db_table}, {Webhook._meta.db_table}")

        bench.collect_static()

        def timed(url: str):
            with bench.dashboard_settings():
                return history.time_page(client, url, bench.percentile)

        # Like for like: a full first page (PAGE_SIZE organizations) with 100
        # organizations, then with 1,000; and the page that holds the
        # organization with the history (the oldest, on the last page).
        grow_to(PAGE_SIZE)
        small = timed("/staff/")
        grow_to(1000)
        large = timed("/staff/")
        last_page = Organization.objects.filter(pk__lte=history_org.pk + PAGE_SIZE - 1).count()
        after = Organization.objects.order_by("pk")[last_page : last_page + 1].first()
        history_url = "/staff/?cursor=" + encode_cursor(after.pk) if after else "/staff/"
        with_history = timed(history_url)
        for label, timing in (("100", small), ("1,000", large), ("history page", with_history)):
            log(f"k: /staff/ {label}: {timing.median_ms:.1f} ms, {timing.queries} queries")
        ratio = large.median_ms / small.median_ms
        ctx.notes.append(
            f"k: /staff/ shows {PAGE_SIZE} organizations a page, each here with 2 webhooks and "
            "5 events; "
            "timed like f's pages (median of 25 GETs in-process); the history page is the one "
            "holding the organization with f's attempts."
        )
        return [
            Row(
                "k",
                f"/staff/ with {PAGE_SIZE} organizations: median (p90), queries",
                f"{small.median_ms:.1f} ms (p90 {small.p90_ms:.1f}), {small.queries} q",
            ),
            Row(
                "k",
                "/staff/ with 1,000 organizations: median (p90), queries",
                f"{large.median_ms:.1f} ms (p90 {large.p90_ms:.1f}), {large.queries} q",
            ),
            Row(
                "k",
                "  the page holding the 1 M attempts' organization",
                f"{with_history.median_ms:.1f} ms (p90 {with_history.p90_ms:.1f}), "
                f"{with_history.queries} q",
            ),
            Row(
                "k",
                "  queries the same (fixed)",
                f"{small.queries} / {large.queries} / {with_history.queries}",
                "equal",
                small.queries == large.queries == with_history.queries,
            ),
            Row("k", "  ratio 1,000 / 100 (info: the same page of 100 rows)", f"{ratio:.2f}"),
        ]

    return run

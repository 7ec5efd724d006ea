"""Scenarios h and i: fairness (SPEC §3).

h  noisy neighbour: organization A's webhook answers after 10 s (timeout
   15 s) and has 1,000 due deliveries; organization B's healthy webhook
   gets 40 events at 20/s meanwhile. B's wait (publish → first byte at its
   receiver) p50/p99/max, and A's requests in flight at most.
i  the claim at scale: 10,000 webhooks with 1,000,000 due deliveries (100
   each), generated in the database; claim(100) timed in this process,
   against 100 webhooks with 1,000 due deliveries for the ratio.

Both are handed the bench module (for Row, the helpers and the context) by
bench/run.py, which registers them.
"""

from __future__ import annotations

import time

from harness import log

H_TITLE = "noisy neighbour: a 10 s endpoint with 1,000 due vs a healthy one"
I_TITLE = "claiming at 10,000 webhooks and 1,000,000 due deliveries"

B_EVENTS = 40
B_RATE = 20
A_BACKLOG = 1000
A_DELAY_MS = 10_000


def scenario_h(bench):
    def run(ctx) -> list:
        from deliveries.publishing import publish
        from webhooks.models import Webhook
        from webhooks.organizations import create_organization

        slow = ctx.receiver(A_DELAY_MS)
        quick = ctx.receiver(0)
        org_a = create_organization("bench-h-noisy")
        org_b = create_organization("bench-h-healthy")
        Webhook.objects.create(
            organization=org_a,
            name="slow",
            url=slow.url("/slow"),
            event_patterns=["*"],
            timeout_seconds=15,
        )
        Webhook.objects.create(
            organization=org_b, name="healthy", url=quick.url("/record"), event_patterns=["*"]
        )
        bench.publish_burst(org_a, A_BACKLOG)
        log(f"h: {A_BACKLOG} deliveries due to A's 10 s endpoint; starting the workers")
        with ctx.herald("worker", "scheduler"):
            bench.wait_for_rq_workers(ctx.args.workers)
            deadline = time.monotonic() + 30
            while slow.stats()["inFlight"] < 10:
                if time.monotonic() > deadline:
                    raise RuntimeError("A's requests did not reach its cap within 30 s")
                time.sleep(0.05)
            published: dict[str, float] = {}
            start = time.monotonic()
            for i in range(B_EVENTS):
                pause = start + i / B_RATE - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                event = publish(org_b, bench.EVENT_TYPE, bench.event_data(i)).event
                published[event.public_id] = time.time()
            deadline = time.monotonic() + 30
            while quick.stats()["received"] < B_EVENTS and time.monotonic() < deadline:
                time.sleep(0.05)
            a_in_flight = slow.stats()["maxInFlight"]
            arrivals = quick.arrivals()
        first: dict[str, int] = {}
        for webhook_id, at_ms in arrivals:
            first.setdefault(webhook_id, at_ms)
        waits = [first[i] - published[i] * 1000 for i in published if i in first]
        if not waits:
            raise RuntimeError("none of B's events arrived")
        p50, p99 = bench.percentile(waits, 50), bench.percentile(waits, 99)
        ctx.results["h"] = {"p50": p50, "p99": p99, "max": max(waits), "a": a_in_flight}
        Row = bench.Row
        rows = [
            Row(
                "h",
                f"B's wait p50 ({len(waits)} of {B_EVENTS} events at {B_RATE}/s)",
                f"{p50:.0f} ms",
            ),
            Row("h", "B's wait p99", f"{p99:.0f} ms", "<= 1000 ms", p99 <= 1000),
            Row("h", "  B's wait max (info)", f"{max(waits):.0f} ms"),
            Row(
                "h",
                "A's requests in flight, at most (its cap: 10)",
                str(a_in_flight),
                "<= 10",
                a_in_flight <= 10,
            ),
        ]
        if len(waits) < B_EVENTS:
            rows.append(
                Row(
                    "h",
                    "B's events not delivered within 30 s",
                    str(B_EVENTS - len(waits)),
                    "0",
                    False,
                )
            )
        ctx.notes.append(
            "h: B's wait = receiver's Date.now() at the first arrival of each webhook-id minus "
            "time.time() right after publish() returned; A's backlog published before the "
            "workers started, B's events once A's 10 requests were in flight."
        )
        return rows

    return run


def fill_claim_backlog(webhooks: int, per_webhook: int) -> float:
    """`webhooks` webhooks of one organization, each with `per_webhook` due
    deliveries and a due lane, written by INSERT … SELECT. Returns seconds."""
    import dashboard_history
    from django.db import connection, transaction
    from django.utils import timezone

    from deliveries.models import Delivery, Event, Lane
    from webhooks import ids
    from webhooks.models import Webhook
    from webhooks.organizations import create_organization

    started = time.perf_counter()
    sql = dashboard_history.Dialect(connection.vendor)
    organization = create_organization(f"bench-i-{webhooks}")
    now = timezone.now()
    with transaction.atomic():
        hooks = Webhook.objects.bulk_create(
            [
                Webhook(
                    organization=organization,
                    name=f"w{i}",
                    url="http://127.0.0.1:9/claim",
                    event_patterns=["*"],
                )
                for i in range(webhooks)
            ],
            batch_size=2000,
        )
        events = Event.objects.bulk_create(
            [
                Event(organization=organization, type="bench.claim", data_json="{}", created_at=now)
                for _ in range(per_webhook)
            ]
        )
        Lane.objects.bulk_create(
            [Lane(webhook=hook, due_at=now) for hook in hooks], batch_size=2000
        )
    first_hook, first_event = hooks[0].pk, events[0].pk
    table = Delivery._meta.db_table
    prefix = ids.delivery_id()[:4]
    with connection.cursor() as cursor:
        # One delivery per (event, webhook), due at staggered times in the past.
        cursor.execute(
            f"INSERT INTO {table} (public_id, organization_id, event_id, webhook_id, event_type, "
            "status, attempts, manual_attempts, next_attempt_at, next_trigger, last_error_kind, "
            "created_at) "
            f"SELECT '{prefix}bench' || g.i, %s, %s + ((g.i - 1) %% %s), "
            "%s + ((g.i - 1) / %s), 'bench.claim', 'pending', 0, 0, "
            f"{sql.timestamp('%s - (g.i %% 3600)')}, 'auto', '', {sql.timestamp('%s')} "
            f"FROM {sql.series(webhooks * per_webhook)}",
            [
                organization.pk,
                first_event,
                per_webhook,
                first_hook,
                per_webhook,
                now.timestamp(),
                now.timestamp(),
            ],
        )
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(f"ANALYZE {Lane._meta.db_table}")
    return time.perf_counter() - started


def drop_claim_backlog() -> None:
    """The organizations fill_claim_backlog made, so that no later scenario
    meets their 10,000 webhooks (k's staff console did). Their deliveries
    first, in one DELETE: they have no attempts, and the deletion's batches
    would take minutes over a million of them."""
    from django.db import connection

    from deliveries.models import Delivery
    from webhooks.deletion import delete_organization
    from webhooks.models import Organization

    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {Delivery._meta.db_table} WHERE event_type = %s", ["bench.claim"]
        )
    for organization in Organization.objects.filter(name__startswith="bench-i-"):
        delete_organization(organization)


def time_claims(rounds: int, limit: int = 100) -> list[float]:
    """Milliseconds per claim(limit), each its own transaction (leases
    committed); between claims, untimed, the leases are handed back."""
    from deliveries import claiming, lanes
    from deliveries.models import Lease

    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        claimed = claiming.claim(limit)
        timings.append((time.perf_counter() - start) * 1000)
        if len(claimed) != limit:
            raise RuntimeError(f"claim({limit}) took {len(claimed)}")
        Lease.objects.filter(delivery_id__in=[c.delivery_id for c in claimed]).delete()
        lanes.wake({c.target.id for c in claimed})
    return timings


def scenario_i(bench):
    def run(ctx) -> list:
        from django.db import connection

        from deliveries.models import Lane

        Row = bench.Row
        # The same claim each time (100 lanes, one delivery from each): what
        # changes is how many webhooks and due deliveries lie behind it.
        sizes = [(100, 10), (10_000, 100)] if not ctx.quick else [(100, 10), (2_000, 100)]
        medians = {}
        rows = []
        for webhooks, per_webhook in sizes:
            drop_claim_backlog()
            Lane.objects.all().delete()
            seconds = fill_claim_backlog(webhooks, per_webhook)
            log(f"i: {webhooks} webhooks × {per_webhook} due filled in {seconds:.1f} s")
            time_claims(3)  # warm-up
            timings = time_claims(20)
            median, p90 = bench.percentile(timings, 50), bench.percentile(timings, 90)
            medians[webhooks] = median
            due = webhooks * per_webhook
            rows.append(
                Row(
                    "i",
                    f"claim(100) with {bench.fmt_count(webhooks)} webhooks, "
                    f"{bench.fmt_count(due)} due: median (p90)",
                    f"{median:.1f} ms (p90 {p90:.1f})",
                )
            )
        small, large = (s for s, _ in sizes)
        ratio = medians[large] / medians[small]
        rows.append(
            Row(
                "i",
                f"  ratio {bench.fmt_count(large)} / {bench.fmt_count(small)} webhooks",
                f"{ratio:.2f}",
                "<= 2",
                ratio <= 2,
            )
        )
        ctx.notes.append(
            f"i: {connection.vendor}; deliveries and lanes written by INSERT … SELECT, then "
            "3 warm-up and 20 timed claim(100) calls in the bench process, each taking one "
            "delivery from each of 100 lanes (the deal spreads the slots) and committing "
            "their leases; the leases are handed back, untimed, between calls."
        )
        drop_claim_backlog()
        return rows

    return run

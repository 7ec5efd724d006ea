"""GET /metrics: Prometheus text exposition (or OpenMetrics, if asked).

Read from the database at scrape time by a custom collector, so every web
process answers the same figures and nothing is kept in memory: four indexed
queries and one Redis LLEN per scrape, whatever the history (attempts are
never read).

    herald_deliveries_total{outcome}         counter: deliveries that ended
                                             succeeded / failed
    herald_attempts_total{outcome}           counter: attempts, succeeded / failed
    herald_attempt_latency_seconds           histogram of the attempts that got a
                                             response (buckets: LATENCY_BUCKETS_MS)
    herald_queue_jobs                        gauge: rq jobs waiting in the queue
    herald_deliveries_due                    gauge: due and not claimed by a worker
                                             (counted up to DUE_COUNT_LIMIT)
    herald_oldest_due_delivery_age_seconds   gauge: how long the oldest of those
                                             has been due (0 when none)

The counters and the histogram come from the per-minute WebhookStats
counters through their all-time totals (totals.py): they only grow, retention
and webhook deletion included, as Prometheus counters must. They cover every
webhook of every organization, without labels per webhook or organization
(unbounded cardinality, and names that are the tenants' business).

Protected by HERALD_METRICS_TOKEN (`Authorization: Bearer …` or `?token=…`,
compared in constant time); while it is unset the endpoint does not exist (404).
"""

import hmac
import logging

import redis
from django.conf import settings
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from rq import Queue

from deliveries import claiming
from monitoring import health, totals
from monitoring.models import LATENCY_BUCKETS_MS
from monitoring.stats import N_LATENCY_BUCKETS

log = logging.getLogger(__name__)

# Counting due deliveries stops here: an index range of at most this many
# entries per scrape, however long a backlog grows (the gauge then reads this).
DUE_COUNT_LIMIT = 100_000


def latency_buckets(counts: dict[str, int]) -> list[tuple[str, float]]:
    """Cumulative `le` buckets in seconds from the lat_* counters (lat_i is
    latency <= LATENCY_BUCKETS_MS[i]; the last one is everything slower)."""
    buckets = []
    running = 0
    for index, bound_ms in enumerate(LATENCY_BUCKETS_MS):
        running += counts[f"lat_{index}"]
        buckets.append((_seconds(bound_ms), running))
    running += counts[f"lat_{N_LATENCY_BUCKETS - 1}"]
    buckets.append(("+Inf", running))
    return buckets


def _seconds(milliseconds: int) -> str:
    return repr(milliseconds / 1000)


class HeraldCollector(Collector):
    def describe(self):
        # Nothing at registration: collecting reads the database.
        return []

    def collect(self):
        counts = totals.current()
        deliveries = CounterMetricFamily(
            "herald_deliveries",
            "Deliveries that ended, by outcome (failed: attempts exhausted, webhook disabled).",
            labels=["outcome"],
        )
        deliveries.add_metric(["succeeded"], counts["succeeded_deliveries"])
        deliveries.add_metric(["failed"], counts["failed_deliveries"])
        yield deliveries

        attempts = CounterMetricFamily(
            "herald_attempts",
            "HTTP attempts, by outcome (succeeded: a 2xx in time).",
            labels=["outcome"],
        )
        attempts.add_metric(["succeeded"], counts["succeeded_attempts"])
        attempts.add_metric(["failed"], counts["attempts"] - counts["succeeded_attempts"])
        yield attempts

        yield HistogramMetricFamily(
            "herald_attempt_latency_seconds",
            "Time to the response of attempts that got one.",
            buckets=latency_buckets(counts),
            sum_value=counts["latency_total_ms"] / 1000,
        )

        now = timezone.now()
        due = claiming.due_deliveries(now)
        due_count = due.order_by().values("id")[:DUE_COUNT_LIMIT].count()
        yield GaugeMetricFamily(
            "herald_deliveries_due",
            f"Deliveries due and not claimed by a worker (counted up to {DUE_COUNT_LIMIT}).",
            value=due_count,
        )
        oldest = due.order_by("next_attempt_at").values_list("next_attempt_at", flat=True).first()
        yield GaugeMetricFamily(
            "herald_oldest_due_delivery_age_seconds",
            "How long the oldest due, unclaimed delivery has been due (0 when none).",
            value=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        )

        try:
            jobs = health.redis_client().llen(
                Queue.redis_queue_namespace_prefix + settings.HERALD_QUEUE
            )
        except redis.RedisError:
            log.warning("metrics: could not read the queue length", exc_info=True)
        else:
            yield GaugeMetricFamily(
                "herald_queue_jobs", "rq jobs waiting in Herald's queue.", value=jobs
            )


registry = CollectorRegistry(auto_describe=False)
registry.register(HeraldCollector())


def _token_matches(request, expected: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        given = request.GET.get("token", "")
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@never_cache
@require_GET
def metrics(request):
    expected = settings.HERALD_METRICS_TOKEN
    if not expected:
        raise Http404("No metrics here.")
    if not _token_matches(request, expected):
        response = HttpResponse("A valid metrics token is needed.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)

"""GET /healthz: is this installation able to accept and deliver events?

    {"status": "ok" | "degraded" | "down",
     "checks": {"database": {"status": "ok"}, "redis": {"status": "ok"},
                "workers": {"status": "ok", "alive": 2},
                "scheduler": {"status": "ok", "alive": 1}}}

200 when every check is ok, 503 otherwise: "down" when the database is
unreachable (nothing can be accepted or delivered), "degraded" when it is
reachable but Redis, every worker or the scheduler is not (events are
accepted and kept; delivery waits until they are back).

Unauthenticated, so it says nothing an outsider could use: no host names,
addresses or error messages, only each check's verdict (the details go to the
log). Every check runs in its own thread under one deadline, so a database or
Redis that does not answer makes the endpoint answer "timeout" instead of
hanging; a check still stuck from an earlier request is not started again.
"""

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import connections
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.cron_scheduler_registry import get_registry_key as cron_registry_key
from rq.utils import utcparse
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

log = logging.getLogger(__name__)

# The whole endpoint answers within this, whatever the checks do.
TIMEOUT_SECONDS = 2.0
# A worker counts as alive if it heartbeat this recently. rq heartbeats
# before and after each job (the scheduler's one-second tick keeps them
# coming) and Herald's long jobs add one every 15 s (jobs.worker_heartbeats).
WORKER_HEARTBEAT_SECONDS = 120
# The cron scheduler heartbeats on every pass: at least once a second with
# Herald's tick, at most 60 s apart in rq.
SCHEDULER_HEARTBEAT_SECONDS = 90

OK, DEGRADED, DOWN = "ok", "degraded", "down"


class CheckFailed(Exception):
    """A check's verdict when it ran but found something wrong."""


def check_database() -> dict:
    # A thread of its own, so a connection of its own: closed here, never
    # left open by a thread that ends.
    conn = connections["default"]
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        conn.close()
    return {}


_redis_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    """A client of the queue's Redis with short socket timeouts."""
    global _redis_client
    if _redis_client is None:
        _redis_client = redis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),  # a refused connection is an answer
        )
    return _redis_client


def check_redis() -> dict:
    redis_client().ping()
    return {}


def _recent(moment: datetime | None, seconds: float, now: datetime) -> bool:
    return moment is not None and (now - moment).total_seconds() <= seconds


def check_workers() -> dict:
    """rq workers listening on Herald's queue with a recent heartbeat."""
    client = redis_client()
    keys = sorted(k.decode() for k in client.smembers(WORKERS_BY_QUEUE_KEY % settings.HERALD_QUEUE))
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "last_heartbeat")
        beats = pipe.execute() if keys else []
    now = datetime.now(UTC)
    alive = sum(
        1
        for beat in beats
        if beat and _recent(utcparse(beat.decode()), WORKER_HEARTBEAT_SECONDS, now)
    )
    if not alive:
        raise CheckFailed({"alive": 0})
    return {"alive": alive}


def check_scheduler() -> dict:
    """rq cron schedulers (`manage.py rqcron`) with a recent heartbeat."""
    since = time.time() - SCHEDULER_HEARTBEAT_SECONDS
    alive = redis_client().zcount(cron_registry_key(), since, "+inf")
    if not alive:
        raise CheckFailed({"alive": 0})
    return {"alive": alive}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "redis": check_redis,
    "workers": check_workers,
    "scheduler": check_scheduler,
}

# Checks still running from an earlier request (stuck on a dead server).
_running: dict[str, threading.Thread] = {}
_running_lock = threading.Lock()


def run_checks(timeout: float = TIMEOUT_SECONDS) -> dict[str, dict]:
    results: dict[str, dict] = {}
    threads: dict[str, threading.Thread] = {}

    def run(name: str, check: Callable[[], dict]) -> None:
        try:
            results[name] = {"status": OK, **check()}
        except CheckFailed as failed:
            results[name] = {"status": DOWN, **failed.args[0]}
        except Exception as exc:
            log.warning("health check %s failed", name, exc_info=True)
            results[name] = {"status": DOWN, "error": _error_kind(exc)}

    with _running_lock:
        for name, check in CHECKS.items():
            earlier = _running.get(name)
            if earlier is not None and earlier.is_alive():
                results[name] = {"status": DOWN, "error": "timeout"}
                continue
            thread = threading.Thread(
                target=run, args=(name, check), name=f"herald-health-{name}", daemon=True
            )
            thread.start()
            threads[name] = _running[name] = thread

    deadline = time.monotonic() + timeout
    for name, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            log.warning("health check %s did not answer within %s s", name, timeout)
    # A check that has not answered by now is reported as such, whatever it
    # writes later.
    return {
        name: dict(results.get(name) or {"status": DOWN, "error": "timeout"}) for name in CHECKS
    }


def _error_kind(exc: Exception) -> str:
    if isinstance(exc, TimeoutError | redis.TimeoutError):
        return "timeout"
    return "unavailable"


def overall(checks: dict[str, dict]) -> str:
    if checks["database"]["status"] != OK:
        return DOWN
    if any(check["status"] != OK for check in checks.values()):
        return DEGRADED
    return OK


@never_cache
@require_GET
def healthz(request):
    checks = run_checks()
    checks["workers"].setdefault("alive", 0)
    checks["scheduler"].setdefault("alive", 0)
    status = overall(checks)
    response = JsonResponse(
        {"status": status, "checks": checks}, status=200 if status == OK else 503
    )
    # Not one "Service Unavailable" error line per probe from django.request
    # (a check that raised has been logged above).
    response._has_been_logged = True
    return response

"""Waking the dispatcher: a deduplicated rq job that drains what is due.

Deliveries are not one job each: a `run_dispatcher` job (jobs.py) drains
everything due, many requests at a time (see dispatch.py). Publishing,
retries and resumes wake it; a wake is deduplicated through a short-lived
Redis key so a burst of events queues one job, and a dispatcher that finds
more work than it can hold wakes another so idle workers join in. The job
is enqueued by its dotted name, which rq resolves in the worker: this module
stays below everything that wakes the dispatcher, dispatch.py included.
"""

import logging

import django_rq
import redis
from django.conf import settings

log = logging.getLogger(__name__)

WAKE_KEY = "herald:dispatch:wake"
WAKE_KEY_SECONDS = 10
DISPATCH_JOB = "deliveries.jobs.run_dispatcher"
MAX_WEBHOOK_TIMEOUT_SECONDS = 300


_queue = None


def queue():
    """The process's queue, on one Redis connection pool (redis-py reconnects
    in a forked child by itself). django_rq.get_queue builds a new pool per call."""
    global _queue
    if _queue is None:
        _queue = django_rq.get_queue(settings.HERALD_QUEUE)
    return _queue


def dispatch_job_timeout() -> int:
    # Longer than any request can take, so rq never kills a job mid-request.
    return settings.HERALD_DISPATCH_MAX_SECONDS + MAX_WEBHOOK_TIMEOUT_SECONDS + 60


def wake_dispatcher() -> None:
    """Make sure a dispatch job is queued. Never raises: if Redis is down the
    periodic tick finds the due deliveries once it is back."""
    try:
        q = queue()
        if q.connection.set(WAKE_KEY, "1", nx=True, ex=WAKE_KEY_SECONDS):
            q.enqueue(
                DISPATCH_JOB,
                job_timeout=dispatch_job_timeout(),
                result_ttl=0,
                failure_ttl=24 * 3600,
                description="herald: dispatch due deliveries",
            )
    except redis.RedisError:
        log.warning("could not wake the dispatcher; the periodic tick will", exc_info=True)

"""Waking the dispatcher: a deduplicated rq job that drains what is due.

Deliveries are not one job each: a `run_dispatcher` job (jobs.py) drains
everything due, many requests at a time (see dispatch.py). Publishing,
retries and resumes wake it. A wake queues a job only when none is queued
(a short-lived Redis key, which the job deletes when it starts) and no
dispatcher is claiming (a sorted set of the claiming ones, each with the
time its claim on that role lapses): a claiming dispatcher claims until
nothing is due, so it will find what was published. A dispatcher that
finds more work than it can hold calls for help, past both, so idle
workers join in. The job is enqueued by its dotted name, which rq resolves
in the worker: this module stays below everything that wakes the
dispatcher, dispatch.py included.
"""

import logging

import django_rq
import redis
import rq
from django.conf import settings
from redis.commands.core import Script

log = logging.getLogger(__name__)

WAKE_KEY = "herald:dispatch:wake"
WAKE_KEY_SECONDS = 10
CLAIMING_KEY = "herald:dispatch:claiming"
# A claiming dispatcher says so again this often; one whose worker died
# drops out of the set CLAIMING_SECONDS after it last did.
CLAIMING_RENEW_SECONDS = 1.0
CLAIMING_SECONDS = 5
HELP_KEY = "herald:dispatch:help"
HELP_KEY_SECONDS = 1
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


# Redis's own clock for every lapse time, whichever host asks.
_WAKE_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 1 end
return 0
"""
_CLAIMING_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""
_CLAIMERS_SCRIPT = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
_scripts: dict[str, Script] = {}


def _run(source: str, keys: list[str], args: list) -> object:
    """A script, by its digest once Redis knows it, on the queue's connection."""
    connection = queue().connection
    if source not in _scripts:
        _scripts[source] = connection.register_script(source)
    return _scripts[source](keys=keys, args=args, client=connection)


def wake_dispatcher() -> None:
    """Make sure a dispatch job is queued, or a dispatcher claiming. Never
    raises: if Redis is down the periodic tick finds the due deliveries once
    it is back."""
    try:
        if _run(_WAKE_SCRIPT, [WAKE_KEY, CLAIMING_KEY], [WAKE_KEY_SECONDS]):
            _enqueue()
    except redis.RedisError:
        log.warning("could not wake the dispatcher; the periodic tick will", exc_info=True)


def call_for_help() -> None:
    """Queue one more dispatch job even while others claim (at most one a
    second): a dispatcher left due deliveries it had no slots for."""
    try:
        if queue().connection.set(HELP_KEY, "1", nx=True, ex=HELP_KEY_SECONDS):
            _enqueue()
    except redis.RedisError:
        log.warning("could not call another dispatcher", exc_info=True)


def _enqueue() -> None:
    # At the front: the periodic jobs (the sweep, alerts, roll-ups, the
    # nightly retention pass) share the queue, and deliveries do not wait
    # behind them; a scheduler starting enqueues four of them at once.
    queue().enqueue(
        DISPATCH_JOB,
        at_front=True,
        job_timeout=dispatch_job_timeout(),
        result_ttl=0,
        failure_ttl=24 * 3600,
        description="herald: dispatch due deliveries",
    )


def hold_claiming(dispatcher: str) -> None:
    """Say that this dispatcher claims, for the next CLAIMING_SECONDS."""
    _run(_CLAIMING_SCRIPT, [CLAIMING_KEY], [dispatcher, CLAIMING_SECONDS])


def claimers() -> int:
    """How many dispatchers claim now, on any machine (hold_claiming)."""
    return int(_run(_CLAIMERS_SCRIPT, [CLAIMING_KEY], []))


def workers() -> int:
    """How many rq workers listen on Herald's queue, on any machine."""
    return rq.Worker.count(queue=queue())


def job_started() -> None:
    """The queued job has started: the next wake may queue another."""
    queue().connection.delete(WAKE_KEY)


def release_claiming(dispatcher: str) -> None:
    """This dispatcher claims no more: wakes queue jobs again."""
    queue().connection.zrem(CLAIMING_KEY, dispatcher)

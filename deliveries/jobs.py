"""Queue jobs (rq) and how they are enqueued.

Deliveries are not one job each: a `dispatch` job drains everything due, many
requests at a time (see dispatch.py). Publishing and retries wake it; a wake
is deduplicated through a short-lived Redis key so a burst of events queues
one job, and a dispatcher that finds more work than it can hold wakes another
so idle workers join in. Periodic jobs (see cron.py) cover what a lost wake or
a dead worker would otherwise leave behind.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import django_rq
import redis
import rq
from django.conf import settings
from django.db import close_old_connections
from rq.defaults import DEFAULT_WORKER_TTL

from deliveries import dispatch, shutdown

log = logging.getLogger(__name__)

WAKE_KEY = "herald:dispatch:wake"
WAKE_KEY_SECONDS = 10
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
                run_dispatcher,
                job_timeout=dispatch_job_timeout(),
                result_ttl=0,
                failure_ttl=24 * 3600,
                description="herald: dispatch due deliveries",
            )
    except redis.RedisError:
        log.warning("could not wake the dispatcher; the periodic tick will", exc_info=True)


def run_dispatcher() -> int:
    """The dispatch job: send everything due, many at a time.

    On the first SIGTERM or SIGINT to its worker (or pool) it stops claiming,
    lets the requests in flight finish (each bounded by its webhook's
    timeout), records them and returns; rq then exits the worker. A second
    signal is rq's cold shutdown: what was in flight goes unrecorded, and the
    leases make those deliveries due again (see shutdown.py).
    """
    with shutdown.stop_requested() as stopping, worker_heartbeats():
        # Let the next publish queue a fresh job even while this one runs.
        queue().connection.delete(WAKE_KEY)
        close_old_connections()
        try:
            return dispatch.run(on_full_claim=wake_dispatcher, should_stop=stopping)
        finally:
            close_old_connections()


HEARTBEAT_EVERY_SECONDS = 15


@contextmanager
def worker_heartbeats(every: float = HEARTBEAT_EVERY_SECONDS) -> Iterator[None]:
    """Keep the rq worker running this job heartbeating while the job runs.

    rq heartbeats between jobs, not during one (SimpleWorker runs the job in
    its main thread and has no monitor), and /healthz counts a worker as alive
    by its heartbeat: a dispatch job with slow receivers, or a long purge,
    would otherwise look like a dead worker. Outside a worker this does nothing."""
    job = rq.get_current_job()
    if job is None or not job.worker_name:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        worker = None
        while not done.wait(every):
            try:
                if worker is None:
                    worker = rq.Worker.find_by_key(
                        rq.Worker.redis_worker_namespace_prefix + job.worker_name,
                        connection=job.connection,
                    )
                    if worker is None:
                        return
                worker.heartbeat(int(job.timeout or DEFAULT_WORKER_TTL) + 60)
            except redis.RedisError:
                log.warning("could not send the worker's heartbeat", exc_info=True)

    thread = threading.Thread(target=beat, name="herald-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def tick() -> bool:
    """Every second: wake the dispatcher if anything is due (retries whose
    time came, deliveries whose wake was lost)."""
    close_old_connections()
    if dispatch.due_exists():
        wake_dispatcher()
        return True
    return False


def sweep() -> int:
    """Release claims of workers that died mid-request, then wake the dispatcher."""
    close_old_connections()
    released = dispatch.release_expired_claims()
    if released:
        log.warning("released %d deliveries held by a worker that stopped", released)
    tick()
    return released


ALERTS_LOCK_KEY = "herald:alerts:lock"
ALERTS_JOB_TIMEOUT = 300


def evaluate_alerts() -> str:
    """Every HERALD_ALERT_INTERVAL_SECONDS: evaluate the alert rules and send
    the notices (alerts.evaluate). One at a time: a pass that overran its
    interval makes the next one skip rather than race it."""
    from deliveries import alerts

    close_old_connections()
    connection = queue().connection
    if not connection.set(ALERTS_LOCK_KEY, "1", nx=True, ex=ALERTS_JOB_TIMEOUT):
        return "skipped: the previous evaluation is still running"
    try:
        return str(alerts.evaluate())
    finally:
        connection.delete(ALERTS_LOCK_KEY)


def roll_up_totals() -> str:
    """Every minute: fold the minutes old enough into the all-time totals
    behind the Prometheus counters (totals.py)."""
    from deliveries import totals

    close_old_connections()
    return f"rolled up to {totals.roll_up():%Y-%m-%d %H:%M}"


def purge_old() -> str:
    """Daily: apply the retention period."""
    from deliveries.retention import purge

    close_old_connections()
    with shutdown.stop_requested() as stopping, worker_heartbeats():
        return str(purge(should_stop=stopping))

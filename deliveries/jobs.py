"""The engine's queue jobs (rq): the dispatch job and the periodic ones that
cover what a lost wake-up or a dead worker would otherwise leave behind
(registered in cron.py). Waking the dispatcher is wakeup.py's.
"""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis
import rq
from django.db import DatabaseError, close_old_connections
from rq.defaults import DEFAULT_WORKER_TTL

from deliveries import claiming, dispatch, lanes, shutdown, wakeup
from deliveries.wakeup import (
    CLAIMING_RENEW_SECONDS,
    MAX_WEBHOOK_TIMEOUT_SECONDS,
    dispatch_job_timeout,
    queue,
    wake_dispatcher,
)

# Also reached here: the wake-up side and its limits (wakeup.py).
__all__ = ["MAX_WEBHOOK_TIMEOUT_SECONDS", "dispatch_job_timeout", "queue", "wake_dispatcher"]

log = logging.getLogger(__name__)


def run_dispatcher() -> int:
    """The dispatch job: send everything due, many at a time.

    On the first SIGTERM or SIGINT to its worker (or pool) it stops claiming,
    lets the requests in flight finish (each bounded by its webhook's
    timeout), records them and returns; rq then exits the worker. A second
    signal is rq's cold shutdown: what was in flight goes unrecorded, and the
    leases make those deliveries due again (see shutdown.py).
    """
    role = ClaimingRole()
    with shutdown.stop_requested() as stopping, worker_heartbeats():
        close_old_connections()
        try:
            role.take()
            return dispatch.run(
                on_full_claim=role.call_for_help,
                should_stop=stopping,
                on_claim=role.renew,
                claimers=role.claimers,
                on_claims_over=role.give_up,
            )
        finally:
            role.give_up()
            close_old_connections()


# A claim costs a few milliseconds; counting the others costs one Redis
# round trip, so not every claim does.
CLAIMERS_COUNT_SECONDS = 0.1


class ClaimingRole:
    """This job's place among the claiming dispatchers (wakeup.py): while it
    holds it, a publish need not queue another job, this one will find its
    deliveries. Given up when the job claims no more; it then looks once
    more for what was published meanwhile, and wakes a dispatcher for it."""

    def __init__(self) -> None:
        self.name = uuid.uuid4().hex
        self.renewed_at: float | None = None
        self.counted_at: float | None = None
        self.counted = (1, 1)  # dispatchers claiming, workers

    def _count(self) -> tuple[int, int]:
        """How many dispatchers claim now (this one included) and how many
        workers there are: counted at most every CLAIMERS_COUNT_SECONDS, so
        that a dispatcher learns of a newcomer, and gives up its share of
        the caps, within that long."""
        now = time.monotonic()
        if self.counted_at is None or now - self.counted_at >= CLAIMERS_COUNT_SECONDS:
            try:
                self.counted = (max(1, wakeup.claimers()), wakeup.workers())
            except redis.RedisError:
                log.warning("could not count the claiming dispatchers", exc_info=True)
            self.counted_at = now
        return self.counted

    def claimers(self) -> int:
        return self._count()[0]

    def call_for_help(self) -> None:
        """Call another worker to share the backlog, unless every worker
        runs a dispatcher already: the job would only wait in the queue for
        one of them to end (and another after it, once a second)."""
        claimers, workers = self._count()
        if claimers < workers:
            wakeup.call_for_help()

    def take(self) -> None:
        # Claiming first, then the queued job's key gone: a wake in between
        # finds a claiming dispatcher, never neither.
        self.renew()
        try:
            wakeup.job_started()
        except redis.RedisError:
            log.warning("could not clear the wake key", exc_info=True)

    def renew(self) -> None:
        now = time.monotonic()
        if self.renewed_at is not None and now - self.renewed_at < CLAIMING_RENEW_SECONDS:
            return
        try:
            wakeup.hold_claiming(self.name)
        except redis.RedisError:
            log.warning("could not say the dispatcher claims", exc_info=True)
        self.renewed_at = now

    def give_up(self) -> None:
        if self.renewed_at is None:
            return
        self.renewed_at = None
        try:
            wakeup.release_claiming(self.name)
            if claiming.due_exists():
                wake_dispatcher()
        except (redis.RedisError, DatabaseError):
            # The tick looks again within a second, once both are back.
            log.warning("could not hand over to the next dispatcher", exc_info=True)


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
    if claiming.due_exists():
        wake_dispatcher()
        return True
    return False


def sweep() -> int:
    """Release claims of workers that died mid-request, put right any lane
    that missed a wake-up (lanes.repair), then wake the dispatcher."""
    close_old_connections()
    released = claiming.release_expired_claims()
    if released:
        log.warning("released %d deliveries held by a worker that stopped", released)
    woken = lanes.repair()
    if woken:
        log.info("woke %d lanes with claimable deliveries", woken)
    tick()
    return released

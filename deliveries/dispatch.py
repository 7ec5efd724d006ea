"""The dispatcher: claims due deliveries from the database (claiming.py,
fairly between webhooks), sends them on a pool of threads, and records the
attempts in batches.

A request that ended frees its slot at once: the next claim counts it as
settled (claiming.claim), so its webhook's next delivery need not wait for
the record, and the record can wait for a batch worth its transaction.
Sooner still, when it succeeded, its thread starts at once a delivery of
the same webhook that a claim took ahead, in its place: a busy webhook's
slots are not idle while a claim is made. What was taken ahead of a
webhook that failed a request, or was paused or disabled, or that is left
when the run ends, is given back (claiming.release).

Only this module's main thread touches the database; the threads run
`attempt`, which only builds, signs and sends.
"""

import logging
import math
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from deliveries import (
    actions,
    ahead,
    claiming,
    envelope,
    lanes,
    pacing,
    retry,
    rows,
    sender,
    signals,
    signing,
)
from deliveries.claiming import Claimed, claim
from deliveries.models import Delivery, DeliveryAttempt, Lease, Trigger
from webhooks.models import Webhook

log = logging.getLogger(__name__)

# Record finished attempts once this many are waiting, or after this long.
# (Only the attempt log, retries and the stats wait for it: the slots are
# settled at once.)
RECORD_BATCH = 50
RECORD_EVERY_SECONDS = 0.05
# With requests in flight and nothing claimed last time, look again this often.
IDLE_CLAIM_EVERY_SECONDS = 0.02
# With requests in flight, claim again once this share of the slots is free:
# often enough that few threads wait, seldom enough that a claim's fixed cost
# is shared by several deliveries.
REFILL_AT_FREE = 0.1
# Take ahead this share of a lane's requests in flight (claiming.claim), and
# claim again once half of what is queued ahead has started.
AHEAD_SHARE = 0.5
# With nothing in flight, wait for a lane due within this long instead of ending.
LINGER_SECONDS = 1.0


@dataclass
class Result:
    claimed: Claimed
    outcome: sender.Outcome
    request_headers: dict[str, str]
    request_body: bytes


def attempt(claimed: Claimed) -> Result:
    """Build, sign and send one request. Runs in a worker thread: no ORM."""
    target = claimed.target
    # Its webhook's rate limit spaces the starts.
    pacing.wait_for_start(target.id, claimed.not_before, target.start_spacing)
    body = envelope.build_body(
        event_id=claimed.event_public_id,
        event_type=claimed.event_type,
        timestamp=claimed.event_created_at,
        organization_id=target.organization_public_id,
        webhook_id=target.public_id,
        data_json=claimed.data_json,
    )
    headers = {
        **target.headers,
        "Content-Type": "application/json",
        "User-Agent": sender.user_agent(),
        **signing.signature_headers(
            secrets=target.secrets,
            msg_id=claimed.event_public_id,
            body=body,
            unix_seconds=time.time(),
            style=target.signature_style,
            header=target.signature_header,
        ),
    }
    outcome = sender.post(
        target.url, body, headers, timeout=target.timeout, verify_tls=target.verify_tls
    )
    return Result(claimed, outcome, headers, body)


@dataclass
class DeliveryUpdate:
    """A delivery's new state after an attempt."""

    id: int
    attempts: int
    last_status_code: int | None
    last_latency_ms: int
    last_error_kind: str
    status: str = Delivery.Status.PENDING
    next_attempt_at: datetime | None = None
    completed_at: datetime | None = None
    # 1 when the attempt was made on request (a retry, a resend): added to
    # the delivery's manual_attempts.
    manual: int = 0


_UPDATE_COLUMNS = (
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "last_latency_ms",
    "last_error_kind",
    "completed_at",
)


# One statement, many parameter rows (pipelined by psycopg): Django's
# bulk_update builds a CASE per field and row, and cost most of a worker's
# CPU in profiles.
_UPDATE_STATEMENT = (
    f"UPDATE {Delivery._meta.db_table} SET {', '.join(f'{c} = %s' for c in _UPDATE_COLUMNS)}, "
    "manual_attempts = manual_attempts + %s, next_trigger = %s WHERE id = %s"
)
_DELETE_LEASES = f"DELETE FROM {Lease._meta.db_table} WHERE delivery_id IN ({{ids}})"


def _update_deliveries(updates: list[DeliveryUpdate]) -> None:
    """The deliveries' new state, their leases given back."""
    updates = sorted(updates, key=lambda u: u.id)
    rows = [
        [*(getattr(u, c) for c in _UPDATE_COLUMNS), u.manual, Trigger.AUTO, u.id] for u in updates
    ]
    with connection.cursor() as cursor:
        cursor.executemany(_UPDATE_STATEMENT, rows)
        cursor.execute(
            _DELETE_LEASES.format(ids=", ".join(["%s"] * len(updates))), [u.id for u in updates]
        )


@dataclass
class Recorded:
    """One attempt of a recorded batch, with what became of its delivery."""

    claimed: Claimed
    outcome: sender.Outcome
    update: DeliveryUpdate

    @property
    def ended(self) -> str | None:
        """The delivery's final status if this attempt ended it."""
        return self.update.status if self.update.status != Delivery.Status.PENDING else None


@dataclass
class RecordedBatch:
    """What signals.attempts_recorded tells its listeners."""

    attempts: list[Recorded]
    # Webhook ids of deliveries that were to be retried but ended failed
    # instead, their webhook disabled while the attempt was in flight.
    failed_on_disabled: list[int]
    now: datetime


def record(
    results: list[Result], *, now: datetime | None = None, started: Sequence[Claimed] = ()
) -> None:
    """Write a batch of attempts and their consequences in one transaction,
    and announce it (signals.attempts_recorded) inside that transaction.

    `started`: deliveries taken ahead that started in place of requests that
    ended (see claiming.claim), whose leases are marked in flight first: the
    record gives back the leases that stood for them."""
    if not results:
        return
    now = now or timezone.now()
    attempts: list[DeliveryAttempt] = []
    recorded: list[Recorded] = []
    by_webhook: dict[int, list[tuple[datetime, bool]]] = defaultdict(list)
    # Deliveries that ended, per webhook: (attempt time, succeeded).
    ended_by_webhook: dict[int, list[tuple[datetime, bool]]] = defaultdict(list)
    gone: set[int] = set()
    body_limit = settings.HERALD_REQUEST_STORE_BYTES

    for result in results:
        claimed, outcome = result.claimed, result.outcome
        target = claimed.target
        attempts.append(
            DeliveryAttempt(
                delivery_id=claimed.delivery_id,
                number=claimed.attempt_number,
                trigger=claimed.trigger,
                started_at=outcome.started_at,
                duration_ms=outcome.duration_ms,
                request_headers=result.request_headers,
                request_body=result.request_body[:body_limit].decode(errors="replace"),  # UTF-8
                response_status=outcome.status_code,
                response_headers=outcome.headers,
                response_body=outcome.body,
                error_kind=outcome.error_kind,
                error_message=outcome.error_message,
            )
        )
        delivery = DeliveryUpdate(
            id=claimed.delivery_id,
            attempts=claimed.attempt_number,
            last_status_code=outcome.status_code,
            last_latency_ms=outcome.duration_ms,
            last_error_kind=outcome.error_kind,
            manual=int(claimed.trigger == Trigger.MANUAL),
        )
        if outcome.succeeded:
            delivery.status = Delivery.Status.SUCCEEDED
            delivery.completed_at = now
        else:
            plan = retry.plan_after_failure(
                attempt_number=claimed.attempt_number,
                max_attempts=target.max_attempts,
                status_code=outcome.status_code,
                retry_after=outcome.headers.get("Retry-After")
                or outcome.headers.get("retry-after"),
                now=now,
            )
            if plan.give_up:
                delivery.status = Delivery.Status.FAILED
                delivery.completed_at = now
            else:
                delivery.status = Delivery.Status.PENDING
                delivery.next_attempt_at = plan.retry_at
            if plan.disable_webhook:
                gone.add(target.id)
        item = Recorded(claimed, outcome, delivery)
        recorded.append(item)
        by_webhook[target.id].append((outcome.started_at, outcome.succeeded))
        if item.ended:
            ended_by_webhook[target.id].append((outcome.started_at, outcome.succeeded))

    with transaction.atomic():
        claiming.mark_started(started, now)
        rows.append(attempts)
        _update_deliveries([item.update for item in recorded])
        for webhook_id in sorted(by_webhook):
            _update_webhook_health(
                webhook_id, by_webhook[webhook_id], ended_by_webhook[webhook_id], now
            )
        failed_on_disabled = _fail_retries_of_disabled_webhooks(
            [item.update for item in recorded], now
        )
        for webhook_id in sorted(gone):
            actions.disable_webhook(
                Webhook.objects.get(id=webhook_id),
                reason="The endpoint answered 410 Gone: it asked not to receive more deliveries.",
                now=now,
            )
        # Only a delivery that ended failed can complete a streak: the check
        # costs one query, and only for batches that hold such a delivery.
        streaking = [
            webhook_id
            for webhook_id, ended in ended_by_webhook.items()
            if webhook_id not in gone and not all(ok for _, ok in ended)
        ]
        if streaking:
            _disable_failing_webhooks(streaking, now)
        # Slots freed, retries scheduled, an ordered webhook's next in line.
        lanes.wake(by_webhook, now)
        signals.attempts_recorded.send(
            sender=RecordedBatch, batch=RecordedBatch(recorded, failed_on_disabled, now)
        )


def _disable_failing_webhooks(webhook_ids: list[int], now: datetime) -> None:
    """Auto-disable (SPEC §3): HERALD_DISABLE_AFTER_FAILURES deliveries in a
    row ended failed, the first of them at least HERALD_DISABLE_AFTER_HOURS ago."""
    threshold = settings.HERALD_DISABLE_AFTER_FAILURES
    hours = settings.HERALD_DISABLE_AFTER_HOURS
    for webhook in Webhook.objects.filter(
        id__in=sorted(webhook_ids),
        status=Webhook.Status.ACTIVE,
        consecutive_failed_deliveries__gte=threshold,
        failed_deliveries_since__lte=now - timedelta(hours=hours),
    ).order_by("id"):
        actions.disable_webhook(
            webhook,
            reason=(
                f"{webhook.consecutive_failed_deliveries} deliveries in a row failed, "
                f"the first at {webhook.failed_deliveries_since:%Y-%m-%d %H:%M} UTC "
                f"(the limit is {threshold} over {hours} h)."
            ),
            now=now,
            value=webhook.consecutive_failed_deliveries,
            threshold=threshold,
        )


def _fail_retries_of_disabled_webhooks(
    deliveries: list[DeliveryUpdate], now: datetime
) -> list[int]:
    """A webhook disabled while these requests were in flight: their retries
    must end now, like every other pending delivery of it did. Returns the
    webhook id of each delivery that ended so."""
    retrying = [d.id for d in deliveries if d.status == Delivery.Status.PENDING]
    if not retrying:
        return []
    stranded = list(
        Delivery.objects.filter(
            id__in=retrying, webhook__status=Webhook.Status.DISABLED
        ).values_list("id", "webhook_id")
    )
    if not stranded:
        return []
    Delivery.objects.filter(id__in=[i for i, _ in stranded]).update(
        status=Delivery.Status.FAILED, next_attempt_at=None, completed_at=now
    )
    return [webhook_id for _, webhook_id in stranded]


def _update_webhook_health(
    webhook_id: int,
    tries: list[tuple[datetime, bool]],
    ended: list[tuple[datetime, bool]],
    now: datetime,
) -> None:
    tries.sort()
    last_at = tries[-1][0]
    successes = [i for i, (_, ok) in enumerate(tries) if ok]
    changes: dict = {
        "last_delivery_at": Greatest(Coalesce(F("last_delivery_at"), last_at), last_at)
    }
    if successes:
        trailing = tries[successes[-1] + 1 :]
        changes["consecutive_failures"] = len(trailing)
        changes["failing_since"] = trailing[0][0] if trailing else None
    else:
        changes["consecutive_failures"] = F("consecutive_failures") + len(tries)
        changes["failing_since"] = Coalesce(F("failing_since"), tries[0][0])
    if ended:
        # The same for whole deliveries, dated when they ended (now).
        ended.sort()
        wins = [i for i, (_, ok) in enumerate(ended) if ok]
        if wins:
            trailing = len(ended) - wins[-1] - 1
            changes["consecutive_failed_deliveries"] = trailing
            changes["failed_deliveries_since"] = now if trailing else None
        else:
            changes["consecutive_failed_deliveries"] = F("consecutive_failed_deliveries") + len(
                ended
            )
            changes["failed_deliveries_since"] = Coalesce(F("failed_deliveries_since"), now)
    Webhook.objects.filter(id=webhook_id).update(**changes)


class SendPool(Executor):
    """Up to `size` daemon threads, started as work needs them.

    Like ThreadPoolExecutor, except that the interpreter does not wait for
    these threads at exit: a worker cut short by a second SIGTERM (rq's cold
    shutdown) exits at once instead of waiting for requests whose results it
    will never record; their leases make those deliveries due again. A
    graceful stop has nothing in flight by the time the job returns."""

    def __init__(self, size: int) -> None:
        self._max_workers = size
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        self._work.put((future, fn, args, kwargs))
        with self._lock:
            if not self._idle.acquire(timeout=0) and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._serve, name=f"herald-send_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _serve(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:
                    future.set_exception(exc)
            del item, future
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            for _ in self._threads:
                self._work.put(None)
            threads, self._threads = self._threads, []
        if wait:
            for thread in threads:
                thread.join()


# One pool per size, kept for the process: a dispatcher never shuts down a
# pool another dispatcher in the same process (a test's) may be using.
_pools: dict[int, SendPool] = {}
_pools_lock = threading.Lock()


def _pool(size: int) -> SendPool:
    with _pools_lock:
        if size not in _pools:
            _pools[size] = SendPool(size)
        return _pools[size]


def run(
    *,
    concurrency: int | None = None,
    max_seconds: float | None = None,
    on_full_claim: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_claim: Callable[[], None] | None = None,
    on_claims_over: Callable[[], None] | None = None,
    claimers: Callable[[], int] = lambda: 1,
) -> int:
    """Claim, send and record until nothing is due (or `max_seconds` passed),
    keeping up to `concurrency` requests in flight. Returns the attempts made.

    `on_full_claim` is called when a claim filled every free slot or left
    due deliveries behind, a sign that more work is waiting for another
    worker to share. `on_claim` is called before each claim, and
    `on_claims_over` once, when this run will claim no more (the deadline,
    a stop, or nothing due) and only waits for what it has in flight.
    `claimers` says how many dispatchers claim now, this one included: each
    keeps to its share of a webhook's cap (claiming.claim), and one that
    joins others waits up to LINGER_SECONDS for a first share before it
    ends.
    """
    concurrency = concurrency or settings.HERALD_WORKER_CONCURRENCY
    max_seconds = settings.HERALD_DISPATCH_MAX_SECONDS if max_seconds is None else max_seconds
    pool = _pool(concurrency)
    refill_at_free = max(1, math.ceil(concurrency * REFILL_AT_FREE))
    # Each thread hands its result over here as it finishes: the main thread
    # learns of a free slot at once, whatever the number in flight.
    results: queue.SimpleQueue = queue.SimpleQueue()
    # Deliveries taken ahead, each to start in place of a request of its
    # webhook that succeeded (ahead.py), at most half the lease margin after
    # its claim: its lease must outlast its request. And those that
    # started, until a claim or a record marks their leases so.
    queued = ahead.Waiting(fresh_for=settings.HERALD_LEASE_MARGIN_SECONDS / 2)
    started_ahead: dict[int, Claimed] = {}
    # Webhooks whose last request here failed: nothing taken ahead for them.
    failing: set[int] = set()
    in_flight = 0
    # This dispatcher's requests in flight per webhook (not yet finished).
    running: Counter[int] = Counter()
    finished: list[Result] = []
    deadline = time.monotonic() + max_seconds
    first_finished = 0.0  # when the oldest unrecorded result came in
    next_claim = 0.0
    made = 0
    claims_over = False
    ordered_waiting = False  # a finished result of an ordered webhook awaits its record
    started = time.monotonic()
    taken_any = False

    def send(item: Claimed | None) -> None:
        while item is not None:
            try:
                result = attempt(item)
            except Exception:  # a bug in attempt(): leave it to the lease
                log.exception("attempt of delivery %s crashed", item.delivery_id)
                result = None
            # Only after a success: an endpoint failing, or asking to be
            # left alone (410), gets no more than the requests in flight.
            following = None
            if result is not None and result.outcome.succeeded:
                following = queued.next(item.target.id)
            results.put((item, result, following))
            item = following

    def end_claims() -> None:
        nonlocal claims_over
        if not claims_over:
            claims_over = True
            queued.close()  # a stopping worker starts nothing more
            if on_claims_over:
                on_claims_over()

    def fill() -> None:
        """Claim work for the free slots, when there are enough of them, or
        when half of what was taken ahead has started."""
        nonlocal next_claim, in_flight, taken_any
        now = time.monotonic()
        free = concurrency - in_flight
        if now >= deadline or should_stop():
            end_claims()
            return
        if now < next_claim or (in_flight and free < refill_at_free and not queued.running_low()):
            return
        if free < 1:
            # Every slot busy: what started in place of another is marked
            # at the next claim or record, with what it replaced.
            return
        if on_claim:
            on_claim()
        claimed = claim(
            free,
            settled=[result.claimed for result in finished],
            started=list(started_ahead.values()),
            holding=running,
            share_of=claimers(),
            ahead_share=AHEAD_SHARE,
            queued=queued.counts(),
            failing=failing,
        )
        started_ahead.clear()
        queued.take_back(claimed.stopped)
        if claimed and (len(claimed) == free or claimed.more_due) and on_full_claim:
            on_full_claim()
        queued.add(claimed.ahead)
        for item in claimed:
            pool.submit(send, item)
            running[item.target.id] += 1
        in_flight += len(claimed)
        taken_any = taken_any or bool(claimed)
        next_claim = 0.0 if claimed or claimed.ahead else now + IDLE_CLAIM_EVERY_SECONDS

    def collect(timeout: float) -> None:
        """Take the results that came in, waiting up to `timeout` for one."""
        nonlocal in_flight, first_finished, next_claim, ordered_waiting
        try:
            item, result, following = results.get(timeout=timeout)
            if not finished:
                first_finished = time.monotonic()
            next_claim = 0.0  # slots settled: claim again now
            while True:
                started_ahead.pop(item.delivery_id, None)
                if result is None or not result.outcome.succeeded:
                    failing.add(item.target.id)
                    queued.take_back([item.target.id])
                else:
                    failing.discard(item.target.id)
                    if following is None and (following := queued.next(item.target.id)):
                        # Taken ahead by a claim that ended after this
                        # request did, its thread having found none.
                        pool.submit(send, following)
                if following is None:
                    in_flight -= 1
                    running[item.target.id] -= 1
                else:
                    started_ahead[following.delivery_id] = following
                if result is not None:
                    finished.append(result)
                    ordered_waiting = ordered_waiting or item.target.ordered
                item, result, following = results.get_nowait()
        except queue.Empty:
            pass

    def record_finished() -> None:
        nonlocal finished, made, next_claim, ordered_waiting
        record(finished, started=list(started_ahead.values()))
        started_ahead.clear()
        made += len(finished)
        finished = []
        ordered_waiting = False
        next_claim = 0.0  # the record freed slots and woke their lanes

    def record_due() -> bool:
        """Whether to record what finished now.

        A record is one transaction of a few round trips: one per result
        cost more CPU than the requests, so results wait for a batch. Not
        for long: until RECORD_BATCH of them wait, or the oldest waited
        RECORD_EVERY_SECONDS, or the last one came in, or one is an ordered
        webhook's, whose next delivery goes only once this one is recorded."""
        if not finished:
            return False
        return (
            len(finished) >= RECORD_BATCH
            or not in_flight
            or time.monotonic() - first_finished >= RECORD_EVERY_SECONDS
            or ordered_waiting
        )

    while True:
        if given_back := queued.given_back():
            claiming.release(given_back)
        if record_due():
            record_finished()
        fill()
        if not in_flight and not finished:
            # Nothing claimable now; a lane due within moments (a rate
            # limit's next start, a retry) is waited for here rather than
            # left to the next tick. So is a first share of the caps while
            # others claim: a dispatcher called to help finds the caps held
            # by the one that called it, until that one learns of it and
            # keeps to its share.
            soon = claiming.seconds_until_due()
            helping = not taken_any and time.monotonic() - started < LINGER_SECONDS
            if helping and claimers() > 1:
                soon = min(soon, 0.0) if soon is not None else 0.0
            if (
                soon is None
                or soon > LINGER_SECONDS
                # A lane overdue (soon < 0) past the deadline: the next job's.
                or time.monotonic() + max(soon, 0) >= deadline
                or should_stop()
            ):
                end_claims()
                claiming.release(queued.given_back())
                break
            # In short naps: while this dispatcher claims, a publish queues
            # no other job, so what it publishes is this one's to find.
            time.sleep(min(max(soon, 0.01), IDLE_CLAIM_EVERY_SECONDS))
            next_claim = 0.0
            continue
        if in_flight:
            wait = IDLE_CLAIM_EVERY_SECONDS
            if finished:
                wait = min(wait, first_finished + RECORD_EVERY_SECONDS - time.monotonic())
            collect(max(0.0, wait))
    return made

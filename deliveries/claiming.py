"""Claiming: which due deliveries a worker takes, so that no webhook's
backlog holds back another's (SPEC §3, fairness and ordered delivery).

The database is the queue. A delivery is claimable when it is pending, its
`next_attempt_at` has passed, its webhook is active and no live worker holds
it (no models.Lease, or one that ran out). Claiming writes a lease that
ends after the webhook's timeout plus a margin, so a worker killed
mid-request leaves its deliveries to be claimed again when the lease runs
out. A delivery under a live lease is a request in flight.

A claim for `limit` free slots, in one transaction:

1. Lock up to `limit` due lanes (models.Lane) of active webhooks, those due
   the longest first, then the lanes of the worker's settled requests. SKIP
   LOCKED: a lane another worker is claiming from is passed over, not
   waited for. Every claimer of a webhook holds its
   lane, so a webhook's cap, rate and order are decided by one claimer at
   a time, whichever process or machine it runs on.
2. Each lane's allowance: its cap (`max_in_flight`, 1 when `ordered`)
   less its requests in flight now (its live leases, counted on their
   index, but for those whose request has ended: settled, see claim()),
   and no more than the worker's share of a large cap when several
   workers claim (SHARE_AT_LEAST),
   and, with a `rate_limit`, the request starts its rate allows within the
   next RATE_HORIZON. A lane with no allowance is skipped, not waited on.
3. An ordered webhook takes its oldest unfinished delivery, and only when
   that one is due and not in flight (one index probe).
4. The other free slots are dealt to the lanes one at a time, round the
   table, so a worker's slots go to many webhooks, never all to one
   backlog; each lane takes its share of its due deliveries, oldest first
   (an index range per webhook). Slots a lane could not use, having fewer
   due deliveries than its share, go round again (DEAL_ROUNDS).
5. Leases, and each lane's next `due_at` (see Lane).

Cost: a few index probes per lane taken, never a scan of what is due: the
same with 10 webhooks or 10,000, with a hundred due deliveries or a million
(`bench/run.py` measures it).

Rate limits are kept by spacing: the requests of a webhook with
`rate_limit` R start at least RATE_SPACING_MARGIN / R seconds apart (a
claimed delivery carries the time it may start, and its thread waits for
it), so no one-second window ever holds more than R starts, even when a
thread starts up to 50 ms late; and the sending process keeps the spacing
between the starts it actually makes (pacing.py), so a stall that makes
several threads late does not send their requests together. A delivery
held back by the limit is simply not claimed yet: it is no attempt.
"""

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from deliveries import lanes, signals
from deliveries.lanes import DELIVERIES, LANES
from deliveries.models import Delivery, Event, Lane, Lease
from webhooks.models import Organization, Webhook

EVENTS = Event._meta.db_table
LEASES = Lease._meta.db_table

# How far ahead a rate-limited webhook's requests are claimed: its threads
# wait at most this long for their start time.
RATE_HORIZON = timedelta(seconds=0.5)
# A webhook's cap is shared between the dispatchers claiming only when each
# share is at least this many requests: a few slots each would often stand
# idle, between a request's end and the claim that refills its slot, while
# another dispatcher's share waits for work; and a small cap's requests are
# few enough for one process.
SHARE_AT_LEAST = 20
# Requests of a rate-limited webhook are spaced 5 % wider than 1/R: a thread
# that starts up to 5 % of a second late cannot crowd R + 1 starts into a
# one-second window.
RATE_SPACING_MARGIN = 1.05


@dataclass
class Target:
    """What the threads need of a webhook (a snapshot: no ORM in threads)."""

    id: int
    public_id: str
    organization_public_id: str
    url: str
    secrets: list[str]
    signature_style: str
    signature_header: str
    headers: dict[str, str]
    timeout: float
    verify_tls: bool
    max_attempts: int
    organization_id: int = 0
    name: str = ""
    ordered: bool = False
    # Seconds between its request starts (its rate limit's spacing), 0 for none.
    start_spacing: float = 0.0


@dataclass
class Claimed:
    delivery_id: int
    attempt_number: int
    trigger: str
    event_public_id: str
    event_type: str
    event_created_at: datetime
    data_json: str
    target: Target
    delivery_public_id: str = ""
    # Unix time before which the request must not start (a rate limit's spacing).
    not_before: float = 0.0
    # Unix time of the claim that took it.
    claimed_at: float = 0.0


def _claimable(now: datetime) -> Q:
    # lanes.claimable_sql says the same in SQL.
    return Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now) & ~Q(Lease.held(now))


def due_deliveries(now: datetime | None = None) -> QuerySet[Delivery]:
    """Deliveries a worker could take now, caps and rate limits aside: due,
    unclaimed, of an active webhook (the backlog /metrics reports)."""
    return Delivery.objects.filter(
        _claimable(now or timezone.now()), webhook__status=Webhook.Status.ACTIVE
    )


def due_exists(now: datetime | None = None) -> bool:
    """Is any lane due? (The tick wakes the dispatcher when one is.)"""
    return Lane.objects.filter(
        due_at__lte=now or timezone.now(), webhook__status=Webhook.Status.ACTIVE
    ).exists()


def seconds_until_due(now: datetime | None = None) -> float | None:
    """How long until the first lane of an active webhook is due (negative:
    one is due already); None when no lane waits for anything."""
    now = now or timezone.now()
    first = (
        Lane.objects.filter(due_at__isnull=False, webhook__status=Webhook.Status.ACTIVE)
        .order_by("due_at")
        .values_list("due_at", flat=True)
        .first()
    )
    return None if first is None else (first - now).total_seconds()


def in_flight(webhook_ids: list[int], now: datetime | None = None) -> dict[int, int]:
    """Requests in flight now, per webhook: its live leases (on their
    index) but for the settled ones, whose request has ended."""
    counts = dict.fromkeys(webhook_ids, 0)
    if not webhook_ids:
        return counts
    at = connection.ops.adapt_datetimefield_value(now or timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT webhook_id, COUNT(*) FROM {LEASES} "
            f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))}) "
            "AND until > %s AND NOT settled GROUP BY webhook_id",
            [*webhook_ids, at],
        )
        counts.update(dict(cursor.fetchall()))
    return counts


# Due deliveries are counted up to this for the pages (an index range).
WAITING_COUNT_LIMIT = 10_000


@dataclass
class Pressure:
    """What holds a webhook's deliveries back right now, for the pages."""

    in_flight: int
    cap: int
    waiting: int  # due, not in flight (counted up to WAITING_COUNT_LIMIT)
    held_by: str  # "", "max_in_flight", "rate_limit" or "order"


def pressure(webhook: Webhook, now: datetime | None = None) -> Pressure:
    """Two index ranges: its leased deliveries and its due ones."""
    now = now or timezone.now()
    flying = in_flight([webhook.pk], now)[webhook.pk]
    cap = 1 if webhook.ordered else webhook.max_in_flight
    waiting = (
        Delivery.objects.filter(_claimable(now), webhook_id=webhook.pk)
        .order_by()
        .values("id")[:WAITING_COUNT_LIMIT]
        .count()
    )
    held_by = ""
    if waiting and webhook.status == Webhook.Status.ACTIVE:
        if webhook.ordered:
            held_by = "order"
        elif flying >= cap:
            held_by = "max_in_flight"
        elif webhook.rate_limit:
            held_by = "rate_limit"
    return Pressure(flying, cap, waiting, held_by)


class Claim(list):
    """The deliveries a claim took; `more_due` says that some lane it
    looked at still has due deliveries it left (a sign for another worker).
    `ahead`: those it took ahead (see claim()), to start only in place of a
    request of their webhook that ended. `stopped`: the webhooks of those
    the worker had `queued` that are no longer active (paused, disabled):
    what it queued of them is to be given back (release())."""

    more_due: bool = False

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.ahead: list[Claimed] = []
        self.stopped: set[int] = set()


@dataclass
class LanePlan:
    """One lane in one claim: what it may take and what it took."""

    webhook: Webhook
    rate_next_at: datetime | None
    in_flight: int = 0
    cap_room: int = 0
    rate_room: int | None = None  # None: no rate limit
    share: int = 0  # dealt in the current round
    taken: list[tuple] = field(default_factory=list)
    drained: bool = False  # it had fewer due deliveries than it was dealt
    # Set for an ordered webhook: its oldest unfinished delivery, if any.
    head: tuple | None = None
    # Its room was cut to this worker's share: the rest is for the others.
    shared: bool = False
    # Taken ahead (see claim()): no slot of the cap until started.
    ahead: list[tuple] = field(default_factory=list)
    ahead_wanted: int = 0  # to take ahead in the current round

    @property
    def room(self) -> int:
        """How many more it may take in this claim."""
        if self.drained:
            return 0
        room = self.cap_room if self.rate_room is None else min(self.cap_room, self.rate_room)
        # Half its cap at most per claim: with several workers, one webhook's
        # traffic is shared between them (between their CPUs), not left to
        # whichever claimed first.
        room = min(room, math.ceil(self.cap / 2))
        return room - len(self.taken)

    @property
    def cap(self) -> int:
        return 1 if self.webhook.ordered else self.webhook.max_in_flight

    def spacing(self) -> timedelta:
        return timedelta(seconds=start_spacing(self.webhook.rate_limit))


def start_spacing(rate_limit: int | None) -> float:
    """Seconds between the request starts of a webhook with this rate limit."""
    return RATE_SPACING_MARGIN / rate_limit if rate_limit else 0.0


def rate_room(plan: LanePlan, now: datetime) -> int:
    """Request starts the rate limit allows within the horizon."""
    start = max(now, plan.rate_next_at or now)
    if start > now + RATE_HORIZON:
        return 0
    return math.floor((now + RATE_HORIZON - start) / plan.spacing()) + 1


def deal(plans: list[LanePlan], slots: int) -> None:
    """Share `slots` between the lanes, one each round the table."""
    for plan in plans:
        plan.share = 0
    while slots > 0:
        takers = [plan for plan in plans if plan.share < plan.room]
        if not takers:
            return
        for plan in takers[:slots]:
            plan.share += 1
        slots -= min(slots, len(takers))


_COLUMNS = ("id", "event_id", "attempts", "next_trigger", "public_id")
_HEAD_COLUMNS = (*_COLUMNS, "next_attempt_at")
_LEASE_UNTIL = f"(SELECT until FROM {LEASES} WHERE delivery_id = x.id)"

# PostgreSQL's statements for _heads and _take, fixed at import.
_HEADS_STATEMENT = (
    f"SELECT v.w, {', '.join('d.' + c for c in _HEAD_COLUMNS)}, d.until "
    "FROM unnest(%s::bigint[]) AS v(w) CROSS JOIN LATERAL ("
    f"SELECT {', '.join(_HEAD_COLUMNS)}, {_LEASE_UNTIL} AS until FROM {DELIVERIES} x "
    "WHERE webhook_id = v.w AND status = 'pending' ORDER BY id LIMIT 1) d"
)
_TAKE_STATEMENT = (
    f"SELECT v.w, {', '.join('d.' + c for c in _COLUMNS)} "
    "FROM unnest(%s::bigint[], %s::int[]) AS v(w, k) CROSS JOIN LATERAL ("
    f"SELECT {', '.join(_COLUMNS)}, next_attempt_at FROM {DELIVERIES} x "
    f"WHERE webhook_id = v.w AND {lanes.claimable_sql('x')} AND NOT (id = ANY(%s)) "
    "ORDER BY next_attempt_at, id LIMIT v.k) d "
    "ORDER BY v.w, d.next_attempt_at, d.id"
)
# SQLite's, one webhook each: a round trip costs nothing there, and a fixed
# text is parsed once (the sqlite3 module caches its statements), where the
# ORM's query cost 0.8 ms of Python per lane (80 ms for a claim of 100).
_HEAD_STATEMENT_ONE = (
    f"SELECT {', '.join(_HEAD_COLUMNS)}, {_LEASE_UNTIL} FROM {DELIVERIES} x "
    "WHERE webhook_id = %s AND status = 'pending' ORDER BY id LIMIT 1"
)
_TAKE_STATEMENT_ONE = (
    f"SELECT {', '.join(_COLUMNS)} FROM {DELIVERIES} x "
    f"WHERE webhook_id = %s AND {lanes.claimable_sql('x')}"
    "{taken} ORDER BY next_attempt_at, id LIMIT %s"
)


def _heads(plans: list[LanePlan]) -> None:
    """Each ordered webhook's oldest unfinished delivery with its due time
    and lease end, in one statement on PostgreSQL (a lateral index probe per
    webhook), one query each on SQLite. The claimer holds their lanes, so no
    other claimer moves them."""
    if not plans:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_HEADS_STATEMENT, [[p.webhook.pk for p in plans]])
            heads = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
        else:
            heads = {}
            for plan in plans:
                cursor.execute(_HEAD_STATEMENT_ONE, [plan.webhook.pk])
                if (row := cursor.fetchone()) is not None:
                    *columns, due, until = row
                    heads[plan.webhook.pk] = (*columns, _as_datetime(due), _as_datetime(until))
    for plan in plans:
        plan.head = heads.get(plan.webhook.pk)


def _take(plans: list[LanePlan], now: datetime) -> None:
    """Each lane's share of its due deliveries, and what it takes ahead,
    oldest first. One statement
    on PostgreSQL (a lateral index range per webhook), one query per lane on
    SQLite, where it costs no round trip.

    The rows are not locked: the lane's lock is the webhook's. Disabling,
    which ends the pending deliveries not in flight, takes the lane before
    it looks for leases (actions.disable_webhook), so it waits for this
    claim and then sees what it took. Locking the rows would write to each
    delivery's page, at a cost that grows with the table."""
    at = connection.ops.adapt_datetimefield_value(now)
    if connection.vendor == "postgresql":
        taken_before = [row[0] for plan in plans for row in [*plan.taken, *plan.ahead]]
        with connection.cursor() as cursor:
            cursor.execute(
                _TAKE_STATEMENT,
                [
                    [p.webhook.pk for p in plans],
                    [p.share + p.ahead_wanted for p in plans],
                    at,
                    at,
                    taken_before,
                ],
            )
            more: dict[int, list[tuple]] = defaultdict(list)
            for webhook_id, *row in cursor.fetchall():
                more[webhook_id].append(tuple(row))
    else:
        more = {}
        with connection.cursor() as cursor:
            for plan in plans:
                taken = [row[0] for row in [*plan.taken, *plan.ahead]]
                marks = f" AND id NOT IN ({', '.join(['%s'] * len(taken))})" if taken else ""
                cursor.execute(
                    _TAKE_STATEMENT_ONE.format(taken=marks),
                    [plan.webhook.pk, at, at, *taken, plan.share + plan.ahead_wanted],
                )
                more[plan.webhook.pk] = [tuple(row) for row in cursor.fetchall()]
    for plan in plans:
        got = more.get(plan.webhook.pk, [])
        plan.taken += got[: plan.share]
        plan.ahead += got[plan.share :]
        plan.drained = len(got) < plan.share + plan.ahead_wanted
        plan.ahead_wanted = 0


# Rounds of dealing: the slots a lane could not use (it had fewer due
# deliveries than its share) go round again to the lanes that had more.
DEAL_ROUNDS = 3


def _next_retries(webhook_ids: list[int], now: datetime) -> dict[int, datetime | None]:
    """Each webhook's earliest future attempt, in one statement (an index
    probe per webhook)."""
    if not webhook_ids:
        return {}
    values = ", ".join(["(%s)"] * len(webhook_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.column1, (SELECT d.next_attempt_at FROM {DELIVERIES} d "
            f"WHERE d.webhook_id = v.column1 AND d.status = 'pending' "
            f"AND d.next_attempt_at > %s ORDER BY d.next_attempt_at LIMIT 1) "
            f"FROM (VALUES {values}) AS v",
            [connection.ops.adapt_datetimefield_value(now), *webhook_ids],
        )
        return {webhook_id: _as_datetime(value) for webhook_id, value in cursor.fetchall()}


def _as_datetime(value) -> datetime | None:
    if value is None:
        return None
    # SQLite hands back the stored text, or a naive datetime where its
    # converter recognised the column's declared type.
    parsed = value if isinstance(value, datetime) else parse_datetime(value)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _next_due(plan: LanePlan, now: datetime, next_retry: datetime | None) -> datetime | None:
    """When the lane may next have something to claim (see Lane)."""
    webhook = plan.webhook
    taken = len(plan.taken)
    lease_end = now + timedelta(seconds=webhook.timeout_seconds + lease_margin())
    if webhook.ordered:
        if plan.head is None:
            return None  # nothing pending
        *_, due, leased = plan.head
        if taken or (leased is not None and leased >= now):
            return lease_end  # in flight: its record wakes the lane
        if due is None or due > now:
            return due  # waiting for its retry
    elif plan.drained:
        return next_retry  # drained of due deliveries
    # It took all it was dealt: what stopped it?
    if plan.in_flight + taken >= plan.cap:
        return lease_end  # at its cap: a record frees a slot and wakes the lane
    if plan.rate_room is not None and taken >= plan.rate_room:
        return plan.rate_next_at - RATE_HORIZON  # its next start comes into the horizon
    return now  # the worker's slots ran out: behind the lanes that waited longer


def lease_margin() -> int:
    return settings.HERALD_LEASE_MARGIN_SECONDS


def claim(
    limit: int,
    now: datetime | None = None,
    *,
    settled: Sequence[Claimed] = (),
    started: Sequence[Claimed] = (),
    holding: Mapping[int, int] | None = None,
    share_of: int = 1,
    ahead_share: float = 0.0,
    queued: Mapping[int, int] | None = None,
    failing: Collection[int] = (),
) -> Claim:
    """Take up to `limit` due deliveries for this worker, fairly (see above).

    `settled`: what this worker claimed and sent, whose attempts it has not
    recorded yet. Their requests have ended: their leases are marked so,
    and their slots are free to any worker's claim, although the leases
    still hold the deliveries until the record; their lanes are looked at
    as if their record had just woken them.

    `share_of`: how many dispatchers claim now, this one included. When
    several do, this one keeps at most its share of each webhook's cap in
    flight (`holding`: its requests in flight per webhook, not settled), so
    that a webhook's requests are spread over the workers' processes, not
    left to whichever claimed first while the others idle.

    `ahead_share`: besides what fills the free slots, take ahead up to this
    share of the requests this worker will have in flight on each lane (not
    an ordered or a rate-limited one), less those it has `queued` already
    (per webhook), nor of a webhook whose last request `failing` (its
    endpoint would get no more than the requests in flight: see
    dispatch.run). Their leases are marked settled: no slot of the cap is
    theirs yet. The worker starts one only in place of a request of its
    webhook that ended (dispatch.run), so that the request starts at once,
    with no claim between, and its webhook's requests in flight stay as
    many as the database counts: the ended request's lease counts for the
    one that took its place until the worker marks this one `started`
    (here, or mark_started before a record), as in flight again.
    """
    now = now or timezone.now()
    # With no free slot, a worker still claims to mark what ended or started
    # (losing a mark would leave a request out of its webhook's cap) and to
    # take ahead for the lanes of what ended.
    if limit < 1 and not (settled or started):
        return Claim()
    limit = max(limit, 0)
    adapt = connection.ops.adapt_datetimefield_value
    # Fixed statements, not the ORM's: a claim runs many times a second, and
    # compiling its queries cost more CPU than the database spent on them.
    with transaction.atomic(), connection.cursor() as cursor:
        # A settled request's lane, due or not (at its cap it waits for a
        # record), locked first and waited for: another worker claiming
        # from it holds it for one short transaction, and passing it over
        # would leave the slot idle until the next claim. In webhook order,
        # as every statement that waits for lanes takes them, so two
        # waiters never hold what the other waits for.
        settled_lanes: list[tuple[int, datetime | None]] = []
        if started or settled:
            # Another worker's claim counts the settled out of the webhook's
            # requests in flight from now on, not only after the record.
            _mark(cursor, settled, started, now)
        if settled:
            settled_lanes = _lock_lanes(cursor, {c.target.id for c in settled})
        # The due index alone (no join): lanes of webhooks paused or
        # disabled meanwhile are parked below, when their webhook is read.
        cursor.execute(
            f"SELECT webhook_id, rate_next_at FROM {LANES} WHERE due_at <= %s "
            f"ORDER BY due_at LIMIT %s{_SKIP_LOCKED[connection.vendor]}",
            [adapt(now), limit],
        )
        lane_rows = [(w, _as_datetime(rate_next_at)) for w, rate_next_at in cursor.fetchall()]
        # The settled lanes after those that were due, as a record's wake-up
        # would have put them, and even past `limit` lanes: a due lane may
        # turn out to have nothing left, and a settled one has.
        due = {w for w, _ in lane_rows}
        lane_rows += [row for row in settled_lanes if row[0] not in due]
        # The webhooks of the lanes, and of what the worker queued ahead,
        # whose status it learns here.
        looked_at = {w for w, _ in lane_rows} | set(queued or ())
        webhooks = {w.id: w for w in _webhooks(sorted(looked_at), now)} if looked_at else {}
        stopped = {w for w in queued or () if webhooks.get(w) is None or not _active(webhooks[w])}
        if not lane_rows:
            result = Claim()
            result.stopped = stopped
            return result
        parked = [w for w, _ in lane_rows if not _active(webhooks[w])]
        if parked:
            cursor.execute(
                f"UPDATE {LANES} SET due_at = NULL "
                f"WHERE webhook_id IN ({', '.join(['%s'] * len(parked))})",
                parked,
            )
        plans = []
        for webhook_id, rate_next_at in lane_rows:
            webhook = webhooks[webhook_id]
            if webhook_id in parked:
                continue
            plan = LanePlan(webhook, rate_next_at, in_flight=webhook.in_flight_now)
            plan.cap_room = max(0, plan.cap - plan.in_flight)
            share = math.ceil(plan.cap / share_of)
            if share_of > 1 and share >= SHARE_AT_LEAST:
                own = share - (holding or {}).get(webhook_id, 0)
                if own < plan.cap_room:
                    plan.cap_room, plan.shared = max(0, own), True
            if webhook.rate_limit:
                plan.rate_room = rate_room(plan, now)
            plans.append(plan)
        ordered = [p for p in plans if p.webhook.ordered]
        _heads(ordered)
        for plan in ordered:
            plan.drained = True  # one at most, decided here
            if plan.head is None or not plan.cap_room or plan.rate_room == 0:
                continue
            *row, due, leased = plan.head
            if due is not None and due <= now and (leased is None or leased < now):
                plan.taken = [tuple(row)]
        free = limit - sum(len(p.taken) for p in plans)
        for round_ in range(DEAL_ROUNDS):
            deal(plans, free)
            if round_ == 0 and ahead_share:
                _want_ahead(plans, ahead_share, holding or {}, queued or {}, failing)
            for plan in plans:
                # Slots dealt in a later round go first to what it took ahead.
                moved = plan.ahead[: plan.share]
                plan.taken += moved
                del plan.ahead[: len(moved)]
                plan.share -= len(moved)
            dealt = [p for p in plans if p.share or p.ahead_wanted]
            if not dealt:
                break
            _take(dealt, now)
            free = limit - sum(len(p.taken) for p in plans)

        claimed_rows: list[tuple[LanePlan, tuple, float, bool]] = []
        leases: list[tuple] = []
        for plan in plans:
            start = max(now, plan.rate_next_at or now)
            for index, row in enumerate(plan.taken):
                not_before = now
                if plan.rate_room is not None:
                    not_before = start + index * plan.spacing()
                    plan.rate_next_at = not_before + plan.spacing()
                until = not_before + timedelta(
                    seconds=plan.webhook.timeout_seconds + lease_margin()
                )
                leases.append((row[0], plan.webhook.pk, adapt(until), False))
                claimed_rows.append((plan, row, not_before.timestamp(), False))
            until = now + timedelta(seconds=plan.webhook.timeout_seconds + lease_margin())
            for row in plan.ahead:
                leases.append((row[0], plan.webhook.pk, adapt(until), True))
                claimed_rows.append((plan, row, now.timestamp(), True))
        drained = [p.webhook.pk for p in plans if not p.webhook.ordered and p.drained]
        next_retries = _next_retries(drained, now)
        if leases:
            # Over a lease that ran out, if the delivery had one: its worker died.
            cursor.execute(
                f"INSERT INTO {LEASES} (delivery_id, webhook_id, until, settled) "
                f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(leases))} "
                "ON CONFLICT (delivery_id) DO UPDATE "
                "SET until = excluded.until, settled = excluded.settled",
                [value for lease in sorted(leases) for value in lease],
            )
        next_due = {
            plan.webhook.pk: _next_due(plan, now, next_retries.get(plan.webhook.pk))
            for plan in plans
        }
        cursor.executemany(
            f"UPDATE {LANES} SET due_at = %s, rate_next_at = %s WHERE webhook_id = %s",
            [
                (adapt(next_due[plan.webhook.pk]), adapt(plan.rate_next_at), plan.webhook.pk)
                for plan in sorted(plans, key=lambda p: p.webhook.pk)
            ],
        )

    result = Claim()
    result.stopped = stopped
    # Not a lane cut to this worker's share: the others claiming take the rest.
    result.more_due = any(
        not plan.shared and (due := next_due[plan.webhook.pk]) is not None and due <= now
        for plan in plans
    )
    if not claimed_rows:
        return result
    event_ids = sorted({row[1] for _, row, _, _ in claimed_rows})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, public_id, type, created_at, data_json FROM {EVENTS} "
            f"WHERE id IN ({', '.join(['%s'] * len(event_ids))})",
            event_ids,
        )
        events = {row[0]: row for row in cursor.fetchall()}
    targets = {
        plan.webhook.pk: _target(plan.webhook, now) for plan in plans if plan.taken or plan.ahead
    }
    claimed_at = now.timestamp()
    for plan, row, not_before, ahead in claimed_rows:
        delivery_id, event_id, attempts, trigger, public_id = row
        _, event_public_id, event_type, created_at, data_json = events[event_id]
        (result.ahead if ahead else result).append(
            Claimed(
                delivery_id=delivery_id,
                attempt_number=attempts + 1,
                trigger=trigger,
                event_public_id=event_public_id,
                event_type=event_type,
                event_created_at=_as_datetime(created_at),
                data_json=data_json,
                target=targets[plan.webhook.pk],
                delivery_public_id=public_id,
                not_before=not_before,
                claimed_at=claimed_at,
            )
        )
    return result


def _active(webhook: Webhook) -> bool:
    return webhook.status == Webhook.Status.ACTIVE


def _want_ahead(
    plans: list[LanePlan],
    ahead_share: float,
    holding: Mapping[int, int],
    queued: Mapping[int, int],
    failing: Collection[int],
) -> None:
    """How many each lane takes ahead (see claim()), in the same statement
    as its share of the free slots: only a lane that keeps to its cap alone
    (not ordered, no rate limit) and that the worker will have requests in
    flight on."""
    for plan in plans:
        if (
            plan.webhook.ordered
            or plan.rate_room is not None
            or plan.drained
            or plan.webhook.pk in failing
        ):
            continue
        own = holding.get(plan.webhook.pk, 0) + len(plan.taken) + plan.share
        wanted = math.ceil(own * ahead_share) - queued.get(plan.webhook.pk, 0)
        plan.ahead_wanted = max(0, wanted)


def _mark(cursor, settled: Sequence[Claimed], started: Sequence[Claimed], now: datetime) -> None:
    """One statement: the leases of requests that ended, settled; and those
    of deliveries taken ahead whose requests started, in flight, for as long
    as a request claimed now (see claim())."""
    ended = [c.delivery_id for c in settled]
    going = [c.delivery_id for c in started]
    timeout = max((c.target.timeout for c in started), default=0)
    until = now + timedelta(seconds=math.ceil(timeout) + lease_margin())
    is_going = f"delivery_id IN ({', '.join(['%s'] * len(going))})" if going else "FALSE"
    is_ended = f"delivery_id IN ({', '.join(['%s'] * len(ended))})" if ended else "FALSE"
    cursor.execute(
        f"UPDATE {LEASES} SET settled = NOT ({is_going}), "
        f"until = CASE WHEN {is_going} THEN %s ELSE until END "
        f"WHERE {is_going} OR ({is_ended} AND NOT settled)",
        [
            *going,
            *going,
            connection.ops.adapt_datetimefield_value(until),
            *going,
            *ended,
        ],
    )


def mark_started(started: Sequence[Claimed], now: datetime | None = None) -> None:
    """What claim(started=...) does, for a worker about to record: the
    record gives back the leases of the requests these took the places of."""
    if started:
        with connection.cursor() as cursor:
            _mark(cursor, (), started, now or timezone.now())


# FOR UPDATE SKIP LOCKED where there is such a thing; SQLite has one writer
# at a time, and its transactions (IMMEDIATE) take the lock up front.
_SKIP_LOCKED = defaultdict(str, postgresql=" FOR UPDATE SKIP LOCKED")
_FOR_UPDATE = defaultdict(str, postgresql=" FOR UPDATE")


def _lock_lanes(cursor, webhook_ids: Collection[int]) -> list[tuple[int, datetime | None]]:
    """Lock these webhooks' lanes, waiting for them, in webhook order as
    every statement that waits for lanes takes them (so two waiters never
    hold what the other waits for); each with its `rate_next_at`."""
    ids = sorted(webhook_ids)
    cursor.execute(
        f"SELECT webhook_id, rate_next_at FROM {LANES} "
        f"WHERE webhook_id IN ({', '.join(['%s'] * len(ids))}) "
        f"ORDER BY webhook_id{_FOR_UPDATE[connection.vendor]}",
        ids,
    )
    return [(webhook_id, _as_datetime(at)) for webhook_id, at in cursor.fetchall()]


_WEBHOOK_COLUMNS = ", ".join(f"w.{f.column}" for f in Webhook._meta.concrete_fields)


_WEBHOOKS_FROM = (
    f"{Webhook._meta.db_table} w JOIN {Organization._meta.db_table} o ON o.id = w.organization_id"
)


# A webhook's requests in flight at the claim's time, as in_flight() counts them.
_IN_FLIGHT_COLUMN = (
    f"(SELECT COUNT(*) FROM {LEASES} l WHERE l.webhook_id = w.id "
    "AND l.until > %s AND NOT l.settled) AS in_flight_now"
)


def _webhooks(ids: list[int], now: datetime) -> list[Webhook]:
    """These webhooks, each with its organization's public id
    (`organization_public_id`) and its requests in flight `now`
    (`in_flight_now`): one fixed statement. On PostgreSQL the ids lead the
    join, so that each is one primary-key probe whatever the planner knows
    of the table (with no statistics yet, as after webhooks were imported,
    `id IN (…)` scanned all 10,000 of scenario i's)."""
    columns = f"{_WEBHOOK_COLUMNS}, o.public_id AS organization_public_id, {_IN_FLIGHT_COLUMN}"
    at = connection.ops.adapt_datetimefield_value(now)
    if connection.vendor == "postgresql":
        sql = f"SELECT {columns} FROM unnest(%s::bigint[]) AS v(id) JOIN {_WEBHOOKS_FROM} "
        sql += "ON w.id = v.id"
        return list(Webhook.objects.raw(sql, [at, ids]))
    sql = f"SELECT {columns} FROM {_WEBHOOKS_FROM} WHERE w.id IN ({', '.join(['%s'] * len(ids))})"
    return list(Webhook.objects.raw(sql, [at, *ids]))


def _target(webhook: Webhook, now: datetime) -> Target:
    return Target(
        id=webhook.id,
        public_id=webhook.public_id,
        organization_public_id=webhook.organization_public_id,
        url=webhook.url,
        secrets=webhook.signing_secrets(now),
        signature_style=webhook.signature_style,
        signature_header=webhook.signature_header,
        headers=dict(webhook.headers or {}),
        timeout=float(webhook.timeout_seconds),
        verify_tls=webhook.verify_tls,
        max_attempts=webhook.max_attempts,
        organization_id=webhook.organization_id,
        name=webhook.name,
        ordered=webhook.ordered,
        start_spacing=start_spacing(webhook.rate_limit),
    )


def release_expired_claims(now: datetime | None = None) -> int:
    """Forget claims whose worker died (the lease ran out): see _release.
    Returns how many it released or ended."""
    now = now or timezone.now()
    return _release(Lease.objects.filter(until__lt=now), now)


def release(ahead: Sequence[Claimed], now: datetime | None = None) -> int:
    """Give back deliveries taken ahead that will not be sent in place of
    another (see claim()): their webhook failed a request, or was paused or
    disabled, or the run ends. See _release. Returns how many it released
    or ended."""
    if not ahead:
        return 0
    ids = [item.delivery_id for item in ahead]
    with transaction.atomic(), connection.cursor() as cursor:
        # Their lanes first: a disable under way passed these deliveries
        # over, their leases being live (actions.disable_webhook); waited
        # for, it is seen, and they end with the webhook's others.
        _lock_lanes(cursor, {item.target.id for item in ahead})
        # Only leases not marked started (a request that went after all keeps its own).
        leases = Lease.objects.filter(delivery_id__in=ids, settled=True)
        return _release(leases, now or timezone.now())


def _release(leases: QuerySet[Lease], now: datetime) -> int:
    """Forget these claims: those deliveries are due again, and their lanes
    are woken. Those of a webhook disabled meanwhile end failed, as its
    other deliveries did when it was disabled (signals.webhook_disabled
    counts them)."""
    with transaction.atomic():
        expired = Delivery.objects.filter(
            status=Delivery.Status.PENDING, id__in=leases.values("delivery_id")
        )
        stranded = expired.filter(webhook__status=Webhook.Status.DISABLED)
        ended_by_webhook = Counter(stranded.values_list("webhook_id", flat=True))
        ended = stranded.update(
            status=Delivery.Status.FAILED, next_attempt_at=None, completed_at=now
        )
        for webhook in Webhook.objects.filter(pk__in=ended_by_webhook).order_by("pk"):
            signals.webhook_disabled.send(
                sender=Webhook,
                webhook=webhook,
                reason=webhook.disabled_reason,
                now=now,
                ended=ended_by_webhook[webhook.pk],
                newly=False,
            )
        webhook_ids = set(expired.values_list("webhook_id", flat=True))
        released = expired.count()
        leases.delete()
        lanes.wake(webhook_ids, now)
    return released + ended

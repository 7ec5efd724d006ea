"""Scenario f's data: a long delivery history for one organization, generated
inside the database (INSERT … SELECT over generate_series on PostgreSQL, over
a recursive CTE on SQLite), and the pages it is read by.

Shape: events evenly spread over the span; one delivery per event, or two
(30 %), to one of the organization's webhooks (the first one, "busiest", gets
about a third of them); 95 % of deliveries succeed after 1–4 attempts, 5 %
fail after 5, a few recent ones are pending; about 2 attempts per delivery,
each with small request/response headers and bodies; attempt n starts at the
retry schedule's offset after the event (clamped to now). The WebhookStats
per-minute rows are aggregated from those attempts, so they agree with them.

Every column the fill does not set explicitly gets its model default (or an
empty value for a new NOT NULL column without one, reported), so columns that
others add to the models do not break it.

Module name: not "dashboard" (bench/ is first on sys.path; that is the app).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness import log

EVENT_TYPES = ("person.created", "person.updated", "order.paid", "order.refunded", "invoice.sent")
WEBHOOK_NAMES = (
    "billing-sync",
    "crm-contacts",
    "analytics-ingest",
    "audit-log",
    "email-campaigns",
    "erp-orders",
    "fraud-check",
    "search-index",
    "slack-notify",
    "warehouse",
)
OWNER_USERNAME = "dashboard-bench-owner"
ORGANIZATION_NAME = "Dashboard bench"
BUSIEST_PERCENT = 30  # first deliveries that go to webhook 0
TWO_DELIVERY_PERCENT = 30  # events with two deliveries
FAILED_PERCENT = 5  # deliveries that give up after MAX_ATTEMPTS
PENDING_PERCENT = 15  # of deliveries of events younger than PENDING_WINDOW_S
PENDING_WINDOW_S = 900
MAX_ATTEMPTS = 5
# Seconds from the event to attempt 1..5 (HERALD_RETRY_SCHEDULE 0,5,30,300,3600 summed).
ATTEMPT_OFFSETS_S = (0, 5, 35, 335, 3935)
# Succeeded deliveries: 45 % in 1 attempt, 30 % in 2, 20 % in 3, 5 % in 4 (mean 1.85).
ATTEMPTS_CUMULATIVE_PERCENT = ((45, 1), (75, 2), (95, 3))
MEAN_ATTEMPTS = FAILED_PERCENT / 100 * MAX_ATTEMPTS + (1 - FAILED_PERCENT / 100) * 1.85
MEAN_DELIVERIES = 1 + TWO_DELIVERY_PERCENT / 100


# --- SQL for the two engines ------------------------------------------------------
# Every statement runs with a parameter list (maybe empty), so a literal % is
# written %% for both drivers.


class Dialect:
    def __init__(self, vendor: str) -> None:
        if vendor not in ("postgresql", "sqlite"):
            raise RuntimeError(f"scenario f supports PostgreSQL and SQLite, not {vendor}")
        self.pg = vendor == "postgresql"

    def series(self, n: int) -> str:
        """A FROM item `g` with column i = 1..n."""
        if self.pg:
            return f"generate_series(1, {int(n)}) AS g(i)"
        return (
            "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s "
            f"WHERE i < {int(n)}) SELECT i FROM s) AS g"
        )

    def timestamp(self, epoch: str) -> str:
        """A datetime column value from Unix seconds (UTC)."""
        if self.pg:
            return f"to_timestamp({epoch})"
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {epoch}, 'unixepoch')"

    def epoch(self, column: str) -> str:
        if self.pg:
            return f"extract(epoch FROM {column})::float8"
        return f"((julianday({column}) - 2440587.5) * 86400.0)"

    def hour(self, column: str) -> str:
        if self.pg:
            return f"date_trunc('hour', {column})"
        return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"

    def minute(self, column: str) -> str:
        if self.pg:
            return f"date_trunc('minute', {column})"
        return f"strftime('%%Y-%%m-%%d %%H:%%M:00', {column})"

    def iso_millis(self, epoch: str) -> str:
        if self.pg:
            return (
                f"to_char(to_timestamp({epoch}) AT TIME ZONE 'UTC', "
                '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\')'
            )
        return f"strftime('%%Y-%%m-%%dT%%H:%%M:%%fZ', {epoch}, 'unixepoch')"

    def json(self, text: str) -> str:
        return f"({text})::jsonb" if self.pg else text

    def hex(self, value: str, width: int) -> str:
        if self.pg:
            return f"lpad(to_hex({value}), {width}, '0')"
        return f"printf('%%0{width}x', {value})"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})" if self.pg else f"min({a}, {b})"


def rnd(value: str, salt: int) -> str:
    """A well-mixed pseudo-random integer 0..65535 from an integer expression
    (multiplicative hashing, high bits; no 64-bit overflow for ids < 2**31 / 97)."""
    return f"((((({value}) * 97 + {salt}) %% 2147483648) * 2654435761 %% 4294967296) / 65536)"


def case(selector: str, values: list[tuple[int, str]], default: str) -> str:
    whens = " ".join(f"WHEN {key} THEN {value}" for key, value in values)
    return f"(CASE {selector} {whens} ELSE {default} END)"


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- A generic INSERT … SELECT that fills every column ------------------------------


def _empty_value(field):
    from django.utils import timezone

    kind = field.get_internal_type()
    if kind in ("CharField", "TextField", "SlugField", "EmailField", "URLField"):
        return ""
    if kind.endswith("IntegerField") or kind in ("FloatField", "DecimalField"):
        return 0
    if kind == "BooleanField":
        return False
    if kind == "DateTimeField":
        return timezone.now()
    if kind == "DateField":
        return timezone.now().date()
    if kind == "JSONField":
        return {}
    return None


def insert_select(
    cursor,
    model,
    values: dict[str, str],
    source: str,
    notes: set[str],
    group_by: str = "",
    order_by: str = "",
) -> int:
    """INSERT INTO model's table (…) SELECT … FROM source. `values` maps column
    names to SQL expressions over `source`; every other concrete column gets
    its default: the database's (db_default), the model's (default, auto_now),
    NULL when nullable, else an empty value of its type (noted)."""
    from django.db import connection
    from django.db.models import NOT_PROVIDED
    from django.utils import timezone

    meta = model._meta
    columns, expressions, params = [], [], []
    seen = set()
    for field in meta.concrete_fields:
        seen.add(field.column)
        if field.column in values:
            columns.append(field.column)
            expressions.append(values[field.column])
            continue
        if field.primary_key:
            continue  # the auto-increment id
        if getattr(field, "db_default", NOT_PROVIDED) is not NOT_PROVIDED:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = timezone.now()
        elif field.has_default():
            value = field.get_default()
        elif field.null:
            continue
        else:
            value = _empty_value(field)
            if value is None or field.is_relation:
                raise RuntimeError(
                    f"scenario f: {meta.label}.{field.name} is NOT NULL without a default; "
                    "give it a value in bench/dashboard_history.py"
                )
            notes.add(f"{meta.label}.{field.name}={value!r} (NOT NULL, no default)")
        if field.unique:
            raise RuntimeError(
                f"scenario f: {meta.label}.{field.name} is unique; "
                "give it a value in bench/dashboard_history.py"
            )
        columns.append(field.column)
        expressions.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    missing = set(values) - seen
    if missing:
        raise RuntimeError(f"scenario f: {meta.label} has no column(s) {sorted(missing)}")
    sql = (
        f"INSERT INTO {meta.db_table} ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM {source}"
    )
    if group_by:
        sql += f" GROUP BY {group_by}"
    if order_by:
        sql += f" ORDER BY {order_by}"
    cursor.execute(sql, params)
    return cursor.rowcount


# --- The organization and its history ------------------------------------------------


@dataclass
class Fill:
    attempts: int
    deliveries: int
    events: int
    stats_rows: int
    seconds: float
    steps: dict[str, float]


def create_organization():
    """The organization "Dashboard bench", its owner and its webhooks (busiest first)."""
    from django.contrib.auth import get_user_model

    from webhooks.models import EventType, Webhook
    from webhooks.organizations import create_organization as create

    organization = create(ORGANIZATION_NAME, owner_username=OWNER_USERNAME)
    webhooks = [
        Webhook.objects.create(
            organization=organization,
            name=name,
            url=f"https://hooks.example.com/{name}",
            event_patterns=["*"],
        )
        for name in WEBHOOK_NAMES
    ]
    EventType.objects.bulk_create(
        [EventType(organization=organization, name=name) for name in EVENT_TYPES]
    )
    owner = get_user_model().objects.get(username=OWNER_USERNAME)
    return organization, webhooks, owner


def clear_history(organization, webhooks) -> None:
    from django.db import connection, transaction

    from deliveries.models import Delivery, DeliveryAttempt, Event
    from monitoring.models import WebhookHourlyStats, WebhookStats

    attempt, delivery = DeliveryAttempt._meta.db_table, Delivery._meta.db_table
    ids = ", ".join(str(w.pk) for w in webhooks)
    with transaction.atomic(), connection.cursor() as cursor:
        org = int(organization.pk)
        cursor.execute(
            f"DELETE FROM {attempt} WHERE delivery_id IN "
            f"(SELECT id FROM {delivery} WHERE organization_id = {org})",
            [],
        )
        cursor.execute(f"DELETE FROM {delivery} WHERE organization_id = {org}", [])
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE organization_id = {org}", [])
        cursor.execute(f"DELETE FROM {WebhookStats._meta.db_table} WHERE webhook_id IN ({ids})", [])
        cursor.execute(
            f"DELETE FROM {WebhookHourlyStats._meta.db_table} WHERE webhook_id IN ({ids})", []
        )


def fill_history(
    organization, webhooks, target_attempts: int, span_s: float, notes: set[str]
) -> Fill:
    """Replace the organization's history with about `target_attempts` attempts
    spread over the last `span_s` seconds."""
    from django.db import DatabaseError, connection, transaction
    from django.db.models import Max

    from deliveries.models import Delivery, DeliveryAttempt, Event
    from monitoring import stats as metrics
    from monitoring.models import LATENCY_BUCKETS_MS, WebhookHourlyStats, WebhookStats
    from webhooks.models import Webhook

    sql = Dialect(connection.vendor)
    started = time.perf_counter()
    steps: dict[str, float] = {}

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        steps[name] = now - since
        return now

    clear_history(organization, webhooks)
    mark = step("clear", started)

    org = int(organization.pk)
    n_events = max(1, round(target_attempts / (MEAN_DELIVERIES * MEAN_ATTEMPTS)))
    now_s = time.time()
    start_s = now_s - span_s
    # Events up to 15 s ago; later attempts that would start after now - 11 s
    # start then, so that no attempt (nor its 10 s timeout) ends in the future.
    spacing = (span_s - 15.0) / n_events
    latest_s = now_s - 11.0
    n_hooks = len(webhooks)
    event_t, delivery_t = Event._meta.db_table, Delivery._meta.db_table
    attempt_t, webhook_t = DeliveryAttempt._meta.db_table, Webhook._meta.db_table
    nums = " UNION ALL ".join(f"SELECT {n} AS n" for n in range(1, MAX_ATTEMPTS + 1))
    slots = " UNION ALL ".join(
        f"SELECT {slot} AS slot, {int(w.pk)} AS id" for slot, w in enumerate(webhooks)
    )

    def offset(n: str) -> str:
        return case(n, list(enumerate(ATTEMPT_OFFSETS_S, start=1)), str(ATTEMPT_OFFSETS_S[-1]))

    def outcome(n: str) -> dict[str, str]:
        """One attempt's result from columns status, attempts, ha (its hash), ev."""
        ok = f"(status = 'succeeded' AND {n} = attempts)"
        kind = "(ha %% 10)"  # failures: <6 an HTTP 5xx, <9 a timeout, else refused
        return {
            "response_status": (
                f"(CASE WHEN {ok} THEN (CASE WHEN ha %% 20 = 0 THEN 204 ELSE 200 END) "
                f"WHEN {kind} < 6 THEN {case('ha %% 3', [(0, '500'), (1, '502')], '503')} "
                "ELSE NULL END)"
            ),
            "duration_ms": (
                # Mostly 5-200 ms, a slow tail of 1.2 s and 3 s (every latency bucket but > 5 s).
                f"(CASE WHEN {ok} THEN 5 + ha %% 195 + (CASE WHEN ha %% 50 = 0 THEN 1200 "
                "WHEN ha %% 97 = 0 THEN 3000 ELSE 0 END) "
                f"WHEN {kind} < 6 THEN 30 + ha %% 400 WHEN {kind} < 9 THEN 10000 "
                "ELSE 2 + ha %% 40 END)"
            ),
            "error_kind": (
                f"(CASE WHEN {ok} THEN '' WHEN {kind} < 6 THEN 'http_status' "
                f"WHEN {kind} < 9 THEN 'timeout' ELSE 'connection' END)"
            ),
            "started_s": sql.least(f"ev + {offset(n)} + 0.02 + (ha %% 50) / 1000.0", str(latest_s)),
        }

    with transaction.atomic(), connection.cursor() as cursor:
        if sql.pg:
            cursor.execute("SET LOCAL synchronous_commit TO OFF", [])

        # Events, oldest first (id order is time order, as in production).
        i = "g.i"
        data_json = (
            '\'{"person":{"id":"per_\' || '
            + sql.hex(i, 10)
            + ' || \'","name":"Ada Lovelace","email":"ada.lovelace@example.com",'
            '"company":"Analytical Engines Ltd","plan":"enterprise","seats":\' || '
            + f"({rnd(i, 2)} %% 100)"
            + ' || \',"tags":["vip","beta","emea"]},"source":"bench"}\''
        )
        events = insert_select(
            cursor,
            Event,
            {
                "public_id": "'evt_' || "
                + " || ".join([sql.hex(i, 10)] + [sql.hex(rnd(i, 30 + k), 4) for k in range(4)]),
                "organization_id": str(org),
                "type": case(
                    f"{rnd(i, 1)} %% {len(EVENT_TYPES)}",
                    [(k, quote(t)) for k, t in enumerate(EVENT_TYPES)],
                    quote(EVENT_TYPES[0]),
                ),
                "data_json": data_json,
                "created_at": sql.timestamp(
                    f"{start_s!r} + ({i} - 1 + {rnd(i, 3)} / 65536.0) * {spacing!r}"
                ),
                "idempotency_key": "NULL",
                "delivery_count": f"(CASE WHEN {rnd(i, 4)} %% 100 < {TWO_DELIVERY_PERCENT} THEN 2 ELSE 1 END)",
            },
            sql.series(n_events),
            notes,
        )
        mark = step("events", mark)

        # Deliveries: slot 0 is the busiest webhook; a second delivery goes elsewhere.
        first_slot = (
            f"(CASE WHEN {rnd('e.id', 5)} %% 100 < {BUSIEST_PERCENT} THEN 0 "
            f"ELSE 1 + {rnd('e.id', 7)} %% {n_hooks - 1} END)"
        )
        slot = (
            f"(CASE WHEN kk.n = 1 THEN {first_slot} "
            f"ELSE ({first_slot} + 1 + {rnd('e.id', 6)} %% {n_hooks - 1}) %% {n_hooks} END)"
        )
        level0 = (
            f"SELECT e.id AS event_id, e.type AS event_type, e.created_at AS created_at, "
            f"{sql.epoch('e.created_at')} AS ev, w.id AS webhook_id, "
            f"e.id * 131 + w.id AS base "
            f"FROM {event_t} e JOIN ({nums}) kk ON kk.n <= e.delivery_count "
            f"JOIN ({slots}) w ON w.slot = {slot} WHERE e.organization_id = {org}"
        )
        level1 = (
            f"SELECT l0.*, (CASE WHEN {rnd('base', 11)} %% 100 < {FAILED_PERCENT} THEN 'failed' "
            f"WHEN {rnd('base', 11)} %% 100 < {FAILED_PERCENT + PENDING_PERCENT} "
            f"AND ev > {now_s - PENDING_WINDOW_S!r} THEN 'pending' ELSE 'succeeded' END) AS status, "
            f"{rnd('base', 12)} %% 100 AS a FROM ({level0}) l0"
        )
        by_share = " ".join(f"WHEN a < {p} THEN {n}" for p, n in ATTEMPTS_CUMULATIVE_PERCENT)
        level2 = (
            f"SELECT l1.*, (CASE WHEN status = 'failed' THEN {MAX_ATTEMPTS} "
            f"WHEN status = 'pending' THEN 1 + a %% 2 {by_share} ELSE 4 END) AS attempts "
            f"FROM ({level1}) l1"
        )
        level3 = f"SELECT l2.*, {rnd('base * 8 + attempts', 21)} AS ha FROM ({level2}) l2"
        last = outcome("attempts")
        level4 = (
            f"SELECT l3.*, {last['response_status']} AS last_status, "
            f"{last['duration_ms']} AS last_ms, {last['error_kind']} AS last_kind, "
            f"{last['started_s']} AS last_s FROM ({level3}) l3"
        )
        deliveries = insert_select(
            cursor,
            Delivery,
            {
                "public_id": "'dlv_' || "
                + " || ".join(
                    [sql.hex("event_id", 10), sql.hex("webhook_id", 4)]
                    + [sql.hex(rnd("base", 40 + k), 4) for k in range(3)]
                ),
                "organization_id": str(org),
                "event_id": "event_id",
                "webhook_id": "webhook_id",
                "event_type": "event_type",
                "status": "status",
                "attempts": "attempts",
                "next_attempt_at": (
                    f"(CASE WHEN status = 'pending' THEN "
                    f"{sql.timestamp('last_s + 30 + ha %% 300')} ELSE NULL END)"
                ),
                "next_trigger": "'auto'",
                "last_status_code": "last_status",
                "last_latency_ms": "last_ms",
                "last_error_kind": "last_kind",
                "created_at": "created_at",
                "completed_at": (
                    f"(CASE WHEN status = 'pending' THEN NULL "
                    f"ELSE {sql.timestamp('last_s + last_ms / 1000.0')} END)"
                ),
            },
            f"({level4}) d",
            notes,
        )
        mark = step("deliveries", mark)

        # Attempts, with the request and response Herald would have stored.
        a0 = (
            f"SELECT d.id AS delivery_id, d.status AS status, d.attempts AS attempts, "
            f"d.event_type AS event_type, nn.n AS n, e.public_id AS event_public_id, "
            f"e.data_json AS data_json, {sql.epoch('e.created_at')} AS ev, "
            f"w.public_id AS webhook_public_id, d.event_id * 131 + d.webhook_id AS base "
            f"FROM {delivery_t} d JOIN ({nums}) nn ON nn.n <= d.attempts "
            f"JOIN {event_t} e ON e.id = d.event_id JOIN {webhook_t} w ON w.id = d.webhook_id "
            f"WHERE d.organization_id = {org}"
        )
        a1 = f"SELECT a0.*, {rnd('base * 8 + n', 21)} AS ha FROM ({a0}) a0"
        result = outcome("n")
        a2 = (
            f"SELECT a1.*, {result['response_status']} AS response_status, "
            f"{result['duration_ms']} AS duration_ms, {result['error_kind']} AS error_kind, "
            f"{result['started_s']} AS started_s FROM ({a1}) a1"
        )
        signature = " || ".join(sql.hex(rnd("base * 8 + n", 50 + k), 4) for k in range(4))
        request_headers = sql.json(
            '\'{"Content-Type":"application/json","User-Agent":"Herald/0.1.0",'
            '"webhook-id":"\' || event_public_id || \'","webhook-timestamp":"\' || '
            'CAST(ev AS BIGINT) || \'","webhook-signature":"v1,\' || '
            + signature
            + " || 'K3nq0Yd5x1Jm8Pz2Wc7Lr4Tb9Q=\"}'"
        )
        request_body = (
            '\'{"id":"\' || event_public_id || \'","type":"\' || event_type || '
            '\'","timestamp":"\' || '
            + sql.iso_millis("ev")
            + f' || \'","organizationId":"{organization.public_id}","webhookId":"\' || '
            "webhook_public_id || '\",\"data\":' || data_json || '}'"
        )
        response_headers = sql.json(
            "(CASE WHEN response_status IS NULL THEN '{}' ELSE "
            '\'{"Content-Type":"application/json","Server":"nginx"}\' END)'
        )
        attempts = insert_select(
            cursor,
            DeliveryAttempt,
            {
                "delivery_id": "delivery_id",
                "number": "n",
                "trigger": "'auto'",
                "started_at": sql.timestamp("started_s"),
                "duration_ms": "duration_ms",
                "request_headers": request_headers,
                "request_body": request_body,
                "response_status": "response_status",
                "response_headers": response_headers,
                "response_body": (
                    "(CASE WHEN response_status IS NULL THEN '' "
                    "WHEN response_status < 300 THEN '{\"ok\":true}' "
                    'ELSE \'{"error":"upstream unavailable"}\' END)'
                ),
                "error_kind": "error_kind",
                "error_message": (
                    "(CASE WHEN error_kind = 'http_status' THEN 'HTTP ' || response_status "
                    "WHEN error_kind = 'timeout' THEN 'no response within 10 s' "
                    "WHEN error_kind = 'connection' THEN 'connection refused' ELSE '' END)"
                ),
            },
            f"({a2}) a",
            notes,
        )
        mark = step("attempts", mark)

        # WebhookStats: one row per webhook-minute with attempts, as StatsBatch adds them.
        responded = "a.response_status IS NOT NULL"
        counters = {
            "attempts": "COUNT(*)",
            "succeeded_attempts": "SUM(CASE WHEN a.response_status BETWEEN 200 AND 299 THEN 1 ELSE 0 END)",
            "succeeded_deliveries": "SUM(CASE WHEN a.number = d.attempts AND d.status = 'succeeded' THEN 1 ELSE 0 END)",
            "failed_deliveries": "SUM(CASE WHEN a.number = d.attempts AND d.status = 'failed' THEN 1 ELSE 0 END)",
            "responses": f"SUM(CASE WHEN {responded} THEN 1 ELSE 0 END)",
            "latency_total_ms": f"SUM(CASE WHEN {responded} THEN a.duration_ms ELSE 0 END)",
        }
        lower = None
        for index in range(metrics.N_LATENCY_BUCKETS):
            upper = LATENCY_BUCKETS_MS[index] if index < len(LATENCY_BUCKETS_MS) else None
            within = " AND ".join(
                c
                for c in (
                    responded,
                    f"a.duration_ms > {lower}" if lower is not None else "",
                    f"a.duration_ms <= {upper}" if upper is not None else "",
                )
                if c
            )
            counters[f"lat_{index}"] = f"SUM(CASE WHEN {within} THEN 1 ELSE 0 END)"
            lower = upper
        unknown = set(metrics.COUNTER_COLUMNS) - set(counters)
        # The fastest and slowest response, which bound each row's p95.
        counters["latency_min_ms"] = f"MIN(CASE WHEN {responded} THEN a.duration_ms END)"
        counters["latency_max_ms"] = f"MAX(CASE WHEN {responded} THEN a.duration_ms END)"
        if unknown:
            notes.add(f"WebhookStats counters left at their default: {sorted(unknown)}")
        minute = sql.minute("a.started_at")
        stats_rows = insert_select(
            cursor,
            WebhookStats,
            {"webhook_id": "d.webhook_id", "minute": minute, **counters},
            f"{attempt_t} a JOIN {delivery_t} d ON d.id = a.delivery_id "
            f"WHERE d.organization_id = {org}",
            notes,
            group_by=f"d.webhook_id, {minute}",
            # Physical order as in production, where each minute's rows are written in it.
            order_by=f"{minute}, d.webhook_id",
        )
        # WebhookHourlyStats: the same minutes summed per hour, as StatsBatch writes them.
        hour = sql.hour("s.minute")
        stats_rows += insert_select(
            cursor,
            WebhookHourlyStats,
            {
                "webhook_id": "s.webhook_id",
                "hour": hour,
                **{c: f"SUM(s.{c})" for c in metrics.COUNTER_COLUMNS},
                "latency_min_ms": "MIN(s.latency_min_ms)",
                "latency_max_ms": "MAX(s.latency_max_ms)",
            },
            f"{WebhookStats._meta.db_table} s WHERE s.webhook_id IN ({', '.join(str(w.pk) for w in webhooks)})",
            notes,
            group_by=f"s.webhook_id, {hour}",
            order_by=f"{hour}, s.webhook_id",
        )
        mark = step("stats", mark)

    # The webhooks' own summary columns, from the stats just written.
    last_minutes = dict(
        WebhookStats.objects.filter(webhook__in=webhooks)
        .values_list("webhook_id")
        .annotate(last=Max("minute"))
    )
    for webhook in webhooks:
        webhook.last_delivery_at = last_minutes.get(webhook.pk)
        webhook.consecutive_failures = 0
        webhook.save(update_fields=["last_delivery_at", "consecutive_failures", "updated_at"])

    if sql.pg:
        with connection.cursor() as cursor:
            tables = (
                event_t,
                delivery_t,
                attempt_t,
                WebhookStats._meta.db_table,
                WebhookHourlyStats._meta.db_table,
                webhook_t,
            )
            # What autovacuum would have done after such an insert (the
            # visibility map that index-only scans read, fresh statistics),
            # then the fill's dirty pages written out: the pages are timed
            # in a steady state, not while the server flushes the fill.
            cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}", [])
            try:
                cursor.execute("CHECKPOINT", [])
            except DatabaseError:  # a role without pg_checkpoint: timed as it is
                log("f: CHECKPOINT refused (the role lacks pg_checkpoint); pages timed without it")
        mark = step("vacuum, analyze, checkpoint", mark)
    else:
        with connection.cursor() as cursor:  # the fill's WAL into the database file
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)", [])
        mark = step("checkpoint", mark)

    seconds = time.perf_counter() - started
    log(
        f"f: {attempts:,} attempts, {deliveries:,} deliveries, {events:,} events, "
        f"{stats_rows:,} stats rows in {seconds:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in steps.items())})"
    )
    return Fill(attempts, deliveries, events, stats_rows, seconds, steps)


# --- Timing pages -----------------------------------------------------------------------


@dataclass
class PageTiming:
    median_ms: float
    p90_ms: float
    queries: int
    bytes: int


class Side:
    """One of two histories timed against each other: its database (Django's
    `default` connection while its pages load), a signed-in client, and the
    URL of each page in it (public ids differ between the databases)."""

    def __init__(self, database, client, urls: dict[str, str]) -> None:
        self.database = database
        self.client = client
        self.urls = urls

    def activate(self) -> None:
        from django.db import connections

        connections["default"] = self.database

    def get(self, key: str):
        self.activate()
        return self.client.get(self.urls[key])


def database_like_default(database_url: str):
    """A connection like Django's default one (engine, options, settings) to
    another database: another of the same server, or another SQLite file."""
    import copy

    import dj_database_url
    from django.db import connections

    default = connections["default"]
    settings_dict = copy.deepcopy(default.settings_dict)
    settings_dict["NAME"] = dj_database_url.parse(database_url)["NAME"]
    return type(default)(settings_dict, alias="default")


def time_pages_alternately(
    sides: list[Side], key: str, percentile, warmup: int = 3, runs: int = 25
) -> list[PageTiming]:
    """Each side's page `key`, loaded in turns, one side then the other, so
    that whatever else the machine does in those seconds weighs on both
    alike: minutes apart, the same page's time varied by a half."""
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        for side in sides:
            response = side.get(key)
            if response.status_code != 200:
                raise RuntimeError(f"GET {side.urls[key]} answered {response.status_code}")
    counted = []
    for side in sides:
        side.activate()
        with CaptureQueriesContext(side.database) as captured:
            response = side.client.get(side.urls[key])
        # Now: captured_queries reads connection.queries, which the next request resets.
        counted.append((len(captured.captured_queries), len(response.content)))
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(runs):
        for side, side_times in zip(sides, times, strict=True):
            side.activate()
            url = side.urls[key]
            begin = time.perf_counter()
            side.client.get(url)
            side_times.append((time.perf_counter() - begin) * 1000)
    return [
        PageTiming(
            median_ms=percentile(side_times, 50),
            p90_ms=percentile(side_times, 90),
            queries=queries,
            bytes=size,
        )
        for side_times, (queries, size) in zip(times, counted, strict=True)
    ]


def time_page(client, url: str, percentile, warmup: int = 3, runs: int = 25) -> PageTiming:
    """One page of the database Django's `default` connection points at."""
    from django.db import connections

    side = Side(connections["default"], client, {"page": url})
    return time_pages_alternately([side], "page", percentile, warmup, runs)[0]


def page_queries(client, url: str) -> list[str]:
    """The SQL one GET of `url` runs, in order."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return [q["sql"] for q in captured.captured_queries]

"""Keeping each webhook's lane (models.Lane) honest: whatever makes one of
its deliveries claimable wakes the lane, inside the same transaction.

The claimer raises a lane's `due_at` while it holds the row's lock; a writer
that wakes the lane meanwhile waits for that lock and lowers it again, so a
new delivery is never left behind a lane that was just drained. Wakes take
the rows in webhook order, as every other writer of lanes does, so that two
transactions waking several lanes cannot deadlock. `repair()`, run by the
sweeper, is the backstop: it wakes any lane that has claimable deliveries
while it says otherwise, and creates lanes that are missing.
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.utils import timezone

from deliveries.models import Delivery, Lane, Lease
from webhooks.models import Webhook

LANES = Lane._meta.db_table
DELIVERIES = Delivery._meta.db_table
LEASES = Lease._meta.db_table
WEBHOOKS = Webhook._meta.db_table


def _at(moment: datetime):
    # As the ORM stores it: SQLite compares the stored text.
    return connection.ops.adapt_datetimefield_value(moment)


def claimable_sql(alias: str) -> str:
    """SQL saying that the delivery `alias` is claimable: pending, due, and
    held by no live lease. It takes two parameters, both the moment (as
    _at gives it). claiming._claimable says the same for the ORM."""
    return (
        f"{alias}.status = 'pending' AND {alias}.next_attempt_at <= %s AND NOT EXISTS "
        f"(SELECT 1 FROM {LEASES} WHERE delivery_id = {alias}.id AND until >= %s)"
    )


def wake_statement(webhook_ids: Iterable[int], at: datetime | None = None) -> tuple[str, list]:
    """The statement that wakes these webhooks' lanes ('' when there are none),
    for a caller that sends it along with others (publishing's one statement)."""
    ids = sorted(set(webhook_ids))
    if not ids:
        return "", []
    at = _at(at or timezone.now())
    rows = ", ".join(["(%s, %s)"] * len(ids))
    params = [value for webhook_id in ids for value in (webhook_id, at)]
    return (
        f"INSERT INTO {LANES} (webhook_id, due_at) VALUES {rows} "
        f"ON CONFLICT (webhook_id) DO UPDATE SET due_at = excluded.due_at "
        f"WHERE {LANES}.due_at IS NULL OR {LANES}.due_at > excluded.due_at",
        params,
    )


def wake(webhook_ids: Iterable[int], at: datetime | None = None) -> None:
    """These webhooks may have something claimable from `at` (now) on."""
    sql, params = wake_statement(webhook_ids, at)
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def park(webhook: Webhook | int) -> None:
    """Nothing of this webhook is claimable (it was paused or disabled)."""
    webhook_id = webhook.pk if isinstance(webhook, Webhook) else webhook
    Lane.objects.filter(webhook_id=webhook_id).update(due_at=None)


def repair(now: datetime | None = None) -> int:
    """Wake every lane of an active webhook that has a claimable delivery
    (pending, due, not under a live lease) but is not due itself, creating
    the lanes that are missing. Returns how many it woke. One statement per
    step, an index probe per lane: cheap enough for the sweeper, which runs
    it every HERALD_SWEEP_SECONDS. A lane at its cap or held by its rate
    limit is woken too; the next claim puts it back."""
    now = _at(now or timezone.now())
    claimable = (
        f"SELECT 1 FROM {DELIVERIES} d WHERE d.webhook_id = {{webhook}} AND {claimable_sql('d')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {LANES} (webhook_id, due_at) SELECT w.id, %s FROM {WEBHOOKS} w "
            f"WHERE w.status = 'active' AND NOT EXISTS "
            f"(SELECT 1 FROM {LANES} l WHERE l.webhook_id = w.id) "
            f"AND EXISTS ({claimable.format(webhook='w.id')}) "
            "ON CONFLICT (webhook_id) DO NOTHING",
            [now, now, now],
        )
        created = cursor.rowcount
        cursor.execute(
            f"UPDATE {LANES} SET due_at = %s "
            f"WHERE ({LANES}.due_at IS NULL OR {LANES}.due_at > %s) "
            f"AND EXISTS (SELECT 1 FROM {WEBHOOKS} w "
            f"WHERE w.id = {LANES}.webhook_id AND w.status = 'active') "
            f"AND EXISTS ({claimable.format(webhook=f'{LANES}.webhook_id')})",
            [now, now, now, now],
        )
        return created + cursor.rowcount

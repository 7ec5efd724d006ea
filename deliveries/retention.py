"""Retention of the engine's history: delete attempts and events older than
HERALD_RETENTION_DAYS in small batches (short transactions, no long table
locks). The daily job (monitoring.retention.purge) calls this, then purges
the per-minute counters, which outlive the rows they summarise.

Each batch selects primary keys through an index (attempts by started_at,
events by created_at) and deletes those rows in a
transaction of its own, committed before the next batch: on PostgreSQL only
the rows of one batch are ever locked, and only for as long as that delete
takes, so the dispatcher and the dashboard carry on meanwhile. Call it
outside a transaction (the daily job and `manage.py purge` do); inside one,
nothing would commit until the end.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, Event, Lease

BATCH_SIZE = 2000


@dataclass
class Purged:
    attempts: int = 0
    events: int = 0


def delete_in_batches(queryset, batch_size: int, should_stop=lambda: False) -> int:
    total = 0
    while not should_stop():
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        with transaction.atomic():  # one batch, committed before the next
            queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)
    return total


def purge_history(
    days: int | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    should_stop=lambda: False,
) -> Purged:
    """Delete attempts and events older than the retention period. `should_stop` is asked
    before each batch: a worker told to stop (SIGTERM) leaves the rest for the
    next run rather than keep its shutdown waiting."""
    days = settings.HERALD_RETENTION_DAYS if days is None else days
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    result = Purged()
    result.attempts = delete_in_batches(
        DeliveryAttempt.objects.filter(started_at__lt=cutoff), batch_size, should_stop
    )
    # An old event whose delivery still waits (a paused webhook) stays. An
    # anti-join per event through the (event, webhook) index, not a NOT IN
    # over every pending delivery, which a long backlog would make slow.
    old_events = Event.objects.filter(created_at__lt=cutoff).exclude(
        Exists(Delivery.objects.filter(event_id=OuterRef("pk"), status=Delivery.Status.PENDING))
    )
    result.events = delete_in_batches(old_events, batch_size // 4, should_stop)
    return result


def purge_webhook(sender, webhook, **kwargs) -> None:
    """webhooks.signals.webhook_deleting: the webhook's deliveries with
    their attempts, in batches of their own transactions."""
    deliveries = Delivery.objects.filter(webhook=webhook)
    while ids := list(deliveries.values_list("pk", flat=True)[:BATCH_SIZE]):
        with transaction.atomic():
            # Attempts and leases first: then nothing refers to the deliveries, and their
            # delete needs no look at each row (Django's cascade reads them all).
            DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
            Lease.objects.filter(delivery_id__in=ids).delete()
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {Delivery._meta.db_table} "
                    f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
                    ids,
                )


def purge_organization(sender, organization, **kwargs) -> None:
    """webhooks.signals.organization_deleting: the organization's attempts,
    deliveries and events, in batches of their own transactions."""
    delete_in_batches(
        DeliveryAttempt.objects.filter(delivery__organization=organization), BATCH_SIZE
    )
    delete_in_batches(Delivery.objects.filter(organization=organization), BATCH_SIZE)
    delete_in_batches(Event.objects.filter(organization=organization), BATCH_SIZE // 4)

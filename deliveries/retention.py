"""Retention: delete attempts and events older than HERALD_RETENTION_DAYS in
small batches (short transactions, no long table locks). The per-minute
stats are kept for the longest dashboard window, so charts and success rates
outlive the rows they summarise."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from deliveries.metrics import WINDOWS
from deliveries.models import Delivery, DeliveryAttempt, Event, WebhookStats

BATCH_SIZE = 2000


@dataclass
class Purged:
    attempts: int = 0
    events: int = 0
    stats_rows: int = 0

    def __str__(self) -> str:
        return f"{self.attempts} attempts, {self.events} events, {self.stats_rows} stats rows"


def _delete_in_batches(queryset, batch_size: int) -> int:
    total = 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return total
        queryset.model.objects.filter(pk__in=ids).delete()
        total += len(ids)


def purge(
    days: int | None = None, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> Purged:
    days = settings.HERALD_RETENTION_DAYS if days is None else days
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    result = Purged()
    result.attempts = _delete_in_batches(
        DeliveryAttempt.objects.filter(started_at__lt=cutoff), batch_size
    )
    # An old event whose delivery still waits (a paused webhook) stays.
    old_events = Event.objects.filter(created_at__lt=cutoff).exclude(
        pk__in=Delivery.objects.filter(status=Delivery.Status.PENDING).values("event_id")
    )
    result.events = _delete_in_batches(old_events, batch_size // 4)
    stats_cutoff = now - max(timedelta(days=days), max(WINDOWS.values())) - timedelta(days=1)
    result.stats_rows = _delete_in_batches(
        WebhookStats.objects.filter(minute__lt=stats_cutoff), batch_size
    )
    return result

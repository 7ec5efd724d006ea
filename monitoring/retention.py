"""The daily retention pass: the engine's history (deliveries.retention:
attempts and events older than HERALD_RETENTION_DAYS), then the per-minute
counters. Those are kept for the longest dashboard window, so charts and
success rates outlive the rows they summarise, and they are rolled up into
the all-time totals (totals.py) before any is deleted, so the Prometheus
counters keep them. Every batch is its own short transaction (see
deliveries.retention); call it outside a transaction.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveries.retention import BATCH_SIZE, delete_in_batches, purge_history
from monitoring import totals
from monitoring.models import Alert, WebhookHourlyStats, WebhookStats
from monitoring.stats import WINDOWS, hour_of

__all__ = ["BATCH_SIZE", "Purged", "purge"]


@dataclass
class Purged:
    attempts: int = 0
    events: int = 0
    stats_rows: int = 0  # per-minute counters
    hourly_rows: int = 0  # per-hour counters

    def __str__(self) -> str:
        return (
            f"{self.attempts} attempts, {self.events} events, {self.stats_rows} stats rows, "
            f"{self.hourly_rows} hourly stats rows"
        )


def purge(
    days: int | None = None,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    should_stop=lambda: False,
) -> Purged:
    """Delete what is older than the retention period. `should_stop` is asked
    before each batch: a worker told to stop (SIGTERM) leaves the rest for the
    next run rather than keep its shutdown waiting."""
    days = settings.HERALD_RETENTION_DAYS if days is None else days
    now = now or timezone.now()
    history = purge_history(days, now, batch_size, should_stop)
    result = Purged(attempts=history.attempts, events=history.events)
    stats_cutoff = now - max(timedelta(days=days), max(WINDOWS.values())) - timedelta(days=1)
    # Only minutes already in the all-time totals.
    stats_cutoff = min(stats_cutoff, totals.roll_up())
    result.stats_rows = delete_in_batches(
        WebhookStats.objects.filter(minute__lt=stats_cutoff), batch_size, should_stop
    )
    # Whole hours only: an hour is kept while any of its minutes is.
    result.hourly_rows = delete_in_batches(
        WebhookHourlyStats.objects.filter(hour__lt=hour_of(stats_cutoff)), batch_size, should_stop
    )
    return result


def purge_organization(sender, organization, **kwargs) -> None:
    """webhooks.signals.organization_deleting: the organization's counters
    and alerts, in batches of their own transactions. The all-time totals
    keep what the counters counted, as for any deleted webhook: the minutes
    already rolled up go in batches; for each webhook, the few since are
    folded in and deleted in one transaction, which holds the totals' lock
    against a roll-up counting them again."""
    counters = WebhookStats.objects.filter(webhook__organization=organization)
    delete_in_batches(counters.filter(minute__lt=totals.rolled_up_to()), BATCH_SIZE)
    delete_in_batches(
        WebhookHourlyStats.objects.filter(webhook__organization=organization), BATCH_SIZE
    )
    for webhook_id in organization.webhooks.values_list("id", flat=True):
        with transaction.atomic():
            totals.fold_in_webhook(webhook_id)
            WebhookStats.objects.filter(webhook_id=webhook_id).delete()
    delete_in_batches(Alert.objects.filter(organization=organization), BATCH_SIZE)

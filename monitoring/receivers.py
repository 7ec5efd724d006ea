"""Monitoring's side of the seam: what it does when the engine announces
something (deliveries.signals), and when an organization or a webhook is
created or deleted. Connected once, in MonitoringConfig.ready.

Every receiver runs inside the engine's transaction: the counters commit
with the attempts they count. Publishing the operational events may fail
(a bad payload would be a bug, not bad luck) without losing the attempts:
publish_many writes in a savepoint, and a failure there is logged.
"""

import logging

from django.db.models.signals import post_save, pre_delete

from deliveries import signals
from deliveries.dispatch import RecordedBatch
from deliveries.publishing import publish_many
from monitoring import alerts, operational, retention, totals
from monitoring.stats import StatsBatch
from webhooks.models import Organization, Webhook
from webhooks.signals import organization_deleting

log = logging.getLogger(__name__)


def attempts_recorded(sender, batch: RecordedBatch, **kwargs) -> None:
    """Count a recorded batch (WebhookStats) and publish the operational
    events it calls for (herald.delivery.failing/exhausted/recovered)."""
    counts = StatsBatch()
    events = []
    for item in batch.attempts:
        outcome, target = item.outcome, item.claimed.target
        counts.attempt(
            target.id,
            outcome.started_at,
            succeeded=outcome.succeeded,
            latency_ms=outcome.duration_ms if outcome.status_code is not None else None,
            ended=item.ended,
        )
        event_type = operational.delivery_event_type(item.claimed, outcome.succeeded, item.update)
        if event_type:
            events.append(
                operational.delivery_event(event_type, item.claimed, outcome, item.update)
            )
    for webhook_id in batch.failed_on_disabled:
        counts.deliveries_failed(webhook_id, batch.now, 1)
    counts.write()
    if events:
        # In the same transaction: they never report what was rolled back,
        # and a worker that dies right after the commit cannot lose them
        # (as it could when they were published after it: scripts/soak.py).
        try:
            publish_many(events)
        except Exception:
            log.exception("could not publish %d operational events", len(events))


def webhook_disabled(
    sender,
    webhook: Webhook,
    reason: str,
    now,
    ended: int,
    newly: bool,
    value: float | None = None,
    threshold: float | None = None,
    **kwargs,
) -> None:
    """Count the deliveries the disabling ended and, the first time, open
    the `webhook_disabled` alert (with herald.webhook.disabled)."""
    counts = StatsBatch()
    counts.deliveries_failed(webhook.pk, now, ended)
    counts.write()
    if newly:
        alerts.open_disabled_alert(webhook, reason, now=now, value=value, threshold=threshold)


def webhook_enabled(sender, webhook: Webhook, now, **kwargs) -> None:
    alerts.resolve_disabled_alerts(webhook, now=now)


def connect() -> None:
    signals.attempts_recorded.connect(
        attempts_recorded, sender=RecordedBatch, dispatch_uid="monitoring_attempts"
    )
    signals.webhook_disabled.connect(
        webhook_disabled, sender=Webhook, dispatch_uid="monitoring_disabled"
    )
    signals.webhook_enabled.connect(
        webhook_enabled, sender=Webhook, dispatch_uid="monitoring_enabled"
    )
    # However an organization comes to be (createorganization, the demo,
    # Django's admin, a test factory), it starts with the default rules.
    post_save.connect(
        alerts.organization_created, sender=Organization, dispatch_uid="herald_default_rules"
    )
    organization_deleting.connect(
        retention.purge_organization, dispatch_uid="monitoring_purge_organization"
    )
    # The Prometheus counters keep what a deleted webhook's stats counted.
    pre_delete.connect(
        totals.webhook_deleted, sender=Webhook, dispatch_uid="herald_fold_in_webhook_stats"
    )

"""What people (dashboard, API, commands) and Herald itself do to webhooks
and deliveries beyond publishing: retry, pause, resume, disable, test."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from deliveries import lanes, signals
from deliveries.models import Delivery, Lease, Trigger
from deliveries.publishing import Published, publish
from deliveries.wakeup import wake_dispatcher
from webhooks.errors import Conflict
from webhooks.models import Webhook

TEST_EVENT_TYPE = "webhook.test"


def _require_active(webhook: Webhook, doing: str) -> None:
    if webhook.status != Webhook.Status.ACTIVE:
        raise Conflict(f"The webhook is {webhook.status}; resume it before {doing}.", "status")


def retry_delivery(delivery: Delivery) -> Delivery:
    """One immediate manual attempt of a failed or pending delivery."""
    if delivery.status == Delivery.Status.SUCCEEDED:
        raise Conflict("This delivery already succeeded; resend it to send it again.", "status")
    return _attempt_now(delivery, "retrying its deliveries")


def resend_delivery(delivery: Delivery) -> Delivery:
    """One immediate manual attempt of any delivery, a succeeded one included
    (Stripe's and GitHub's "Redeliver"): the same event, the same webhook-id,
    a fresh signature. Its outcome is the delivery's new state."""
    return _attempt_now(delivery, "resending its deliveries")


def _attempt_now(delivery: Delivery, doing: str) -> Delivery:
    _require_active(delivery.webhook, doing)
    now = timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            next_trigger=Trigger.MANUAL,
            completed_at=None,
        )
        lanes.wake([delivery.webhook_id], now)
        transaction.on_commit(wake_dispatcher)
    delivery.refresh_from_db()
    return delivery


def retry_failed(webhook: Webhook, since: datetime | None = None) -> int:
    """A manual attempt for every failed delivery of the webhook (created since `since`)."""
    _require_active(webhook, "retrying its deliveries")
    failed = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.FAILED)
    if since is not None:
        failed = failed.filter(created_at__gte=since)
    now = timezone.now()
    with transaction.atomic():
        count = failed.update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now,
            next_trigger=Trigger.MANUAL,
            completed_at=None,
        )
        if count:
            lanes.wake([webhook.pk], now)
            transaction.on_commit(wake_dispatcher)
    return count


def send_test(webhook: Webhook) -> Published:
    """A `webhook.test` event to this webhook only."""
    _require_active(webhook, "sending a test event")
    return publish(
        webhook.organization,
        TEST_EVENT_TYPE,
        {
            "message": "This is a test event from Herald.",
            "webhook": {"id": webhook.public_id, "name": webhook.name},
        },
        only_webhook=webhook,
        trigger=Trigger.TEST,
        add_to_catalog=False,
    )


def pause_webhook(webhook: Webhook) -> None:
    """Stop sending; pending deliveries wait (parked) until resumed."""
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.PAUSED)
        Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING).update(
            next_attempt_at=None
        )
        lanes.park(webhook)
    webhook.status = Webhook.Status.PAUSED


def resume_webhook(webhook: Webhook) -> None:
    """Active again: parked deliveries are due now, the failure streaks reset,
    and signals.webhook_enabled tells monitoring (its `webhook_disabled`
    alert resolves)."""
    now = timezone.now()
    with transaction.atomic():
        Webhook.objects.filter(pk=webhook.pk).update(
            status=Webhook.Status.ACTIVE,
            disabled_reason="",
            consecutive_failures=0,
            failing_since=None,
            consecutive_failed_deliveries=0,
            failed_deliveries_since=None,
        )
        woken = Delivery.objects.filter(
            webhook=webhook, status=Delivery.Status.PENDING, next_attempt_at__isnull=True
        ).update(next_attempt_at=now)
        if woken:
            lanes.wake([webhook.pk], now)
            transaction.on_commit(wake_dispatcher)
        signals.webhook_enabled.send(sender=Webhook, webhook=webhook, now=now)
    webhook.status = Webhook.Status.ACTIVE
    webhook.disabled_reason = ""
    webhook.consecutive_failures = 0
    webhook.failing_since = None
    webhook.consecutive_failed_deliveries = 0
    webhook.failed_deliveries_since = None


def disable_webhook(
    webhook: Webhook,
    reason: str,
    *,
    now: datetime | None = None,
    value: float | None = None,
    threshold: float | None = None,
) -> int:
    """Herald stops the webhook: its pending deliveries end failed (those in
    flight when their attempt is recorded), and
    signals.webhook_disabled tells monitoring (which, if it was not disabled
    already, opens a `webhook_disabled` alert with `value` and `threshold`
    and publishes `herald.webhook.disabled`). Returns how many deliveries
    that ended."""
    now = now or timezone.now()
    with transaction.atomic():
        # Conditional, so that of two workers disabling it at once (two 410s)
        # only one opens the alert.
        newly = (
            Webhook.objects.filter(pk=webhook.pk)
            .exclude(status=Webhook.Status.DISABLED)
            .update(status=Webhook.Status.DISABLED, disabled_reason=reason[:500])
        )
        # The lane first: it waits for a claim of this webhook under way, whose
        # leases the next statement then sees (claiming._take).
        lanes.park(webhook)
        # Not those in flight (a live lease): their record ends them, as the
        # attempt turned out (a retry ends failed: dispatch.record), and counts
        # them once; a lease that runs out ends failed (release_expired_claims).
        ended = (
            Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING)
            .exclude(Lease.held(now))
            .update(status=Delivery.Status.FAILED, next_attempt_at=None, completed_at=now)
        )
        signals.webhook_disabled.send(
            sender=Webhook,
            webhook=webhook,
            reason=reason,
            now=now,
            ended=ended,
            newly=bool(newly),
            value=value,
            threshold=threshold,
        )
    webhook.status = Webhook.Status.DISABLED
    webhook.disabled_reason = reason[:500]
    return ended


def set_status(webhook: Webhook, status: str) -> None:
    """A person's status change: `active` resumes, `paused` pauses."""
    if status == webhook.status:
        return
    if status == Webhook.Status.ACTIVE:
        resume_webhook(webhook)
    elif status == Webhook.Status.PAUSED:
        pause_webhook(webhook)
    else:
        raise Conflict("Only Herald disables webhooks; set 'active' or 'paused'.", "status")

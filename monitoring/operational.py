"""Herald's operational events (`herald.*`, like Svix's): published into the
organization's own stream with deliveries.publishing.publish_many and
delivered like any other event to the webhooks that subscribe to them (a
pattern must name `herald.`: `*` does not select them), never to the webhook
they are about. They are written in the same transaction as what they
report: delivery events by receivers.attempts_recorded, the disabled-webhook
and alert events by alerts.py.
"""

from deliveries.claiming import Claimed
from deliveries.dispatch import DeliveryUpdate
from deliveries.envelope import iso_millis
from deliveries.models import Delivery
from deliveries.publishing import Outgoing
from webhooks import patterns

ALERT_OPENED = "herald.alert.opened"
ALERT_RESOLVED = "herald.alert.resolved"
WEBHOOK_DISABLED = "herald.webhook.disabled"
DELIVERY_FAILING = "herald.delivery.failing"
DELIVERY_EXHAUSTED = "herald.delivery.exhausted"
DELIVERY_RECOVERED = "herald.delivery.recovered"

EVENT_TYPES = {
    ALERT_OPENED: "An alert opened: a rule's threshold was crossed, or Herald disabled a webhook.",
    ALERT_RESOLVED: "An alert resolved: the metric is back on the right side of its threshold, "
    "the webhook was re-enabled, or its rule was changed, disabled or deleted.",
    WEBHOOK_DISABLED: "Herald disabled a webhook (410 Gone, or too many failed deliveries in a "
    "row); its pending deliveries ended failed.",
    DELIVERY_FAILING: "A delivery's 4th attempt failed and another one is scheduled.",
    DELIVERY_EXHAUSTED: "A delivery ended failed: its last allowed attempt failed (or a 410).",
    DELIVERY_RECOVERED: "A delivery succeeded after one or more failed attempts.",
}

FAILING_AFTER_ATTEMPTS = 4


def webhook_data(webhook) -> dict:
    # No URL: it may carry a token, and these events go to other endpoints.
    return {"id": webhook.public_id, "name": webhook.name}


def delivery_event_type(claimed: Claimed, succeeded: bool, update: DeliveryUpdate) -> str | None:
    """The operational event an attempt leads to, if any.

    - failing: attempt number 4 failed and the delivery will be tried again
      (had the 4th been its last, it is exhausted instead);
    - exhausted: the attempt failed and the delivery ended `failed`;
    - recovered: the attempt succeeded and earlier ones had failed.
    None for deliveries of operational events: a report about a report
    could feed itself forever.
    """
    if patterns.is_operational(claimed.event_type):
        return None
    if succeeded:
        return DELIVERY_RECOVERED if claimed.attempt_number > 1 else None
    if update.status == Delivery.Status.FAILED:
        return DELIVERY_EXHAUSTED
    if claimed.attempt_number == FAILING_AFTER_ATTEMPTS:
        return DELIVERY_FAILING
    return None


def delivery_event(event_type: str, claimed: Claimed, outcome, update: DeliveryUpdate) -> Outgoing:
    target = claimed.target
    return Outgoing(
        organization_id=target.organization_id,
        event_type=event_type,
        data={
            "webhook": {"id": target.public_id, "name": target.name},
            "delivery": {
                "id": claimed.delivery_public_id,
                "status": update.status,
                "attempts": update.attempts,
                "next_attempt_at": iso_millis(update.next_attempt_at)
                if update.next_attempt_at
                else None,
            },
            "event": {"id": claimed.event_public_id, "type": claimed.event_type},
            "last_attempt": {
                "number": claimed.attempt_number,
                "trigger": claimed.trigger,
                "started_at": iso_millis(outcome.started_at),
                "duration_ms": outcome.duration_ms,
                "status_code": outcome.status_code,
                "error_kind": outcome.error_kind,
                "error_message": outcome.error_message,
            },
        },
        exclude_webhook_id=target.id,
    )

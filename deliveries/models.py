import json

from django.db import models
from django.utils import timezone

from webhooks import ids
from webhooks.models import Organization, Webhook


class Event(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=ids.event_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=100)
    # The compact JSON text of `data`, exactly as it goes into every request body.
    data_json = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    # NULL, not "", so the unique constraint ignores events without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    delivery_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"]),
            # The events page and API: an organization's events, newest first by id.
            models.Index(fields=["organization", "-id"], name="event_org_log_idx"),
            models.Index(fields=["created_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_event_per_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"

    @property
    def data(self):
        return json.loads(self.data_json)


class Trigger(models.TextChoices):
    AUTO = "auto"
    MANUAL = "manual"
    TEST = "test"


class Delivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    public_id = models.CharField(
        max_length=40, unique=True, default=ids.delivery_id, editable=False
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When the next attempt is due. NULL while pending means parked: the
    # webhook is paused, and resuming sets it to now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    next_trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.AUTO)
    # Set while a worker holds the delivery; a worker that died leaves it to
    # expire, after which the delivery can be claimed again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error_kind = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "webhook"], name="one_delivery_per_webhook")
        ]
        indexes = [
            # The dispatcher's claim: due pending deliveries, oldest first.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="delivery_due_idx",
            ),
            # Delivery logs, newest first, per webhook and per organization.
            models.Index(fields=["webhook", "-id"], name="delivery_webhook_log_idx"),
            models.Index(fields=["webhook", "status", "-id"], name="delivery_webhook_status_idx"),
            models.Index(fields=["organization", "-id"], name="delivery_org_log_idx"),
            # The sweeper's look for leases that ran out.
            models.Index(
                fields=["claimed_until"],
                condition=models.Q(claimed_until__isnull=False),
                name="delivery_claimed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.webhook_id} ({self.status})"


class DeliveryAttempt(models.Model):
    class ErrorKind(models.TextChoices):
        NONE = "", "none"
        TIMEOUT = "timeout"
        CONNECTION = "connection"
        DNS = "dns"
        TLS = "tls"
        HTTP_STATUS = "http_status"
        BLOCKED = "blocked"
        INVALID_URL = "invalid_url"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveSmallIntegerField()
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.AUTO)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    request_headers = models.JSONField(default=dict)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_body = models.TextField(blank=True)
    error_kind = models.CharField(max_length=20, choices=ErrorKind.choices, blank=True)
    error_message = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["delivery", "number"]),
            models.Index(fields=["started_at"]),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class WebhookStats(models.Model):
    """Per-webhook, per-minute counters, written with each batch of attempts,
    so that dashboards and alerts never scan attempts."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="stats")
    minute = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    succeeded_attempts = models.PositiveIntegerField(default=0)
    succeeded_deliveries = models.PositiveIntegerField(default=0)
    failed_deliveries = models.PositiveIntegerField(default=0)
    responses = models.PositiveIntegerField(default=0)
    latency_total_ms = models.BigIntegerField(default=0)
    # Attempts with a response, by latency: lat_0 ≤ 10 ms, lat_1 ≤ 25 ms, …,
    # lat_10 > 10 s (bounds in LATENCY_BUCKETS_MS).
    lat_0 = models.PositiveIntegerField(default=0)
    lat_1 = models.PositiveIntegerField(default=0)
    lat_2 = models.PositiveIntegerField(default=0)
    lat_3 = models.PositiveIntegerField(default=0)
    lat_4 = models.PositiveIntegerField(default=0)
    lat_5 = models.PositiveIntegerField(default=0)
    lat_6 = models.PositiveIntegerField(default=0)
    lat_7 = models.PositiveIntegerField(default=0)
    lat_8 = models.PositiveIntegerField(default=0)
    lat_9 = models.PositiveIntegerField(default=0)
    lat_10 = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "webhook stats"
        constraints = [
            models.UniqueConstraint(fields=["webhook", "minute"], name="one_stats_row_per_minute")
        ]
        indexes = [models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"{self.webhook_id} @ {self.minute:%Y-%m-%d %H:%M}"


class StatsTotals(models.Model):
    """One row: the WebhookStats counters summed over every webhook and every
    minute before `rolled_up_to`, kept when those rows are purged or their
    webhook deleted. With the few minutes since added, they are all-time
    totals that only ever grow: the Prometheus counters (see totals.py)."""

    rolled_up_to = models.DateTimeField()
    attempts = models.BigIntegerField(default=0)
    succeeded_attempts = models.BigIntegerField(default=0)
    succeeded_deliveries = models.BigIntegerField(default=0)
    failed_deliveries = models.BigIntegerField(default=0)
    responses = models.BigIntegerField(default=0)
    latency_total_ms = models.BigIntegerField(default=0)
    lat_0 = models.BigIntegerField(default=0)
    lat_1 = models.BigIntegerField(default=0)
    lat_2 = models.BigIntegerField(default=0)
    lat_3 = models.BigIntegerField(default=0)
    lat_4 = models.BigIntegerField(default=0)
    lat_5 = models.BigIntegerField(default=0)
    lat_6 = models.BigIntegerField(default=0)
    lat_7 = models.BigIntegerField(default=0)
    lat_8 = models.BigIntegerField(default=0)
    lat_9 = models.BigIntegerField(default=0)
    lat_10 = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "stats totals"

    def __str__(self) -> str:
        return f"totals before {self.rolled_up_to:%Y-%m-%d %H:%M}"


class AlertRule(models.Model):
    """A threshold on one metric of a webhook's recent traffic (SPEC §6).
    Without a webhook the rule is organization-wide: it is evaluated for each
    webhook of the organization and opens one alert per webhook that crosses it."""

    class Metric(models.TextChoices):
        FAILED_DELIVERIES = "failed_deliveries", "failed deliveries over"
        AVG_LATENCY_MS = "avg_latency_ms", "average latency (ms) over"
        SUCCESS_RATE = "success_rate", "success rate (fraction 0–1) under"

    public_id = models.CharField(
        max_length=40, unique=True, default=ids.alert_rule_id, editable=False
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alert_rules"
    )
    webhook = models.ForeignKey(
        Webhook,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alert_rules",
        help_text="Empty: every webhook of the organization.",
    )
    metric = models.CharField(max_length=20, choices=Metric.choices)
    threshold = models.FloatField(
        help_text="Failed deliveries: a count; latency: milliseconds; success rate: 0–1."
    )
    window_minutes = models.PositiveIntegerField(default=60)
    min_attempts = models.PositiveIntegerField(
        default=10, help_text="Attempts the window must hold before the rule can fire."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "-id"], name="alertrule_org_idx")]

    def __str__(self) -> str:
        return f"{self.get_metric_display()} {self.threshold:g} / {self.window_minutes} min"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from deliveries import alerts
        from webhooks.errors import InvalidInput

        try:
            alerts.validate_rule(self)
        except InvalidInput as exc:
            raise ValidationError({exc.field or "__all__": exc.message}) from exc


class Alert(models.Model):
    """An incident: a rule crossed for one webhook, or a webhook Herald disabled."""

    class Kind(models.TextChoices):
        THRESHOLD = "threshold"
        WEBHOOK_DISABLED = "webhook_disabled"

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    public_id = models.CharField(max_length=40, unique=True, default=ids.alert_id, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    # History outlives the rule: a deleted rule leaves its alerts, resolved.
    rule = models.ForeignKey(
        AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.THRESHOLD)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    metric = models.CharField(max_length=20, choices=AlertRule.Metric.choices, blank=True)
    # The metric when the alert opened (for webhook_disabled: the failed
    # deliveries in a row, or null for a 410), and the rule's threshold then.
    value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # E-mail and chat notices still to send (operational events are written
    # with the transition itself); `notified_state` is the state last told.
    notice_pending = models.BooleanField(default=True)
    notified_state = models.CharField(max_length=10, blank=True)

    class Meta:
        constraints = [
            # Crossing a threshold opens one alert, however many evaluations see it.
            models.UniqueConstraint(
                fields=["rule", "webhook"],
                condition=models.Q(state="open", kind="threshold"),
                name="one_open_alert_per_rule_and_webhook",
            ),
            models.UniqueConstraint(
                fields=["webhook"],
                condition=models.Q(state="open", kind="webhook_disabled"),
                name="one_open_disabled_alert_per_webhook",
            ),
        ]
        indexes = [
            # Alert history of an organization, newest first (and only the open ones).
            models.Index(fields=["organization", "-id"], name="alert_org_idx"),
            models.Index(
                fields=["organization", "-id"],
                condition=models.Q(state="open"),
                name="alert_org_open_idx",
            ),
            # Open alerts per webhook (dashboard badges, the evaluator).
            models.Index(
                fields=["webhook"], condition=models.Q(state="open"), name="alert_webhook_open_idx"
            ),
            models.Index(
                fields=["id"], condition=models.Q(notice_pending=True), name="alert_notice_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.kind} ({self.state})"

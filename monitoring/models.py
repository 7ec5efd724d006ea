"""Monitoring's records: per-minute counters of each webhook's attempts
(WebhookStats) and their all-time totals (StatsTotals), alert rules and the
alerts they open.

They came from the `deliveries` app and keep its tables (`db_table`), so an
existing database moved here without a row copied (migration 0001 only
changes Django's idea of which app owns them).
"""

import math

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from monitoring.units import NOTHING, count_text, latency_text, percent_text
from webhooks import ids
from webhooks.errors import InvalidInput
from webhooks.models import Organization, Webhook

LATENCY_BUCKETS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Counters(models.Model):
    """What a webhook's attempts add up to over some span (a minute, an hour)."""

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
    # The fastest and slowest response of the span: a percentile read from
    # the histogram is interpolated within its bucket and kept between them
    # (stats.percentile_from_histogram). NULL while there is no response, and
    # in rows with responses counted before these were kept (extremes unknown).
    latency_min_ms = models.PositiveIntegerField(null=True, blank=True)
    latency_max_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class WebhookStats(Counters):
    """Per-webhook, per-minute counters, written with each batch of attempts,
    so that dashboards and alerts never scan attempts."""

    # No index of its own: the unique (webhook, time) index serves lookups by
    # webhook, and a second one led SQLite's planner to read every row of a
    # webhook for a window of minutes.
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="stats", db_index=False
    )
    minute = models.DateTimeField()

    class Meta:
        db_table = "deliveries_webhookstats"
        verbose_name_plural = "webhook stats"
        constraints = [
            models.UniqueConstraint(fields=["webhook", "minute"], name="one_stats_row_per_minute")
        ]
        indexes = [models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"{self.webhook_id} @ {self.minute:%Y-%m-%d %H:%M}"


class WebhookHourlyStats(Counters):
    """The same counters per hour, written beside the minutes: long windows
    (a day, a month) read 24 or 720 of these per webhook, not 1,440 or 43,200
    minutes. An hour is the minutes of [hour, hour + 1 h)."""

    # No index of its own: the unique (webhook, time) index serves lookups by
    # webhook, and a second one led SQLite's planner to read every row of a
    # webhook for a window of minutes.
    webhook = models.ForeignKey(
        Webhook, on_delete=models.CASCADE, related_name="hourly_stats", db_index=False
    )
    hour = models.DateTimeField()

    class Meta:
        verbose_name_plural = "webhook hourly stats"
        constraints = [
            models.UniqueConstraint(fields=["webhook", "hour"], name="one_stats_row_per_hour")
        ]
        indexes = [models.Index(fields=["hour"])]

    def __str__(self) -> str:
        return f"{self.webhook_id} @ {self.hour:%Y-%m-%d %H}h"


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
        db_table = "deliveries_statstotals"
        verbose_name_plural = "stats totals"

    def __str__(self) -> str:
        return f"totals before {self.rolled_up_to:%Y-%m-%d %H:%M}"


# A day at most: each evaluation sums one counter row per webhook and minute
# of the window, every minute, so a 30-day window would read 43,200 rows per
# webhook per pass. The dashboard's longer windows are for looking, not paging.
WINDOW_MINUTES_RANGE = (1, 1440)
MIN_ATTEMPTS_RANGE = (1, 1_000_000)
THRESHOLD_RANGES = {
    "failed_deliveries": (1, 1_000_000),
    "avg_latency_ms": (1, 600_000),
    "success_rate": (0, 1),  # 0 excluded: nothing is ever under it
}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(value: object, field: str, low: int, high: int) -> None:
    if not _is_number(value) or value != int(value):
        raise InvalidInput("must be a whole number", field)
    if not low <= value <= high:
        raise InvalidInput(f"must be from {low:,} to {high:,}", field)


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
        db_table = "deliveries_alertrule"
        indexes = [models.Index(fields=["organization", "-id"], name="alertrule_org_idx")]

    def __str__(self) -> str:
        return f"{self.condition_text()} / {self.window_minutes} min"

    def condition_text(self) -> str:
        """When it fires, as people read it: `more than 5 failed deliveries`."""
        if self.metric == self.Metric.SUCCESS_RATE:
            return f"success rate under {percent_text(self.threshold)}"
        if self.metric == self.Metric.AVG_LATENCY_MS:
            return f"average latency over {latency_text(self.threshold)}"
        return f"more than {count_text(self.threshold)} failed deliveries"

    def clean(self) -> None:
        try:
            self.validate()
        except InvalidInput as exc:
            raise ValidationError({exc.field or "__all__": exc.message}) from exc

    def validate(self) -> None:
        """Raise InvalidInput (naming the field) unless the rule makes sense;
        the API, the dashboard and Django's admin (clean) all come here."""
        Metric = self.Metric
        if self.metric not in Metric.values:
            raise InvalidInput(f"must be one of {', '.join(Metric.values)}", "metric")
        threshold = self.threshold
        if not _is_number(threshold) or not math.isfinite(threshold):
            raise InvalidInput("must be a number", "threshold")
        low, high = THRESHOLD_RANGES[self.metric]
        if self.metric == Metric.SUCCESS_RATE:
            if not 0 < threshold <= 1:
                raise InvalidInput(
                    "must be a fraction greater than 0 and at most 1 (0.95 means 95 %)",
                    "threshold",
                )
        elif self.metric == Metric.FAILED_DELIVERIES:
            _check_int(threshold, "threshold", low, high)
        elif not low <= threshold <= high:
            raise InvalidInput(f"must be from {low:,} to {high:,} milliseconds", "threshold")
        _check_int(self.window_minutes, "window_minutes", *WINDOW_MINUTES_RANGE)
        _check_int(self.min_attempts, "min_attempts", *MIN_ATTEMPTS_RANGE)
        if not isinstance(self.enabled, bool):
            raise InvalidInput("must be true or false", "enabled")
        if self.webhook_id is not None and self.webhook.organization_id != self.organization_id:
            raise InvalidInput("no webhook with this id in this organization", "webhook")


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
    # The metric at the latest evaluation while the alert was open (null: it
    # had nothing to measure), and when that was; null on alerts no
    # evaluation has seen (webhook_disabled ones, older ones).
    current_value = models.FloatField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    window_minutes = models.PositiveIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # E-mail and chat notices still to send (operational events are written
    # with the transition itself); `notified_state` is the state last told.
    notice_pending = models.BooleanField(default=True)
    notified_state = models.CharField(max_length=10, blank=True)

    class Meta:
        db_table = "deliveries_alert"
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

    @property
    def latest_value(self) -> float | None:
        """The metric as last measured: at the latest evaluation, else at opening."""
        return self.current_value if self.evaluated_at is not None else self.value

    def value_text(self) -> str:
        return metric_text(self.metric, self.value)

    def latest_value_text(self) -> str:
        return metric_text(self.metric, self.latest_value)

    def threshold_text(self) -> str:
        return metric_text(self.metric, self.threshold)


def metric_text(metric: str, value: float | None) -> str:
    """A value of `metric` as people read it: `96.5%`, `1.2 s`, `14`. Alerts
    without a metric (webhook_disabled) count failed deliveries in a row."""
    if value is None:
        return NOTHING
    if metric == AlertRule.Metric.SUCCESS_RATE:
        return percent_text(value)
    if metric == AlertRule.Metric.AVG_LATENCY_MS:
        return latency_text(value)
    return count_text(value)

"""Alert rules and the alerts they open (SPEC §6).

A rule watches one metric of a webhook's recent traffic over a window:
failed deliveries over N, average latency over X ms, or success rate under Y
(a fraction, like the stats). An organization-wide rule (no webhook) is
evaluated for each webhook of the organization.

`evaluate()` runs every HERALD_ALERT_INTERVAL_SECONDS. It reads the same
per-minute counters as the dashboard (stats.window_stats, one grouped query
per distinct window), so its cost depends on the number of webhooks and the
window length, never on how much history there is. For each (rule, webhook):

- it opens an alert when the window holds at least `min_attempts` attempts
  and the value is over the threshold (under, for success rate), unless one
  is already open for that pair: staying over repeats nothing;
- it resolves the open alert when the value is no longer over the threshold,
  including when the window holds no traffic left to measure. The sample size
  gates opening only, so a quiet webhook does not keep an alert open forever;
- it records the value it measured on every open alert (`current_value`,
  `evaluated_at`), so pages show where the metric is now, not only where it
  was when the alert opened (`value`).

Opening and resolving publish `herald.alert.opened` / `herald.alert.resolved`
in the same transaction; e-mail and chat follow at the end of the pass
(notices.send_pending_notices). Alerts of kind `webhook_disabled` are opened
and resolved on the engine's signals (receivers.py), when a webhook is
disabled and when it is enabled again.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from deliveries.envelope import iso_millis
from deliveries.publishing import Outgoing, publish_many
from monitoring import notices, operational
from monitoring.models import (
    Alert,
    AlertRule,
)
from monitoring.stats import WindowStats, window_stats
from monitoring.units import count_text
from webhooks import ids
from webhooks.errors import InvalidInput
from webhooks.models import Organization, Webhook

Metric = AlertRule.Metric

# Twig's defaults, created with every organization.
DEFAULT_RULES = (
    (Metric.FAILED_DELIVERIES, 10.0),
    (Metric.AVG_LATENCY_MS, 5000.0),
    (Metric.SUCCESS_RATE, 0.95),
)
DEFAULT_WINDOW_MINUTES = 60
DEFAULT_MIN_ATTEMPTS = 10

# Webhook ids per window_stats query: keeps each query's parameter list sane.
STATS_CHUNK = 2000
RULE_FIELDS = ("webhook", "metric", "threshold", "window_minutes", "min_attempts", "enabled")


# --- rules ------------------------------------------------------------------


def create_default_rules(organization: Organization) -> list[AlertRule]:
    return AlertRule.objects.bulk_create(
        [
            AlertRule(
                organization=organization,
                metric=metric,
                threshold=threshold,
                window_minutes=DEFAULT_WINDOW_MINUTES,
                min_attempts=DEFAULT_MIN_ATTEMPTS,
            )
            for metric, threshold in DEFAULT_RULES
        ]
    )


def organization_created(
    sender, instance: Organization, created: bool, raw: bool, **kwargs
) -> None:
    """post_save of Organization (connected in MonitoringConfig.ready)."""
    if created and not raw:
        create_default_rules(instance)


def validate_rule(rule: AlertRule) -> None:
    """Raise InvalidInput (naming the field) unless the rule makes sense."""
    rule.validate()


def _webhook_of(organization: Organization, webhook: Webhook | str | None) -> Webhook | None:
    """`webhook` as a Webhook of this organization: an object or a `wh_…` id."""
    if webhook is None:
        return None
    if isinstance(webhook, Webhook):
        found = webhook if webhook.organization_id == organization.pk else None
    elif isinstance(webhook, str) and ids.looks_like(webhook, "wh"):
        found = Webhook.objects.filter(organization=organization, public_id=webhook).first()
    else:
        found = None
    if found is None:
        # The same answer for another organization's webhook as for none at all.
        raise InvalidInput("no webhook with this id in this organization", "webhook")
    return found


def create_rule(
    organization: Organization,
    *,
    metric: str,
    threshold: float,
    webhook: Webhook | str | None = None,
    window_minutes: int = DEFAULT_WINDOW_MINUTES,
    min_attempts: int = DEFAULT_MIN_ATTEMPTS,
    enabled: bool = True,
) -> AlertRule:
    """A new rule; InvalidInput (naming the field) when it makes no sense."""
    rule = AlertRule(
        organization=organization,
        webhook=_webhook_of(organization, webhook),
        metric=metric,
        threshold=threshold,
        window_minutes=window_minutes,
        min_attempts=min_attempts,
        enabled=enabled,
    )
    validate_rule(rule)
    _normalise(rule)
    rule.save()
    return rule


def _normalise(rule: AlertRule) -> None:
    rule.threshold = float(rule.threshold)
    rule.window_minutes = int(rule.window_minutes)
    rule.min_attempts = int(rule.min_attempts)


def update_rule(rule: AlertRule, **changes) -> AlertRule:
    """Change any of RULE_FIELDS (`webhook=None` makes it organization-wide).
    Open alerts the rule no longer stands behind (disabled, another metric,
    another webhook) resolve; for a new threshold the next evaluation decides."""
    for field, value in changes.items():
        if field not in RULE_FIELDS:
            raise InvalidInput("unknown field", field)
        if value is None and field != "webhook":
            raise InvalidInput("may not be null", field)
    now = timezone.now()
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
        old_metric, old_webhook_id = rule.metric, rule.webhook_id
        for field, value in changes.items():
            if field == "webhook":
                rule.webhook = _webhook_of(rule.organization, value)
            else:
                setattr(rule, field, value)
        validate_rule(rule)
        _normalise(rule)
        rule.save()
        stale = Alert.objects.filter(rule=rule)
        if rule.enabled and rule.metric == old_metric:
            if rule.webhook_id is None or rule.webhook_id == old_webhook_id:
                return rule
            stale = stale.exclude(webhook_id=rule.webhook_id)
        publish_many(resolve([(a, "rule_changed") for a in locked_open(stale)], now), now=now)
    return rule


def delete_rule(rule: AlertRule) -> None:
    """Delete the rule; its open alerts resolve and its history stays."""
    now = timezone.now()
    with transaction.atomic():
        open_alerts = locked_open(Alert.objects.filter(rule=rule))
        publish_many(resolve([(a, "rule_deleted") for a in open_alerts], now), now=now)
        rule.delete()


def list_rules(organization: Organization) -> QuerySet[AlertRule]:
    """The organization's rules, newest first."""
    return (
        AlertRule.objects.filter(organization=organization)
        .select_related("webhook")
        .order_by("-id")
    )


# --- alerts -----------------------------------------------------------------


def list_alerts(
    organization: Organization,
    *,
    state: str | None = None,
    kind: str | None = None,
    webhook: Webhook | int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Alert]:
    """The organization's alerts, newest first, optionally only `state`
    (open/resolved), `kind`, one webhook, or opened in [since, until)."""
    alerts = Alert.objects.filter(organization=organization)
    if state is not None:
        if state not in Alert.State.values:
            raise InvalidInput(f"must be one of {', '.join(Alert.State.values)}", "state")
        alerts = alerts.filter(state=state)
    if kind is not None:
        if kind not in Alert.Kind.values:
            raise InvalidInput(f"must be one of {', '.join(Alert.Kind.values)}", "kind")
        alerts = alerts.filter(kind=kind)
    if webhook is not None:
        alerts = alerts.filter(webhook_id=webhook.pk if isinstance(webhook, Webhook) else webhook)
    if since is not None:
        alerts = alerts.filter(opened_at__gte=since)
    if until is not None:
        alerts = alerts.filter(opened_at__lt=until)
    return alerts.select_related("rule", "webhook").order_by("-id")


def open_alerts_by_webhook(webhooks: Iterable[Webhook | int]) -> dict[int, list[Alert]]:
    """Open alerts of each webhook (by webhook pk, newest first), in one query."""
    webhook_ids = [w.pk if isinstance(w, Webhook) else w for w in webhooks]
    result: dict[int, list[Alert]] = {webhook_id: [] for webhook_id in webhook_ids}
    for alert in (
        Alert.objects.filter(webhook_id__in=webhook_ids, state=Alert.State.OPEN)
        .select_related("rule")
        .order_by("-id")
    ):
        result[alert.webhook_id].append(alert)
    return result


def rule_data(rule: AlertRule) -> dict:
    """A rule as the API shows it (SPEC §6)."""
    return {
        "id": rule.public_id,
        "webhook": rule.webhook.public_id if rule.webhook_id else None,
        "metric": rule.metric,
        "threshold": rule.threshold,
        "window_minutes": rule.window_minutes,
        "min_attempts": rule.min_attempts,
        "enabled": rule.enabled,
        "created_at": rule.created_at,
        "updated_at": rule.updated_at,
    }


def alert_data(alert: Alert) -> dict:
    """An alert as the API shows it (SPEC §6), plus its metric, window and message."""
    return {
        "id": alert.public_id,
        "rule": alert.rule.public_id if alert.rule_id else None,
        "webhook": alert.webhook.public_id,
        "kind": alert.kind,
        "state": alert.state,
        "metric": alert.metric or None,
        "value": alert.value,
        "current_value": alert.latest_value,
        "threshold": alert.threshold,
        "window_minutes": alert.window_minutes,
        "message": alert.message,
        "opened_at": alert.opened_at,
        "resolved_at": alert.resolved_at,
    }


def _event_data(alert: Alert, reason: str | None = None) -> dict:
    data = alert_data(alert)
    data["opened_at"] = iso_millis(alert.opened_at)
    data["resolved_at"] = iso_millis(alert.resolved_at) if alert.resolved_at else None
    out = {"alert": data, "webhook": operational.webhook_data(alert.webhook)}
    if reason:
        out["reason"] = reason
    return out


def alert_event(alert: Alert, event_type: str, reason: str | None = None) -> Outgoing:
    return Outgoing(
        organization_id=alert.organization_id,
        event_type=event_type,
        data=_event_data(alert, reason),
        exclude_webhook_id=alert.webhook_id,
    )


def resolve(alerts: list[tuple[Alert, str]], now: datetime) -> list[Outgoing]:
    """Resolve these (alert, reason) pairs, open alerts the caller locked in
    its transaction; returns their `herald.alert.resolved` events to publish."""
    if not alerts:
        return []
    Alert.objects.filter(pk__in=[a.pk for a, _ in alerts], state=Alert.State.OPEN).update(
        state=Alert.State.RESOLVED, resolved_at=now, notice_pending=True
    )
    return _resolved_events(alerts, now)


def _resolved_events(alerts: list[tuple[Alert, str]], now: datetime) -> list[Outgoing]:
    """Mark these (alert, reason) pairs resolved in memory; their events."""
    events = []
    for alert, reason in alerts:
        alert.state, alert.resolved_at, alert.notice_pending = Alert.State.RESOLVED, now, True
        events.append(alert_event(alert, operational.ALERT_RESOLVED, reason))
    return events


def locked_open(alerts: QuerySet[Alert]) -> list[Alert]:
    return list(
        alerts.filter(state=Alert.State.OPEN)
        .select_for_update(of=("self",))
        .select_related("webhook", "rule")
    )


def open_disabled_alert(
    webhook: Webhook,
    reason: str,
    *,
    now: datetime,
    value: float | None = None,
    threshold: float | None = None,
) -> Alert:
    """The alert for a webhook Herald just disabled, with its events
    (`herald.webhook.disabled` and `herald.alert.opened`). Called once per
    disabling, inside the transaction that disabled it."""
    alert = Alert.objects.create(
        organization_id=webhook.organization_id,
        webhook=webhook,
        kind=Alert.Kind.WEBHOOK_DISABLED,
        value=value,
        threshold=threshold,
        message=reason[:500],
        opened_at=now,
    )
    publish_many(
        [
            Outgoing(
                organization_id=webhook.organization_id,
                event_type=operational.WEBHOOK_DISABLED,
                data={
                    "webhook": operational.webhook_data(webhook),
                    "reason": reason,
                    "disabled_at": iso_millis(now),
                    "alert": _event_data(alert)["alert"],
                },
                exclude_webhook_id=webhook.pk,
            ),
            alert_event(alert, operational.ALERT_OPENED),
        ],
        now=now,
    )
    return alert


def resolve_disabled_alerts(webhook: Webhook, *, now: datetime | None = None) -> int:
    """The webhook is enabled again: its `webhook_disabled` alert resolves."""
    now = now or timezone.now()
    with transaction.atomic():
        open_alerts = locked_open(
            Alert.objects.filter(webhook=webhook, kind=Alert.Kind.WEBHOOK_DISABLED)
        )
        events = resolve([(a, "webhook_enabled") for a in open_alerts], now)
        publish_many(events, now=now)
    return len(events)


# --- evaluation -------------------------------------------------------------


@dataclass
class Evaluation:
    rules: int = 0
    checks: int = 0  # (rule, webhook) pairs
    opened: int = 0
    resolved: int = 0
    notices: int = 0  # alerts told by e-mail / chat

    def __str__(self) -> str:
        return (
            f"{self.rules} rules, {self.checks} checks, {self.opened} opened, "
            f"{self.resolved} resolved, {self.notices} notified"
        )


def metric_value(metric: str, stats: WindowStats) -> float | None:
    """The rule's metric over the window; None when there is nothing to measure."""
    if metric == Metric.FAILED_DELIVERIES:
        return float(stats.failed_deliveries)
    if metric == Metric.AVG_LATENCY_MS:
        return stats.avg_latency_ms
    return stats.success_rate


def is_over(metric: str, value: float | None, threshold: float) -> bool:
    """On the wrong side of the threshold (equal is fine)."""
    if value is None:
        return False
    return value < threshold if metric == Metric.SUCCESS_RATE else value > threshold


def describe(
    metric: str, value: float, threshold: float, window_minutes: int, attempts: int
) -> str:
    window = f"the last {window_minutes} minute{'s' if window_minutes != 1 else ''}"
    sample = f"{count_text(attempts)} attempt{'s' if attempts != 1 else ''}"
    if metric == Metric.FAILED_DELIVERIES:
        return (
            f"{count_text(value)} failed deliveries in {window}, "
            f"more than {count_text(threshold)} ({sample})."
        )
    if metric == Metric.AVG_LATENCY_MS:
        return f"Average latency {value:,.0f} ms over {window}, above {threshold:,g} ms ({sample})."
    return (
        f"Success rate {value * 100:.1f} % over {window}, under {threshold * 100:g} % ({sample})."
    )


def _stats_by_window(
    checks: list[tuple[AlertRule, Webhook]], now: datetime
) -> dict[int, dict[int, WindowStats]]:
    wanted: dict[int, set[int]] = defaultdict(set)
    for rule, webhook in checks:
        wanted[rule.window_minutes].add(webhook.pk)
    result = {}
    for minutes, webhook_ids in wanted.items():
        ordered = sorted(webhook_ids)
        result[minutes] = {}
        for start in range(0, len(ordered), STATS_CHUNK):
            result[minutes].update(
                window_stats(
                    ordered[start : start + STATS_CHUNK],
                    now - timedelta(minutes=minutes),
                    until=now,
                )
            )
    return result


def _save_evaluated(alerts: list[Alert]) -> None:
    """Write what a pass found about open alerts it locked: each one's value
    now and whether it resolved. One statement, many parameter rows, however
    many alerts (as dispatch._update_deliveries)."""
    if not alerts:
        return
    sql = (
        f"UPDATE {Alert._meta.db_table} SET current_value = %s, evaluated_at = %s, "
        "state = %s, resolved_at = %s, notice_pending = (notice_pending OR %s) "
        "WHERE id = %s AND state = %s"
    )
    adapt = connection.ops.adapt_datetimefield_value  # stored as the ORM stores it
    rows = [
        [
            a.current_value,
            adapt(a.evaluated_at),
            a.state,
            adapt(a.resolved_at),
            a.state == Alert.State.RESOLVED,
            a.pk,
            Alert.State.OPEN,
        ]
        for a in sorted(alerts, key=lambda a: a.pk)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def evaluate(now: datetime | None = None) -> Evaluation:
    """One pass over every enabled rule of every organization (see the module
    docstring), then the e-mail and chat notices. A fixed number of queries:
    rules, webhooks, one stats query per distinct window (per 2,000 webhooks),
    open alerts, and a few writes, however many webhooks and alerts."""
    now = now or timezone.now()
    result = Evaluation()
    rules = list(AlertRule.objects.filter(enabled=True).order_by("id"))
    result.rules = len(rules)
    org_wide = {r.organization_id for r in rules if r.webhook_id is None}
    single = {r.webhook_id for r in rules if r.webhook_id is not None}
    webhooks: dict[int, Webhook] = {}
    if rules:
        webhooks = {
            w.pk: w
            for w in Webhook.objects.filter(
                Q(organization_id__in=org_wide) | Q(pk__in=single)
            ).only("id", "organization_id", "public_id", "name", "url", "status")
        }
    by_org: dict[int, list[Webhook]] = defaultdict(list)
    for webhook in webhooks.values():
        by_org[webhook.organization_id].append(webhook)
    checks: list[tuple[AlertRule, Webhook]] = []
    for rule in rules:
        if rule.webhook_id is None:
            checks.extend((rule, w) for w in by_org[rule.organization_id])
        elif rule.webhook_id in webhooks:
            webhook = webhooks[rule.webhook_id]
            if webhook.organization_id == rule.organization_id:
                checks.append((rule, webhook))
    result.checks = len(checks)
    stats = _stats_by_window(checks, now)

    with transaction.atomic():
        open_alerts = {
            (a.rule_id, a.webhook_id): a
            for a in locked_open(Alert.objects.filter(kind=Alert.Kind.THRESHOLD))
        }
        to_open: list[Alert] = []
        measured: list[Alert] = []  # open ones, measured again
        recovered: list[Alert] = []
        evaluated = set()
        for rule, webhook in checks:
            key = (rule.pk, webhook.pk)
            evaluated.add(key)
            window = stats[rule.window_minutes][webhook.pk]
            value = metric_value(rule.metric, window)
            over = is_over(rule.metric, value, rule.threshold)
            current = open_alerts.get(key)
            if current is not None:
                current.current_value, current.evaluated_at = value, now
                measured.append(current)
                if not over:
                    recovered.append(current)
            elif (
                over
                and window.attempts >= rule.min_attempts
                # A disabled webhook has its own alert; no pile-up on top of it.
                and webhook.status != Webhook.Status.DISABLED
            ):
                to_open.append(
                    Alert(
                        organization_id=rule.organization_id,
                        rule=rule,
                        webhook=webhook,
                        kind=Alert.Kind.THRESHOLD,
                        metric=rule.metric,
                        value=value,
                        current_value=value,
                        evaluated_at=now,
                        threshold=rule.threshold,
                        window_minutes=rule.window_minutes,
                        message=describe(
                            rule.metric, value, rule.threshold, rule.window_minutes, window.attempts
                        ),
                        opened_at=now,
                    )
                )
        # Open alerts no rule stands behind any more: disabled, deleted or
        # retargeted in Django's admin, which bypasses update_rule.
        orphaned = [a for key, a in open_alerts.items() if key not in evaluated]
        # And webhook_disabled alerts of webhooks enabled there.
        reenabled = locked_open(
            Alert.objects.filter(kind=Alert.Kind.WEBHOOK_DISABLED).exclude(
                webhook__status=Webhook.Status.DISABLED
            )
        )
        Alert.objects.bulk_create(to_open)
        resolved = _resolved_events(
            [(a, "recovered") for a in recovered]
            + [(a, "rule_changed") for a in orphaned]
            + [(a, "webhook_enabled") for a in reenabled],
            now,
        )
        _save_evaluated(measured + orphaned + reenabled)
        publish_many(
            [alert_event(a, operational.ALERT_OPENED) for a in to_open] + resolved, now=now
        )
    result.opened, result.resolved = len(to_open), len(resolved)
    result.notices = notices.send_pending_notices()
    return result

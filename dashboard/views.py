"""Dashboard pages. Thin: data comes from dashboard.queries, changes go
through deliveries.actions and webhooks.validation, as the API's do."""

import dataclasses
import json
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh, trigger_client_event

from dashboard import charts, queries, signing
from dashboard.access import MEMBER, SESSION_KEY, access_required, memberships
from dashboard.forms import ApiKeyForm, ReplayForm, RuleForm, WebhookForm
from deliveries import actions, claiming, replay
from deliveries.models import Delivery, Event, Replay
from monitoring import alerts
from monitoring import stats as metrics
from monitoring.models import Alert, AlertRule
from webhooks import deletion, ids, patterns
from webhooks.errors import HeraldError
from webhooks.models import ApiKey, EventType, Webhook


def _get(model, request: HttpRequest, public_id: str, prefix: str, select: tuple = ()):
    """An object of the current organization, or 404 (whoever else owns it)."""
    if not ids.looks_like(public_id, prefix):
        raise Http404
    queryset = model.objects.filter(organization=request.organization, public_id=public_id)
    found = queryset.select_related(*select).first()
    if found is None:
        raise Http404
    return found


def _event_types(organization) -> list[str]:
    return list(EventType.objects.filter(organization=organization).values_list("name", flat=True))


@require_GET
@access_required
def overview(request):
    rows = queries.overview(request.organization, timezone.now())
    open_alerts = alerts.open_alerts_by_webhook([row.webhook for row in rows])
    for row in rows:
        row.sparkline = charts.sparkline(row.trend)
        row.alerts = open_alerts[row.webhook.pk]
    return render(request, "dashboard/overview.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@access_required(change=True)
def webhook_create(request):
    event_types = _event_types(request.organization)
    form = WebhookForm(request.POST or None, event_types=event_types)
    if request.method == "POST" and form.is_valid():
        webhook = Webhook.objects.create(organization=request.organization, **form.webhook_fields())
        messages.success(request, "Webhook created. Its signing secret is below.")
        return redirect("webhook", webhook_id=webhook.public_id)
    return render(request, "dashboard/webhook_form.html", {"form": form, "webhook": None})


@require_http_methods(["GET", "POST"])
@access_required(change=True)
def webhook_edit(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    event_types = _event_types(request.organization)
    form = WebhookForm(
        request.POST or None,
        event_types=event_types,
        initial=WebhookForm.initial_for(webhook, event_types),
    )
    if request.method == "POST" and form.is_valid():
        for name, value in form.webhook_fields().items():
            setattr(webhook, name, value)
        webhook.save()
        messages.success(request, "Webhook saved.")
        return redirect("webhook", webhook_id=webhook.public_id)
    return render(request, "dashboard/webhook_form.html", {"form": form, "webhook": webhook})


@require_GET
@access_required(change=True)
def pattern_preview(request):
    """Which known event types the typed patterns select."""
    typed = [
        p.strip()
        for p in request.GET.get("patterns", "").replace(",", "\n").splitlines()
        if p.strip()
    ]
    valid = [p for p in typed if patterns.is_valid_pattern(p)]
    invalid = [p for p in typed if not patterns.is_valid_pattern(p)]
    matched = [t for t in _event_types(request.organization) if patterns.matches_any(valid, t)]
    return render(
        request,
        "dashboard/partials/pattern_preview.html",
        {"matched": matched, "invalid": invalid, "typed": typed},
    )


def _log_filters(request) -> queries.LogFilters:
    get = request.GET
    return queries.LogFilters(
        status=get.get("status", ""),
        event_type=get.get("event_type", ""),
        since=get.get("since", ""),
        event_id=get.get("event_id", "").strip(),
        cursor=get.get("cursor", ""),
    )


@require_GET
@access_required
def webhook_detail(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    now = timezone.now()
    window = request.GET.get("chart", "24h")
    if window not in queries.CHART_WINDOWS:
        window = "24h"
    span, step = queries.CHART_WINDOWS[window]
    points = metrics.series([webhook.pk], now - span, now, step)[webhook.pk]
    # The tiles follow the chart's window, to the minute.
    stats = metrics.window_stats([webhook.pk], now - span, now)[webhook.pk]
    label = "%H:%M" if span <= queries.OVERVIEW_WINDOW else "%b %d"
    context = {
        "webhook": webhook,
        "stats": stats,
        "chart": charts.webhook_chart(points, label_format=label),
        "chart_window": window,
        "window_label": queries.WINDOW_LABELS[window],
        "chart_windows": list(queries.CHART_WINDOWS),
        "log": queries.delivery_log(webhook, _log_filters(request), now),
        "event_types": _event_types(request.organization),
        "statuses": Delivery.Status.values,
        "log_since": list(queries.LOG_SINCE),
        "open_alerts": alerts.open_alerts_by_webhook([webhook])[webhook.pk],
        "pressure": claiming.pressure(webhook, now),
        "replay_form": ReplayForm(
            initial={"since": (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")}
        ),
        "count": None,
    }
    return render(request, "dashboard/webhook_detail.html", context)


# What makes the log change on request (not its own polling): the address
# bar follows, so reload, back/forward and a shared link show the same rows.
LOG_NAVIGATION = {"log-filters", "log-older", "log-newer"}
# A delivery page refreshes itself while its next attempt is this close.
FOLLOW_AHEAD = timedelta(seconds=30)


@require_GET
@access_required
def webhook_log(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    filters = _log_filters(request)
    log = queries.delivery_log(webhook, filters, timezone.now())
    response = render(
        request, "dashboard/partials/delivery_log.html", {"webhook": webhook, "log": log}
    )
    if request.htmx.trigger in LOG_NAVIGATION:
        page_url = reverse("webhook", args=[webhook.public_id])
        query = request.GET.copy()
        response["HX-Push-Url"] = f"{page_url}?{query.urlencode()}" if query else page_url
    return response


def _back_to(request, webhook: Webhook) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("webhook", webhook_id=webhook.public_id)


def _log_changed(request, webhook: Webhook) -> HttpResponse:
    """After an action that adds to the delivery log: htmx gets no page, only
    word to refresh the log (herald:retried) and the action's messages (flash.py)."""
    if request.htmx:
        return trigger_client_event(HttpResponse(status=204), "herald:retried")
    return redirect("webhook", webhook_id=webhook.public_id)


@require_POST
@access_required(change=True)
def webhook_pause(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    actions.pause_webhook(webhook)
    messages.info(request, "Paused. New events wait as pending until you resume.")
    return _back_to(request, webhook)


@require_POST
@access_required(change=True)
def webhook_resume(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    actions.resume_webhook(webhook)
    messages.success(request, "Resumed. Waiting deliveries are on their way.")
    return _back_to(request, webhook)


@require_POST
@access_required(change=True)
def webhook_test(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    try:
        actions.send_test(webhook)
        messages.success(request, "Test event sent: watch it arrive in the log below.")
    except HeraldError as error:
        messages.error(request, error.message)
    return _log_changed(request, webhook)


@require_POST
@access_required(change=True)
def webhook_retry_failed(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    try:
        count = actions.retry_failed(webhook)
        messages.success(request, f"Retrying {count} failed deliver{'y' if count == 1 else 'ies'}.")
    except HeraldError as error:
        messages.error(request, error.message)
    return _log_changed(request, webhook)


@require_POST
@access_required(change=True)
def webhook_secret(request, webhook_id):
    """Reveal the secret, or with `hide`, mask it again."""
    webhook = _get(Webhook, request, webhook_id, "wh")
    revealed = request.POST.get("hide") != "1"
    return render(
        request, "dashboard/partials/secret.html", {"webhook": webhook, "revealed": revealed}
    )


@require_POST
@access_required(change=True)
def webhook_rotate(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().get(pk=webhook.pk)
        webhook.rotate_secret()
        webhook.save(update_fields=["secret", "previous_secrets", "updated_at"])
    messages.success(request, signing.rotation_notice(webhook, timezone.now()))
    if request.htmx:
        return render(
            request, "dashboard/partials/secret.html", {"webhook": webhook, "revealed": True}
        )
    return redirect("webhook", webhook_id=webhook.public_id)


def _replay_form(request, webhook: Webhook, *, status: int = 200, **context) -> HttpResponse:
    return render(
        request,
        "dashboard/partials/replay.html",
        {"webhook": webhook, "count": None, **context},
        status=status,
    )


@require_POST
@access_required(change=True)
def webhook_replay(request, webhook_id):
    """The Replay dialog's form: `count` shows how many events it would send;
    `confirm` starts it and shows its progress."""
    webhook = _get(Webhook, request, webhook_id, "wh")
    form = ReplayForm(request.POST)
    if not form.is_valid():
        return _replay_form(request, webhook, replay_form=form, status=422)
    criteria = form.criteria()
    try:
        if "confirm" not in request.POST:
            if criteria.until is None:
                # "To: now" is pinned to the moment counted, so the replay
                # sends the events counted, not those published meanwhile too.
                now = timezone.now().replace(microsecond=0)
                criteria = dataclasses.replace(criteria, until=now)
                data = request.POST.copy()
                data["until"] = now.strftime("%Y-%m-%dT%H:%M:%S")
                form = ReplayForm(data)
                form.is_valid()
            count = replay.count(webhook, criteria)
            return _replay_form(request, webhook, replay_form=form, count=count)
        started, is_new = replay.start(webhook, criteria)
    except HeraldError as error:
        form.show_error(error)
        return _replay_form(request, webhook, replay_form=form, status=422)
    return _replay_progress(request, started, is_new=is_new)


def _replay_progress(request, started: Replay, *, is_new: bool = True) -> HttpResponse:
    return render(
        request,
        "dashboard/partials/replay_progress.html",
        {"replay": started, "progress": replay.progress(started), "is_new": is_new},
    )


@require_GET
@access_required
def replay_progress(request, webhook_id, replay_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    found = _get(Replay, request, replay_id, "rpl")
    if found.webhook_id != webhook.pk:
        raise Http404
    return _replay_progress(request, found)


@require_http_methods(["GET", "POST"])
@access_required(change=True)
def webhook_delete(request, webhook_id):
    webhook = _get(Webhook, request, webhook_id, "wh")
    if request.method == "POST":
        name = str(webhook)
        deletion.delete_webhook(webhook)
        messages.success(request, f"Deleted {name} and its delivery history.")
        return redirect("overview")
    pending = Delivery.objects.filter(webhook=webhook, status=Delivery.Status.PENDING).count()
    return render(
        request, "dashboard/webhook_delete.html", {"webhook": webhook, "pending": pending}
    )


@require_GET
@access_required
def delivery_detail(request, delivery_id):
    delivery = _get(Delivery, request, delivery_id, "dlv", select=("webhook", "event"))
    attempts = list(delivery.attempt_set.order_by("-number"))
    payload = json.dumps(json.loads(delivery.event.data_json), indent=2, ensure_ascii=False)
    # An attempt due about now (a retry or resend just asked for): the page
    # follows it to its end, as the log's row does.
    following = (
        delivery.status == Delivery.Status.PENDING
        and delivery.next_attempt_at is not None
        and delivery.next_attempt_at <= timezone.now() + FOLLOW_AHEAD
    )
    return render(
        request,
        "dashboard/delivery_detail.html",
        {"delivery": delivery, "attempts": attempts, "payload": payload, "following": following},
    )


def _row(request, delivery: Delivery, status: int = 200) -> HttpResponse:
    delivery.event_public_id = delivery.event.public_id
    return render(
        request,
        "dashboard/partials/delivery_row.html",
        {"delivery": delivery, "webhook": delivery.webhook},
        status=status,
    )


@require_GET
@access_required
def delivery_row(request, delivery_id):
    return _row(request, _get(Delivery, request, delivery_id, "dlv", select=("webhook", "event")))


@require_POST
@access_required(change=True)
def delivery_retry(request, delivery_id):
    return _attempt_now(request, delivery_id, actions.retry_delivery, "Retrying now.")


@require_GET
@access_required
def events(request):
    search = queries.EventSearch.from_query(request.GET)
    page = queries.events_page(request.organization, search)
    context = {"page": page, "search": search, "event_types": _event_types(request.organization)}
    return render(request, "dashboard/events.html", context, status=422 if page.errors else 200)


@require_POST
@access_required(change=True)
def delivery_resend(request, delivery_id):
    return _attempt_now(request, delivery_id, actions.resend_delivery, "Resending now.")


def _attempt_now(request, delivery_id: str, action, done: str) -> HttpResponse:
    """Retry or resend: the row (htmx), or back to the delivery page."""
    delivery = _get(Delivery, request, delivery_id, "dlv", select=("webhook", "event"))
    try:
        delivery = action(delivery)
    except HeraldError as error:
        if request.htmx:
            response = _row(request, delivery)
            return trigger_client_event(response, "herald:error", {"message": error.message})
        messages.error(request, error.message)
        return redirect("delivery", delivery_id=delivery.public_id)
    messages.success(request, done)
    if request.htmx:
        # The row, pending again, polls itself until the attempt ends.
        return trigger_client_event(_row(request, delivery), "herald:retried")
    return redirect("delivery", delivery_id=delivery.public_id)


@require_GET
@access_required
def event_detail(request, event_id):
    event = _get(Event, request, event_id, "evt")
    deliveries = event.deliveries.select_related("webhook").order_by("id")
    payload = json.dumps(json.loads(event.data_json), indent=2, ensure_ascii=False)
    return render(
        request,
        "dashboard/event_detail.html",
        {"event": event, "deliveries": deliveries, "payload": payload},
    )


@require_http_methods(["GET", "POST"])
@access_required(portal=False)
def api_keys(request):
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST":
        if not request.access.can_change:
            raise PermissionDenied("This view is read-only: nothing here can be changed.")
        if form.is_valid():
            _, new_key = ApiKey.issue(request.organization, name=form.cleaned_data["name"])
            form = ApiKeyForm()
    keys = ApiKey.objects.filter(organization=request.organization).order_by("-created_at")
    return render(
        request, "dashboard/api_keys.html", {"form": form, "keys": keys, "new_key": new_key}
    )


@require_POST
@access_required(change=True, portal=False)
def api_key_revoke(request, key_id):
    key = _get(ApiKey, request, key_id, "key")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        messages.success(request, f"Revoked {key.prefix}…; requests with it now get 401.")
    return redirect("api_keys")


@require_POST
@access_required(portal=False)
def switch_organization(request):
    if request.access.via != MEMBER:
        raise Http404
    wanted = request.POST.get("organization", "")
    if not any(m.organization.public_id == wanted for m in memberships(request.user)):
        raise Http404
    request.session[SESSION_KEY] = wanted
    return redirect(reverse("overview"))


ALERT_HISTORY = 100


def _alerts_page(request, rule_form: RuleForm, status: int = 200) -> HttpResponse:
    organization = request.organization
    context = {
        "open_alerts": list(
            alerts.list_alerts(organization, state=Alert.State.OPEN)[:ALERT_HISTORY]
        ),
        "history": list(
            alerts.list_alerts(organization, state=Alert.State.RESOLVED)[:ALERT_HISTORY]
        ),
        "rules": list(alerts.list_rules(organization)),
        "form": rule_form,
    }
    return render(request, "dashboard/alerts.html", context, status=status)


def _webhooks(organization) -> list[Webhook]:
    return list(Webhook.objects.filter(organization=organization).order_by("name", "id"))


@require_GET
@access_required
def alerts_page(request):
    return _alerts_page(request, RuleForm(webhooks=_webhooks(request.organization)))


@require_POST
@access_required(change=True)
def rule_create(request):
    form = RuleForm(request.POST, webhooks=_webhooks(request.organization))
    if form.is_valid():
        try:
            alerts.create_rule(request.organization, **form.rule_fields())
            messages.success(request, "Rule added: it is checked every minute.")
            return redirect("alerts")
        except HeraldError as error:
            form.show_error(error)
    return _alerts_page(request, form, status=422)


@require_http_methods(["GET", "POST"])
@access_required(change=True)
def rule_edit(request, rule_id):
    rule = _get(AlertRule, request, rule_id, "rule", select=("webhook",))
    webhooks = _webhooks(request.organization)
    form = RuleForm(request.POST or None, webhooks=webhooks, initial=RuleForm.initial_for(rule))
    if request.method == "POST" and form.is_valid():
        try:
            alerts.update_rule(rule, **form.rule_fields())
            messages.success(request, "Rule saved.")
            return redirect("alerts")
        except HeraldError as error:
            form.show_error(error)
    return render(request, "dashboard/rule_form.html", {"form": form, "rule": rule})


@require_POST
@access_required(change=True)
def rule_delete(request, rule_id):
    alerts.delete_rule(_get(AlertRule, request, rule_id, "rule"))
    messages.success(request, "Rule deleted; its alerts stay in the history.")
    return redirect("alerts")

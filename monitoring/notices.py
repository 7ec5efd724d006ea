"""E-mail and chat notices of alerts that opened or resolved.

Two channels beside the operational events (operational.py):

- E-mail (Django's mail backends) to the organization's owners and admins.
- A Slack-compatible incoming webhook (`HERALD_SLACK_WEBHOOK_URL`, a JSON
  `{"text": …}` POST through the sender, so the SSRF guard applies).

E-mail and chat are sent by `send_pending_notices()` at the end of every alert
evaluation, one message per organization for all the alerts that opened or
resolved since the last one, so a hundred failing webhooks make one e-mail,
not a hundred. Alerts opened elsewhere (a webhook disabled by the dispatcher)
are told by the next evaluation, within HERALD_ALERT_INTERVAL_SECONDS.
"""

import json
import logging
from collections import defaultdict
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F

from deliveries import sender
from monitoring.models import Alert
from webhooks.models import Membership

log = logging.getLogger(__name__)

# Lines per section of an e-mail or chat message; the rest is counted.
MAX_LISTED = 50
SLACK_TIMEOUT_SECONDS = 10


def send_pending_notices(limit: int = 5000) -> int:
    """Tell people about alerts that opened or resolved since the last call:
    one e-mail (and one chat message) per organization. Returns how many
    alerts were covered.

    A notice is marked sent before it goes out, so a mail server that is down
    loses it rather than repeating it every minute; the alert itself stays in
    the dashboard, the API and the operational events.
    """
    with transaction.atomic():
        alerts = list(
            Alert.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(notice_pending=True)
            .select_related("organization", "webhook")
            .order_by("id")[:limit]
        )
        if not alerts:
            return 0
        Alert.objects.filter(pk__in=[a.pk for a in alerts]).update(
            notice_pending=False, notified_state=F("state")
        )

    by_org: dict[int, tuple[list[Alert], list[Alert]]] = defaultdict(lambda: ([], []))
    organizations = {}
    for alert in alerts:
        organizations[alert.organization_id] = alert.organization
        opened, resolved = by_org[alert.organization_id]
        if not alert.notified_state:
            opened.append(alert)
        if alert.state == Alert.State.RESOLVED:
            resolved.append(alert)

    recipients = defaultdict(list)
    for org_id, email in (
        Membership.objects.filter(
            organization_id__in=by_org,
            role__in=(Membership.Role.OWNER, Membership.Role.ADMIN),
            user__is_active=True,
        )
        .exclude(user__email="")
        .order_by("id")
        .values_list("organization_id", "user__email")
    ):
        recipients[org_id].append(email)

    messages = []
    for org_id, (opened, resolved) in sorted(by_org.items()):
        organization = organizations[org_id]
        # One line: a newline in a name would make the header invalid.
        subject = " ".join(f"[Herald] {organization.name}: {_summary(opened, resolved)}".split())
        if recipients[org_id]:
            messages.append(
                EmailMessage(
                    subject, _email_body(organization, opened, resolved), to=recipients[org_id]
                )
            )
        if settings.HERALD_SLACK_WEBHOOK_URL:
            _post_to_chat(_chat_text(organization, opened, resolved))
    if messages:
        try:
            get_connection(fail_silently=False).send_messages(messages)
        except Exception:  # a mail server problem must not stop the evaluation
            log.exception("could not send %d alert e-mails", len(messages))
    return len(alerts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(opened: list[Alert], resolved: list[Alert]) -> str:
    parts = []
    if opened:
        parts.append(f"{_plural(len(opened), 'alert')} opened")
    if resolved:
        parts.append(f"{_plural(len(resolved), 'alert')} resolved")
    return ", ".join(parts)


def _describe(alert: Alert) -> str:
    webhook = alert.webhook
    what = alert.message or alert.get_kind_display()
    if alert.kind == Alert.Kind.WEBHOOK_DISABLED:
        what = f"disabled by Herald. {what}"
    elif alert.state == Alert.State.RESOLVED and alert.current_value is not None:
        # The message tells what opened it; a resolved one says where it stands now.
        what = f"{what} Now {alert.latest_value_text()}."
    name = webhook.name or urlsplit(webhook.url).hostname or "webhook"
    return f"{name} ({webhook.public_id}): {what}"


def _section(title: str, alerts: list[Alert], line) -> list[str]:
    if not alerts:
        return []
    lines = [f"{title} ({len(alerts)}):"]
    lines += [line(alert) for alert in alerts[:MAX_LISTED]]
    if len(alerts) > MAX_LISTED:
        lines.append(f"… and {len(alerts) - MAX_LISTED} more.")
    return [*lines, ""]


def _email_body(organization, opened: list[Alert], resolved: list[Alert]) -> str:
    lines = [f"Herald alerts for {organization.name} ({organization.public_id}).", ""]
    lines += _section(
        "Opened",
        opened,
        lambda a: f"- {_describe(a)} Opened {a.opened_at:%Y-%m-%d %H:%M} UTC. [{a.public_id}]",
    )
    lines += _section(
        "Resolved",
        resolved,
        lambda a: f"- {_describe(a)} Resolved {a.resolved_at:%Y-%m-%d %H:%M} UTC. [{a.public_id}]",
    )
    lines.append("Open alerts: the dashboard's Alerts page, or GET /api/v1/alerts?state=open.")
    return "\n".join(lines)


def _escape_chat(text: str) -> str:
    # Slack's mrkdwn reads &, < and > as markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chat_text(organization, opened: list[Alert], resolved: list[Alert]) -> str:
    lines = [f"*Herald* · {_escape_chat(organization.name)}: {_summary(opened, resolved)}"]
    lines += [f":red_circle: {_escape_chat(_describe(a))}" for a in opened[:MAX_LISTED]]
    lines += [f":large_green_circle: {_escape_chat(_describe(a))}" for a in resolved[:MAX_LISTED]]
    hidden = max(0, len(opened) - MAX_LISTED) + max(0, len(resolved) - MAX_LISTED)
    if hidden:
        lines.append(f"… and {hidden} more.")
    return "\n".join(lines)


def _post_to_chat(text: str) -> None:
    body = json.dumps({"text": text}, ensure_ascii=False).encode()
    outcome = sender.post(
        settings.HERALD_SLACK_WEBHOOK_URL,
        body,
        {"Content-Type": "application/json", "User-Agent": sender.user_agent()},
        timeout=SLACK_TIMEOUT_SECONDS,
    )
    if not outcome.succeeded:
        log.warning(
            "the chat webhook refused an alert notice: %s",
            outcome.error_message or outcome.status_code,
        )

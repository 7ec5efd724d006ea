import json

from django import template
from django.utils import timezone

from dashboard import signing
from dashboard.charts import tone
from deliveries import failures
from monitoring import units

register = template.Library()


@register.filter
def percent(value) -> str:
    return units.percent_text(value)


@register.filter
def ms(value) -> str:
    # The units of the tiles, the chart's axis and the alerts alike.
    return units.latency_text(value)


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def rate_tone(value) -> str:
    return tone(value)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current query string with some parameters changed (None removes)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag
def attempt_error(attempt, webhook) -> str:
    """An attempt's failure as a sentence (its raw text stays in error_message)."""
    return failures.describe(
        attempt.error_kind,
        attempt.error_message,
        url=webhook.url,
        timeout_seconds=webhook.timeout_seconds,
        status_code=attempt.response_status,
    )


@register.simple_tag
def delivery_error(delivery, webhook) -> str:
    """A delivery's last failure as a sentence, from what its row keeps (no raw text)."""
    return failures.describe(
        delivery.last_error_kind,
        url=webhook.url,
        timeout_seconds=webhook.timeout_seconds,
        status_code=delivery.last_status_code,
    )


@register.filter
def previous_secrets_until(webhook) -> list:
    """When each of the webhook's previous secrets still signing stops, latest first."""
    return signing.previous_secrets_until(webhook, timezone.now())

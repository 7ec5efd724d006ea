"""The signing secret's panel: how long the secrets a rotation replaced keep
signing (HERALD_SECRET_GRACE_HOURS), said in the notice of a rotation and
under the secret."""

from datetime import UTC, datetime

from django.utils import dateformat

from webhooks.models import Webhook

# "2 Dec 2026, 18:04" (followed by "UTC"), in Python and in templates alike.
UNTIL_FORMAT = "j M Y, H:i"


def previous_secrets_until(webhook: Webhook, now: datetime) -> list[datetime]:
    """When each previous secret still signing stops, latest first."""
    until = [datetime.fromisoformat(old["expires_at"]) for old in webhook.previous_secrets]
    return sorted((moment for moment in until if moment > now), reverse=True)


def when(moment: datetime) -> str:
    return f"{dateformat.format(moment.astimezone(UTC), UNTIL_FORMAT)} UTC"


def rotation_notice(webhook: Webhook, now: datetime) -> str:
    """What a rotation did, right after it (rotate_secret keeps the replaced
    secret first in previous_secrets, unless the grace period is zero)."""
    until = previous_secrets_until(webhook, now)
    if not until:
        return "Secret rotated. The previous secret no longer signs (no grace period is set)."
    return f"Secret rotated. The previous secret keeps signing until {when(until[0])}."

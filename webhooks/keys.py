"""Finding the key a request presents: an organization's (`hk_…`) or the
platform's (`hp_…`)."""

from datetime import timedelta

from django.utils import timezone

from webhooks.models import (
    API_KEY_PREFIX,
    PLATFORM_KEY_PREFIX,
    ApiKey,
    PlatformKey,
    hash_api_key,
)

LAST_USED_PRECISION = timedelta(minutes=1)


def find_api_key(raw_key: str) -> ApiKey | None:
    """The active key with this value, or None; notes when it was last used
    (to the minute, so a busy key is not a write per request)."""
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) > 100:
        return None
    key = (
        ApiKey.objects.select_related("organization")
        .filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True)
        .first()
    )
    if key is not None:
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def find_platform_key(raw_key: str) -> PlatformKey | None:
    """The active platform key with this value, or None."""
    if not raw_key.startswith(PLATFORM_KEY_PREFIX) or len(raw_key) > 100:
        return None
    key = PlatformKey.objects.filter(
        key_hash=hash_api_key(raw_key), revoked_at__isnull=True
    ).first()
    if key is not None:
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
            PlatformKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key

"""API authentication: `Authorization: Bearer hk_…` organization keys, each
under its own rate limit (webhooks.ratelimit)."""

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from webhooks import ratelimit
from webhooks.models import API_KEY_PREFIX, ApiKey, hash_api_key

LAST_USED_PRECISION = timedelta(minutes=1)


def find_api_key(raw_key: str) -> ApiKey | None:
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


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = find_api_key(token.strip())
        if key is not None:
            # Raises RateLimited (429) when the key is over its limit.
            request.rate_limit = ratelimit.hit(key.public_id)
            request.organization = key.organization
        return key

"""API authentication: `Authorization: Bearer hk_…` organization keys, each
under its own rate limit (ratelimit.py)."""

from django.http import HttpRequest
from ninja.security import HttpBearer

from api import ratelimit
from webhooks.keys import find_api_key
from webhooks.models import ApiKey


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = find_api_key(token.strip())
        if key is not None:
            # Raises RateLimited (429) when the key is over its limit.
            request.rate_limit = ratelimit.hit(key.public_id)
            request.organization = key.organization
        return key

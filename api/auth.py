"""API authentication (SPEC §8, §10).

- `OrganizationAuth`, every organization-scoped operation: an organization
  key (`Authorization: Bearer hk_…`), or a platform key (`hp_…`) naming the
  organization it acts for in the `Herald-Organization` header (its `org_…`
  id or external id). Without the header a platform key gets a 400 naming
  it; an organization that does not exist is a 404.
- `PlatformAuth`, the platform-only operations (organizations, portal
  sessions): a platform key; an organization key gets a 403.

Each key is counted against its rate limit (ratelimit.py), in the bucket of
the operation: publishing, or everything else. What a token and a header
name is remembered between requests (credentials.py).
"""

import copy

from django.http import HttpRequest
from ninja.security import HttpBearer

from api import credentials, ratelimit
from webhooks.errors import HeraldError
from webhooks.keys import find_api_key, find_platform_key
from webhooks.models import PLATFORM_KEY_PREFIX, ApiKey, PlatformKey, hash_api_key
from webhooks.organizations import find_organization

ORGANIZATION_HEADER = "Herald-Organization"


class OrganizationAuth(HttpBearer):
    def __init__(self, bucket: str = ratelimit.MANAGE) -> None:
        super().__init__()
        self.bucket = bucket

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | PlatformKey | None:
        token = token.strip()
        epoch = credentials.current_epoch()
        if not token.startswith(PLATFORM_KEY_PREFIX):
            key = credentials.remembered(
                "key", hash_api_key(token), epoch, lambda: find_api_key(token)
            )
            if key is None:
                return None
            # Raises RateLimited (429) when the key is over its limit.
            request.rate_limit = ratelimit.hit_key(key.public_id, self.bucket, platform=False)
            request.organization = copy.copy(key.organization)  # shared by the memo
            return key
        platform_key = credentials.remembered(
            "platform key", hash_api_key(token), epoch, lambda: find_platform_key(token)
        )
        if platform_key is None:
            return None
        request.rate_limit = ratelimit.hit_key(platform_key.public_id, self.bucket, platform=True)
        named = (request.headers.get(ORGANIZATION_HEADER) or "").strip()
        if not named:
            raise HeraldError(
                "A platform key acts for one organization per call: name it in the "
                f"{ORGANIZATION_HEADER} header (its org_… id or your external id).",
                ORGANIZATION_HEADER,
                status=400,
                code="organization_required",
            )
        request.organization = credentials.remembered(  # NotFound: 404
            "organization", named, epoch, lambda: find_organization(named)
        )
        request.platform_key = platform_key
        return platform_key


class PlatformAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> PlatformKey | None:
        token = token.strip()
        platform_key = find_platform_key(token)
        if platform_key is not None:
            request.rate_limit = ratelimit.hit_key(
                platform_key.public_id, ratelimit.MANAGE, platform=True
            )
            request.platform_key = platform_key
            return platform_key
        if find_api_key(token) is not None:
            raise HeraldError(
                "This operation needs a platform key (hp_…): organization keys act for "
                "their own organization only.",
                status=403,
                code="forbidden",
            )
        return None

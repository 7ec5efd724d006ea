"""Per-API-key rate limiting: a sliding window counted in Redis.

Each key has two buckets, each with its own limit per
`HERALD_API_RATE_WINDOW_SECONDS` (0 turns a limit off): publishing
(`POST /events` and `/events/batch`) and everything else ("manage");
platform keys, which act for every organization, have their own limits
(see LIMIT_SETTINGS and README: they are set well above what a busy product
sends, so that only a runaway client meets them). The window slides:
the count is this fixed window's requests plus the previous window's, weighted
by how much of it still overlaps the last `window` seconds (the "sliding window
counter" of Cloudflare and others). Two small integers per key and window, one
round trip (a Lua script, so concurrent requests on any number of web
processes cannot both take the last slot), and no burst of twice the limit at
a window boundary as a plain fixed window allows.

Redis is the queue's (deliveries.wakeup.queue().connection). When it cannot be
reached the API keeps answering: the limit fails open, says so in the log (at
most once a minute), and leaves Redis alone for FAIL_OPEN_SECONDS, so that a
down Redis (whose client retries before it gives up) slows one request per
interval and process, not every request.

Why not django-ninja's `ninja.throttling`: its throttles keep a list of request
timestamps in Django's cache and read-modify-write it (get, then set), which
is not atomic across processes, stores one entry per request, and raises (a
500) when the cache is down; this project has no shared cache configured
either. The check runs inside the API key authentication instead
(api.auth), which is where the key is known.
"""

import logging
import math
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from deliveries.wakeup import queue
from webhooks.errors import HeraldError

log = logging.getLogger(__name__)

KEY_PREFIX = "herald:ratelimit:"
FAIL_OPEN_SECONDS = 15
FAIL_OPEN_LOG_SECONDS = 60

# KEYS: the previous window's counter, the current window's counter.
# ARGV: limit, window seconds, seconds elapsed in the current window.
# Returns {allowed (0/1), previous count, current count (after this request)}.
_SCRIPT = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * (window - elapsed) / window + current + 1 > limit then
  return {0, previous, current}
end
current = redis.call('INCR', KEYS[2])
if current == 1 then
  redis.call('EXPIRE', KEYS[2], window * 2 + 1)
end
return {1, previous, current}
"""


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining)}


class RateLimited(HeraldError):
    status = 429
    code = "rate_limited"

    def __init__(self, quota: Quota, retry_after: int):
        super().__init__(
            f"More than {quota.limit} requests in {window_seconds()} s with this API key; "
            f"retry in {retry_after} s."
        )
        self.quota = quota
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after), **self.quota.headers()}


MANAGE = "manage"
PUBLISH = "publish"
# (bucket, platform key?) → the setting holding its limit per window.
LIMIT_SETTINGS = {
    (MANAGE, False): "HERALD_API_RATE_LIMIT",
    (PUBLISH, False): "HERALD_API_PUBLISH_RATE_LIMIT",
    (MANAGE, True): "HERALD_PLATFORM_RATE_LIMIT",
    (PUBLISH, True): "HERALD_PLATFORM_PUBLISH_RATE_LIMIT",
}


def limit(bucket: str = MANAGE, platform: bool = False) -> int:
    return max(0, int(getattr(settings, LIMIT_SETTINGS[bucket, platform]) or 0))


def hit_key(key_id: str, bucket: str, *, platform: bool) -> "Quota | None":
    """Count one request of this key in this bucket (see hit)."""
    counter = key_id if bucket == MANAGE else f"{key_id}/{bucket}"
    return hit(counter, allowed=limit(bucket, platform))


def window_seconds() -> int:
    return max(1, int(settings.HERALD_API_RATE_WINDOW_SECONDS))


def _connection():
    return queue().connection


_script = None
_script_connection = None
_last_failure_logged = 0.0
_redis_skipped_until = 0.0


def _registered_script(connection):
    global _script, _script_connection
    if _script is None or _script_connection is not connection:
        _script = connection.register_script(_SCRIPT)
        _script_connection = connection
    return _script


def retry_after(limit: int, window: int, elapsed: float, previous: int, current: int) -> int:
    """Whole seconds until one more request fits under the sliding count."""
    if current + 1 <= limit:
        # This window still has room once enough of the previous one slides out:
        # previous * (window - t) / window + current + 1 <= limit.
        wait = window - (limit - current - 1) * window / previous - elapsed
    else:
        # Wait for the next window, then for enough of this one to slide out.
        wait = (window - elapsed) + max(0.0, window - (limit - 1) * window / current)
    return max(1, math.ceil(wait))


def hit(key_id: str, now: float | None = None, *, allowed: int | None = None) -> Quota | None:
    """Count one request against counter `key_id`, which may make `allowed`
    per window (by default the organization keys' management limit). Returns
    the quota left, None when limiting is off or Redis is unavailable; raises
    RateLimited when over."""
    allowed_per_window = limit() if allowed is None else allowed
    if not allowed_per_window:
        return None
    if time.monotonic() < _redis_skipped_until:
        return None
    window = window_seconds()
    now = time.time() if now is None else now
    index, elapsed = divmod(now, window)
    keys = [f"{KEY_PREFIX}{key_id}:{int(index) - 1}", f"{KEY_PREFIX}{key_id}:{int(index)}"]
    try:
        connection = _connection()
        allowed, previous, current = _registered_script(connection)(
            keys=keys, args=[allowed_per_window, window, elapsed], client=connection
        )
    except redis.RedisError:
        _log_failure()
        return None
    used = previous * (window - elapsed) / window + current
    quota = Quota(allowed_per_window, max(0, math.floor(allowed_per_window - used)))
    if not allowed:
        raise RateLimited(
            quota, retry_after(allowed_per_window, window, elapsed, previous, current)
        )
    return quota


def _log_failure() -> None:
    global _last_failure_logged, _redis_skipped_until
    now = time.monotonic()
    _redis_skipped_until = now + FAIL_OPEN_SECONDS
    if now - _last_failure_logged >= FAIL_OPEN_LOG_SECONDS or not _last_failure_logged:
        _last_failure_logged = now
        log.warning("API rate limit not applied: Redis is unavailable", exc_info=True)

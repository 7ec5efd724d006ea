"""Who a bearer token and a `Herald-Organization` header name, remembered.

Looking up the key (one query) and the organization a platform key names
(another) took a third of the CPU time of a publish. This process remembers
what it found for up to MEMO_SECONDS, and trusts it only while the
credentials epoch in Redis is the one it read before looking: every save or
delete of a key or an organization, in any process, sets a new epoch, on the
spot and again at commit (a reader in between saw the row as it was). The
epoch is read at most every EPOCH_SECONDS, so a revoked key, a changed
external id or a deleted organization is looked up afresh within a tenth of
a second everywhere (at once in the process that changed it), for one Redis
GET per tenth of a second instead of two SQL queries per request. Without
Redis nothing is remembered.
"""

import copy
import logging
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from deliveries.wakeup import queue
from webhooks.models import ApiKey, Organization, PlatformKey

log = logging.getLogger(__name__)

EPOCH_KEY = "herald:credentials:epoch"
MEMO_SECONDS = 30.0
EPOCH_SECONDS = 0.1
MEMO_MAX = 1000
# After Redis fails, this long without asking it again (as ratelimit.py does).
UNAVAILABLE_SECONDS = 5.0

T = TypeVar("T")

# (kind, value) -> (what was found, when, the epoch read before looking)
_memo: dict[tuple[str, str], tuple[object, float, str]] = {}
_unavailable_until = 0.0
_epoch_read: tuple[str, float] | None = None  # (epoch, when read)


def current_epoch() -> str | None:
    """The epoch (as read less than EPOCH_SECONDS ago), or None when Redis
    cannot say: then nothing is trusted."""
    global _unavailable_until, _epoch_read
    now = time.monotonic()
    read = _epoch_read
    if read is not None and now - read[1] < EPOCH_SECONDS:
        return read[0]
    if now < _unavailable_until:
        return None
    try:
        value = queue().connection.get(EPOCH_KEY)
    except redis.RedisError:
        _unavailable_until = now + UNAVAILABLE_SECONDS
        _epoch_read = None
        _memo.clear()
        return None
    epoch = value.decode() if value else ""
    _epoch_read = (epoch, now)
    return epoch


def remembered(
    kind: str, value: str, epoch: str | None, look_up: Callable[[], T | None]
) -> T | None:
    """What look_up() finds for `value`, from memory when this process found
    it less than MEMO_SECONDS ago in this same epoch. Only what was found is
    remembered; look_up's exceptions pass through. Each caller gets its own
    copy of the object (a shallow one: its related objects, such as an API
    key's organization, are shared by every thread, and only read)."""
    if epoch is None:
        return look_up()
    now = time.monotonic()
    entry = _memo.get((kind, value))
    if entry is not None and entry[2] == epoch and now - entry[1] < MEMO_SECONDS:
        return copy.copy(entry[0])
    found = look_up()
    if found is not None:
        if len(_memo) >= MEMO_MAX:
            _memo.clear()
        _memo[(kind, value)] = (copy.copy(found), now, epoch)
    return found


def new_epoch() -> None:
    """Make every process look its credentials up again."""
    global _epoch_read
    try:
        queue().connection.set(EPOCH_KEY, uuid.uuid4().hex)
    except redis.RedisError:
        # Other processes cannot read the epoch either, so they trust nothing
        # remembered; if only this one cannot reach Redis, MEMO_SECONDS bounds it.
        log.warning("could not set a new credentials epoch", exc_info=True)
    # After the new epoch is set: what this process reads from now on is new.
    _epoch_read = None
    _memo.clear()


def forget() -> None:
    """Drop what this process remembers. Tests call it between tests: a
    rolled-back or truncated row goes without the signals that set a new epoch."""
    global _epoch_read
    _epoch_read = None
    _memo.clear()


def credentials_changed(sender, instance, created: bool = False, **kwargs) -> None:
    if created:
        return  # nobody can have remembered a row that did not exist
    new_epoch()
    transaction.on_commit(new_epoch)


def connect() -> None:
    """Listen to every change of a key or an organization (AppConfig.ready)."""
    for model in (ApiKey, PlatformKey, Organization):
        for signal in (post_save, post_delete):
            signal.connect(
                credentials_changed,
                sender=model,
                dispatch_uid=f"credentials-{signal is post_save}-{model.__name__}",
            )

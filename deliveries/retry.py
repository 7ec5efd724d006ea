"""When to try again: the retry schedule, jitter and Retry-After."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings

RETRY_AFTER_STATUSES = frozenset({429, 503})
GONE = 410


def scheduled_delay(attempt_number: int, schedule: list[float] | None = None) -> float:
    """Seconds between the previous attempt and attempt `attempt_number` (1-based).

    Attempt 1 waits schedule[0]; beyond the list its last delay repeats.
    """
    schedule = schedule if schedule is not None else settings.HERALD_RETRY_SCHEDULE
    return schedule[min(attempt_number, len(schedule)) - 1]


def with_jitter(delay: float, jitter: float, rng: random.Random | None = None) -> float:
    if delay <= 0 or jitter <= 0:
        return delay
    rng = rng or random
    return delay * (1 + rng.uniform(-jitter, jitter))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Plan:
    """What a failed attempt leads to."""

    give_up: bool
    retry_at: datetime | None = None
    disable_webhook: bool = False


def plan_after_failure(
    *,
    attempt_number: int,
    max_attempts: int,
    status_code: int | None,
    retry_after: str | None,
    now: datetime,
    schedule: list[float] | None = None,
    jitter: float | None = None,
    rng: random.Random | None = None,
) -> Plan:
    if status_code == GONE:
        return Plan(give_up=True, disable_webhook=True)
    if attempt_number >= max_attempts:
        return Plan(give_up=True)
    jitter = settings.HERALD_RETRY_JITTER if jitter is None else jitter
    delay = scheduled_delay(attempt_number + 1, schedule)
    if status_code in RETRY_AFTER_STATUSES:
        asked = parse_retry_after(retry_after, now)
        if asked is not None:
            # The receiver may push the retry later, never more than twice the
            # schedule, so one header cannot stall a delivery for days.
            delay = max(delay, min(asked, 2 * delay))
            return Plan(give_up=False, retry_at=now + timedelta(seconds=delay))
    return Plan(give_up=False, retry_at=now + timedelta(seconds=with_jitter(delay, jitter, rng)))

"""Pacing: the moment a rate-limited webhook's request may start, kept in
the sending process itself.

A claim gives each request of a webhook with `rate_limit` R a start time
(`Claimed.not_before`) spaced RATE_SPACING_MARGIN / R from the one before.
Those times hold only if every thread starts on time. A stall of the whole
process (a long pause for the GIL, a slow page-in) wakes all its waiting
threads together, and their requests would leave in one burst, more than R
in a second. So each thread also waits here for the spacing after the
previous start of its webhook in this process, as it actually happened.
Threads then start one spacing apart after a stall, never together.
"""

import threading
import time

_lock = threading.Lock()
# Webhook id -> Unix time of the last start granted in this process.
_last_start: dict[int, float] = {}


def wait_for_start(webhook_id: int, not_before: float, spacing: float) -> float:
    """Sleep until this request may start: not before `not_before`, and with
    a spacing (seconds, 0 for none), at least `spacing` after the previous
    start of the same webhook in this process. Returns the start time."""
    if not spacing:
        # No rate limit: nothing to share with other threads, no lock taken.
        wait = not_before - time.time()
        if wait > 0:
            time.sleep(wait)
        return time.time()
    while True:
        with _lock:
            now = time.time()
            earliest = max(not_before, _last_start.get(webhook_id, 0.0) + spacing)
            if now >= earliest:
                _last_start[webhook_id] = now
                return now
        time.sleep(earliest - now)

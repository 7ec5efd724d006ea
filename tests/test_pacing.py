"""pacing.wait_for_start: a rate-limited webhook's requests start one
spacing apart in the sending process, even when a stall made them all late."""

import itertools
import threading
import time

import pytest

from deliveries import pacing

# Each test paces webhook ids of its own: the last starts are the process's.
_ids = itertools.count(10**12)


def start_together(calls: list[tuple[int, float, float]]) -> list[float]:
    """Run each (webhook_id, not_before, spacing) in a thread of its own,
    released at one instant, as a stall releases its waiting threads."""
    gate = threading.Barrier(len(calls))
    starts: list[float] = [0.0] * len(calls)

    def run(index: int, call: tuple[int, float, float]) -> None:
        gate.wait()
        starts[index] = pacing.wait_for_start(*call)

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return starts


def test_requests_made_late_by_a_stall_still_start_one_spacing_apart():
    webhook_id, spacing = next(_ids), 0.05
    now = time.time()
    # Their claim spaced them 0.05 s apart, and all three times have passed.
    late = [(webhook_id, now - 0.3 + i * spacing, spacing) for i in range(3)]
    starts = sorted(start_together(late))
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(gap >= spacing for gap in gaps), gaps
    # No more than the spacing requires: the first goes at once.
    assert starts[0] - now < spacing


def test_a_start_waits_for_its_claimed_time():
    webhook_id = next(_ids)
    not_before = time.time() + 0.1
    assert pacing.wait_for_start(webhook_id, not_before, 0.0) >= not_before


def test_webhooks_are_paced_each_on_its_own():
    now = time.time()
    first, second = next(_ids), next(_ids)
    starts = start_together([(first, now, 1.0), (second, now, 1.0)])
    assert abs(starts[0] - starts[1]) < 0.5


def test_without_a_rate_limit_nothing_waits():
    webhook_id = next(_ids)
    now = time.time()
    starts = start_together([(webhook_id, now, 0.0)] * 5)
    assert max(starts) - now < 0.5


@pytest.mark.parametrize("spacing", [0.02, 0.1])
def test_a_start_follows_the_previous_one_by_the_spacing(spacing):
    webhook_id = next(_ids)
    first = pacing.wait_for_start(webhook_id, 0.0, spacing)
    second = pacing.wait_for_start(webhook_id, 0.0, spacing)
    assert second - first >= spacing

"""ahead.Waiting: deliveries taken ahead wait in the sending process for a
request of their webhook to succeed, and start in its place; the rest is
given back. (The dispatcher's use of it: test_fairness.TestTakingAhead.)"""

import time
from datetime import UTC, datetime

import pytest

from deliveries import ahead
from deliveries.claiming import Claimed, Target

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = pytest.mark.embedded


def taken(delivery_id: int, webhook_id: int, *, seconds_ago: float = 0.0) -> Claimed:
    target = Target(
        id=webhook_id,
        public_id=f"wh_{webhook_id}",
        organization_public_id="org_1",
        url="http://127.0.0.1:9/",
        headers={},
        secrets=[],
        timeout=10.0,
        verify_tls=True,
        signature_style="standard",
        signature_header="",
        max_attempts=3,
        ordered=False,
        start_spacing=0.0,
    )
    return Claimed(
        delivery_id=delivery_id,
        attempt_number=1,
        trigger="auto",
        event_public_id=f"evt_{delivery_id}",
        event_type="x.created",
        event_created_at=datetime.now(UTC),
        data_json="{}",
        target=target,
        claimed_at=time.time() - seconds_ago,
    )


def test_each_starts_in_place_of_one_of_its_own_webhook_oldest_first():
    queued = ahead.Waiting(fresh_for=15)
    queued.add([taken(1, 7), taken(2, 8), taken(3, 7)])
    assert queued.counts() == {7: 2, 8: 1}
    assert [queued.next(7).delivery_id, queued.next(7).delivery_id] == [1, 3]
    assert queued.next(7) is None
    assert queued.next(9) is None
    assert queued.given_back() == []


def test_one_that_waited_too_long_is_given_back_and_the_next_fresh_one_starts():
    queued = ahead.Waiting(fresh_for=15)
    queued.add([taken(1, 7, seconds_ago=20), taken(2, 7)])
    assert queued.next(7).delivery_id == 2
    assert [item.delivery_id for item in queued.given_back()] == [1]
    assert queued.given_back() == []  # once each


def test_what_a_webhook_had_waiting_is_given_back_on_request():
    queued = ahead.Waiting(fresh_for=15)
    queued.add([taken(1, 7), taken(2, 8), taken(3, 7)])
    queued.take_back([7])
    assert [item.delivery_id for item in queued.given_back()] == [1, 3]
    assert queued.counts() == {8: 1}


def test_once_closed_nothing_more_starts_and_all_is_given_back():
    queued = ahead.Waiting(fresh_for=15)
    queued.add([taken(1, 7), taken(2, 8)])
    queued.close()
    assert queued.next(7) is None
    assert sorted(item.delivery_id for item in queued.given_back()) == [1, 2]
    assert queued.counts() == {}


def test_it_runs_low_once_half_of_what_a_claim_left_has_gone():
    queued = ahead.Waiting(fresh_for=15)
    assert not queued.running_low()  # nothing taken ahead: no reason to claim
    queued.add([taken(i, 7) for i in range(4)])
    queued.next(7)
    assert not queued.running_low()
    queued.next(7)
    assert queued.running_low()
    queued.add([])  # a claim that took nothing more: half of the two left
    assert not queued.running_low()


def test_one_that_waited_too_long_goes_back_even_if_its_webhook_has_no_success():
    # Its lease must still be the worker's when it is given back.
    queued = ahead.Waiting(fresh_for=15)
    queued.add([taken(1, 7, seconds_ago=20), taken(2, 7), taken(3, 8, seconds_ago=16)])
    assert [item.delivery_id for item in queued.given_back()] == [1, 3]
    assert queued.counts() == {7: 1}
    assert queued.given_back() == []

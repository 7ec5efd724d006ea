"""Fair claiming (SPEC §3): per-webhook caps, rate limits and ordered
webhooks, decided in claiming.claim, in this process against the test
database; the multi-process guarantees are in test_fairness_processes.py."""

import re
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries import actions, claiming, dispatch, lanes
from deliveries.models import Delivery, Lane, Lease
from deliveries.publishing import publish
from tests.conftest import deliver_due, error_of
from tests.factories import MembershipFactory, WebhookFactory, lease, leased_until
from tests.receiver import Answer
from webhooks.models import Membership, Webhook

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
pytestmark = pytest.mark.embedded


def hook(org, receiver, path, **fields) -> Webhook:
    fields.setdefault("event_patterns", [f"{path.strip('/')}.*"])
    return WebhookFactory(organization=org, url=receiver.url(path), **fields)


def publish_to(org, path: str, count: int) -> None:
    for i in range(count):
        publish(org, f"{path.strip('/')}.created", {"i": i})


def claimed_by_webhook(claimed) -> dict[int, int]:
    counts: dict[int, int] = {}
    for item in claimed:
        counts[item.target.id] = counts.get(item.target.id, 0) + 1
    return counts


class TestCapsAndSharing:
    def test_a_webhook_at_its_cap_is_skipped_not_waited_on(self, org, receiver):
        slow = hook(org, receiver, "/a", max_in_flight=2)
        quick = hook(org, receiver, "/b")
        publish_to(org, "/a", 10)
        publish_to(org, "/b", 3)
        # One claim takes half a cap at most (several workers share a webhook).
        assert claimed_by_webhook(dispatch.claim(50)) == {slow.pk: 1, quick.pk: 3}
        assert claimed_by_webhook(dispatch.claim(50)) == {slow.pk: 1}
        # The rest of /a waits for a free slot: nothing more to claim now.
        assert dispatch.claim(50) == []
        assert claiming.in_flight([slow.pk, quick.pk]) == {slow.pk: 2, quick.pk: 3}

    def test_with_several_dispatchers_each_keeps_to_its_share_of_a_cap(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=60)
        publish_to(org, "/a", 100)
        # Three claim: a share is 60 / 3 = 20, less what this one holds.
        assert len(dispatch.claim(50, share_of=3)) == 20
        assert dispatch.claim(50, share_of=3, holding={webhook.pk: 20}) == []
        claimed = dispatch.claim(50, share_of=3, holding={webhook.pk: 5})
        assert len(claimed) == 15
        # The rest of the cap is the others': the lane stays due for them,
        # and they claim already, so no more are called to help.
        assert Lane.objects.get(webhook=webhook).due_at <= timezone.now()
        assert not claimed.more_due
        # Alone, a dispatcher may take the whole cap (half of it per claim).
        assert len(dispatch.claim(50)) == 25
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 60}

    def test_a_small_cap_is_not_shared(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=10)
        publish_to(org, "/a", 30)
        # Five each would be below SHARE_AT_LEAST: one dispatcher may take all ten.
        assert len(dispatch.claim(50, share_of=2)) == 5  # half of it per claim
        assert len(dispatch.claim(50, share_of=2, holding={webhook.pk: 5})) == 5
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 10}

    def test_a_dispatcher_that_shares_the_claims_waits_for_its_share(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=2)
        publish_to(org, "/a", 4)
        others = self.held_by_another_dispatcher(webhook, 2)
        started = time.monotonic()

        def the_other_keeps_to_its_share() -> None:
            # It learns of this one and records what it had in flight.
            if others and time.monotonic() - started > 0.3:
                Delivery.objects.filter(id__in=others).update(status="succeeded")
                Lease.objects.filter(delivery_id__in=others).delete()
                lanes.wake([webhook.pk])
                others.clear()

        assert deliver_due(claimers=lambda: 2, on_claim=the_other_keeps_to_its_share) == 2
        assert len(receiver.to("/a")) == 2

    def test_a_dispatcher_that_shares_keeps_no_more_than_its_share_in_flight(self, org, receiver):
        hook(org, receiver, "/a", max_in_flight=40)
        receiver.always("/a", Answer(delay=0.2))
        publish_to(org, "/a", 50)
        assert deliver_due(concurrency=50, claimers=lambda: 2) == 50
        # Its share, 40 / 2: alone it would have taken the whole cap.
        assert receiver.max_in_flight_by_path["/a"] <= 20

    def test_a_dispatcher_that_shares_ends_once_it_ran_out_of_work(self, org, receiver):
        hook(org, receiver, "/a")
        publish_to(org, "/a", 1)
        started = time.monotonic()
        assert deliver_due(claimers=lambda: 2) == 1
        # It waited for a first share, not for more after it.
        assert time.monotonic() - started < dispatch.LINGER_SECONDS

    def test_alone_a_dispatcher_does_not_wait_for_a_cap_another_holds(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=2)
        publish_to(org, "/a", 4)
        self.held_by_another_dispatcher(webhook, 2)
        started = time.monotonic()
        assert deliver_due() == 0
        assert time.monotonic() - started < dispatch.LINGER_SECONDS

    @staticmethod
    def held_by_another_dispatcher(webhook, count: int) -> list[int]:
        ids = list(
            Delivery.objects.filter(webhook=webhook).order_by("id").values_list("id", flat=True)
        )[:count]
        for delivery_id in ids:
            lease(delivery_id, timezone.now() + timedelta(seconds=30))
        return ids

    def test_free_slots_are_dealt_round_the_webhooks(self, org, receiver):
        hooks = [hook(org, receiver, f"/w{i}") for i in range(3)]
        for i in range(3):
            publish_to(org, f"/w{i}", 10)
        claimed = dispatch.claim(6)
        assert claimed_by_webhook(claimed) == {h.pk: 2 for h in hooks}

    def test_the_oldest_backlog_does_not_take_every_slot(self, org, receiver):
        backlog = hook(org, receiver, "/backlog", max_in_flight=100)
        fresh = hook(org, receiver, "/fresh")
        # Events nobody subscribes to: event ids no longer follow delivery ids.
        publish_to(org, "/nobody", 7)
        publish_to(org, "/backlog", 60)
        publish_to(org, "/fresh", 1)
        claimed = dispatch.claim(20)
        counts = claimed_by_webhook(claimed)
        assert counts[fresh.pk] == 1 and counts[backlog.pk] == 19
        # /fresh's unused slots went round again to /backlog: its second
        # round took the next deliveries, not the ones it already held.
        assert len({c.delivery_id for c in claimed}) == 20

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite asks per lane")
    @pytest.mark.parametrize("ordered", [False, True])
    def test_a_claim_takes_every_lanes_deliveries_in_one_statement(self, org, receiver, ordered):
        # (An ordered webhook's head, its oldest unfinished delivery, too.)
        def statements_to_claim(webhooks: int) -> int:
            hooks = [
                hook(org, receiver, f"/n{webhooks}x{i}", ordered=ordered, max_in_flight=10)
                for i in range(webhooks)
            ]
            for i in range(webhooks):
                publish_to(org, f"/n{webhooks}x{i}", 2)
            with CaptureQueriesContext(connection) as queries:
                claimed = dispatch.claim(100)
            assert claimed_by_webhook(claimed) == {h.pk: 1 if ordered else 2 for h in hooks}
            return len(queries.captured_queries)

        # A query per lane would add 7; the claim's leases ending in two
        # whole seconds (it straddled one) add an UPDATE.
        assert statements_to_claim(8) - statements_to_claim(1) <= 1

    def test_a_lane_woken_at_its_cap_takes_nothing_more(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 1)
        dispatch.claim(10)
        publish_to(org, "/a", 1)  # wakes the lane while its one slot is taken
        now = timezone.now()
        assert Lane.objects.get(webhook=webhook).due_at <= now
        assert dispatch.claim(10, now=now) == []
        assert claiming.in_flight([webhook.pk], now) == {webhook.pk: 1}

    def test_the_cap_is_counted_at_the_claims_own_time(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 2)
        then = timezone.now() - timedelta(seconds=5)
        Delivery.objects.filter(webhook=webhook).update(next_attempt_at=then)
        first, _ = Delivery.objects.filter(webhook=webhook).order_by("id")
        # In flight at `then`; its lease has ended since.
        lease(first.pk, then + timedelta(seconds=1))
        Lane.objects.filter(webhook=webhook).update(due_at=then)
        assert dispatch.claim(10, now=then) == []

    def test_a_claim_says_when_it_left_due_deliveries_behind(self, org, receiver):
        backlog = hook(org, receiver, "/a", max_in_flight=10)
        publish_to(org, "/a", 5)
        first = dispatch.claim(2)
        assert len(first) == 2 and first.more_due  # its slots ran out: due now
        rest = dispatch.claim(10)
        assert len(rest) == 3 and not rest.more_due  # drained
        assert claimed_by_webhook(rest) == {backlog.pk: 3}

    @pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
    def test_each_delivery_is_leased_for_its_timeout_and_the_margin(
        self, org, receiver, settings, zone
    ):
        settings.TIME_ZONE = zone  # the process's local time follows it
        settings.HERALD_LEASE_MARGIN_SECONDS = 7
        hook(org, receiver, "/a", timeout_seconds=4)
        publish_to(org, "/a", 1)
        now = timezone.now()
        (claimed,) = dispatch.claim(10, now=now)
        assert leased_until(claimed.delivery_id) == now + timedelta(seconds=4 + 7)

    def test_a_claim_signs_with_the_secrets_valid_at_its_own_time(self, org, receiver):
        webhook = hook(org, receiver, "/a")
        old_secret = webhook.secret
        webhook.rotate_secret(grace=timedelta(hours=1))
        webhook.save()
        publish_to(org, "/a", 1)
        later = timezone.now() + timedelta(hours=2)  # the old secret's grace is over
        Lane.objects.filter(webhook=webhook).update(due_at=later)
        (claimed,) = dispatch.claim(10, now=later)
        assert claimed.target.secrets == [webhook.secret]
        assert old_secret not in claimed.target.secrets

    def test_a_lane_takes_its_longest_due_delivery_first(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=2)  # one per claim
        publish_to(org, "/a", 3)
        now = timezone.now()
        first, second, third = Delivery.objects.filter(webhook=webhook).order_by("id")
        # The second's retry fell due before the others were published.
        Delivery.objects.filter(pk=second.pk).update(next_attempt_at=now - timedelta(seconds=10))
        Delivery.objects.filter(pk__in=[first.pk, third.pk]).update(next_attempt_at=now)
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.delivery_id == second.pk
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.delivery_id == first.pk  # then in publish order

    def test_only_a_drained_lane_asks_when_its_next_retry_is(self, org, receiver):
        def statements(backlog: int) -> int:
            hook(org, receiver, f"/b{backlog}", max_in_flight=4)  # two per claim
            publish_to(org, f"/b{backlog}", backlog)
            with CaptureQueriesContext(connection) as queries:
                assert len(dispatch.claim(10)) == min(backlog, 2)
            return len(queries.captured_queries)

        # Three due: two taken, one left; one due: it took less than its
        # share (drained), and only then is its next retry looked up.
        assert statements(1) == statements(3) + 1

    def test_a_freed_slot_lets_the_next_delivery_go(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 3)
        (first,) = dispatch.claim(10)
        assert dispatch.claim(10) == []
        dispatch.record([dispatch.attempt(first)])
        (second,) = dispatch.claim(10)
        assert second.delivery_id != first.delivery_id
        assert second.target.id == webhook.pk

    def test_a_request_that_ended_frees_its_slot_before_its_record(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 3)
        (first,) = dispatch.claim(10)
        now = timezone.now()
        # At its cap, the lane waits for a record to wake it.
        assert Lane.objects.get(webhook=webhook).due_at > now
        assert dispatch.claim(10, now=now) == []
        # The worker that sent it knows the request ended: it may fill the
        # slot at once, its lease and unrecorded attempt notwithstanding.
        (second,) = dispatch.claim(10, now=now, settled=[first])
        assert second.delivery_id != first.delivery_id
        # Its lease holds the delivery until the record, but is no request in flight.
        assert leased_until(first.delivery_id) > now
        assert Lease.objects.get(delivery_id=first.delivery_id).settled
        assert claiming.in_flight([webhook.pk], now) == {webhook.pk: 1}
        # Only what this worker settled: the second request is still in flight.
        assert dispatch.claim(10, now=now, settled=[first]) == []

    def test_a_settled_slot_is_free_to_every_worker_before_the_record(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=2)
        other = hook(org, receiver, "/b")
        publish_to(org, "/a", 4)
        (first,) = dispatch.claim(1)
        dispatch.claim(1)
        assert dispatch.claim(10) == []  # at its cap
        publish_to(org, "/b", 1)
        # The first request ended; its worker's one free slot goes to /b,
        # which waited longer, and the first attempt is not recorded yet.
        (taken,) = dispatch.claim(1, settled=[first])
        assert taken.target.id == other.pk
        # Another worker finds the slot free all the same.
        (third,) = dispatch.claim(10)
        assert third.target.id == webhook.pk
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 2}

    def test_a_settled_slot_goes_to_its_lane_after_those_that_waited_longer(self, org, receiver):
        busy = hook(org, receiver, "/a", max_in_flight=1)
        waiting = hook(org, receiver, "/b")
        publish_to(org, "/a", 2)
        (first,) = dispatch.claim(10)
        publish_to(org, "/b", 1)
        (claimed,) = dispatch.claim(1, settled=[first])
        assert claimed.target.id == waiting.pk
        (claimed,) = dispatch.claim(1, settled=[first])
        assert claimed.target.id == busy.pk

    def test_a_settled_slot_of_a_paused_webhook_takes_nothing(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 2)
        (first,) = dispatch.claim(10)
        actions.pause_webhook(webhook)
        assert dispatch.claim(10, settled=[first]) == []
        assert Lane.objects.get(webhook=webhook).due_at is None

    def test_the_dispatcher_fills_a_freed_slot_before_it_records_the_attempt(
        self, org, receiver, monkeypatch
    ):
        # With nothing taken ahead (TestTakingAhead), a claim fills the slot.
        monkeypatch.setattr(dispatch, "AHEAD_SHARE", 0.0)
        webhook = hook(org, receiver, "/a", max_in_flight=2)
        receiver.always("/a", Answer(delay=0.05))
        publish_to(org, "/a", 4)
        steps = []
        claim, record = dispatch.claim, dispatch.record

        def claim_and_tell(limit, now=None, *, settled=(), **sharing):
            taken = claim(limit, now, settled=settled, **sharing)
            steps.append(("claim", {c.delivery_id for c in settled}, len(taken)))
            return taken

        def record_and_tell(results, **kwargs):
            steps.append(("record", {r.claimed.delivery_id for r in results}, len(results)))
            record(results, **kwargs)

        monkeypatch.setattr(dispatch, "claim", claim_and_tell)
        monkeypatch.setattr(dispatch, "record", record_and_tell)
        assert deliver_due(concurrency=10) == 4
        assert receiver.max_in_flight_by_path["/a"] <= 2
        refills = [
            i for i, (kind, settled, n) in enumerate(steps) if kind == "claim" and settled and n
        ]
        assert refills, steps
        first = refills[0]
        (recorded_at,) = [
            i
            for i, (kind, ids, _) in enumerate(steps)
            if kind == "record" and ids & steps[first][1]
        ]
        assert recorded_at > first  # the slot went back to work before the record
        assert not Delivery.objects.filter(webhook=webhook).exclude(status="succeeded").exists()

    def test_the_dispatcher_delivers_a_capped_backlog_to_the_end(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=3)
        receiver.always("/a", Answer(delay=0.05))
        publish_to(org, "/a", 12)
        assert deliver_due(concurrency=20) == 12
        assert receiver.max_in_flight_by_path["/a"] <= 3
        assert not Delivery.objects.filter(webhook=webhook).exclude(status="succeeded").exists()


def leases_marked(*claimed) -> list[bool]:
    """Whether each one's lease is settled (holds no slot of the cap)."""
    settled = dict(
        Lease.objects.filter(delivery_id__in=[c.delivery_id for c in claimed]).values_list(
            "delivery_id", "settled"
        )
    )
    return [settled.get(c.delivery_id) for c in claimed]


@pytest.fixture
def given_back(monkeypatch) -> list[int]:
    """The deliveries the dispatcher gives back (claiming.release), as it does."""
    ids: list[int] = []
    release = claiming.release

    def release_and_tell(items, *args):
        ids.extend(c.delivery_id for c in items)
        return release(items, *args)

    monkeypatch.setattr(claiming, "release", release_and_tell)
    return ids


class TestTakingAhead:
    """A claim may take, besides what fills the free slots, deliveries to
    start only in place of a request of their webhook that succeeded: they
    hold no slot of the cap until they start."""

    def test_a_claim_takes_ahead_a_share_of_what_it_will_have_in_flight(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=8)
        publish_to(org, "/a", 20)
        claimed = dispatch.claim(50, ahead_share=0.5, holding={webhook.pk: 0})
        # Half the cap in one claim (4), and half of those ahead.
        assert (len(claimed), len(claimed.ahead)) == (4, 2)
        assert leases_marked(*claimed) == [False] * 4
        assert leases_marked(*claimed.ahead) == [True] * 2
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 4}
        # Oldest first: what fills the slots, then what waits for one.
        ids = [c.delivery_id for c in [*claimed, *claimed.ahead]]
        assert ids == sorted(ids)

    def test_what_a_worker_took_ahead_is_neither_in_the_cap_nor_anyone_elses(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=4)
        publish_to(org, "/a", 20)
        first = dispatch.claim(50, ahead_share=1.0)
        # Another worker takes the rest of the cap, and none of the first's.
        second = dispatch.claim(50)
        assert len(second) == 2
        taken = {c.delivery_id for c in [*first, *first.ahead]}
        assert not taken & {c.delivery_id for c in second}
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 4}
        assert dispatch.claim(50) == []

    def test_what_is_queued_already_counts_toward_the_share(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=8)
        publish_to(org, "/a", 20)
        claimed = dispatch.claim(
            50, ahead_share=0.5, holding={webhook.pk: 0}, queued={webhook.pk: 1}
        )
        assert (len(claimed), len(claimed.ahead)) == (4, 1)

    def test_one_started_in_place_of_another_counts_in_flight_from_the_next_claim(
        self, org, receiver, settings
    ):
        webhook = hook(org, receiver, "/a", max_in_flight=1, timeout_seconds=7)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=0.5)
        (first,), (queued,) = claimed, claimed.ahead
        # The first request ended and the queued one took its place: until
        # the worker says so, the first's lease stands for it.
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 1}
        now = timezone.now() + timedelta(seconds=3)
        assert dispatch.claim(50, now=now, settled=[first], started=[queued]) == []
        assert leases_marked(first, queued) == [True, False]
        assert claiming.in_flight([webhook.pk], now) == {webhook.pk: 1}
        # Leased for a request that starts now.
        margin = settings.HERALD_LEASE_MARGIN_SECONDS
        assert leased_until(queued.delivery_id) == now + timedelta(seconds=7 + margin)

    def test_a_claim_with_no_free_slot_still_marks_and_takes_ahead(self, org, receiver):
        # Every slot busy, half of what waited has started: the worker claims
        # for nothing but to mark what started and to queue more ahead.
        webhook = hook(org, receiver, "/a", max_in_flight=4)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=1.0)
        (first, second), (queued, _) = claimed, claimed.ahead
        again = dispatch.claim(
            0,
            settled=[first],
            started=[queued],
            holding={webhook.pk: 2},
            ahead_share=1.0,
            queued={webhook.pk: 1},
        )
        assert again == []
        assert leases_marked(first, second, queued) == [True, False, False]
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 2}
        assert len(again.ahead) == 1
        assert leases_marked(*again.ahead) == [True]

    def test_a_record_does_not_give_back_a_slot_a_started_one_took(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=0.5)
        (first,), (queued,) = claimed, claimed.ahead
        dispatch.record([dispatch.attempt(first)], started=[queued])
        assert claiming.in_flight([webhook.pk]) == {webhook.pk: 1}
        assert dispatch.claim(50) == []

    @pytest.mark.parametrize(
        "fields", [{"ordered": True}, {"rate_limit": 100}], ids=["ordered", "rate-limited"]
    )
    def test_nothing_is_taken_ahead_for_a_webhook_that_orders_or_spaces_its_requests(
        self, org, receiver, fields
    ):
        hook(org, receiver, "/a", max_in_flight=10, **fields)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=1.0)
        assert claimed and claimed.ahead == []

    def test_nothing_is_taken_ahead_for_a_webhook_whose_last_request_failed(self, org, receiver):
        failing = hook(org, receiver, "/a", max_in_flight=10)
        working = hook(org, receiver, "/b", max_in_flight=10)
        publish_to(org, "/a", 10)
        publish_to(org, "/b", 10)
        claimed = dispatch.claim(50, ahead_share=1.0, failing={failing.pk})
        assert {c.target.id for c in claimed} == {failing.pk, working.pk}
        assert {c.target.id for c in claimed.ahead} == {working.pk}

    def test_a_claim_tells_which_webhooks_queued_ahead_are_no_longer_active(self, org, receiver):
        paused = hook(org, receiver, "/a", max_in_flight=10)
        disabled = hook(org, receiver, "/b", max_in_flight=10)
        active = hook(org, receiver, "/c", max_in_flight=10)
        publish_to(org, "/a", 1)
        actions.pause_webhook(paused)
        actions.disable_webhook(disabled, reason="test")
        queued = {paused.pk: 1, disabled.pk: 1, active.pk: 1}
        assert dispatch.claim(50, ahead_share=1.0, queued=queued).stopped == {
            paused.pk,
            disabled.pk,
        }

    def test_what_was_taken_ahead_and_given_back_is_due_again(self, org, receiver):
        hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=1.0)
        (first,), (queued,) = claimed, claimed.ahead
        # Only what waits to start goes back; a request in flight keeps its lease.
        assert claiming.release([first, queued]) == 1
        assert leased_until(queued.delivery_id) is None
        assert leased_until(first.delivery_id) is not None
        dispatch.record([dispatch.attempt(first)])
        (again,) = dispatch.claim(50)
        assert again.delivery_id == queued.delivery_id

    def test_what_was_taken_ahead_of_a_disabled_webhook_ends_when_given_back(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=4)
        publish_to(org, "/a", 10)
        claimed = dispatch.claim(50, ahead_share=1.0)
        # Disabling ends what is not leased; what is in flight ends at its record.
        actions.disable_webhook(webhook, reason="test")
        assert claiming.release(claimed.ahead) == 2
        ended = Delivery.objects.filter(pk__in=[c.delivery_id for c in claimed.ahead])
        assert {d.status for d in ended} == {"failed"}

    def test_the_dispatcher_starts_what_it_took_ahead_in_place_of_a_success(
        self, org, receiver, monkeypatch, given_back
    ):
        webhook = hook(org, receiver, "/a", max_in_flight=3)
        receiver.always("/a", Answer(delay=0.05))
        publish_to(org, "/a", 24)
        ahead = set()
        claim = dispatch.claim

        def claim_and_tell(*args, **kwargs):
            claimed = claim(*args, **kwargs)
            ahead.update(c.delivery_id for c in claimed.ahead)
            return claimed

        monkeypatch.setattr(dispatch, "claim", claim_and_tell)
        assert deliver_due(concurrency=10) == 24
        assert receiver.max_in_flight_by_path["/a"] <= 3
        # Some went out in place of another, never given back, none twice.
        assert ahead - set(given_back)
        assert len({r.header("webhook-id") for r in receiver.to("/a")}) == 24
        assert not Delivery.objects.filter(webhook=webhook).exclude(status="succeeded").exists()
        assert not Lease.objects.exists()

    def test_a_record_between_claims_keeps_the_cap_of_those_started_ahead(
        self, org, receiver, monkeypatch
    ):
        # Each result recorded at once, before the next claim marks what
        # took its place: the record must, or the cap is counted short.
        monkeypatch.setattr(dispatch, "RECORD_BATCH", 1)
        hook(org, receiver, "/a", max_in_flight=2)
        receiver.always("/a", Answer(delay=0.1))
        publish_to(org, "/a", 12)
        assert deliver_due(concurrency=10) == 12
        assert receiver.max_in_flight_by_path["/a"] <= 2

    def test_one_taken_ahead_too_long_ago_is_given_back_not_started(
        self, org, receiver, given_back, settings
    ):
        # It may wait half the lease margin to start: a lease must outlast
        # the request it stands for.
        settings.HERALD_LEASE_MARGIN_SECONDS = 1
        hook(org, receiver, "/a", max_in_flight=1)
        receiver.always("/a", Answer(delay=0.6))
        publish_to(org, "/a", 3)
        assert deliver_due(concurrency=4) == 3
        assert given_back
        assert len({r.header("webhook-id") for r in receiver.to("/a")}) == 3
        assert not Lease.objects.exists()

    def test_the_dispatcher_gives_back_what_it_took_ahead_of_a_failing_endpoint(
        self, org, receiver, given_back
    ):
        webhook = hook(org, receiver, "/a", max_in_flight=2, max_attempts=1)
        receiver.always("/a", Answer(status=500, delay=0.05))
        publish_to(org, "/a", 8)
        assert deliver_due(concurrency=10) == 8
        assert given_back
        # Each was tried once all the same, and the cap held.
        assert len(receiver.to("/a")) == 8
        assert receiver.max_in_flight_by_path["/a"] <= 2
        assert set(Delivery.objects.filter(webhook=webhook).values_list("status", flat=True)) == {
            "failed"
        }
        assert not Lease.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_claimers_at_once_never_share_a_delivery_nor_pass_the_cap(org, receiver):
    webhook = hook(org, receiver, "/a", max_in_flight=7)
    other = hook(org, receiver, "/b", max_in_flight=100)
    publish_to(org, "/a", 40)
    publish_to(org, "/b", 40)
    barrier = threading.Barrier(2)
    results: list[list] = [[], []]

    def claimer(slot: int) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                results[slot].extend(dispatch.claim(30))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [c.delivery_id for r in results for c in r]
    assert len(ids) == len(set(ids))  # no delivery claimed twice
    assert sum(1 for r in results for c in r if c.target.id == webhook.pk) == 7
    assert sum(1 for r in results for c in r if c.target.id == other.pk) == 40
    assert claiming.in_flight([webhook.pk])[webhook.pk] == 7


@contextmanager
def another_transaction(work, *, open_for: float = 0.3):
    """Run `work` in a transaction of another connection (a thread), as
    another worker would, and keep that transaction open `open_for` seconds
    more: the body runs meanwhile."""
    done, release = threading.Event(), threading.Event()

    def run() -> None:
        try:
            with transaction.atomic():
                work()
                done.set()
                release.wait(5)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    assert done.wait(5)
    threading.Timer(open_for, release.set).start()
    try:
        yield
    finally:
        thread.join(5)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_a_settled_lane_another_claimer_holds(org, receiver):
    webhook = hook(org, receiver, "/a", max_in_flight=1)
    publish_to(org, "/a", 2)
    (first,) = dispatch.claim(10)

    def hold_the_lane() -> None:  # as a claim from another worker would
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {Lane._meta.db_table} WHERE webhook_id = %s FOR UPDATE",
                [webhook.pk],
            )

    with another_transaction(hold_the_lane):
        # A due lane held so is passed over; a settled one is waited for:
        # its slot would otherwise stay idle until the next claim.
        (second,) = dispatch.claim(10, settled=[first])
    assert second.delivery_id != first.delivery_id


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
@pytest.mark.django_db(transaction=True)
def test_a_webhook_disabled_during_a_claim_waits_for_it_and_spares_what_it_took(org, receiver):
    """A claim locks no delivery, only the lane: disabling the webhook takes
    the lane first, so it sees the claim's leases and ends only what is not
    in flight (the record ends that one, as its attempt turns out)."""
    webhook = hook(org, receiver, "/a", max_in_flight=1)
    publish_to(org, "/a", 3)
    taken: list = []
    with another_transaction(lambda: taken.extend(dispatch.claim(10))):
        assert actions.disable_webhook(webhook, reason="test") == 2
    (flying,) = taken
    in_flight = Delivery.objects.get(pk=flying.delivery_id)
    assert (in_flight.status, in_flight.next_attempt_at is not None) == ("pending", True)
    assert leased_until(in_flight.pk) is not None
    others = Delivery.objects.exclude(pk=in_flight.pk)
    assert {(d.status, d.next_attempt_at) for d in others} == {("failed", None)}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite has one writer at a time")
@pytest.mark.django_db(transaction=True)
def test_what_is_given_back_while_its_webhook_is_disabled_ends_with_the_others(org, receiver):
    """Disabling passes over what a worker took ahead (its lease is live):
    giving it back waits for the disable under way, and ends it."""
    webhook = hook(org, receiver, "/a", max_in_flight=4)
    publish_to(org, "/a", 10)
    claimed = dispatch.claim(50, ahead_share=1.0)
    ids = [c.delivery_id for c in claimed.ahead]
    assert ids
    with another_transaction(lambda: actions.disable_webhook(webhook, reason="test")):
        assert claiming.release(claimed.ahead) == len(ids)
    assert set(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"failed"}
    assert not Lease.objects.filter(delivery_id__in=ids).exists()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's statements, one per lane")
@pytest.mark.django_db
def test_on_sqlite_each_lane_is_taken_from_by_index_searches():
    """A claim runs these once per lane: each must search an index of the
    webhook's deliveries and the delivery's lease, never scan a table."""
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    statements = [
        (claiming._TAKE_STATEMENT_ONE.format(taken=" AND id NOT IN (%s)"), [1, at, at, 7, 5]),
        (claiming._HEAD_STATEMENT_ONE, [1]),
    ]
    for sql, params in statements:
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            steps = [row[-1] for row in cursor.fetchall()]
        assert steps[0].startswith("SEARCH x USING INDEX delivery_webhook_"), steps
        assert any(s.startswith("SEARCH deliveries_lease USING INDEX") for s in steps), steps
        assert not any(s.startswith("SCAN") for s in steps), steps


class TestDealing:
    """claiming.deal: free slots go round the lanes one at a time."""

    def plans(self, *rooms: int) -> list:
        return [
            claiming.LanePlan(Webhook(max_in_flight=2 * room), None, cap_room=room)
            for room in rooms
        ]

    def test_the_slots_go_round_one_each_and_none_is_dealt_twice(self):
        plans = self.plans(10, 10, 10)
        claiming.deal(plans, 4)
        assert [p.share for p in plans] == [2, 1, 1]

    def test_a_lane_gets_no_more_than_its_room_and_the_rest_is_left(self):
        plans = self.plans(1, 3)
        claiming.deal(plans, 10)
        assert [p.share for p in plans] == [1, 3]
        claiming.deal(plans, 0)
        assert [p.share for p in plans] == [0, 0]


class TestRateLimit:
    def test_starts_are_spaced_by_the_rate(self, org, receiver):
        hook(org, receiver, "/a", rate_limit=4, max_in_flight=100)
        publish_to(org, "/a", 10)
        now = timezone.now()
        claimed = dispatch.claim(50, now=now)
        spacing = claiming.RATE_SPACING_MARGIN / 4
        # Within the horizon (0.5 s) two starts fit: now and now + 0.2625 s.
        assert len(claimed) == 2
        starts = [c.not_before for c in claimed]
        assert starts[0] == pytest.approx(now.timestamp())
        assert starts[1] - starts[0] == pytest.approx(spacing)
        # The next claim, even at once, continues the spacing and takes nothing yet.
        assert dispatch.claim(50, now=now) == []
        later = dispatch.claim(50, now=now + timedelta(seconds=spacing * 2))
        assert [c.not_before for c in later][0] == pytest.approx(starts[1] + spacing)

    def test_nothing_is_claimed_more_than_the_horizon_before_it_may_start(self, org, receiver):
        webhook = hook(org, receiver, "/a", rate_limit=1)
        publish_to(org, "/a", 2)
        now = timezone.now()
        (first,) = dispatch.claim(50, now=now)
        # The lane is due again when its next start comes within the horizon.
        assert Lane.objects.get(webhook=webhook).due_at == now + timedelta(seconds=0.55)
        # Something wakes the lane (a record, a retry), but the next start the
        # rate allows is 1.05 s away, beyond the horizon: the second waits in
        # the database.
        lanes.wake([webhook.pk], now)
        assert dispatch.claim(50, now=now) == []
        # It is claimed as soon as its start is within the horizon.
        (second,) = dispatch.claim(50, now=now + timedelta(seconds=0.55))
        assert second.not_before == pytest.approx(first.not_before + 1.05)

    def test_a_held_back_delivery_is_no_attempt(self, org, receiver):
        webhook = hook(org, receiver, "/a", rate_limit=1, max_attempts=1)
        publish_to(org, "/a", 3)
        dispatch.claim(50)
        waiting = Delivery.objects.filter(webhook=webhook, lease__isnull=True)
        assert waiting.count() == 2
        assert all(d.attempts == 0 and d.status == "pending" for d in waiting)
        assert claiming.pressure(webhook).held_by == "rate_limit"

    def test_the_dispatcher_keeps_the_rate(self, org, receiver):
        hook(org, receiver, "/a", rate_limit=10, max_in_flight=100)
        publish_to(org, "/a", 15)
        assert deliver_due(concurrency=20) == 15
        arrivals = sorted(r.at for r in receiver.to("/a"))
        assert most_in_any_second(arrivals) <= 10
        assert arrivals[-1] - arrivals[0] >= 14 * 0.1

    def test_requests_a_stall_made_late_do_not_arrive_together(self, org, receiver):
        hook(org, receiver, "/a", rate_limit=10, max_in_flight=100)
        publish_to(org, "/a", 3)
        claimed = dispatch.claim(50)
        assert len(claimed) == 3
        # Every start time a second in the past, as when the worker stalled
        # before its threads could start them.
        for item in claimed:
            item.not_before -= 1
        gate = threading.Barrier(3)

        def send(item) -> None:
            gate.wait()
            dispatch.attempt(item)

        threads = [threading.Thread(target=send, args=(item,)) for item in claimed]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        arrivals = sorted(r.at for r in receiver.to("/a"))
        assert len(arrivals) == 3
        spacing = claiming.RATE_SPACING_MARGIN / 10
        # A request leaves within a millisecond or two of its start.
        assert arrivals[1] - arrivals[0] >= spacing - 0.01
        assert arrivals[2] - arrivals[1] >= spacing - 0.01


def most_in_any_second(arrivals: list[float]) -> int:
    """The largest number of arrivals in any half-open one-second window."""
    best, start = 0, 0
    for end, at in enumerate(arrivals):
        while at - arrivals[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_most_in_any_second_slides_the_window():
    assert most_in_any_second([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5)
    assert most_in_any_second([0.0, 0.5, 0.99, 1.5, 1.6]) == 3
    assert most_in_any_second([0.0, 1.0, 2.0]) == 1
    assert most_in_any_second([0.1, 0.2, 0.3, 1.25]) == 3


class TestOrdered:
    @pytest.fixture
    def ordered(self, org, receiver):
        return hook(org, receiver, "/o", ordered=True, max_in_flight=1)

    @pytest.mark.parametrize("due", ["earlier", "this very instant"])
    def test_a_due_head_held_by_the_rate_waits_for_its_start(self, org, receiver, due):
        webhook = hook(org, receiver, "/o", ordered=True, max_in_flight=1, rate_limit=1)
        publish_to(org, "/o", 2)
        now = timezone.now()
        (first,) = dispatch.claim(10, now=now)
        Delivery.objects.filter(pk=first.delivery_id).update(status="succeeded")
        Lease.objects.filter(delivery_id=first.delivery_id).delete()
        if due != "earlier":
            Delivery.objects.filter(webhook=webhook, status="pending").update(next_attempt_at=now)
        lanes.wake([webhook.pk], now)
        # The next head is due, but the rate's next start is 1.05 s away: the
        # lane waits until that start comes within the horizon, not the head's
        # due time (already past), which would have it claimed again and again.
        assert dispatch.claim(10, now=now) == []
        assert Lane.objects.get(webhook=webhook).due_at == now + timedelta(seconds=0.55)

    def pending_ids(self, webhook):
        return list(
            Delivery.objects.filter(webhook=webhook).order_by("id").values_list("id", flat=True)
        )

    def test_only_the_oldest_unfinished_delivery_is_claimed(self, org, ordered):
        publish_to(org, "/o", 3)
        first, *_ = self.pending_ids(ordered)
        (claimed,) = dispatch.claim(10)
        assert claimed.delivery_id == first
        assert dispatch.claim(10) == []

    def test_the_next_waits_for_the_heads_record_not_only_its_request(self, org, ordered):
        publish_to(org, "/o", 2)
        (head,) = dispatch.claim(10)
        # Its request ended but its outcome is not written: a retry would
        # still come before the next one.
        assert dispatch.claim(10, settled=[head]) == []

    def test_a_failing_delivery_holds_the_later_ones_until_it_ends(self, org, receiver, ordered):
        receiver.script("/o", Answer(status=500))
        publish_to(org, "/o", 3)
        first, second, _ = self.pending_ids(ordered)
        (claimed,) = dispatch.claim(10)
        dispatch.record([dispatch.attempt(claimed)])
        # Its retry is 5 s away: the later ones are due, and wait.
        assert Delivery.objects.get(pk=first).status == "pending"
        assert dispatch.claim(10) == []
        Delivery.objects.filter(pk=first).update(next_attempt_at=timezone.now())
        lanes.wake([ordered.pk])
        (again,) = dispatch.claim(10)
        assert again.delivery_id == first and again.attempt_number == 2
        dispatch.record([dispatch.attempt(again)])
        (then,) = dispatch.claim(10)
        assert then.delivery_id == second

    def test_a_manual_retry_of_a_later_delivery_does_not_jump_the_queue(
        self, org, receiver, ordered
    ):
        receiver.script("/o", Answer(status=500))
        publish_to(org, "/o", 2)
        first, second = self.pending_ids(ordered)
        dispatch.record([dispatch.attempt(c) for c in dispatch.claim(10)])
        actions.retry_delivery(Delivery.objects.get(pk=second))
        assert dispatch.claim(10) == []  # the first still waits for its retry

    @pytest.mark.parametrize("hold", ["in flight", "nothing pending", "rate", "retry later"])
    def test_every_ordered_lane_keeps_its_order_whatever_holds_the_one_before(
        self, org, receiver, hold
    ):
        held = hook(org, receiver, "/h", ordered=True, max_in_flight=1, rate_limit=1)
        waiting = hook(org, receiver, "/w", ordered=True, max_in_flight=1)
        free = hook(org, receiver, "/f", ordered=True, max_in_flight=1)
        for path in ("/h", "/w", "/w", "/f"):
            publish_to(org, path, 1)
        now = timezone.now()
        held_head = Delivery.objects.get(webhook=held)
        if hold == "in flight":
            lease(held_head.pk, now + timedelta(seconds=30))
        elif hold == "nothing pending":
            held_head.status = "succeeded"
        elif hold == "retry later":
            held_head.next_attempt_at = now + timedelta(seconds=30)
        else:
            Lane.objects.filter(webhook=held).update(rate_next_at=now + timedelta(seconds=30))
        held_head.save()
        # /w's head waits for its retry; the delivery after it is due.
        retry_at = now + timedelta(seconds=20)
        Delivery.objects.filter(pk=self.pending_ids(waiting)[0]).update(next_attempt_at=retry_at)
        # The held lane comes first in the round, then /w, then /f.
        for seconds, webhook in enumerate((held, waiting, free)):
            Lane.objects.filter(webhook=webhook).update(due_at=now - timedelta(seconds=3 - seconds))
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.target.id == free.pk
        assert Lane.objects.get(webhook=waiting).due_at == retry_at

    def test_a_claim_counts_the_heads_it_took_against_its_limit(self, org, receiver, ordered):
        unordered = hook(org, receiver, "/u", max_in_flight=10)
        publish_to(org, "/o", 1)
        publish_to(org, "/u", 5)
        assert claimed_by_webhook(dispatch.claim(2)) == {ordered.pk: 1, unordered.pk: 1}

    def test_a_head_due_this_very_instant_is_claimed(self, org, ordered):
        publish_to(org, "/o", 1)
        (head,) = self.pending_ids(ordered)
        now = timezone.now()
        Delivery.objects.filter(pk=head).update(next_attempt_at=now)
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.delivery_id == head

    def test_a_head_whose_lease_ran_out_is_claimed_again(self, org, ordered):
        publish_to(org, "/o", 2)
        first, _ = self.pending_ids(ordered)
        now = timezone.now()
        # A worker died holding it, and the sweeper has not released it yet.
        lease(first, now - timedelta(seconds=1))
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.delivery_id == first
        lease(first, now)  # ends this very instant
        Lane.objects.filter(webhook=ordered).update(due_at=now)
        assert dispatch.claim(10, now=now) == []  # still its lease, to the instant
        # The lane waits as for any head in flight: its record will wake it.
        held_for = timedelta(seconds=ordered.timeout_seconds + claiming.lease_margin())
        assert Lane.objects.get(webhook=ordered).due_at == now + held_for

    def test_pausing_and_resuming_keep_the_order(self, org, ordered):
        publish_to(org, "/o", 3)
        first, *_ = self.pending_ids(ordered)
        actions.pause_webhook(ordered)
        assert dispatch.claim(10) == []
        actions.resume_webhook(ordered)
        (claimed,) = dispatch.claim(10)
        assert claimed.delivery_id == first

    def test_the_dispatcher_records_an_ordered_attempt_at_once_for_the_next(
        self, org, receiver, ordered, monkeypatch
    ):
        # Other attempts wait for a batch to be recorded; an ordered
        # webhook's next delivery waits for its record.
        monkeypatch.setattr(dispatch, "RECORD_EVERY_SECONDS", 30)
        hook(org, receiver, "/slow")
        receiver.always("/slow", Answer(delay=1.0))
        publish_to(org, "/slow", 1)
        publish_to(org, "/o", 3)
        assert deliver_due(concurrency=4) == 4
        (slow,) = receiver.to("/slow")
        assert len(receiver.to("/o")) == 3
        assert max(r.at for r in receiver.to("/o")) < slow.at + 1.0

    def test_the_dispatcher_delivers_in_publish_order(self, org, receiver, ordered):
        receiver.script("/o", Answer(status=200), Answer(status=500), Answer(status=200))
        publish_to(org, "/o", 4)
        deliver_due()
        Delivery.objects.filter(webhook=ordered, status="pending").update(
            next_attempt_at=timezone.now()
        )
        lanes.wake([ordered.pk])
        deliver_due()
        order = [int(r.body.split(b'"i":')[1].split(b"}")[0]) for r in receiver.to("/o")]
        assert order == [0, 1, 1, 2, 3]


class TestLanes:
    def test_the_sweeper_wakes_a_lane_that_missed_its_wake_up(self, org, receiver):
        webhook = hook(org, receiver, "/a")
        publish_to(org, "/a", 2)
        Lane.objects.filter(webhook=webhook).update(due_at=None)
        assert dispatch.claim(10) == []
        assert lanes.repair() == 1
        assert len(dispatch.claim(10)) == 2
        assert lanes.repair() == 0  # nothing claimable is left behind now

    def test_a_missing_lane_is_created(self, org, receiver):
        webhook = hook(org, receiver, "/a")
        publish_to(org, "/a", 1)
        Lane.objects.filter(webhook=webhook).delete()
        assert lanes.repair() == 1
        assert len(dispatch.claim(10)) == 1

    def test_an_expired_lease_wakes_its_lane(self, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 1)
        (claimed,) = dispatch.claim(10)
        Lease.objects.update(until=timezone.now() - timedelta(seconds=1))
        Lane.objects.filter(webhook=webhook).update(due_at=None)
        assert claiming.release_expired_claims() == 1
        (again,) = dispatch.claim(10)
        assert again.delivery_id == claimed.delivery_id

    def test_the_sweeper_releases_only_pending_deliveries_whose_lease_ran_out(self, org, receiver):
        expired_hook = hook(org, receiver, "/a")
        leased_hook = hook(org, receiver, "/b")
        ended_hook = hook(org, receiver, "/c")
        publish_to(org, "/a", 3)
        publish_to(org, "/b", 1)
        publish_to(org, "/c", 1)
        assert len(dispatch.claim(10)) == 5
        now = timezone.now()
        # One of /a's leases ran out (its worker died); /b's is live; /c's
        # delivery ended failed with a lease that ran out still held.
        expired = Delivery.objects.filter(webhook=expired_hook).exclude(pk=expired_hook.pk).first()
        lease(expired.pk, now - timedelta(seconds=1))
        ended = Delivery.objects.get(webhook=ended_hook)
        Delivery.objects.filter(pk=ended.pk).update(status=Delivery.Status.FAILED)
        lease(ended.pk, now - timedelta(seconds=1))
        Lane.objects.update(due_at=None)

        assert claiming.release_expired_claims(now) == 1
        assert leased_until(expired.pk) is None and leased_until(ended.pk) is None
        assert Lease.objects.count() == 3  # /a's other two and /b's
        assert leased_until(Delivery.objects.get(webhook=leased_hook).pk) > now
        # Only the lane of the released delivery's webhook is woken, as of
        # the sweeper's `now`: a claim at that moment takes it back.
        assert dict(Lane.objects.filter(due_at__isnull=False).values_list("webhook", "due_at")) == {
            expired_hook.pk: now
        }
        (again,) = dispatch.claim(10, now=now)
        assert again.delivery_id == expired.pk

    def test_a_lane_at_its_cap_is_due_again_when_the_lease_ends(self, org, receiver, settings):
        webhook = hook(org, receiver, "/a", max_in_flight=1)
        publish_to(org, "/a", 2)
        now = timezone.now()
        assert len(dispatch.claim(10, now=now)) == 1
        lease = timedelta(seconds=webhook.timeout_seconds + settings.HERALD_LEASE_MARGIN_SECONDS)
        assert Lane.objects.get(webhook=webhook).due_at == now + lease

    @pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
    def test_a_drained_lane_is_due_again_at_its_next_retry(self, org, receiver, settings, zone):
        settings.TIME_ZONE = zone  # the stored times are UTC whatever the display zone
        webhook = hook(org, receiver, "/a")
        publish_to(org, "/a", 2)
        now = timezone.now()
        due, waiting = Delivery.objects.filter(webhook=webhook).order_by("id")
        retry_at = now + timedelta(seconds=30)
        Delivery.objects.filter(pk=waiting.pk).update(next_attempt_at=retry_at)
        (claimed,) = dispatch.claim(10, now=now)
        assert claimed.delivery_id == due.pk
        assert Lane.objects.get(webhook=webhook).due_at == retry_at

    def test_an_ordered_lane_waits_for_its_heads_retry(self, org, receiver):
        webhook = hook(org, receiver, "/o", ordered=True, max_in_flight=1)
        receiver.script("/o", Answer(status=500))
        publish_to(org, "/o", 2)
        dispatch.record([dispatch.attempt(c) for c in dispatch.claim(10)])
        head = Delivery.objects.filter(webhook=webhook).order_by("id").first()
        now = timezone.now()
        assert head.next_attempt_at > now
        assert dispatch.claim(10, now=now) == []
        assert Lane.objects.get(webhook=webhook).due_at == head.next_attempt_at

    def test_a_lane_is_parked_by_its_webhook_or_the_webhooks_id(self, org, receiver):
        by_webhook, by_id, untouched = (hook(org, receiver, f"/{p}") for p in "abc")
        for path in ("/a", "/b", "/c"):
            publish_to(org, path, 1)
        lanes.park(by_webhook)
        lanes.park(by_id.pk)
        assert set(Lane.objects.filter(due_at__isnull=True).values_list("webhook", flat=True)) == {
            by_webhook.pk,
            by_id.pk,
        }
        assert Lane.objects.get(webhook=untouched).due_at is not None

    def test_something_is_due_when_a_lane_of_an_active_webhook_is_due(self, org, receiver):
        webhook = hook(org, receiver, "/a")
        assert not claiming.due_exists()
        publish_to(org, "/a", 1)
        due_at = Lane.objects.get(webhook=webhook).due_at
        assert claiming.due_exists()
        assert claiming.due_exists(due_at)
        assert not claiming.due_exists(due_at - timedelta(microseconds=1))
        # A lane left due by a webhook paused behind the lanes' back is not.
        Webhook.objects.filter(pk=webhook.pk).update(status=Webhook.Status.PAUSED)
        assert not claiming.due_exists()

    def test_seconds_until_due_reads_the_first_due_lane_of_an_active_webhook(self, org, receiver):
        now = timezone.now()
        assert claiming.seconds_until_due(now) is None  # no lane at all
        later, sooner, paused = (hook(org, receiver, f"/{name}") for name in ("l", "s", "p"))
        Lane.objects.create(webhook=later, due_at=now + timedelta(seconds=30))
        Lane.objects.create(webhook=sooner, due_at=now + timedelta(seconds=5))
        Lane.objects.create(webhook=paused, due_at=now - timedelta(seconds=60))
        Webhook.objects.filter(pk=paused.pk).update(status=Webhook.Status.PAUSED)
        assert claiming.seconds_until_due(now) == pytest.approx(5)
        Lane.objects.filter(webhook=sooner).update(due_at=None)  # waits for nothing
        assert claiming.seconds_until_due(now) == pytest.approx(30)
        Lane.objects.filter(webhook=later).update(due_at=now - timedelta(seconds=2))
        assert claiming.seconds_until_due(now) == pytest.approx(-2)  # due already
        Lane.objects.update(due_at=None)
        assert claiming.seconds_until_due(now) is None

    def test_lanes_of_webhooks_paused_behind_their_back_are_parked_and_the_rest_claimed(
        self, org, receiver
    ):
        paused = [hook(org, receiver, f"/p{i}") for i in range(2)]
        active = hook(org, receiver, "/a")
        for path in ("/p0", "/p1", "/a"):
            publish_to(org, path, 1)
        now = timezone.now()
        for seconds, webhook in enumerate(paused, start=2):
            Lane.objects.filter(webhook=webhook).update(due_at=now - timedelta(seconds=seconds))
        Webhook.objects.filter(pk__in=[w.pk for w in paused]).update(status=Webhook.Status.PAUSED)
        # The paused lanes come first in the round; the active one still goes.
        assert claimed_by_webhook(dispatch.claim(10, now=now)) == {active.pk: 1}
        assert [Lane.objects.get(webhook=w).due_at for w in paused] == [None, None]

    def test_the_due_backlog_is_what_a_worker_could_take_of_active_webhooks(self, org, receiver):
        active, paused = hook(org, receiver, "/a"), hook(org, receiver, "/p")
        publish_to(org, "/a", 3)
        publish_to(org, "/p", 1)
        now = timezone.now()
        later, leased, due = Delivery.objects.filter(webhook=active).order_by("id")
        Delivery.objects.filter(pk=later.pk).update(next_attempt_at=now + timedelta(seconds=5))
        lease(leased.pk, now + timedelta(seconds=5))
        Webhook.objects.filter(pk=paused.pk).update(status=Webhook.Status.PAUSED)
        assert list(claiming.due_deliveries(now)) == [due]
        assert claiming.due_deliveries(now + timedelta(seconds=6)).count() == 3
        assert claiming.due_deliveries().count() == 1  # now, by default

    def test_a_paused_webhooks_lane_is_parked(self, org, receiver):
        webhook = hook(org, receiver, "/a")
        publish_to(org, "/a", 1)
        actions.pause_webhook(webhook)
        assert Lane.objects.get(webhook=webhook).due_at is None
        assert not claiming.due_exists()


class TestPressure:
    """What holds each webhook's deliveries back, as its page shows it."""

    def test_in_flight_cap_waiting_and_what_holds_them(self, org, receiver):
        capped = hook(org, receiver, "/a", max_in_flight=2)
        roomy = hook(org, receiver, "/b")
        full = hook(org, receiver, "/c", max_in_flight=1)
        # Made ordered behind validation's back: one at a time all the same.
        ordered = hook(org, receiver, "/d", ordered=True, max_in_flight=3)
        limited = hook(org, receiver, "/e", rate_limit=1)
        paused = hook(org, receiver, "/f")
        for path, count in [("/a", 7), ("/b", 2), ("/c", 1), ("/d", 2), ("/e", 3), ("/f", 2)]:
            publish_to(org, path, count)
        now = timezone.now()
        *_, retrying, ended = Delivery.objects.filter(webhook=capped).order_by("id")
        Delivery.objects.filter(pk=retrying.pk).update(next_attempt_at=now + timedelta(minutes=1))
        Delivery.objects.filter(pk=ended.pk).update(status=Delivery.Status.SUCCEEDED)
        Webhook.objects.filter(pk=paused.pk).update(status=Webhook.Status.PAUSED)
        dispatch.claim(50)
        dispatch.claim(50)

        P = claiming.Pressure
        assert claiming.pressure(capped) == P(2, 2, 3, "max_in_flight")
        assert claiming.pressure(roomy) == P(2, 10, 0, "")
        assert claiming.pressure(full) == P(1, 1, 0, "")  # at its cap, nothing waits
        assert claiming.pressure(Webhook.objects.get(pk=ordered.pk)) == P(1, 1, 1, "order")
        assert claiming.pressure(limited) == P(1, 10, 2, "rate_limit")
        assert claiming.pressure(Webhook.objects.get(pk=paused.pk)) == P(0, 10, 2, "")
        # An hour on, by the same clock: every lease ran out, the retry is due.
        assert claiming.pressure(capped, now + timedelta(hours=1)) == P(0, 2, 6, "")


# --- the fields, through the API and the dashboard ------------------------------


WEBHOOKS = "/api/v1/webhooks"


def create(api, **fields):
    return api.post(WEBHOOKS, {"url": "https://example.com/h", "events": ["*"], **fields})


class TestFields:
    def test_defaults(self, api):
        body = create(api).json()
        assert (body["max_in_flight"], body["rate_limit"], body["ordered"]) == (10, None, False)

    def test_set_on_create_and_update(self, api):
        body = create(api, max_in_flight=3, rate_limit=20).json()
        assert (body["max_in_flight"], body["rate_limit"]) == (3, 20)
        patched = api.patch(f"{WEBHOOKS}/{body['id']}", {"rate_limit": None, "ordered": True})
        assert patched.status_code == 200, patched.content
        out = patched.json()
        assert (out["max_in_flight"], out["rate_limit"], out["ordered"]) == (1, None, True)
        assert api.get(f"{WEBHOOKS}/{body['id']}").json()["ordered"] is True

    def test_ordered_webhooks_send_one_at_a_time(self, api):
        assert create(api, ordered=True).json()["max_in_flight"] == 1
        error_of(create(api, ordered=True, max_in_flight=5), 422, "invalid", "max_in_flight")

    @pytest.mark.parametrize(
        "field, value",
        [
            ("max_in_flight", 0),
            ("max_in_flight", 101),
            ("max_in_flight", "5"),
            ("rate_limit", 0),
            ("rate_limit", 1001),
            ("rate_limit", "5"),
            ("ordered", "yes"),
            ("ordered", 1),
        ],
    )
    def test_bad_values_are_refused_and_change_nothing(self, api, field, value):
        webhook_id = create(api, max_in_flight=4, rate_limit=9).json()["id"]
        before = Webhook.objects.values().get(public_id=webhook_id)
        error_of(create(api, **{field: value}), 422, "invalid", field)
        error_of(api.patch(f"{WEBHOOKS}/{webhook_id}", {field: value}), 422, "invalid", field)
        assert Webhook.objects.values().get(public_id=webhook_id) == before
        assert Webhook.objects.count() == 1

    def test_an_ordered_webhook_refuses_a_wider_cap(self, api):
        webhook_id = create(api, ordered=True).json()["id"]
        error_of(
            api.patch(f"{WEBHOOKS}/{webhook_id}", {"max_in_flight": 2}),
            422,
            "invalid",
            "max_in_flight",
        )
        assert Webhook.objects.get(public_id=webhook_id).max_in_flight == 1


@pytest.mark.parametrize(
    "value",
    ["2026-12-02 01:00:00.5", datetime(2026, 12, 2, 1, 0, 0, 500000)],
    ids=["text", "naive"],
)
def test_a_time_sqlite_hands_back_is_read_as_utc(value, settings):
    # Text where a result column has no declared type, else a naive datetime.
    settings.TIME_ZONE = "America/New_York"
    assert claiming._as_datetime(value) == datetime(2026, 12, 2, 1, 0, 0, 500000, tzinfo=UTC)
    assert claiming._as_datetime(None) is None


def test_no_query_depends_on_the_sqlite_text_of_times(org, receiver):
    """Lanes are written with raw SQL: their times must compare with the ORM's."""
    webhook = hook(org, receiver, "/a")
    publish_to(org, "/a", 1)
    due_at = Lane.objects.get(webhook=webhook).due_at
    assert Lane.objects.filter(due_at__lte=timezone.now(), webhook=webhook).exists()
    assert due_at <= timezone.now()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT CAST(due_at AS TEXT) FROM deliveries_lane")
            (raw,) = cursor.fetchone()
        assert "+" not in raw


class TestWebhookPage:
    @pytest.fixture
    def browser(self, client, org):
        client.force_login(MembershipFactory(organization=org, role=Membership.Role.ADMIN).user)
        return client

    def test_it_shows_the_requests_in_flight_and_what_holds_the_rest(self, browser, org, receiver):
        webhook = hook(org, receiver, "/a", max_in_flight=2, rate_limit=3)
        publish_to(org, "/a", 5)
        dispatch.claim(10)  # one, then another: two in flight, its cap
        dispatch.claim(10)
        page = browser.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert "up to 2 at once, at most 3/s" in page
        assert re.search(r'id="in-flight">2 of 2 now', page)
        assert "3 due, waiting for a free slot" in page

        Lease.objects.all().delete()
        page = browser.get(f"/webhooks/{webhook.public_id}/").content.decode()
        assert re.search(r'id="in-flight">0 of 2 now', page)
        assert "The rate limit is holding 5 due deliveries back." in page

    def test_the_form_sets_pace_and_order(self, browser, org):
        response = browser.post(
            "/webhooks/new/",
            {
                "url": "https://example.com/h",
                "patterns": "*",
                "timeout_seconds": "10",
                "max_attempts": "5",
                "max_in_flight": "7",
                "rate_limit": "",
                "ordered": "on",
                "signature_header": "X-Webhook-Signature",
            },
        )
        assert response.status_code == 302, response.content
        webhook = Webhook.objects.get(organization=org)
        assert (webhook.max_in_flight, webhook.rate_limit, webhook.ordered) == (1, None, True)

    @pytest.mark.parametrize(
        "field, value", [("max_in_flight", "0"), ("max_in_flight", "101"), ("rate_limit", "1001")]
    )
    def test_the_form_names_a_bad_value(self, browser, org, field, value):
        data = {
            "url": "https://example.com/h",
            "patterns": "*",
            "timeout_seconds": "10",
            "max_attempts": "5",
            "max_in_flight": "10",
            "signature_header": "X-Webhook-Signature",
            field: value,
        }
        response = browser.post("/webhooks/new/", data)
        assert response.status_code == 200
        assert field in response.context["form"].errors
        assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_in_flight": 101}, "max_in_flight"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": 1001}, "rate_limit"),
        ({"ordered": True, "max_in_flight": 5}, "max_in_flight"),
    ],
)
def test_django_admin_validates_the_fields_as_the_api_does(org, fields, field):
    """The admin's form runs the model's validation (full_clean)."""
    webhook = Webhook(organization=org, url="https://example.com/h", event_patterns=["*"], **fields)
    with pytest.raises(ValidationError) as error:
        webhook.full_clean()
    assert field in error.value.message_dict

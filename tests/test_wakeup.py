"""Waking the dispatcher (wakeup.py, jobs.py): one job queued for a burst
of wakes, none while a dispatcher claims, and a hand-over when it stops,
against the tests' real Redis."""

import threading
import time
from datetime import timedelta

import pytest
import rq
from django.db import connections
from django.utils import timezone

from deliveries import jobs, wakeup
from deliveries.models import Delivery, Lane
from deliveries.publishing import publish
from tests.conftest import deliver_due
from tests.factories import WebhookFactory
from tests.receiver import Answer

# Also run on the embedded defaults (SQLite, the bundled Redis) by .ci/run.
# Transactions commit for real: django-rq enqueues a job when its transaction does.
pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def queued() -> int:
    return jobs.queue().count


def test_a_burst_of_wakes_queues_one_job(redis_conn):
    for _ in range(5):
        wakeup.wake_dispatcher()
    assert queued() == 1


def test_a_dispatch_job_goes_before_the_periodic_jobs_waiting(redis_conn):
    for periodic in (jobs.sweep, jobs.tick):
        jobs.queue().enqueue(periodic)
    wakeup.wake_dispatcher()
    assert [job.func_name for job in jobs.queue().get_jobs()] == [
        wakeup.DISPATCH_JOB,
        "deliveries.jobs.sweep",
        "deliveries.jobs.tick",
    ]


def test_a_started_job_lets_the_next_wake_queue_another(redis_conn):
    wakeup.wake_dispatcher()
    wakeup.job_started()
    wakeup.wake_dispatcher()
    assert queued() == 2


def test_no_job_is_queued_while_a_dispatcher_claims(redis_conn):
    role = jobs.ClaimingRole()
    role.take()
    wakeup.wake_dispatcher()
    assert queued() == 0
    role.give_up()  # nothing due: nothing to hand over
    assert queued() == 0
    wakeup.wake_dispatcher()
    assert queued() == 1


def test_what_was_published_while_a_dispatcher_claimed_is_handed_over(redis_conn, org, receiver):
    WebhookFactory(organization=org, url=receiver.url())
    role = jobs.ClaimingRole()
    role.take()
    publish(org, "person.created", {"n": 1})
    assert queued() == 0
    role.give_up()
    assert queued() == 1


def test_a_dispatcher_that_stopped_saying_so_holds_no_wake_back(redis_conn):
    # Its worker died: its lapse time passed without a renewal.
    redis_conn.zadd(wakeup.CLAIMING_KEY, {"dead": 0})
    wakeup.wake_dispatcher()
    assert queued() == 1
    assert redis_conn.zcard(wakeup.CLAIMING_KEY) == 0


def test_a_claiming_dispatcher_is_known_for_a_few_seconds_after_it_said_so(redis_conn):
    wakeup.hold_claiming("live")
    (score,) = [s for _, s in redis_conn.zrange(wakeup.CLAIMING_KEY, 0, -1, withscores=True)]
    now, _ = redis_conn.time()  # whole seconds: a second may have begun since
    assert score - wakeup.CLAIMING_SECONDS in (now - 1, now)
    assert 0 < redis_conn.ttl(wakeup.CLAIMING_KEY) <= wakeup.CLAIMING_SECONDS


def test_a_call_for_help_passes_a_claiming_dispatcher_once_a_second(redis_conn):
    jobs.ClaimingRole().take()
    wakeup.call_for_help()
    wakeup.call_for_help()
    assert queued() == 1


def test_a_dispatcher_says_it_claims_no_more_before_its_last_requests_end(org, receiver):
    WebhookFactory(organization=org, url=receiver.url("/slow"))
    receiver.always("/slow", Answer(delay=1.0))
    publish(org, "person.created", {"n": 1})
    over = []
    assert deliver_due(max_seconds=0.2, on_claims_over=lambda: over.append(time.time())) == 1
    (request,) = receiver.to("/slow")
    assert len(over) == 1 and over[0] < request.at + 1.0


def test_a_lingering_dispatcher_finds_a_publish_before_the_lane_it_waits_for(org, receiver):
    # While it claims, no other job is queued for a publish: it must look.
    retrying = WebhookFactory(organization=org, url=receiver.url("/retry"), event_patterns=["a.*"])
    WebhookFactory(organization=org, url=receiver.url("/new"), event_patterns=["b.*"])
    publish(org, "a.created", {"n": 1})
    due = timezone.now() + timedelta(seconds=0.9)  # a retry, due soon
    Delivery.objects.filter(webhook=retrying).update(next_attempt_at=due)
    Lane.objects.filter(webhook=retrying).update(due_at=due)
    dispatcher = threading.Thread(target=lambda: (deliver_due(), connections.close_all()))
    dispatcher.start()
    time.sleep(0.2)
    published_at = time.time()
    publish(org, "b.created", {"n": 2})
    dispatcher.join(10)
    (new,) = receiver.to("/new")
    (retry,) = receiver.to("/retry")
    assert new.at < retry.at and new.at - published_at < 0.4


def test_each_dispatcher_knows_how_many_claim(redis_conn):
    first, second = jobs.ClaimingRole(), jobs.ClaimingRole()
    first.take()
    assert first.claimers() == 1
    second.take()
    assert second.claimers() == 2
    # The first counts again after CLAIMERS_COUNT_SECONDS, not at every claim.
    assert first.claimers() == 1
    time.sleep(jobs.CLAIMERS_COUNT_SECONDS)
    assert first.claimers() == 2
    second.give_up()
    time.sleep(jobs.CLAIMERS_COUNT_SECONDS)
    assert first.claimers() == 1


def test_a_dispatcher_whose_worker_died_is_not_counted(redis_conn):
    redis_conn.zadd(wakeup.CLAIMING_KEY, {"dead": 0})
    wakeup.hold_claiming("live")
    assert wakeup.claimers() == 1


def a_worker_listens(number: int) -> None:
    rq.Worker(
        [jobs.queue()], name=f"listening-{number}", connection=jobs.queue().connection
    ).register_birth()


def test_a_dispatcher_calls_for_help_only_when_a_worker_is_free_to_come(redis_conn):
    a_worker_listens(1)
    role = jobs.ClaimingRole()
    role.take()
    # Its own worker is the only one: a job would wait for this one to end.
    role.call_for_help()
    assert queued() == 0
    a_worker_listens(2)
    time.sleep(jobs.CLAIMERS_COUNT_SECONDS)
    role.call_for_help()
    assert queued() == 1

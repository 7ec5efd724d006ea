"""Durability with real processes: rq workers and the scheduler running
against the test database and Redis, deliveries going over real HTTP."""

import pytest

from deliveries import jobs
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.publishing import publish
from tests.factories import OrganizationFactory, WebhookFactory, leased_until
from tests.processes import Processes, wait_until
from tests.receiver import Answer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(redis_conn):
    running = Processes(HERALD_LEASE_MARGIN_SECONDS="1", HERALD_SWEEP_SECONDS="1")
    yield running
    running.stop_all()


def all_succeeded():
    return Delivery.objects.exists() and not Delivery.objects.exclude(status="succeeded").exists()


@pytest.mark.embedded
def test_a_published_event_is_delivered_by_a_worker(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url())
    processes.worker()
    publish(org, "person.created", {"hello": "world"})
    receiver.wait_for(1, timeout=20)
    assert wait_until(all_succeeded)


def test_nothing_is_lost_when_the_redis_database_is_flushed(processes, receiver, redis_conn):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url())
    for i in range(5):
        publish(org, "person.created", {"i": i})
    assert jobs.queue().count == 1  # the wake-up, waiting for a worker

    redis_conn.flushdb()
    assert jobs.queue().count == 0
    processes.worker()
    processes.scheduler()

    receiver.wait_for(5, timeout=30)
    assert wait_until(all_succeeded)
    assert Delivery.objects.count() == 5


def test_a_worker_killed_mid_request_leaves_its_delivery_to_be_attempted_again(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url(), timeout_seconds=2)
    receiver.script("/hook", Answer(delay=10))  # the first request hangs
    victim = processes.worker()
    publish(org, "person.created", {"n": 1})
    (first,) = receiver.wait_for(1, timeout=20)

    processes.kill(victim)  # SIGKILL while the request is in flight
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and leased_until(delivery.pk) is not None

    processes.worker()
    processes.scheduler()
    second = receiver.wait_for(2, timeout=30)[1]
    assert second.header("webhook-id") == first.header("webhook-id")
    assert wait_until(all_succeeded)
    # The killed attempt left no record; the one that completed did.
    assert list(DeliveryAttempt.objects.values_list("number", "response_status")) == [(1, 200)]


def test_the_first_two_retries_follow_the_schedule_in_real_time(processes, receiver):
    """Default schedule: immediate, +5 s, +30 s (±10 % jitter)."""
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url())
    receiver.script("/hook", Answer(status=500), Answer(status=503))
    processes.worker()
    processes.scheduler()
    publish(org, "person.created", {})

    first, second, third = receiver.wait_for(3, timeout=60)
    assert 4.5 <= second.at - first.at <= 5.5 + 1.5  # the scheduler looks every second
    assert 27 <= third.at - second.at <= 33 + 1.5
    assert wait_until(all_succeeded)
    assert Delivery.objects.get().attempts == 3


def test_a_queue_job_outlives_the_longest_http_timeout():
    assert jobs.dispatch_job_timeout() > jobs.MAX_WEBHOOK_TIMEOUT_SECONDS + 30

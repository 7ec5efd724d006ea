"""Fairness with real worker processes (SPEC §3): the cap and the rate limit
hold across two workers together, ordered webhooks keep publish order
through failures and a killed worker, and a slow tenant does not hold back
another. Receivers are real HTTP servers on loopback; they count what
overlaps and when it arrives."""

import json
import time

import pytest

from deliveries.models import Delivery
from deliveries.publishing import publish
from tests.factories import OrganizationFactory, WebhookFactory
from tests.processes import Processes, wait_until
from tests.receiver import Answer
from tests.test_fairness import most_in_any_second

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(redis_conn):
    running = Processes(
        HERALD_LEASE_MARGIN_SECONDS="1",
        HERALD_SWEEP_SECONDS="1",
        HERALD_RETRY_SCHEDULE="0,1",
        HERALD_RETRY_JITTER="0",
    )
    yield running
    running.stop_all()


def index_of(request) -> int:
    return json.loads(request.body)["data"]["i"]


def publish_many_to(org, event_type: str, count: int) -> None:
    for i in range(count):
        publish(org, event_type, {"i": i})


def test_the_cap_holds_under_a_burst_across_two_workers(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url("/capped"), max_in_flight=3)
    receiver.always("/capped", Answer(delay=0.3))
    publish_many_to(org, "burst.created", 30)
    processes.worker_pool(2)
    receiver.wait_for(30, "/capped", timeout=60)
    assert receiver.max_in_flight_by_path["/capped"] == 3


def test_the_rate_limit_holds_across_two_workers(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url("/limited"), rate_limit=5, max_in_flight=100)
    publish_many_to(org, "burst.created", 20)
    processes.worker_pool(2)
    arrivals = sorted(r.at for r in receiver.wait_for(20, "/limited", timeout=60))
    assert most_in_any_second(arrivals) <= 5
    assert arrivals[-1] - arrivals[0] >= 19 / 5
    # Held back by the limit is no attempt: each went out once.
    assert wait_until(lambda: Delivery.objects.filter(status="succeeded").count() == 20)
    assert set(Delivery.objects.values_list("attempts", flat=True)) == {1}


def test_an_ordered_webhook_keeps_publish_order_through_failures(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url("/o"), ordered=True, max_in_flight=1)
    # Every event's first attempt fails and its retry (1 s later) succeeds.
    receiver.script("/o", *[Answer(status=500), Answer(status=200)] * 5)
    publish_many_to(org, "ordered.created", 5)
    processes.worker_pool(2)
    processes.scheduler()
    received = receiver.wait_for(10, "/o", timeout=60)
    assert [index_of(r) for r in received] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_an_ordered_webhook_keeps_its_order_when_a_worker_is_killed(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(
        organization=org,
        url=receiver.url("/o"),
        ordered=True,
        max_in_flight=1,
        timeout_seconds=2,
    )
    receiver.script("/o", Answer(delay=10))  # the first request hangs
    publish_many_to(org, "ordered.created", 4)
    victim = processes.worker()
    receiver.wait_for(1, "/o", timeout=20)
    processes.kill(victim)
    # Its lease ends (2 s timeout + 1 s margin); another worker takes over.
    processes.worker()
    processes.scheduler()
    received = receiver.wait_for(5, "/o", timeout=60)
    order = [index_of(r) for r in received]
    assert order == [0, 0, 1, 2, 3]  # the same one twice, never a later one first
    assert wait_until(lambda: not Delivery.objects.exclude(status="succeeded").exists())


def test_a_slow_tenant_does_not_hold_back_another(processes, receiver):
    slow_org, quick_org = OrganizationFactory(), OrganizationFactory()
    WebhookFactory(organization=slow_org, url=receiver.url("/slow"), timeout_seconds=15)
    WebhookFactory(organization=quick_org, url=receiver.url("/quick"))
    receiver.always("/slow", Answer(delay=3))
    publish_many_to(slow_org, "backlog.created", 100)
    processes.worker_pool(2)
    processes.scheduler()
    assert wait_until(lambda: receiver.in_flight_by_path["/slow"] == 10, timeout=30)

    published_at = {}
    for i in range(10):
        publish(quick_org, "order.created", {"i": i})
        published_at[i] = time.time()
        time.sleep(0.1)
    waits = [r.at - published_at[index_of(r)] for r in receiver.wait_for(10, "/quick", 30)]
    assert max(waits) < 5, waits
    assert receiver.max_in_flight_by_path["/slow"] <= 10

"""Graceful shutdown with real processes: a worker (alone or in the
Procfile's pool) that gets SIGTERM stops claiming, lets the requests in
flight finish, records them and exits by itself; a second signal cuts it
short without losing anything; the scheduler and gunicorn exit cleanly."""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from deliveries import shutdown
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.publishing import publish
from tests.factories import OrganizationFactory, WebhookFactory, leased_until
from tests.processes import Processes, wait_until
from tests.receiver import Answer

# Tests with real processes (the signal handling itself is tested in-process below).
real_processes = pytest.mark.django_db(transaction=True)


@pytest.fixture
def processes(redis_conn):
    running = Processes(HERALD_WORKER_CONCURRENCY="3")
    yield running
    running.stop_all()


def exit_time(process: subprocess.Popen, sig: int, timeout: float = 30.0) -> float:
    """Send `sig`; return how long the process took to exit (it must exit 0)."""
    started = time.monotonic()
    process.send_signal(sig)
    assert process.wait(timeout=timeout) == 0
    return time.monotonic() - started


@pytest.mark.slow
@real_processes
@pytest.mark.parametrize("kind", ["worker", "pool"])
def test_sigterm_mid_request_lets_it_finish_and_records_it(processes, receiver, kind):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url(), timeout_seconds=10)
    receiver.always("/hook", Answer(delay=2))
    worker = processes.worker() if kind == "worker" else processes.worker_pool(1)
    publish(org, "person.created", {"n": 1})
    receiver.wait_for(1, timeout=30)  # the request is in flight, answered in ~2 s

    took = exit_time(worker, signal.SIGTERM)

    assert 1.0 < took < 10, took  # it waited for the answer, within the webhook's timeout
    assert receiver.in_flight == 0 and len(receiver.requests) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == "succeeded" and leased_until(delivery.pk) is None
    assert list(DeliveryAttempt.objects.values_list("number", "response_status")) == [(1, 200)]


@pytest.mark.slow
@real_processes
def test_a_stopping_worker_claims_nothing_more(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url(), timeout_seconds=10)
    receiver.always("/hook", Answer(delay=2))
    for i in range(10):
        publish(org, "person.created", {"i": i})
    worker = processes.worker()  # three requests in flight at most
    receiver.wait_for(3, timeout=30)

    assert exit_time(worker, signal.SIGTERM) < 10
    time.sleep(0.5)

    assert len(receiver.requests) == 3
    assert Delivery.objects.filter(status="succeeded").count() == 3
    assert DeliveryAttempt.objects.count() == 3
    waiting = Delivery.objects.filter(status="pending")
    assert waiting.count() == 7
    assert not waiting.filter(lease__isnull=False).exists()
    assert not waiting.filter(attempts__gt=0).exists()


@pytest.mark.slow
@real_processes
def test_a_second_signal_cuts_it_short_and_loses_nothing(processes, receiver):
    org = OrganizationFactory()
    WebhookFactory(organization=org, url=receiver.url(), timeout_seconds=20)
    receiver.script("/hook", Answer(delay=15))
    worker = processes.worker()
    publish(org, "person.created", {})
    receiver.wait_for(1, timeout=30)

    worker.send_signal(signal.SIGTERM)
    time.sleep(1.5)  # rq ignores a repeat within a second (pool + terminal)
    took = exit_time(worker, signal.SIGTERM)

    assert took < 5, took
    # Nothing half-recorded: no attempt, the delivery still held by its lease,
    # to be attempted again once the lease runs out.
    assert not DeliveryAttempt.objects.exists()
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 0
    assert leased_until(delivery.pk) is not None


@pytest.mark.slow
@real_processes
def test_the_scheduler_exits_cleanly_on_sigterm(processes, redis_conn):
    scheduler = processes.scheduler()
    assert wait_until(lambda: redis_conn.zcard("rq:cron_schedulers") == 1)

    assert exit_time(scheduler, signal.SIGTERM) < 5
    assert redis_conn.zcard("rq:cron_schedulers") == 0  # it unregistered


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@real_processes
def test_the_procfile_processes_report_healthy_then_all_exit_cleanly_on_sigterm(processes):
    port = free_port()
    web = processes.web(port)
    pool = processes.worker_pool(2)
    scheduler = processes.scheduler()

    def healthz():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)
        except OSError:
            return None, None

    assert wait_until(lambda: healthz()[0] == 200, timeout=30), healthz()
    status, body = healthz()
    assert body["checks"]["workers"] == {"status": "ok", "alive": 2}
    assert body["checks"]["scheduler"] == {"status": "ok", "alive": 1}

    for process in (scheduler, pool, web):
        assert exit_time(process, signal.SIGTERM) < 10
    status, body = healthz()
    assert status is None  # nobody listens any more


class TestStopRequested:
    """deliveries.shutdown.stop_requested in this (main) thread, in front of a
    handler standing in for rq's."""

    @pytest.fixture
    def rq_like(self):
        calls = []
        saved = {sig: signal.getsignal(sig) for sig in shutdown.STOP_SIGNALS}

        def request_force_stop(signum, frame):
            calls.append(("force", signum))

        def request_stop(signum, frame):
            calls.append(("stop", signum))
            signal.signal(signal.SIGTERM, request_force_stop)
            signal.signal(signal.SIGINT, request_force_stop)

        for sig in shutdown.STOP_SIGNALS:
            signal.signal(sig, request_stop)
        yield calls, request_stop, request_force_stop
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    def test_the_first_signal_raises_the_flag_and_reaches_rq(self, rq_like):
        calls, request_stop, request_force_stop = rq_like
        with shutdown.stop_requested() as stopping:
            assert not stopping()
            os.kill(os.getpid(), signal.SIGTERM)
            assert stopping()
            assert calls == [("stop", signal.SIGTERM)]
            # The second goes straight to what rq put in place: its cold stop.
            os.kill(os.getpid(), signal.SIGINT)
            assert calls == [("stop", signal.SIGTERM), ("force", signal.SIGINT)]
        assert signal.getsignal(signal.SIGTERM) is request_force_stop

    def test_without_a_signal_the_handlers_are_put_back(self, rq_like):
        _, request_stop, _ = rq_like
        with shutdown.stop_requested() as stopping:
            assert signal.getsignal(signal.SIGTERM) is not request_stop
        assert not stopping()
        assert signal.getsignal(signal.SIGTERM) is request_stop
        assert signal.getsignal(signal.SIGINT) is request_stop

    def test_a_signal_rq_took_just_before_the_job_counts(self, rq_like):
        calls, request_stop, request_force_stop = rq_like
        request_stop(signal.SIGTERM, None)  # rq's handler ran, then the job began
        with shutdown.stop_requested() as stopping:
            assert stopping()

    def test_default_and_ignored_signals_are_left_alone(self):
        saved = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            with shutdown.stop_requested() as stopping:
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
                os.kill(os.getpid(), signal.SIGTERM)
                assert not stopping()
        finally:
            signal.signal(signal.SIGTERM, saved)

    def test_outside_the_main_thread_it_only_yields_a_flag(self):
        results = []

        def job():
            with shutdown.stop_requested() as stopping:
                results.append(stopping())

        thread = threading.Thread(target=job)
        thread.start()
        thread.join()
        assert results == [False]

"""GET /healthz: database, Redis, live workers and the scheduler, each
bounded by a timeout, revealing nothing about the servers behind them."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import OperationalError
from rq import Queue, SimpleWorker
from rq.cron import CronScheduler
from rq.cron_scheduler_registry import get_registry_key
from rq.utils import now, utcformat, utcparse

from monitoring import health


@pytest.fixture
def live_worker(redis_conn):
    """An rq worker of Herald's queue, as a running one registers itself."""
    worker = SimpleWorker(
        [Queue(django_settings.HERALD_QUEUE, connection=redis_conn)], connection=redis_conn
    )
    worker.register_birth()
    return worker


@pytest.fixture
def live_scheduler(redis_conn):
    scheduler = CronScheduler(connection=redis_conn)
    scheduler.register_birth()
    return scheduler


def get(client):
    started = time.monotonic()
    response = client.get("/healthz")
    response.took = time.monotonic() - started
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response, response.json()


def test_all_ok(client, db, live_worker, live_scheduler):
    response, body = get(client)
    assert response.status_code == 200
    assert body == {
        "status": "ok",
        "checks": {
            "database": {"status": "ok"},
            "redis": {"status": "ok"},
            "workers": {"status": "ok", "alive": 1},
            "scheduler": {"status": "ok", "alive": 1},
        },
    }


def test_it_needs_no_login(client, db, live_worker, live_scheduler):
    response, _ = get(client)
    assert response.status_code == 200  # not a redirect to the login page


def test_no_worker_is_degraded(client, db, live_scheduler):
    response, body = get(client)
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["checks"]["workers"] == {"status": "down", "alive": 0}
    assert body["checks"]["database"] == {"status": "ok"}


def test_no_scheduler_is_degraded(client, db, live_worker):
    response, body = get(client)
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert body["checks"]["scheduler"] == {"status": "down", "alive": 0}


def test_only_workers_of_herald_with_a_recent_heartbeat_count(
    client, db, redis_conn, live_worker, live_scheduler
):
    stale = SimpleWorker(
        [Queue(django_settings.HERALD_QUEUE, connection=redis_conn)], connection=redis_conn
    )
    stale.register_birth()
    long_ago = now() - timedelta(seconds=health.WORKER_HEARTBEAT_SECONDS + 5)
    redis_conn.hset(stale.key, "last_heartbeat", utcformat(long_ago))
    elsewhere = SimpleWorker([Queue("other", connection=redis_conn)], connection=redis_conn)
    elsewhere.register_birth()
    stopped = SimpleWorker(
        [Queue(django_settings.HERALD_QUEUE, connection=redis_conn)], connection=redis_conn
    )
    stopped.register_birth()
    stopped.register_death()

    _, body = get(client)
    assert body["checks"]["workers"] == {"status": "ok", "alive": 1}

    live_worker.register_death()
    response, body = get(client)
    assert response.status_code == 503 and body["checks"]["workers"]["alive"] == 0


def test_a_scheduler_whose_heartbeat_stopped_is_not_counted(client, db, redis_conn, live_worker):
    scheduler = CronScheduler(connection=redis_conn)
    scheduler.register_birth()
    redis_conn.zadd(
        get_registry_key(),
        {scheduler.name: time.time() - health.SCHEDULER_HEARTBEAT_SECONDS - 5},
    )
    response, body = get(client)
    assert response.status_code == 503
    assert body["checks"]["scheduler"] == {"status": "down", "alive": 0}


def test_redis_unreachable(client, db, settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setattr(health, "_redis_client", None)
    response, body = get(client)
    assert response.took < 2
    assert response.status_code == 503
    assert body == {
        "status": "degraded",  # events are still accepted and kept
        "checks": {
            "database": {"status": "ok"},
            "redis": {"status": "down", "error": "unavailable"},
            "workers": {"status": "down", "error": "unavailable", "alive": 0},
            "scheduler": {"status": "down", "error": "unavailable", "alive": 0},
        },
    }
    assert "127.0.0.1" not in response.content.decode()


def test_database_unreachable_is_down_and_says_nothing_of_it(
    client, db, live_worker, live_scheduler, monkeypatch
):
    def fail():
        raise OperationalError('connection to server at "db.internal" (10.0.0.7), port 5432 failed')

    monkeypatch.setitem(health.CHECKS, "database", fail)
    response, body = get(client)
    assert response.status_code == 503
    assert body["status"] == "down"
    assert body["checks"]["database"] == {"status": "down", "error": "unavailable"}
    text = response.content.decode()
    assert "db.internal" not in text and "10.0.0.7" not in text and "5432" not in text


def test_nothing_about_the_servers_is_revealed(client, db, live_worker, live_scheduler):
    response, _ = get(client)
    text = response.content.decode()
    database = django_settings.DATABASES["default"]
    for secret in (str(database["NAME"]), django_settings.REDIS_URL, "6379", "redis://"):
        assert secret not in text
    assert set(json.loads(text)) == {"status", "checks"}


def test_a_check_that_hangs_does_not_hang_the_endpoint(
    client, db, live_worker, live_scheduler, monkeypatch
):
    release = threading.Event()
    calls = []

    def hang():
        calls.append(1)
        release.wait(10)
        return {}

    monkeypatch.setitem(health.CHECKS, "database", hang)
    monkeypatch.setattr(health, "TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(health.run_checks, "__defaults__", (0.5,))
    try:
        response, body = get(client)
        assert response.took < 2
        assert response.status_code == 503 and body["status"] == "down"
        assert body["checks"]["database"] == {"status": "down", "error": "timeout"}
        assert body["checks"]["redis"] == {"status": "ok"}

        # Still stuck: the next request does not pile another thread on it.
        response, body = get(client)
        assert response.took < 0.5
        assert body["checks"]["database"] == {"status": "down", "error": "timeout"}
        assert len(calls) == 1
    finally:
        release.set()
    health._running["database"].join(2)
    _, body = get(client)
    assert len(calls) == 2 and body["checks"]["database"] == {"status": "ok"}


def test_plain_http_probes_are_not_redirected_under_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    # Answered, not redirected: no worker runs in this test, so it is degraded.
    assert client.get("/healthz").status_code == 503


def test_only_get(client, db):
    assert client.post("/healthz").status_code == 405


def test_a_long_job_keeps_its_worker_heartbeating(redis_conn, live_worker, monkeypatch):
    """SimpleWorker does not heartbeat while a job runs; Herald's long jobs
    (dispatch, purge) do, so /healthz keeps counting a busy worker."""
    from types import SimpleNamespace

    import rq

    from deliveries import jobs

    long_ago = now() - timedelta(minutes=10)
    redis_conn.hset(live_worker.key, "last_heartbeat", utcformat(long_ago))
    job = SimpleNamespace(worker_name=live_worker.name, connection=redis_conn, timeout=390)
    monkeypatch.setattr(rq, "get_current_job", lambda: job)

    with jobs.worker_heartbeats(every=0.05):
        time.sleep(0.3)

    beat = redis_conn.hget(live_worker.key, "last_heartbeat").decode()
    assert (now() - utcparse(beat)).total_seconds() < 1
    assert redis_conn.ttl(live_worker.key) > 390


def test_outside_a_worker_the_heartbeat_does_nothing(monkeypatch, redis_conn):
    import rq

    from deliveries import jobs

    monkeypatch.setattr(rq, "get_current_job", lambda: None)
    written = redis_conn.dbsize()
    with jobs.worker_heartbeats(every=0.01):
        time.sleep(0.05)
        assert not [t for t in threading.enumerate() if t.name == "herald-heartbeat"]
    assert redis_conn.dbsize() == written

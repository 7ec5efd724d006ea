"""The scheduler process outlives Redis restarts (found by the soak test:
rq's own cron scheduler exits on a lost connection)."""

import signal
import time

import pytest
import redis

from config.embedded_redis import EmbeddedRedis
from tests.processes import Processes, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_the_scheduler_keeps_ticking_across_a_redis_restart(tmp_path):
    server = EmbeddedRedis(tmp_path / "redis")
    server.ensure_running()
    client = redis.Redis.from_url(server.url())
    processes = Processes(REDIS_URL=server.url())
    try:
        scheduler = processes.scheduler()
        # Ticks every second land in the herald queue (nobody works it here).
        assert wait_until(lambda: client.llen("rq:queue:herald") >= 2)

        server.stop()
        time.sleep(2)
        assert scheduler.poll() is None, "the scheduler died with Redis"
        server.ensure_running()  # a fresh, empty Redis

        assert wait_until(lambda: client.llen("rq:queue:herald") >= 2, timeout=40)
        assert scheduler.poll() is None

        scheduler.send_signal(signal.SIGTERM)
        assert scheduler.wait(timeout=15) == 0
    finally:
        processes.stop_all()
        server.stop()

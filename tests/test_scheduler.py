"""The scheduler process outlives Redis restarts (found by the soak test:
rq's own cron scheduler exits on a lost connection)."""

import logging
import signal
import subprocess
import sys
import time

import pytest
import redis

from config.embedded_redis import EmbeddedRedis
from deliveries.management.commands.scheduler import configure_logging
from tests.processes import BASE_DIR, Processes, wait_until

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


def scheduler_output(tmp_path, *args: str) -> str:
    """What `manage.py scheduler` prints over three ticks and a SIGTERM."""
    server = EmbeddedRedis(tmp_path / "redis")
    server.ensure_running()
    client = redis.Redis.from_url(server.url())
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "scheduler", *args],
        cwd=BASE_DIR,
        env=Processes(REDIS_URL=server.url()).env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: client.llen("rq:queue:herald") >= 3)
        scheduler.send_signal(signal.SIGTERM)
        output, _ = scheduler.communicate(timeout=15)
        assert scheduler.returncode == 0
        return output
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait()
        server.stop()


def test_the_scheduler_logs_its_start_and_stop_not_every_tick(tmp_path):
    output = scheduler_output(tmp_path)
    assert "INFO rq.cron: CronScheduler" in output and "starting" in output
    assert "shutdown complete" in output
    assert "Enqueued job" not in output  # three ticks went out, silently


def test_at_debug_the_scheduler_logs_every_job_it_enqueues(tmp_path):
    output = scheduler_output(tmp_path, "--logging-level", "DEBUG")
    assert "DEBUG rq.cron: Enqueued job tick to queue herald" in output
    assert "INFO rq.cron: Enqueued job" not in output


def test_per_tick_lines_are_debug_and_the_rest_keeps_its_level(caplog):
    cron_log = logging.getLogger("rq.cron")
    level = cron_log.level
    try:
        configure_logging(logging.INFO)
        with caplog.at_level(logging.DEBUG, logger="rq.cron"):
            cron_log.setLevel(logging.INFO)
            cron_log.info("Enqueued job tick to queue herald")
            cron_log.info("CronScheduler x: starting...")
            cron_log.warning("Failed to restore cron jobs: gone")
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("INFO", "CronScheduler x: starting..."),
            ("WARNING", "Failed to restore cron jobs: gone"),
        ]
        caplog.clear()
        configure_logging(logging.DEBUG)
        cron_log.info("Enqueued job sweep to queue herald")
        assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
            ("DEBUG", "Enqueued job sweep to queue herald")
        ]
    finally:
        cron_log.setLevel(level)

"""Herald's real processes (rq workers, the cron scheduler) run against the
test database, for tests that need them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
# As the Procfile runs the workers and the scheduler.
WORKER_SETTINGS = "config.worker_settings"


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class Processes:
    def __init__(self, **env: str) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "HERALD_ALLOW_PRIVATE_TARGETS": "1",
            "HERALD_ALLOW_HTTP": "1",
            "HERALD_TESTING": "0",
            **env,
        }
        self.running: list[subprocess.Popen] = []

    def _start(self, *args: str) -> subprocess.Popen:
        return self._spawn([sys.executable, "manage.py", *args])

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        process = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.running.append(process)
        return process

    def worker(self) -> subprocess.Popen:
        return self._start(
            "rqworker",
            settings.HERALD_QUEUE,
            "--worker-class",
            "rq.worker.SimpleWorker",
            "--settings",
            WORKER_SETTINGS,
        )

    def worker_pool(self, workers: int = 2) -> subprocess.Popen:
        """The Procfile's worker command."""
        return self._start(
            "rqworker-pool",
            settings.HERALD_QUEUE,
            "--num-workers",
            str(workers),
            "--worker-class",
            "rq.worker.SimpleWorker",
            "-v",
            "0",
            "--skip-checks",
            "--settings",
            WORKER_SETTINGS,
        )

    def scheduler(self) -> subprocess.Popen:
        """The Procfile's scheduler command."""
        return self._start("scheduler", "--skip-checks", "--settings", WORKER_SETTINGS)

    def web(self, port: int) -> subprocess.Popen:
        """The Procfile's web command (gunicorn) on 127.0.0.1:`port`."""
        return self._spawn(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "4",
            ]
        )

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        process.send_signal(sig)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 10
        for process in self.running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


def wait_until(condition, timeout: float = 20.0, every: float = 0.05) -> bool:
    """Poll `condition` until it is true (True) or `timeout` passes (False).
    Errors of a service that is restarting count as not yet."""
    import redis

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except redis.RedisError:
            pass
        time.sleep(every)
    return False

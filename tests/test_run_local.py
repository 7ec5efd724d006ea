"""`make run` (config/run_local.py) on a fresh SQLite file and its own
bundled redis-server: it serves the dashboard, labels every line it prints,
and on SIGTERM to make, or Ctrl-C (SIGINT to make's whole process group),
stops everything it started, the bundled redis-server included, within
seconds and without error noise. Loopback only, on free ports."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config.embedded_redis import EmbeddedRedis
from tests.processes import BASE_DIR

pytestmark = pytest.mark.slow

VENV_PYTHON = BASE_DIR / ".venv" / "bin" / "python"  # what Procfile.demo runs
LABELLED = re.compile(r"^\d\d:\d\d:\d\d \S+ *\| ")
PROCFILE_PROCESSES = [
    "gunicorn",
    "rqworker-pool",
    "manage.py scheduler",
    "demoreceiver",
    "--stream",
]
STOPPED_WITHIN = 20  # seconds: the launcher's grace is 10, a clean stop takes 1 or 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def live_processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process alive (zombies are not)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), command.strip())
    return found


def descendants(root: int) -> dict[int, str]:
    processes = live_processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = processes[child][1]
            todo.append(child)
    return found


@dataclass
class Run:
    """One `make run` (or its launcher) in a sandbox of its own."""

    directory: Path
    port: int = field(default_factory=free_port)
    receiver_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    spawned: set[int] = field(default_factory=set)  # to kill should the test fail

    @property
    def redis(self) -> EmbeddedRedis:
        return EmbeddedRedis(self.directory / "redis")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.pop("HERALD_TESTING", None)
        env.pop("EMAIL_BACKEND", None)
        # A database file and a bundled redis-server of its own: nothing
        # shared with var/ (another make run, the tests' own).
        env["DATABASE_URL"] = f"sqlite:///{self.directory / 'herald.sqlite3'}"
        env["HERALD_EMBEDDED_REDIS_DIR"] = str(self.directory / "redis")
        return env

    def start(self, how: str) -> None:
        ports = [f"PORT={self.port}", f"RECEIVER_PORT={self.receiver_port}", "HOST=127.0.0.1"]
        if how == "make":
            # -o: never reinstall the venv from here.
            argv = ["make", "--no-print-directory", "-o", ".venv/.installed", "run", *ports]
        else:
            argv = [sys.executable, "-m", "config.run_local", "--host", "127.0.0.1"]
            argv += ["--port", str(self.port), "--receiver-port", str(self.receiver_port)]
        # Its own process group, as a shell gives a foreground job.
        with open(self.directory / "output.log", "wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=BASE_DIR,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def output(self) -> list[str]:
        return (self.directory / "output.log").read_text(errors="replace").splitlines()

    def dashboard_answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/login/", timeout=2) as page:
                return page.status == 200 and b"Sign in" in page.read()
        except OSError:
            return False

    def wait_until_up(self, timeout: float = 150) -> dict[int, str]:
        """The processes it started, once the dashboard answers and all run."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "\n".join(self.output())
            started = descendants(self.process.pid)
            commands = " ".join(started.values())
            up = any("Herald is up" in line for line in self.output())
            if up and all(p in commands for p in PROCFILE_PROCESSES) and self.dashboard_answers():
                return started
            time.sleep(0.5)
        pytest.fail("make run did not come up:\n" + "\n".join(self.output()))

    def redis_pid(self) -> int:
        return int((self.directory / "redis" / "redis.pid").read_text())


def alive(pids) -> list[int]:
    processes = live_processes()
    return [pid for pid in pids if pid in processes]


@pytest.fixture
def sandbox():
    # Short: the bundled redis-server's unix socket path must fit in 108 bytes.
    run = Run(Path(tempfile.mkdtemp(prefix="herald-run-")))
    yield run
    if run.process is not None and run.process.poll() is None:
        os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()
    for pid in alive(run.spawned):
        os.kill(pid, signal.SIGKILL)
    run.redis.stop()
    shutil.rmtree(run.directory, ignore_errors=True)


def skip_without_make_run_tools() -> None:
    if not VENV_PYTHON.exists() or not shutil.which("make") or not Path("/proc").is_dir():
        pytest.skip("needs the project's .venv (make run's), make and /proc")


@pytest.mark.parametrize(
    "how, stop",
    [
        ("make", "SIGTERM to make"),
        ("make", "Ctrl-C: SIGINT to the process group"),
    ],
)
def test_make_run_serves_and_stops_everything_it_started(sandbox, how, stop):
    skip_without_make_run_tools()
    sandbox.start(how)
    started = sandbox.wait_until_up()
    redis_pid = sandbox.redis_pid()
    sandbox.spawned.update(started)
    assert alive([redis_pid]) == [redis_pid]

    began = time.monotonic()
    if stop == "SIGTERM to make":
        sandbox.process.send_signal(signal.SIGTERM)
    else:
        os.killpg(sandbox.process.pid, signal.SIGINT)
    sandbox.process.wait(timeout=STOPPED_WITHIN)
    while alive([*started, redis_pid]) and time.monotonic() - began < STOPPED_WITHIN:
        time.sleep(0.1)
    left = {pid: started.get(pid, "redis-server") for pid in alive([*started, redis_pid])}
    assert left == {}, f"still running after {STOPPED_WITHIN} s: {left}"
    assert not sandbox.redis.is_running()
    # make dies of the signal it passed on, after the launcher's clean exit 0.
    assert sandbox.process.returncode in (0, -signal.SIGTERM, -signal.SIGINT)

    output = sandbox.output()
    unlabelled = [line for line in output if not LABELLED.match(line)]
    assert unlabelled == []  # nor make's "*** [run] Error", nor "wait: No child processes"
    assert not [line for line in output if "Traceback" in line or "still running" in line]
    assert any(re.search(r"\| demo organization: org_\w+ \(Demo Co", line) for line in output)
    assert any(line.endswith("| bundled redis-server stopped") for line in output)
    assert not [line for line in output if "Enqueued job" in line]  # the scheduler's ticks


def test_a_bundled_redis_server_it_did_not_start_is_left_running(sandbox):
    skip_without_make_run_tools()
    sandbox.redis.ensure_running()  # someone else's, already up
    redis_pid = sandbox.redis_pid()
    sandbox.start("launcher")
    started = sandbox.wait_until_up()
    sandbox.spawned.update(started)
    sandbox.process.send_signal(signal.SIGTERM)
    assert sandbox.process.wait(timeout=STOPPED_WITHIN) == 0
    deadline = time.monotonic() + STOPPED_WITHIN
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(started) == []
    assert sandbox.redis.is_running() and sandbox.redis_pid() == redis_pid
    assert any("bundled redis-server left running" in line for line in sandbox.output())

"""`make run`: Herald on this machine, in one foreground process.

    python -m config.run_local [--host 127.0.0.1] [--port 8000] [--receiver-port 8001]

Sets up (migrate, collectstatic, the demo's seed), then runs Procfile.demo's
processes (web, worker, scheduler, the demo receiver, demo events), every
line any of them prints labelled with its name, as honcho does.

Each child runs in its own session, so stopping is this process's job: on
SIGINT (Ctrl-C reaches the terminal's whole foreground group, make and this
process, not the children), SIGTERM (make passes it on to the command it
runs) or SIGHUP, it sends SIGTERM to every child, SIGKILL to what is left of
its process group after STOP_GRACE_SECONDS (at once on a second signal), then
stops the bundled redis-server if this run started it. A stop on a signal
exits 0, so make adds no "Error" line of its own.

Nothing of Django here (the children load it): only config's leaf module
for the bundled Redis.
"""

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from honcho.environ import parse_procfile

from config import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile.demo"
LABEL = "herald"
# Long enough for a worker to finish the requests it has in flight (the
# demo's slowest webhook times out after 5 s), short enough to feel prompt.
STOP_GRACE_SECONDS = 10.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Output:
    """Lines from many processes, one at a time, each `HH:MM:SS name | text`."""

    def __init__(self, names: list[str], stream=None) -> None:
        self.width = max(len(name) for name in [LABEL, *names])
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def line(self, name: str, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self.lock:
            self.stream.write(f"{stamp} {name:<{self.width}} | {text}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        self.line(LABEL, text)


class Child:
    """A shell command in a session of its own, its output labelled. The
    shell execs it, so the session's leader is the process itself (the one
    to ask to stop) and the session holds whatever it starts."""

    def __init__(self, name: str, command: str, env: dict[str, str], output: Output) -> None:
        self.name = name
        self.process = subprocess.Popen(
            f"exec {command}",
            shell=True,
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._relay, args=(output,), daemon=True)
        self.reader.start()

    def _relay(self, output: Output) -> None:
        for raw in iter(self.process.stdout.readline, b""):
            output.line(self.name, raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.process.stdout.close()

    @property
    def pgid(self) -> int:
        return self.process.pid  # the session's leader leads its process group

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    def ask_to_stop(self) -> None:
        """SIGTERM to the process itself, which stops what it started its own
        way (gunicorn its workers, rqworker-pool each worker after its job):
        signalling the whole group at once races with a pool that respawns
        a worker it sees die. Leftovers of a process already gone get it too."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        else:
            self.signal_group(signal.SIGTERM)

    def running(self) -> bool:
        """Whether anything of it is left: its shell, or what that started."""
        self.process.poll()
        return self.process.returncode is None or bool(group_members(self.pgid))


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group. A zombie does not count: an
    orphan's may linger until init reaps it, long after it is gone."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel, zombies and all
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp …; comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class Stop:
    """The stop signals, caught: the first asks for an orderly stop, the
    next for an immediate one."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._caught)

    def _caught(self, signum: int, frame) -> None:
        self.signals.append(signum)

    @property
    def requested(self) -> bool:
        return bool(self.signals)

    @property
    def urgent(self) -> bool:
        return len(self.signals) > 1

    def name(self) -> str:
        return signal.Signals(self.signals[0]).name if self.signals else ""


def stop_children(children: list[Child], stop: Stop, output: Output) -> None:
    """SIGTERM to every child, then SIGKILL to what is still there of it
    after the grace period (or a second signal); returns once all is gone."""
    for child in children:
        if child.running():
            child.ask_to_stop()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(c.running() for c in children) and time.monotonic() < deadline and not stop.urgent:
        time.sleep(0.1)
    for child in children:
        if child.running():
            output.say(f"{child.name} still running: killing it")
            child.signal_group(signal.SIGKILL)
    deadline = time.monotonic() + 5
    for child in children:
        child.process.wait()
        child.reader.join(timeout=2)
    while any(c.running() for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILL is not instant for a process in the middle of I/O


def run_step(name: str, command: str, env: dict, output: Output, stop: Stop) -> bool:
    """One set-up command, to its end; False if it failed or a stop came first."""
    step = Child(name, command, env, output)
    while step.process.poll() is None:
        if stop.requested:
            stop_children([step], stop, output)
            return False
        time.sleep(0.05)
    step.reader.join(timeout=2)
    if step.process.returncode != 0:
        output.say(f"{name} failed (exit code {step.process.returncode}); not starting Herald")
        return False
    return True


def setup_steps(python: str, app_url: str, receiver_url: str) -> list[tuple[str, str]]:
    manage = f"{shlex.quote(python)} manage.py"
    return [
        ("migrate", f"{manage} migrate --no-input -v 0"),
        ("static", f"{manage} collectstatic --no-input -v 0"),
        (
            "demo",
            f"{manage} demo --labelled --receiver-url {receiver_url} --app-url {app_url}",
        ),
    ]


def procfile_processes(path: Path = PROCFILE) -> list[tuple[str, str]]:
    return list(parse_procfile(path.read_text()).processes.items())


def child_environment(host: str, port: int, receiver_port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "HOST": host,
        "PORT": str(port),
        "RECEIVER_PORT": str(receiver_port),
        # The demo's webhooks point at the local receiver over plain http.
        "HERALD_ALLOW_PRIVATE_TARGETS": "1",
        "HERALD_ALLOW_HTTP": "1",
        # Every line as it is printed, not when a buffer fills.
        "PYTHONUNBUFFERED": "1",
    }
    # Alert e-mails (to the demo user) show among the processes' lines.
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    return env


def wait_for_port(host: str, port: int, stop: Stop, children: list[Child]) -> bool:
    """Whether the web process came to accept connections (before any stop)."""
    while not stop.requested and all(c.process.poll() is None for c in children):
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def bundled_redis(output: Output) -> Iterator[None]:
    """The bundled redis-server while Herald runs, when REDIS_URL does not
    name another; stopped afterwards if this run started it (one already
    running belongs to someone else: `make stop` stops it)."""
    if os.environ.get("REDIS_URL"):
        yield
        return
    server = embedded_redis.default
    started = not server.is_running()
    server.ensure_running()
    output.say(f"bundled redis-server: {server.url()}")
    try:
        yield
    finally:
        if started:
            server.stop()
            output.say("bundled redis-server stopped")
        else:
            output.say("bundled redis-server left running: it was up before (make stop stops it)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.run_local", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument(
        "--receiver-port", type=int, default=int(os.environ.get("RECEIVER_PORT", "8001"))
    )
    options = parser.parse_args(argv)
    stop = Stop()
    processes = procfile_processes()
    app_url = f"http://{options.host}:{options.port}"
    receiver_url = f"http://127.0.0.1:{options.receiver_port}"
    steps = setup_steps(sys.executable, app_url, receiver_url)
    output = Output([name for name, _ in [*steps, *processes]])
    env = child_environment(options.host, options.port, options.receiver_port)

    with bundled_redis(output):
        for name, command in steps:
            if not run_step(name, command, env, output, stop):
                return 0 if stop.requested else 1
        children = [Child(name, command, env, output) for name, command in processes]
        output.say(f"started {', '.join(c.name for c in children)}")
        if wait_for_port(options.host, options.port, stop, children):
            output.say(f"Herald is up at {app_url}/   Ctrl-C stops everything")
        while not stop.requested:
            ended = next((c for c in children if c.process.poll() is not None), None)
            if ended:
                output.say(f"{ended.name} exited (code {ended.process.returncode}); stopping")
                break
            time.sleep(0.1)
        if stop.requested:
            output.say(f"{stop.name()}: stopping")
        stop_children(children, stop, output)
        output.say("all stopped")
    return 0 if stop.requested else 1


if __name__ == "__main__":
    sys.exit(main())

"""The embedded default's SQLite backend (config/sqlite): write transactions
take turns on a lock of Herald's own (threads on a Python lock, processes on
an flock of a file beside the database), never in SQLite's busy handler."""

import fcntl
import os
import subprocess
import sys
import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from config.sqlite.base import turns_of
from webhooks.models import Organization
from webhooks.organizations import create_organization

pytestmark = [
    pytest.mark.embedded,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the embedded default's backend"),
]


def in_a_thread(work) -> tuple[list, threading.Thread]:
    """Run work() in another thread (its own connection); what it returned or raised."""
    outcome: list = []

    def run():
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return outcome, thread


def impatient_write(name: str):
    """A write on a connection that would fail at once on a locked file."""

    def work():
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA busy_timeout = 0")
        with transaction.atomic():
            return create_organization(name).name

    return work


def holding_a_transaction(name: str):
    """Another thread's write transaction, held open until told to end."""
    inside, may_end = threading.Event(), threading.Event()

    def work():
        with transaction.atomic():
            create_organization(name)
            inside.set()
            may_end.wait(5)
        return name

    outcome, thread = in_a_thread(work)
    assert inside.wait(5)
    return outcome, thread, may_end


def test_a_second_thread_waits_its_turn_instead_of_finding_the_file_locked():
    one, one_thread, first_may_end = holding_a_transaction("first")
    two, two_thread = in_a_thread(impatient_write("second"))
    two_thread.join(0.3)
    assert two_thread.is_alive()  # waiting for the first transaction, not failing
    first_may_end.set()
    one_thread.join(5)
    two_thread.join(5)
    assert one == ["first"] and two == ["second"]
    assert set(Organization.objects.values_list("name", flat=True)) == {"first", "second"}


def test_a_write_waits_for_another_process_to_end_its_transaction():
    database = str(connection.settings_dict["NAME"])
    # Another Herald process: its turn, then SQLite's write lock, held 0.5 s.
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sqlite3, sys, time\n"
            "turn = open(sys.argv[1] + '-turn', 'a'); fcntl.flock(turn, fcntl.LOCK_EX)\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE'); print('in', flush=True); time.sleep(0.5)\n"
            "db.execute('COMMIT'); fcntl.flock(turn, fcntl.LOCK_UN)\n",
            database,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert other.stdout.readline() == "in\n"
        assert impatient_write("after the other")() == "after the other"
    finally:
        other.wait(5)
    assert other.returncode == 0


def test_a_forked_child_takes_turns_of_its_own():
    # A worker pool forks its workers from a parent that has written: a lock
    # file inherited open would be one lock shared by all of them.
    database = str(connection.settings_dict["NAME"])
    turn = turns_of(database)
    turn.take(timeout=1)
    turn.give()
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.read(to_child, 1)  # the parent holds its turn now
            mine = turns_of(database)
            got = threading.Event()
            threading.Thread(target=lambda: (mine.take(timeout=1), got.set()), daemon=True).start()
            os.write(from_child, b"early" if got.wait(0.5) else b"waits")
        finally:
            os._exit(0)
    turn.take(timeout=1)
    try:
        os.write(from_parent, b"!")
        answer = os.read(to_parent, 5)
    finally:
        turn.give()
        os.waitpid(child, 0)
    assert answer == b"waits"


def test_a_turn_held_too_long_fails_the_waiting_thread_with_a_clear_error():
    _, one_thread, first_may_end = holding_a_transaction("first")
    connections.settings["default"]["OPTIONS"]["timeout"] = 0.2
    try:
        two, two_thread = in_a_thread(impatient_write("second"))
        two_thread.join(5)
    finally:
        connections.settings["default"]["OPTIONS"]["timeout"] = 20
        first_may_end.set()
        one_thread.join(5)
    (error,) = two
    assert isinstance(error, OperationalError) and "locked" in str(error)
    assert list(Organization.objects.values_list("name", flat=True)) == ["first"]


def test_a_rolled_back_transaction_gives_its_turn_back():
    with pytest.raises(RuntimeError), transaction.atomic():
        create_organization("gone")
        raise RuntimeError("changed its mind")
    two, thread = in_a_thread(impatient_write("next"))
    thread.join(5)
    assert two == ["next"]
    # And the process's turn is free for another process too.
    with open(str(connection.settings_dict["NAME"]) + "-turn", "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(turn, fcntl.LOCK_UN)

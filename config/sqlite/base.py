"""SQLite, for the embedded default: every write transaction waits for its
turn on a lock of Herald's own before BEGIN IMMEDIATE.

SQLite lets one writer in at a time, and a connection that finds the file
locked waits in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20,
25 ms… between tries however soon the lock is free, and may lose the race
again after each nap. Here the threads of a process queue on a Python lock,
and the processes on an flock() of a file beside the database: both hand
the turn over the moment the transaction before ends.
"""

import fcntl
import os
import threading
from typing import IO

from django.db import OperationalError
from django.db.backends.sqlite3 import base


class Turns:
    """The turn to write to one database file, in this process."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}-turn"
        # Reentrant: one thread may begin a transaction on a second
        # connection to the file (another alias) inside the first.
        self.threads = threading.RLock()
        self.depth = 0
        self.file: IO | None = None

    def take(self, timeout: float) -> None:
        # A thread waits no longer than SQLite itself would have; a process
        # waits as long as the transaction before takes.
        if not self.threads.acquire(timeout=timeout):
            raise OperationalError("database is locked (another thread's transaction)")
        try:
            if self.depth == 0:
                if self.file is None:
                    self.file = open(self.path, "a")  # noqa: SIM115 (kept for the process)
                fcntl.flock(self.file, fcntl.LOCK_EX)
            self.depth += 1
        except BaseException:
            self.threads.release()
            raise

    def give(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        self.threads.release()


_turns: dict[str, Turns] = {}
_turns_lock = threading.Lock()


def turns_of(path: str) -> Turns:
    with _turns_lock:
        if path not in _turns:
            _turns[path] = Turns(path)
        return _turns[path]


def _forget_turns_in_child() -> None:
    # A forked child (a pool's worker, a web worker) takes its own turns: a
    # lock file opened by its parent is one lock for both.
    global _turns_lock
    _turns.clear()
    _turns_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_turns_in_child)


class DatabaseWrapper(base.DatabaseWrapper):
    _turn: Turns | None = None

    def _start_transaction_under_autocommit(self) -> None:
        if not self.is_in_memory_db():
            turn = turns_of(str(self.settings_dict["NAME"]))
            turn.take(timeout=self.settings_dict["OPTIONS"].get("timeout", 5))
            self._turn = turn
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._give_turn()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._give_turn()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._give_turn()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._give_turn()

    def _give_turn(self) -> None:
        if self._turn is not None:
            turn, self._turn = self._turn, None
            turn.give()

"""Graceful stop of a long job running in an rq worker's main thread.

What rq 2.x does (rq/worker/base.py, rq/worker_pool.py):

- A worker installs `request_stop` for SIGTERM and SIGINT. On the first
  signal, if a job is running, it only notes the request (the loop exits
  after the job) and re-points both signals at `request_force_stop`. A second
  signal within one second is ignored (the pool and the terminal, or systemd,
  often deliver two); a later one raises SystemExit wherever the job is.
- SimpleWorker runs the job in that same main thread, so a job that loops
  (the dispatcher claims due deliveries for up to HERALD_DISPATCH_MAX_SECONDS)
  would carry on claiming new work after the signal. The forking Worker never
  tells its work horse at all.
- `rqworker-pool` answers SIGTERM or SIGINT by sending SIGINT to each of
  its workers and waiting for all of them to exit (a second signal sends
  SIGINT again).

`stop_requested()` lets the job hear the first signal too: while the block
runs, a handler sits in front of rq's for SIGTERM and SIGINT. On the first
signal it raises the job's stop flag, puts rq's handlers back and passes the
signal on, so rq's own warm shutdown runs unchanged (it stops the worker once
the job returns) and a second signal reaches rq's cold shutdown directly.
Chaining the handler, rather than reading the worker's private
`_stop_requested`, depends on nothing but the signal module, and works the
same for a worker alone, in a pool, or a job called outside any worker.
"""

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_requested() -> Iterator[Callable[[], bool]]:
    """Yield a callable that turns true once SIGTERM or SIGINT has arrived.

    Only in the main thread (the only one Python delivers signals to), and
    only for signals that already have a Python handler (rq's): a signal left
    to its default action or ignored keeps that behaviour.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop.is_set
        return

    previous: dict[int, Callable] = {}

    def handler(signum, frame) -> None:
        stop.set()
        for sig, earlier in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, earlier)
        previous[signum](signum, frame)

    for sig in STOP_SIGNALS:
        earlier = signal.getsignal(sig)
        if callable(earlier):
            if getattr(earlier, "__name__", "") == "request_force_stop":
                # rq took the first signal just before this job began.
                stop.set()
            previous[sig] = earlier
            signal.signal(sig, handler)
    try:
        yield stop.is_set
    finally:
        for sig, earlier in previous.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, earlier)

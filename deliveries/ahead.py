"""Deliveries taken ahead: what a claim took besides what filled the free
slots (claiming.claim's `ahead`), waiting in the sending process to start
in place of a request of the same webhook that succeeded, on that
request's thread, with no claim between (dispatch.run).

A delivery starts here only in place of another of its webhook, so the
webhook's requests in flight stay as many as the database counts. What
is not to start so is given back (claiming.release): what waited too long
(its lease must outlast its request), what a webhook that failed a
request or was paused or disabled had waiting, and what is left when the
run stops claiming.

Shared by the run's thread and the send threads: every method takes the
lock.
"""

import threading
import time
from collections import defaultdict, deque
from collections.abc import Collection, Iterable

from deliveries.claiming import Claimed


class Waiting:
    """The deliveries taken ahead, per webhook, oldest first."""

    def __init__(self, *, fresh_for: float) -> None:
        # One taken longer ago than this does not start: given back.
        self._fresh_for = fresh_for
        self._lock = threading.Lock()
        self._by_webhook: defaultdict[int, deque[Claimed]] = defaultdict(deque)
        self._given_back: list[Claimed] = []
        self._closed = False
        self._after_claim = 0

    def add(self, items: Iterable[Claimed]) -> None:
        """What a claim took ahead (call after each claim, even with none)."""
        with self._lock:
            for item in items:
                self._by_webhook[item.target.id].append(item)
            self._after_claim = sum(len(q) for q in self._by_webhook.values())

    def counts(self) -> dict[int, int]:
        """How many wait, per webhook."""
        with self._lock:
            return {webhook_id: len(q) for webhook_id, q in self._by_webhook.items() if q}

    def running_low(self) -> bool:
        """Whether half of what waited after the last claim has started
        (or gone back): time to claim again, before none is left."""
        with self._lock:
            waiting = sum(len(q) for q in self._by_webhook.values())
            return self._after_claim > 0 and waiting * 2 <= self._after_claim

    def next(self, webhook_id: int) -> Claimed | None:
        """The one to start in place of this webhook's request that just
        succeeded, if one waits, fresh, and the run still claims."""
        with self._lock:
            if self._closed:
                return None
            self._give_back_stale(webhook_id, time.time())
            waiting = self._by_webhook.get(webhook_id)
            return waiting.popleft() if waiting else None

    def take_back(self, webhook_ids: Collection[int]) -> None:
        """These webhooks' waiting deliveries are to be given back."""
        with self._lock:
            for webhook_id in webhook_ids:
                self._given_back.extend(self._by_webhook.pop(webhook_id, ()))

    def close(self) -> None:
        """The run claims no more: nothing more starts, all is given back."""
        with self._lock:
            self._closed = True
            for waiting in self._by_webhook.values():
                self._given_back.extend(waiting)
            self._by_webhook.clear()

    def given_back(self) -> list[Claimed]:
        """What is to be given back (claiming.release), once each: taken
        back, left at the close, or waited too long. The run asks at every
        turn, so that one that waited too long goes back while its lease
        is still the worker's, not once that ran out and another worker may
        hold the delivery."""
        now = time.time()
        with self._lock:
            for webhook_id in list(self._by_webhook):
                self._give_back_stale(webhook_id, now)
            items, self._given_back = self._given_back, []
            return items

    def _give_back_stale(self, webhook_id: int, now: float) -> None:
        """This webhook's that waited too long, to be given back; the
        webhook forgotten once none waits, so that a turn of the run costs
        what waits, not every webhook it has seen. With the lock held."""
        waiting = self._by_webhook.get(webhook_id)
        while waiting and now >= waiting[0].claimed_at + self._fresh_for:
            self._given_back.append(waiting.popleft())
        if waiting is not None and not waiting:
            del self._by_webhook[webhook_id]

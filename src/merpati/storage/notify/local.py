"""In-process change feed: committed changes fanned out to per-account subscribers.

Theory of operation
-------------------
* ``subscribe(account_id)`` registers at once (not on the first ``__anext__``), so a caller
  that subscribes and then acts sees every change committed after the ``subscribe`` call.
* Publishing never blocks and never waits for a subscriber: each subscription has a bounded
  queue (``max_pending`` events). When a slow subscriber's queue is full, its queue is
  dropped and the subscription is marked *overflowed*: its next ``__anext__`` raises
  ``FeedOverflow``. The subscriber must then resync its view from the store (re-read the
  mailbox state) and may keep iterating the same subscription, which carries on with the
  events published after the overflow. Memory per subscriber stays bounded.
* ``publish``/``publish_nowait`` must run on the event loop thread that owns the subscribers
  (storage backends hop back to the loop with ``call_soon_threadsafe`` before publishing).
* ``aclose()`` (or leaving ``async with``) unregisters the subscription; ``close()`` of the
  feed ends every subscription (their iterators stop).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Sequence

from merpati.storage.api import FeedOverflow
from merpati.storage.changes import Change

DEFAULT_MAX_PENDING = 4096


class Subscription:
    """An async iterator of one account's changes; see the module docstring."""

    def __init__(self, feed: LocalChangeFeed, account_id: int, max_pending: int) -> None:
        self._feed = feed
        self.account_id = account_id
        self._max_pending = max_pending
        self._queue: deque[Change] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False

    # -- producer side (the feed) ----------------------------------------------------------
    def _push(self, change: Change) -> None:
        if self.closed:
            return
        if len(self._queue) >= self._max_pending:
            # Drop the backlog; the resync covers it. What comes next is kept.
            self._queue.clear()
            self.overflowed = True
        self._queue.append(change)
        self._wake()

    def _mark_overflow(self) -> None:
        self._queue.clear()
        self.overflowed = True
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- consumer side ---------------------------------------------------------------------
    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        while True:
            if self.overflowed:
                self.overflowed = False
                raise FeedOverflow(f"change feed overflow for account {self.account_id}: resync")
            if self._queue:
                return self._queue.popleft()
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def pending(self) -> int:
        return len(self._queue)

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._feed._unregister(self)
            self._wake()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class LocalChangeFeed:
    """The single-node ``ChangeFeed``; also the local fan-out behind ``PgChangeFeed``."""

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._max_pending = max_pending
        self._subs: dict[int, set[Subscription]] = {}

    def subscribe(self, account_id: int) -> Subscription:
        sub = Subscription(self, account_id, self._max_pending)
        self._subs.setdefault(account_id, set()).add(sub)
        return sub

    def _unregister(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]

    async def publish(self, changes: Sequence[Change]) -> None:
        self.publish_nowait(changes)

    def publish_nowait(self, changes: Iterable[Change]) -> None:
        """Dispatch committed changes now (on the loop thread); never blocks."""
        for change in changes:
            for sub in tuple(self._subs.get(change.account_id, ())):
                sub._push(change)

    def mark_all_overflowed(self) -> None:
        """Every subscriber must resync (e.g. the cross-node connection was lost)."""
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub._mark_overflow()

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    async def close(self) -> None:
        for subs in tuple(self._subs.values()):
            for sub in tuple(subs):
                sub.close()

"""Cross-node change feed over PostgreSQL LISTEN/NOTIFY.

Theory of operation
-------------------
* Writers call ``notify_in_tx(conn, changes)`` inside their transaction: ``pg_notify`` is
  transactional, so PostgreSQL delivers the notifications only when (and if) the transaction
  commits: events are never seen before the commit, and a rolled-back change sends nothing.
  ``publish(changes)`` sends them outside any transaction (for changes committed elsewhere).
* Each node keeps one dedicated LISTEN connection on channel ``merpati_changes``; every
  notification (its own node's included) is decoded with ``change_from_json`` and dispatched
  to the node's ``LocalChangeFeed``, so a subscriber on node B sees node A's commits, and
  every node sees events in the database's commit order.
* "From now on" is as of a notification's arrival on the LISTEN connection: a subscriber
  that subscribes just after a commit returned may still receive that commit's events (they
  were in flight). Consumers treat events as hints to compare with their view (UIDs,
  MODSEQs), which makes such a duplicate harmless.
* Payloads stay below PostgreSQL's 8000-byte limit: events carry at most
  ``common.MAX_UIDS_PER_EVENT`` UIDs (stores split larger ones).
* If the LISTEN connection is lost, notifications sent meanwhile are lost too: every local
  subscriber is marked overflowed (it raises ``FeedOverflow`` and resyncs), and the feed
  reconnects with back-off until closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from merpati.storage.changes import Change, change_from_json, change_to_json
from merpati.storage.notify.local import LocalChangeFeed, Subscription

log = logging.getLogger(__name__)

CHANNEL = "merpati_changes"


async def notify_in_tx(conn: Any, changes: Sequence[Change]) -> None:
    """Queue ``changes`` as notifications of ``conn``'s current transaction."""
    if changes:
        await conn.executemany("SELECT pg_notify($1, $2)", [(CHANNEL, change_to_json(c)) for c in changes])


class PgChangeFeed:
    """The multi-node ``ChangeFeed``; one per store (node)."""

    def __init__(self, dsn: str, pool: Any, local: LocalChangeFeed, *, listen: bool = True) -> None:
        self._dsn = dsn
        self._listen = listen  # False: a process nobody in which subscribes (SMTP workers, the CLI)
        self._pool = pool
        self.local = local
        self._conn: Any = None
        self._closed = False
        self._reconnect_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._listen:
            await self._connect()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(CHANNEL, self._on_notify)
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = change_from_json(payload)
        except Exception:  # stored/remote data is untrusted input: drop, do not crash
            log.warning("ignoring malformed change notification %r", payload[:200])
            return
        self.local.publish_nowait((change,))

    def _on_lost(self, _conn: Any) -> None:
        if self._closed:
            return
        log.warning("change feed LISTEN connection lost; subscribers will resync")
        self.local.mark_all_overflowed()
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                await self._connect()
                self.local.mark_all_overflowed()  # anything sent while away is lost
                return
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def subscribe(self, account_id: int) -> Subscription:
        return self.local.subscribe(account_id)

    async def publish(self, changes: Sequence[Change]) -> None:
        async with self._pool.acquire() as conn:
            await notify_in_tx(conn, changes)

    async def close(self) -> None:
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        if self._conn is not None:
            try:
                await self._conn.close(timeout=2)
            except Exception:
                self._conn.terminate()
        await self.local.close()

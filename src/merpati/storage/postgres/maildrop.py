"""POP3 maildrop locks for the PostgreSQL store: session-level advisory locks, across nodes.

Each store (node) keeps one dedicated connection for its maildrop locks, opened on first use,
and takes ``pg_try_advisory_lock(POP3_LOCK_CLASS, account key)`` on it: exclusive against every
other node. Advisory locks are re-entrant within one PostgreSQL session, so the node also keeps
the set of accounts it holds, refusing a second local session itself. When the connection is
lost (the node died, the network broke, or an administrator killed it) PostgreSQL releases
every lock it held: a dead holder never blocks a maildrop. The local holders then see
``held`` turn False, and the next ``try_lock`` opens a new connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from merpati.storage.api import InvalidInput, TemporaryStoreError

POP3_LOCK_CLASS = 0x504F5033  # "POP3": first key of the two-int advisory lock space


def account_key(account_id: int) -> int:
    """The account id folded into PostgreSQL's signed int4 (a collision only refuses a login)."""
    return ((account_id + 2**31) % 2**32) - 2**31


class PgMaildropLock:
    """A held maildrop lock (``MaildropLock``)."""

    def __init__(self, owner: PgMaildropLocks, account_id: int, conn: Any) -> None:
        self._owner = owner
        self.account_id = account_id
        self._conn = conn
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    async def release(self) -> None:
        if self._held:
            self._held = False
            await self._owner._release(self)

    async def __aenter__(self) -> PgMaildropLock:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class PgMaildropLocks:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._mutex = asyncio.Lock()
        self._held: dict[int, PgMaildropLock] = {}
        self._closed = False

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "merpati-maildrop-locks"})
            conn.add_termination_listener(self._on_lost)
            self._conn = conn
        return self._conn

    def _on_lost(self, conn: Any) -> None:
        """The lock connection is gone, and PostgreSQL released its locks with it."""
        for account_id, lock in list(self._held.items()):
            if lock._conn is conn:
                lock._held = False
                del self._held[account_id]
        if self._conn is conn:
            self._conn = None

    async def try_lock(self, account_id: int) -> PgMaildropLock | None:
        if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id < 1:
            raise InvalidInput(f"invalid account id {account_id!r}")
        if self._closed:
            raise TemporaryStoreError("store is closed")
        async with self._mutex:
            if account_id in self._held:
                return None  # another session of this node holds it
            try:
                conn = await self._connection()
                got = await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", POP3_LOCK_CLASS, account_key(account_id))
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise TemporaryStoreError(f"postgresql maildrop lock: {exc!r}") from exc
            if not got:
                return None
            lock = PgMaildropLock(self, account_id, conn)
            self._held[account_id] = lock
            return lock

    async def _release(self, lock: PgMaildropLock) -> None:
        async with self._mutex:
            if self._held.get(lock.account_id) is lock:
                del self._held[lock.account_id]
            conn = lock._conn
            if conn is None or conn.is_closed():
                return  # the connection's end released it already
            try:
                await conn.fetchval("SELECT pg_advisory_unlock($1, $2)", POP3_LOCK_CLASS, account_key(lock.account_id))
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()  # unsure whether it was released: dropping the session releases it

    async def close(self) -> None:
        self._closed = True
        for lock in list(self._held.values()):
            lock._held = False
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()

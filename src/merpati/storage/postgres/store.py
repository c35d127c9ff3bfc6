"""The PostgreSQL ``MailStore``: several nodes share one database.

* An asyncpg pool with ``synchronous_commit=on`` (the durability point behind SMTP's 250).
* Each write is one transaction (``_tx``): the unit of work, then its change events queued
  with ``pg_notify`` in the same transaction (delivered by PostgreSQL only on commit). UID and
  MODSEQ come from ``UPDATE mailboxes ... RETURNING`` under the mailbox row lock, so
  concurrent deliveries (on any node) get distinct, increasing UIDs. PostgreSQL batches
  concurrent commits itself (``commit_delay``/WAL group flush); we never skip the fsync.
* Deadlocks and serialization failures are retried a few times, then reported as
  ``TemporaryStoreError``, as is anything that looks like the database being unavailable.
* Reads run in a read-only REPEATABLE READ transaction: one consistent snapshot per call.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from merpati.storage.api import AlreadyExists, NotFound, StoreError, TemporaryStoreError
from merpati.storage.migrations import check_not_newer, load_migrations
from merpati.storage.notify.local import LocalChangeFeed
from merpati.storage.delegating import OpsBackedStore
from merpati.storage.notify.pg import PgChangeFeed, notify_in_tx
from merpati.storage.postgres.maildrop import PgMaildropLock, PgMaildropLocks
from merpati.storage.postgres import ops, queue_ops
from merpati.storage.queue_api import OpsQueueStore

MIGRATION_LOCK_ID = 0x6D657270  # "merp": pg_advisory_xact_lock key for migrations
_RETRIES = 5
# SQLSTATE classes meaning "try again later": connection (08), resources (53, incl. disk
# full 53100), operator intervention / shutdown (57), system error (58).
_TEMPORARY_CLASSES = ("08", "53", "57", "58")
_RETRY_STATES = ("40001", "40P01")  # serialization failure, deadlock
# Client-side failures of the connection (closed, reset, protocol state after a kill).
_CLIENT_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def map_error(exc: BaseException) -> BaseException:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, asyncpg.UniqueViolationError):
        return AlreadyExists(str(exc))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return NotFound(str(exc))
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        if state[:2] in _TEMPORARY_CLASSES or state in _RETRY_STATES:
            return TemporaryStoreError(f"postgresql: {exc}")
        return exc
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return StoreError(f"postgresql configuration: {exc}")
    if isinstance(exc, _CLIENT_ERRORS):
        return TemporaryStoreError(f"postgresql: {exc!r}")
    return exc


async def migrate(conn: Any) -> int:
    migrations = load_migrations("postgres")
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_ID)
        current = 0
        if await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        check_not_newer(current, migrations)
        for m in migrations:
            if m.version > current:
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", m.version)
                current = m.version
    return int(current)


class PgStore(OpsBackedStore):
    _ops = ops

    """Create with ``await PgStore.open(dsn)`` (or ``merpati.storage.open_store``)."""

    def __init__(self, pool: Any, feed: PgChangeFeed, parsed_type: Any | None) -> None:
        self._pool = pool
        self.changes = feed
        self._parsed_type = parsed_type
        self.schema_version = 0
        self.queue = OpsQueueStore(queue_ops, self._read, self._tx)  # the outbound queue (queue_api)

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        parsed_type: Any | None = None,
        max_pending_changes: int | None = None,
        min_size: int = 1,
        max_size: int = 10,
        receive_changes: bool = True,
    ) -> PgStore:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                server_settings={"synchronous_commit": "on", "application_name": "merpati"},
            )
        except BaseException as exc:
            raise map_error(exc) from exc
        try:
            async with pool.acquire() as conn:
                version = await migrate(conn)
            local = LocalChangeFeed() if max_pending_changes is None else LocalChangeFeed(max_pending=max_pending_changes)
            feed = PgChangeFeed(dsn, pool, local, listen=receive_changes)
            await feed.start()
        except BaseException as exc:
            await pool.close()
            raise map_error(exc) from exc
        store = cls(pool, feed, parsed_type)
        store.schema_version = version
        store._maildrop = PgMaildropLocks(dsn)
        return store

    _maildrop: PgMaildropLocks | None = None

    async def close(self) -> None:
        if self._maildrop is not None:
            await self._maildrop.close()
        await self.changes.close()
        await self._pool.close()

    async def lock_maildrop(self, account_id: int) -> PgMaildropLock | None:
        """POP3's exclusive maildrop lock: an advisory lock held across nodes (see ``maildrop``)."""
        assert self._maildrop is not None, "open the store with PgStore.open"
        return await self._maildrop.try_lock(account_id)

    async def _tx(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one transaction with its change notifications."""
        for attempt in range(_RETRIES):
            try:
                async with self._pool.acquire() as conn:
                    async with conn.transaction():
                        result, changes = await fn(conn, *args)
                        await notify_in_tx(conn, changes)
                return result
            except ops.Retry:
                continue
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", "") in _RETRY_STATES and attempt + 1 < _RETRIES:
                    await asyncio.sleep(0.005 * (attempt + 1))
                    continue
                raise map_error(exc) from exc
            except _CLIENT_ERRORS as exc:
                raise map_error(exc) from exc
        raise TemporaryStoreError("postgresql: too much contention, retry later")

    async def _read(self, fn: Any, *args: Any) -> Any:
        try:
            async with self._pool.acquire() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    return await fn(conn, *args)
        except (asyncpg.PostgresError, *_CLIENT_ERRORS) as exc:
            raise map_error(exc) from exc

    _write = _tx  # OpsBackedStore's name for one write transaction

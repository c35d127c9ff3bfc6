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
from collections.abc import Sequence
from typing import Any

import asyncpg

from merpati.storage import common
from merpati.storage.api import AlreadyExists, NotFound, StoreError, TemporaryStoreError
from merpati.storage.migrations import check_not_newer, load_migrations
from merpati.storage.models import (
    Account,
    Alias,
    Delivery,
    FlagMode,
    Mailbox,
    MailboxStatus,
    MessageEnvelope,
    MessageMeta,
    SpecialUse,
)
from merpati.storage.notify.local import LocalChangeFeed
from merpati.storage.notify.pg import PgChangeFeed, notify_in_tx
from merpati.storage.postgres import ops

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


class PgStore:
    """Create with ``await PgStore.open(dsn)`` (or ``merpati.storage.open_store``)."""

    def __init__(self, pool: Any, feed: PgChangeFeed, parsed_type: Any | None) -> None:
        self._pool = pool
        self.changes = feed
        self._parsed_type = parsed_type
        self.schema_version = 0

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        parsed_type: Any | None = None,
        max_pending_changes: int | None = None,
        min_size: int = 1,
        max_size: int = 10,
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
            feed = PgChangeFeed(dsn, pool, local)
            await feed.start()
        except BaseException as exc:
            await pool.close()
            raise map_error(exc) from exc
        store = cls(pool, feed, parsed_type)
        store.schema_version = version
        return store

    async def close(self) -> None:
        await self.changes.close()
        await self._pool.close()

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

    # -- domains ----------------------------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        await self._tx(ops.add_domain, name)

    async def remove_domain(self, name: str) -> None:
        await self._tx(ops.remove_domain, name)

    async def list_domains(self) -> list[str]:
        return await self._read(ops.list_domains)  # type: ignore[no-any-return]

    async def has_domain(self, name: str) -> bool:
        return await self._read(ops.has_domain, name)  # type: ignore[no-any-return]

    # -- accounts ---------------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        return await self._tx(ops.create_account, address, password_hash)  # type: ignore[no-any-return]

    async def delete_account(self, address: str) -> None:
        await self._tx(ops.delete_account, address)

    async def get_account(self, address: str) -> Account | None:
        return await self._read(ops.get_account, address)  # type: ignore[no-any-return]

    async def get_account_by_id(self, account_id: int) -> Account | None:
        return await self._read(ops.get_account_by_id, account_id)  # type: ignore[no-any-return]

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        return await self._read(ops.list_accounts, domain)  # type: ignore[no-any-return]

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._tx(ops.set_password, address, password_hash)

    # -- aliases ----------------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        return await self._tx(ops.add_alias, source, targets if isinstance(targets, str) else list(targets))  # type: ignore[no-any-return]

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        await self._tx(ops.remove_alias, source, targets if isinstance(targets, str) else list(targets))

    async def get_alias(self, source: str) -> Alias | None:
        return await self._read(ops.get_alias, source)  # type: ignore[no-any-return]

    async def list_aliases(self, domain: str | None = None) -> list[Alias]:
        return await self._read(ops.list_aliases, domain)  # type: ignore[no-any-return]

    # -- mailboxes --------------------------------------------------------------------------
    async def list_mailboxes(self, account_id: int) -> list[Mailbox]:
        return await self._read(ops.list_mailboxes, account_id)  # type: ignore[no-any-return]

    async def get_mailbox(self, account_id: int, name: str) -> Mailbox | None:
        return await self._read(ops.get_mailbox, account_id, name)  # type: ignore[no-any-return]

    async def create_mailbox(self, account_id: int, name: str, *, special_use: SpecialUse | None = None) -> Mailbox:
        return await self._tx(ops.create_mailbox, account_id, name, special_use)  # type: ignore[no-any-return]

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._tx(ops.delete_mailbox, account_id, name)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> Mailbox:
        return await self._tx(ops.rename_mailbox, account_id, old, new)  # type: ignore[no-any-return]

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        return await self._read(ops.mailbox_status, mailbox_id)  # type: ignore[no-any-return]

    # -- messages ---------------------------------------------------------------------------
    async def deliver(self, deliveries: Sequence[Delivery]) -> list[MessageMeta]:
        prepared = common.prepare_deliveries(deliveries)
        if not prepared:
            return []
        return await self._tx(ops.deliver, prepared)  # type: ignore[no-any-return]

    async def list_messages(
        self, mailbox_id: int, *, uid_min: int = 1, uid_max: int | None = None
    ) -> list[MessageMeta]:
        return await self._read(ops.list_messages, mailbox_id, uid_min, uid_max)  # type: ignore[no-any-return]

    async def read_message(self, mailbox_id: int, uid: int) -> bytes:
        return bytes(await self._read(ops.read_blob, mailbox_id, uid, "data"))

    async def get_parsed(self, mailbox_id: int, uid: int) -> Any:
        text = await self._read(ops.read_blob, mailbox_id, uid, "parsed")
        cls = self._parsed_type or common.default_parsed_type()
        return cls.from_json(text)

    async def get_envelope(self, mailbox_id: int, uid: int) -> MessageEnvelope | None:
        return common.envelope_from_text(await self._read(ops.read_blob, mailbox_id, uid, "envelope"))

    async def store_flags(
        self, mailbox_id: int, uids: Sequence[int], flags: frozenset[str], *, mode: FlagMode
    ) -> list[MessageMeta]:
        clean, norm = common.clean_uids(uids), common.normalize_flags(flags)
        return await self._tx(ops.store_flags, mailbox_id, clean, norm, FlagMode(mode))  # type: ignore[no-any-return]

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        return await self._tx(ops.expunge, mailbox_id, common.clean_uids(uids))  # type: ignore[no-any-return]

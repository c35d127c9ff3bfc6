"""The SQLite ``MailStore``: the embedded default.

One database file (WAL) holds metadata and message bytes (``message_blobs``, read only by
``read_message``/``get_parsed``). Writes go through the group-committing writer thread, reads
through a few reader threads (see ``workers``). Changes are published on a ``LocalChangeFeed``
after commit. One store per database file per process; other processes (the CLI while the
daemon runs) may open the same file: SQLite's lock serialises them, and a lock held past
``busy_timeout`` surfaces as ``TemporaryStoreError``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from merpati.storage import common
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
from merpati.storage.sqlite import ops
from merpati.storage.sqlite.workers import BUSY_TIMEOUT_MS, Readers, Writer

DEFAULT_READERS = 4


class SqliteStore:
    """Create with ``await SqliteStore.open(path)`` (or ``merpati.storage.open_store``)."""

    def __init__(
        self, path: str, *, readers: int, parsed_type: Any | None, feed: LocalChangeFeed, busy_timeout_ms: int
    ) -> None:
        self.path = path
        self.changes = feed
        self._parsed_type = parsed_type
        self._writer = Writer(path, feed.publish_nowait, busy_timeout_ms=busy_timeout_ms)
        self._readers = Readers(path, readers, busy_timeout_ms=busy_timeout_ms)
        self.schema_version = 0

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        readers: int = DEFAULT_READERS,
        parsed_type: Any | None = None,
        max_pending_changes: int | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> SqliteStore:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        feed = LocalChangeFeed() if max_pending_changes is None else LocalChangeFeed(max_pending=max_pending_changes)
        store = cls(
            path, readers=max(1, readers), parsed_type=parsed_type, feed=feed, busy_timeout_ms=busy_timeout_ms
        )
        store.schema_version = await store._writer.start()
        store._readers.start()
        return store

    async def close(self) -> None:
        await self._writer.stop()
        await self._readers.stop()
        await self.changes.close()

    def stats(self) -> dict[str, int]:
        """Group-commit statistics: commits done and jobs they carried."""
        return {"commits": self._writer.batches, "jobs": self._writer.jobs}

    async def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` as one job on the writer thread (group commit)."""
        return await self._writer.submit(lambda conn: fn(conn, *args))

    async def _read(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one read transaction on a reader thread."""
        return await self._readers.submit(lambda conn: fn(conn, *args))

    # -- domains ----------------------------------------------------------------------------
    async def add_domain(self, name: str) -> None:
        await self._write(ops.add_domain, name)

    async def remove_domain(self, name: str) -> None:
        await self._write(ops.remove_domain, name)

    async def list_domains(self) -> list[str]:
        return await self._read(ops.list_domains)  # type: ignore[no-any-return]

    async def has_domain(self, name: str) -> bool:
        return await self._read(ops.has_domain, name)  # type: ignore[no-any-return]

    # -- accounts ---------------------------------------------------------------------------
    async def create_account(self, address: str, password_hash: str) -> Account:
        return await self._write(ops.create_account, address, password_hash)  # type: ignore[no-any-return]

    async def delete_account(self, address: str) -> None:
        await self._write(ops.delete_account, address)

    async def get_account(self, address: str) -> Account | None:
        return await self._read(ops.get_account, address)  # type: ignore[no-any-return]

    async def get_account_by_id(self, account_id: int) -> Account | None:
        return await self._read(ops.get_account_by_id, account_id)  # type: ignore[no-any-return]

    async def list_accounts(self, domain: str | None = None) -> list[Account]:
        return await self._read(ops.list_accounts, domain)  # type: ignore[no-any-return]

    async def set_password(self, address: str, password_hash: str) -> None:
        await self._write(ops.set_password, address, password_hash)

    # -- aliases ----------------------------------------------------------------------------
    async def add_alias(self, source: str, targets: Sequence[str]) -> Alias:
        return await self._write(ops.add_alias, source, list(targets) if not isinstance(targets, str) else targets)  # type: ignore[no-any-return]

    async def remove_alias(self, source: str, targets: Sequence[str] = ()) -> None:
        await self._write(ops.remove_alias, source, list(targets) if not isinstance(targets, str) else targets)

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
        return await self._write(ops.create_mailbox, account_id, name, special_use)  # type: ignore[no-any-return]

    async def delete_mailbox(self, account_id: int, name: str) -> None:
        await self._write(ops.delete_mailbox, account_id, name)

    async def rename_mailbox(self, account_id: int, old: str, new: str) -> Mailbox:
        return await self._write(ops.rename_mailbox, account_id, old, new)  # type: ignore[no-any-return]

    async def mailbox_status(self, mailbox_id: int) -> MailboxStatus:
        return await self._read(ops.mailbox_status, mailbox_id)  # type: ignore[no-any-return]

    # -- messages ---------------------------------------------------------------------------
    async def deliver(self, deliveries: Sequence[Delivery]) -> list[MessageMeta]:
        prepared = common.prepare_deliveries(deliveries)  # parse/validate on the loop, not the writer
        if not prepared:
            return []
        return await self._write(ops.deliver, prepared)  # type: ignore[no-any-return]

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
        mode = FlagMode(mode)
        return await self._write(ops.store_flags, mailbox_id, clean, norm, mode)  # type: ignore[no-any-return]

    async def expunge(self, mailbox_id: int, uids: Sequence[int]) -> list[int]:
        return await self._write(ops.expunge, mailbox_id, common.clean_uids(uids))  # type: ignore[no-any-return]

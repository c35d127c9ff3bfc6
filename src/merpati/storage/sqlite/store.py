"""The SQLite ``MailStore``: the embedded default.

One database file (WAL) holds metadata and message bytes (``message_blobs``, read only by
``read_message``/``get_parsed``). Writes go through the group-committing writer thread, reads
through a few reader threads (see ``workers``). Changes are published on a ``LocalChangeFeed``
after commit, locally and to the other processes that have the file open (``notify.siblings``).
One store per database file per process; other processes (the CLI while the
daemon runs) may open the same file: SQLite's lock serialises them, and a lock held past
``busy_timeout`` surfaces as ``TemporaryStoreError``.
"""

from __future__ import annotations

import os
from typing import Any

from merpati.storage.api import TemporaryStoreError
from merpati.storage.delegating import OpsBackedStore
from merpati.storage.notify.local import LocalChangeFeed
from merpati.storage.notify.siblings import SiblingFeed
from merpati.storage.sqlite.maildrop import FileMaildropLock, FileMaildropLocks
from merpati.storage.queue_api import OpsQueueStore
from merpati.storage.sqlite import ops, queue_ops
from merpati.storage.sqlite.workers import BUSY_TIMEOUT_MS, Readers, Writer
from merpati.storage.sqlite.write_relay import RelayClient, RelayServer, socket_path

DEFAULT_READERS = 4
RELAYED = frozenset({"deliver"})  # the writes an MX worker hands to the main process


class SqliteStore(OpsBackedStore):
    _ops = ops

    """Create with ``await SqliteStore.open(path)`` (or ``merpati.storage.open_store``)."""

    def __init__(
        self, path: str, *, readers: int, parsed_type: Any | None, feed: LocalChangeFeed, busy_timeout_ms: int
    ) -> None:
        self.path = path
        self.changes = feed
        self._parsed_type = parsed_type
        self._writer = Writer(path, feed.publish_nowait, busy_timeout_ms=busy_timeout_ms)
        self._readers = Readers(path, readers, busy_timeout_ms=busy_timeout_ms)
        self._maildrop = FileMaildropLocks(path)
        self.schema_version = 0
        self.queue = OpsQueueStore(queue_ops, self._read, self._write)  # the outbound queue (queue_api)
        self._relay_server: RelayServer | None = None
        self._relay_client: RelayClient | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        readers: int = DEFAULT_READERS,
        parsed_type: Any | None = None,
        max_pending_changes: int | None = None,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        receive_changes: bool = True,
    ) -> SqliteStore:
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        # Processes sharing this file (MX workers, the CLI) pass their changes on to each other.
        feed = SiblingFeed(
            path + ".feed", receive=receive_changes,
            **({} if max_pending_changes is None else {"max_pending": max_pending_changes}),
        )
        await feed.start()
        store = cls(
            path, readers=max(1, readers), parsed_type=parsed_type, feed=feed, busy_timeout_ms=busy_timeout_ms
        )
        store.schema_version = await store._writer.start()
        store._readers.start()
        return store

    async def serve_relayed_writes(self) -> None:
        """Main process with MX workers: commit their deliveries here (see ``write_relay``)."""
        self._relay_server = RelayServer(socket_path(self.path), self._relayed)
        await self._relay_server.start()

    def relay_writes(self) -> None:
        """MX worker process: hand deliveries to the main process's writer."""
        self._relay_client = RelayClient(socket_path(self.path))

    async def _relayed(self, name: str, args: tuple[Any, ...]) -> Any:
        if name not in RELAYED:
            raise TemporaryStoreError(f"write relay: {name} is not relayed")
        return await self._write(getattr(ops, name), *args)

    async def close(self) -> None:
        if self._relay_server is not None:
            await self._relay_server.stop()
        if self._relay_client is not None:
            await self._relay_client.close()
        self._maildrop.close()
        await self._writer.stop()
        await self._readers.stop()
        await self.changes.close()

    def stats(self) -> dict[str, int]:
        """Group-commit statistics: commits done and jobs they carried."""
        return {"commits": self._writer.batches, "jobs": self._writer.jobs}

    async def lock_maildrop(self, account_id: int) -> FileMaildropLock | None:
        """POP3's exclusive maildrop lock: an ``flock`` beside the database (see ``maildrop``)."""
        return self._maildrop.try_lock(account_id)

    async def _write(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` as one job on the writer thread (group commit), or in an MX
        worker, deliveries on the main process's writer."""
        if self._relay_client is not None and fn is ops.deliver:
            sent, result = await self._relay_client.call("deliver", args)
            if sent:
                return result
        return await self._writer.submit(lambda conn: fn(conn, *args))

    async def _read(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(conn, *args)`` in one read transaction (inline when quick, see Readers.run)."""
        return await self._readers.run(fn, args)

"""The search methods of every ``MailStore``: SEARCH, SORT, THREAD over the search index.

``SearchMethods`` is mixed into ``OpsBackedStore``; a backend supplies ``_read``, ``_write``
(as for the other methods) and, as ``_ops.search_ops``, its search module (``sqlite.search``
or ``postgres.search``; both have the same function names).

* Each search is one read unit of work (one snapshot) and one SQL statement.
* Messages without a search document (stored before the search schema, or by a path that
  did not index them) are indexed first, a batch per write transaction, and the query runs
  again: the answer always covers every message.
* Full text is indexed lazily, as Dovecot's fts does: delivery stores each document's text
  as *pending* (cheap), searches scan the pending text of their mailbox besides asking the
  index, and a search that met pending documents (``search.INDEX_MIN_PENDING`` or more in its
  mailbox: fewer cost less to scan than to index) starts this store's indexer, a background
  task that moves them into the index in small write transactions (so deliveries queued on
  the same writer wait at most one batch) until none is left. ``index_pending()`` does the
  same on demand (maintenance, benchmarks). Closing the store ends the indexer at its next
  batch; whatever is left stays pending, and correct.
* SQLite (``DEFERRED_GC`` in its search module): an expunge only marks a document orphaned
  when its last message goes; ``search_gc_soon()`` (called by the store after expunges and
  deletions) starts the same background task, which deletes orphans in batches
  (``gc_orphans``), and indexes only when a search asked for it. PostgreSQL deletes documents
  with their messages.
* The task waits ``MAINTENANCE_DELAY`` before its first transaction, so the work of a busy
  second is done in a few batches (each FTS5 transaction writes an index segment that later
  merges cost), and pauses ``INDEX_PAUSE`` between its transactions (writes queued on the same
  writer wait at most one batch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from merpati.storage import common
from merpati.storage import search as s
from merpati.storage.api import InvalidInput, StoreError
from merpati.storage.search_doc import build_search_doc
from merpati.storage.threads import ALGORITHMS, ThreadNode, ThreadRow

log = logging.getLogger(__name__)

BACKFILL_BATCH = 100  # messages given a document per write transaction when catching up
INDEX_BATCH_DOCS = 64  # pending documents moved into the full-text index per transaction
INDEX_BATCH_CHARS = 256 << 10  # ... and about this much text (SQLite: ~0.1 s of FTS5 work)
INDEX_PAUSE = 0.005  # seconds between the indexer's transactions: deliveries go first
GC_BATCH_DOCS = 128  # orphaned documents deleted per transaction
MAINTENANCE_DELAY = 1.0  # seconds from the first hint to the background task's first batch


class SearchMethods:
    _ops: Any
    _search_indexer: asyncio.Task[None] | None = None
    _search_working = False  # the background task is past its delay (a batch may be in flight)
    _search_index_wanted = False  # a search asked for indexing (else the task only collects)

    @property
    def _search_ops(self) -> Any:
        return self._ops.search_ops

    async def _read(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    async def _write(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    # -- the MailStore methods ------------------------------------------------------------------
    async def search(self, mailbox_id: int, query: s.Query) -> list[int]:
        """UIDs of the mailbox's messages matching ``query`` (storage.search), ascending.
        NotFound for an unknown mailbox; InvalidInput for a malformed or oversized query."""
        s.validate(query)
        return await self._indexed(self._search_ops.search_uids, mailbox_id, query, _now_us())  # type: ignore[no-any-return]

    async def sort(self, mailbox_id: int, query: s.Query, keys: Sequence[s.SortKey]) -> list[int]:
        """UIDs matching ``query`` in RFC 5256 SORT order of ``keys`` (ties: UID ascending)."""
        s.validate(query)
        if isinstance(keys, (str, bytes)) or not keys or not all(isinstance(k, s.SortKey) for k in keys):
            raise InvalidInput("sort needs one or more SortKey")
        clean = [s.SortKey(s.SortField(k.field), bool(k.reverse)) for k in keys]
        return await self._indexed(self._search_ops.sort_uids, mailbox_id, query, clean, _now_us())  # type: ignore[no-any-return]

    async def thread(self, mailbox_id: int, query: s.Query, algorithm: str) -> list[ThreadNode]:
        """RFC 5256 THREAD (``"ORDEREDSUBJECT"`` or ``"REFERENCES"``) of the messages matching
        ``query``: a forest of ThreadNode with UIDs (``threads.format_threads`` renders it)."""
        s.validate(query)
        algo = ALGORITHMS.get(algorithm.upper()) if isinstance(algorithm, str) else None
        if algo is None:
            raise InvalidInput(f"unknown threading algorithm {algorithm!r}")
        rows = await self._indexed(self._search_ops.thread_rows, mailbox_id, query, _now_us())
        return algo(rows)  # type: ignore[no-any-return]

    async def thread_data(self, mailbox_id: int, uids: Sequence[int]) -> list[ThreadRow]:
        """The threading rows (threads.ThreadRow) of those messages, by UID; absent UIDs are skipped."""
        clean = common.clean_uids(uids)
        await self._backfill(mailbox_id)
        return await self._read(self._search_ops.thread_data, mailbox_id, clean)  # type: ignore[no-any-return]

    async def index_pending(self, *, max_batches: int | None = None) -> int:
        """Move pending full text into the index (every pending document of the database, or
        ``max_batches`` transactions' worth); returns how many documents were moved here.
        Without ``max_batches`` it also waits for this store's background indexer, whose
        in-flight documents the loop skipped (PostgreSQL: SKIP LOCKED); another node's
        in-flight documents are left to that node."""
        moved = batches = 0
        if max_batches is None:
            await self.collect_search_garbage()
        while max_batches is None or batches < max_batches:
            n = await self._write(self._search_ops.index_pending, INDEX_BATCH_DOCS, INDEX_BATCH_CHARS)
            if not n:
                break
            moved += n
            batches += 1
        task = self._search_indexer
        if (max_batches is None and task is not None and not task.done() and self._search_working
                and task is not asyncio.current_task()):
            await asyncio.shield(task)
        return moved

    async def collect_search_garbage(self) -> int:
        """Delete every orphaned search document now (SQLite; see the module docstring);
        returns how many were handled."""
        if not getattr(self._search_ops, "DEFERRED_GC", False):
            return 0
        done = 0
        while n := await self._write(self._search_ops.gc_orphans, GC_BATCH_DOCS, INDEX_BATCH_CHARS):
            done += n
        return done

    def search_gc_soon(self) -> None:
        """Documents may have lost their last message: have the background task collect them."""
        if getattr(self._search_ops, "DEFERRED_GC", False):
            self._start_indexer()

    async def pending_documents(self) -> int:
        """How many documents wait for the full-text indexer (all mailboxes)."""
        return await self._read(self._search_ops.pending_count)  # type: ignore[no-any-return]

    # -- internals --------------------------------------------------------------------------------
    async def _indexed(self, fn: Any, mailbox_id: int, *args: Any) -> Any:
        result, (missing, pending) = await self._read(fn, mailbox_id, *args)
        if missing:
            await self._backfill(mailbox_id)
            result, (_missing, pending) = await self._read(fn, mailbox_id, *args)
        if pending >= s.INDEX_MIN_PENDING:
            self._search_index_wanted = True
            self._start_indexer()
        return result

    async def _backfill(self, mailbox_id: int) -> None:
        """Give the mailbox's messages that have none a search document."""
        tried: set[int] = set()
        while True:
            rows = await self._read(self._search_ops.unindexed, mailbox_id, BACKFILL_BATCH)
            rows = [(message_id, data) for message_id, data in rows if message_id not in tried]
            if not rows:  # done (or only rows that could not be attached: never loop on them)
                return
            tried.update(message_id for message_id, _ in rows)
            pairs = [(message_id, build_search_doc(data)) for message_id, data in rows]
            await self._write(self._search_ops.attach_docs, pairs)

    def _start_indexer(self) -> None:
        task = self._search_indexer
        if task is not None and not task.done():
            return
        self._search_indexer = asyncio.get_running_loop().create_task(self._run_indexer(), name="search-indexer")

    async def _run_indexer(self) -> None:
        ops = self._search_ops
        gc = getattr(ops, "DEFERRED_GC", False)
        try:
            await asyncio.sleep(MAINTENANCE_DELAY)
            self._search_working = True
            while True:
                n = await self._write(ops.gc_orphans, GC_BATCH_DOCS, INDEX_BATCH_CHARS) if gc else 0
                if n:
                    await asyncio.sleep(INDEX_PAUSE)
                m = 0
                if self._search_index_wanted:
                    m = await self._write(ops.index_pending, INDEX_BATCH_DOCS, INDEX_BATCH_CHARS)
                    if not m:
                        self._search_index_wanted = False
                if not n and not m:
                    break
                await asyncio.sleep(INDEX_PAUSE)
        except StoreError:  # closed, or the database is unavailable: what is left stays pending
            pass
        except Exception:  # pragma: no cover - a bug; searches stay correct without the index
            log.exception("search indexer stopped")
        finally:
            self._search_working = False


def _now_us() -> int:
    return int(time.time() * 1_000_000)

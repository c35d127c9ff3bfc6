"""The search methods of every ``MailStore``: SEARCH, SORT, THREAD over the search index.

``SearchMethods`` is mixed into ``OpsBackedStore``; a backend supplies ``_read``, ``_write``
(as for the other methods) and, as ``_ops.search_ops``, its search module (``sqlite.search``
or ``postgres.search``; both have the same function names). Each call is one read unit of work (one
snapshot). When the mailbox holds messages without a search document (stored before the
search schema, or by a path that did not index them), they are indexed first, a batch per
write transaction, and the query runs again: the answer always covers every message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from merpati.storage import common
from merpati.storage import search as s
from merpati.storage.api import InvalidInput
from merpati.storage.search_doc import build_search_doc
from merpati.storage.threads import ALGORITHMS, ThreadNode, ThreadRow

BACKFILL_BATCH = 100  # messages indexed per write transaction when catching up


class SearchMethods:
    _ops: Any

    @property
    def _search_ops(self) -> Any:
        return self._ops.search_ops

    async def _read(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    async def _write(self, fn: Any, *args: Any) -> Any:
        raise NotImplementedError

    async def search(self, mailbox_id: int, query: s.Query) -> list[int]:
        """UIDs of the mailbox's messages matching ``query`` (storage.search), ascending.
        NotFound for an unknown mailbox; InvalidInput for a malformed or oversized query."""
        s.validate(query)
        return await self._indexed(self._search_ops.search_uids, mailbox_id, query, _now_us())  # type: ignore[no-any-return]

    async def sort(self, mailbox_id: int, query: s.Query, keys: Sequence[s.SortKey]) -> list[int]:
        """UIDs matching ``query`` in RFC 5256 SORT order of ``keys`` (ties: UID ascending)."""
        s.validate(query)
        clean = [k if isinstance(k, s.SortKey) else None for k in keys]
        if not clean or None in clean:
            raise InvalidInput("sort needs one or more SortKey")
        for k in clean:
            assert k is not None
            s.SortField(k.field)
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

    async def _indexed(self, fn: Any, mailbox_id: int, *args: Any) -> Any:
        result, missing = await self._read(fn, mailbox_id, *args)
        if not missing:
            return result
        await self._backfill(mailbox_id)
        result, _missing = await self._read(fn, mailbox_id, *args)
        return result

    async def _backfill(self, mailbox_id: int) -> None:
        """Index the mailbox's messages that have no search document yet."""
        tried: set[int] = set()
        while True:
            rows = await self._read(self._search_ops.unindexed, mailbox_id, BACKFILL_BATCH)
            rows = [(message_id, data) for message_id, data in rows if message_id not in tried]
            if not rows:  # done (or only rows that could not be attached: never loop on them)
                return
            tried.update(message_id for message_id, _ in rows)
            pairs = [(message_id, build_search_doc(data)) for message_id, data in rows]
            await self._write(self._search_ops.attach_docs, pairs)


def _now_us() -> int:
    return int(time.time() * 1_000_000)

"""SQLite search: the index (FTS5 trigram) and the units of work behind SEARCH, SORT, THREAD.

Schema (migration ``0004_search.sql``):

* ``search_docs``: one row per indexed message *content* (sort and thread keys, sent date);
  ``messages.search_id`` points at it. COPY and MOVE carry ``search_id`` over, so copies share
  one document and are never re-indexed; a trigger deletes the document (and its full-text
  entry) once the last message that used it is gone (``search_orphans``, below).
* ``search_headers``: (doc_id, name, n) → folded decoded value, for HEADER/FROM/TO/... keys.
* ``search_fts``: FTS5 with the trigram tokenizer (``detail=none``: about 2.4x the text, a
  third of ``detail=full``), rowid = ``search_docs.id``, columns ``headers`` and ``body``.
  Both sides are already ``fold``-ed, so the tokenizer is case-sensitive. A needle with a run
  of 3+ literal characters is a ``GLOB '*needle*'`` answered from the trigram index (then
  checked against the stored text); a shorter one scans the mailbox's documents with
  ``instr`` (still exact: substring semantics for any length).
* ``search_pending``: the text of documents not yet in ``search_fts``. Delivery writes the
  text here (an FTS5 trigram insert costs about 1 ms per 2 KB, too much for the SMTP 250
  path); ``index_pending`` moves it into ``search_fts`` in small batches (the store's
  indexer, started by searches that meet enough pending documents). Until then a search scans the
  pending text of its mailbox with ``instr``: answers never depend on the indexer's progress.
* ``search_orphans`` (migration ``0007_search_gc.sql``): documents whose last message is gone.
  The delete trigger only marks them (deleting FTS5 rows costs as much as indexing them, too
  much for EXPUNGE's transaction); ``gc_orphans`` deletes them and everything hanging off them
  in batches, run by the store's background maintenance. No search reaches an orphan (every
  query starts from live message rows), and the indexer skips them.

Messages stored without a document (before this migration, or by a path that did not index)
have ``search_id`` NULL; the search methods notice (``unindexed``), index them
(``attach_docs``) and search again. Every statement is parameterised.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from merpati.storage import search as s
from merpati.storage.api import NotFound
from merpati.storage.search_doc import SearchDoc
from merpati.storage.search_sql import Compiler, expand_uid_sets, large_uid_sets, order_by
from merpati.storage.threads import ThreadRow

Conn = sqlite3.Connection

DEFERRED_GC = True  # expunges mark orphans; gc_orphans collects them (search_store.py)
_GLOB_SPECIAL = "*?["
UNINDEXED_BYTES = 32 << 20  # message bytes read per backfill batch


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in _GLOB_SPECIAL else c for c in text)


def _longest_literal_run(text: str) -> int:
    best = run = 0
    for c in text:
        run = 0 if c in _GLOB_SPECIAL else run + 1
        best = max(best, run)
    return best


class SqliteCompiler(Compiler):
    TRUE = "1"
    FALSE = "0"

    def __init__(self, now_us: int, expanded: dict[int, list[int]], *, pending: bool) -> None:
        super().__init__(now_us, expanded)
        self.pending = pending  # some document of the mailbox is still in search_pending

    def p(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def uid_list(self, uids: list[int]) -> str:
        return f"m.uid IN (SELECT value FROM json_each({self.p(json.dumps(uids))}))"

    def flag(self, flag: str) -> str:
        if flag == "\\Seen":
            return "(m.seen = 1)"
        return f"EXISTS (SELECT 1 FROM json_each(m.flags) WHERE value = {self.p(flag)})"

    def keyword(self, keyword: str) -> str:
        # lower() is ASCII-only in SQLite (without ICU): exactly the ASCII case-insensitivity wanted.
        return f"EXISTS (SELECT 1 FROM json_each(m.flags) WHERE lower(value) = {self.p(keyword)})"

    def header(self, name: str, needle: str) -> str:
        sql = f"EXISTS (SELECT 1 FROM search_headers h WHERE h.doc_id = m.search_id AND h.name = {self.p(name)}"
        if needle:
            sql += f" AND instr(h.value, {self.p(needle)}) > 0"
        return sql + ")"

    def fulltext(self, column: str, needle: str) -> str:
        assert column in ("body", "headers")
        if _longest_literal_run(needle) >= 3:
            pattern = self.p("*" + _glob_escape(needle) + "*")
            sql = f"coalesce(m.search_id IN (SELECT rowid FROM search_fts WHERE {column} GLOB {pattern}), 0)"
        else:
            sql = (
                f"EXISTS (SELECT 1 FROM search_fts f WHERE f.rowid = m.search_id "
                f"AND instr(f.{column}, {self.p(needle)}) > 0)"
            )
        if not self.pending:
            return sql
        return (
            f"({sql} OR EXISTS (SELECT 1 FROM search_pending p WHERE p.doc_id = m.search_id "
            f"AND instr(p.{column}, {self.p(needle)}) > 0))"
        )


# -- index maintenance ------------------------------------------------------------------------------


def insert_doc(conn: Conn, doc: SearchDoc) -> int:
    """Store one search document; return its id (the message row's ``search_id``)."""
    cur = conn.execute(
        "INSERT INTO search_docs (sent_us, sent_day, subject_key, reply, from_key, to_key, cc_key, "
        "display_from_key, display_to_key, message_id, refs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            doc.sent_us, doc.sent_day, doc.subject_key, int(doc.reply), doc.from_key, doc.to_key, doc.cc_key,
            doc.display_from_key, doc.display_to_key, doc.message_id, " ".join(doc.refs),
        ),
    )
    doc_id = int(cur.lastrowid or 0)
    conn.execute("INSERT INTO search_pending (doc_id, headers, body) VALUES (?, ?, ?)", (doc_id, doc.headers, doc.body))
    if doc.fields:
        conn.executemany(
            "INSERT INTO search_headers (doc_id, name, n, value) VALUES (?, ?, ?, ?)",
            [(doc_id, name, n, value) for n, (name, value) in enumerate(doc.fields)],
        )
    return doc_id


def unindexed(conn: Conn, mailbox_id: int, limit: int, max_bytes: int = UNINDEXED_BYTES) -> list[tuple[int, bytes]]:
    """(message row id, bytes) of up to ``limit`` messages of the mailbox without a document,
    and no more than ``max_bytes`` of them in all (always at least one)."""
    rows = conn.execute(
        "SELECT id, size FROM messages WHERE mailbox_id = ? AND search_id IS NULL ORDER BY id LIMIT ?",
        (mailbox_id, limit),
    ).fetchall()
    out = []
    total = 0
    for message_id, size in rows:
        if out and total + size > max_bytes:
            break
        total += size
        row = conn.execute("SELECT data FROM message_blobs WHERE message_id = ?", (message_id,)).fetchone()
        if row is not None:
            out.append((message_id, bytes(row[0])))
    return out


def attach_docs(conn: Conn, pairs: list[tuple[int, SearchDoc]]) -> tuple[int, list]:
    """Give each message row (by id) its document, unless it got one meanwhile or is gone."""
    done = 0
    for message_id, doc in pairs:
        if conn.execute("SELECT 1 FROM messages WHERE id = ? AND search_id IS NULL", (message_id,)).fetchone():
            doc_id = insert_doc(conn, doc)
            conn.execute("UPDATE messages SET search_id = ? WHERE id = ?", (doc_id, message_id))
            done += 1
    return done, []


def index_pending(conn: Conn, max_docs: int, max_chars: int) -> tuple[int, list]:
    """Move pending documents (oldest first, at most ``max_docs`` and about ``max_chars``
    characters of text, at least one) into the full-text index; returns how many were moved.
    Orphaned documents are left for ``gc_orphans``."""
    picked: list[int] = []
    total = 0
    for doc_id, chars in conn.execute(
        "SELECT doc_id, length(headers) + length(body) FROM search_pending "
        "WHERE doc_id NOT IN (SELECT doc_id FROM search_orphans) ORDER BY doc_id LIMIT ?",
        (max_docs,),
    ):
        if picked and total + chars > max_chars:
            break
        picked.append(doc_id)
        total += chars
    if not picked:
        return 0, []
    ids = json.dumps(picked)
    conn.execute(
        "INSERT INTO search_fts (rowid, headers, body) SELECT doc_id, headers, body FROM search_pending "
        "WHERE doc_id IN (SELECT value FROM json_each(?))",
        (ids,),
    )
    conn.execute("DELETE FROM search_pending WHERE doc_id IN (SELECT value FROM json_each(?))", (ids,))
    return len(picked), []


def pending_count(conn: Conn) -> int:
    return int(conn.execute(
        "SELECT count(*) FROM search_pending WHERE doc_id NOT IN (SELECT doc_id FROM search_orphans)"
    ).fetchone()[0])


def gc_orphans(conn: Conn, max_docs: int, max_chars: int) -> tuple[int, list]:
    """Delete orphaned documents (oldest first, at most ``max_docs`` and about ``max_chars``
    characters of indexed text, at least one): their full-text rows, pending text, header
    rows and the document; returns how many orphans were handled. A document some message
    still uses (cannot happen: nothing gives an orphan a new message) is only unmarked."""
    picked: list[int] = []
    total = 0
    for doc_id, chars in conn.execute(
        "SELECT o.doc_id, coalesce((SELECT length(f.headers) + length(f.body) FROM search_fts f "
        "WHERE f.rowid = o.doc_id), 0) FROM search_orphans o ORDER BY o.doc_id LIMIT ?",
        (max_docs,),
    ):
        if picked and total + chars > max_chars:
            break
        picked.append(doc_id)
        total += chars
    if not picked:
        return 0, []
    ids = json.dumps(picked)
    conn.execute(
        "DELETE FROM search_orphans WHERE doc_id IN (SELECT value FROM json_each(?))", (ids,)
    )
    dead = [
        r[0] for r in conn.execute(
            "SELECT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM messages WHERE search_id = value)",
            (ids,),
        )
    ]
    if dead:
        ids = json.dumps(dead)
        conn.executemany("DELETE FROM search_fts WHERE rowid = ?", [(d,) for d in dead])
        # search_headers and search_pending go by ON DELETE CASCADE
        conn.execute("DELETE FROM search_docs WHERE id IN (SELECT value FROM json_each(?))", (ids,))
    return len(picked), []


def orphan_count(conn: Conn) -> int:
    return int(conn.execute("SELECT count(*) FROM search_orphans").fetchone()[0])


# -- queries ------------------------------------------------------------------------------------------

_FROM = "FROM messages m LEFT JOIN search_docs d ON d.id = m.search_id WHERE m.mailbox_id = ? AND "


def _prepare(conn: Conn, mailbox_id: int, query: s.Query, now_us: int) -> tuple[str, list[Any], tuple[bool, int]]:
    """(WHERE text, params, (some message of the mailbox lacks a document, how many of its
    documents are still pending, counted up to ``search.INDEX_MIN_PENDING``))."""
    if conn.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone() is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    big = large_uid_sets(query)
    expanded = {}
    if big:
        uids = [r[0] for r in conn.execute("SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid", (mailbox_id,))]
        expanded = expand_uid_sets(big, uids)
    missing = conn.execute(
        "SELECT 1 FROM messages WHERE mailbox_id = ? AND search_id IS NULL LIMIT 1", (mailbox_id,)
    ).fetchone() is not None
    pending = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM search_pending p JOIN messages m ON m.search_id = p.doc_id "
        "WHERE m.mailbox_id = ? LIMIT ?)",
        (mailbox_id, s.INDEX_MIN_PENDING),
    ).fetchone()[0]
    c = SqliteCompiler(now_us, expanded, pending=pending > 0)
    where = c.compile(query)
    return where, [mailbox_id, *c.params], (missing, pending)


def search_uids(conn: Conn, mailbox_id: int, query: s.Query, now_us: int) -> tuple[list[int], tuple[bool, int]]:
    where, params, state = _prepare(conn, mailbox_id, query, now_us)
    rows = conn.execute(f"SELECT m.uid {_FROM}{where} ORDER BY m.uid", params).fetchall()
    return [r[0] for r in rows], state


def sort_uids(
    conn: Conn, mailbox_id: int, query: s.Query, keys: list[s.SortKey], now_us: int
) -> tuple[list[int], tuple[bool, int]]:
    where, params, state = _prepare(conn, mailbox_id, query, now_us)
    rows = conn.execute(f"SELECT m.uid {_FROM}{where} ORDER BY {order_by(keys)}", params).fetchall()
    return [r[0] for r in rows], state


_THREAD_COLS = (
    "m.uid, coalesce(d.sent_us, m.internaldate_us), coalesce(d.subject_key, ''), coalesce(d.reply, 0), "
    "d.message_id, coalesce(d.refs, '')"
)


def _thread_row(r: Any) -> ThreadRow:
    return ThreadRow(uid=r[0], sent=r[1], subject=r[2], reply=bool(r[3]), message_id=r[4], refs=tuple(r[5].split()))


def thread_rows(
    conn: Conn, mailbox_id: int, query: s.Query, now_us: int
) -> tuple[list[ThreadRow], tuple[bool, int]]:
    where, params, state = _prepare(conn, mailbox_id, query, now_us)
    rows = conn.execute(f"SELECT {_THREAD_COLS} {_FROM}{where} ORDER BY m.uid", params).fetchall()
    return [_thread_row(r) for r in rows], state


def thread_data(conn: Conn, mailbox_id: int, uids: list[int]) -> list[ThreadRow]:
    if conn.execute("SELECT 1 FROM mailboxes WHERE id = ?", (mailbox_id,)).fetchone() is None:
        raise NotFound(f"no mailbox {mailbox_id}")
    rows = conn.execute(
        f"SELECT {_THREAD_COLS} {_FROM}m.uid IN (SELECT value FROM json_each(?)) ORDER BY m.uid",
        (mailbox_id, json.dumps(uids)),
    ).fetchall()
    return [_thread_row(r) for r in rows]

"""PostgreSQL search: the index (pg_trgm) and the units of work behind SEARCH, SORT, THREAD.

Schema (migration ``0004_search.sql``): ``search_docs`` (sort/thread keys, one row per message
content, shared by copies through ``messages.search_id``), ``search_text`` (the folded header
and body text, with pg_trgm GIN indexes), ``search_pending`` (the text of documents not in
``search_text`` yet), ``search_headers`` (one row per top-level field). A trigger removes a
document with the last message that uses it, in the same transaction.

Delivery writes the text to ``search_pending`` only: a GIN trigram insert costs milliseconds
per message. ``index_pending`` moves pending text into ``search_text`` in small batches (the
store's indexer, started by searches that meet pending documents; ``FOR UPDATE SKIP LOCKED``
lets several nodes index at once). Until then searches scan the pending text of their
mailbox, so answers never depend on the indexer's progress.

Substring search (text already ``fold``-ed on both sides, so plain ``LIKE``, not ``ILIKE``):
a needle with a run of three word characters (what pg_trgm can extract trigrams from) is a
``LIKE '%needle%'`` that the GIN index answers, rechecked on the text; any other needle
(shorter, or only punctuation) is ``strpos`` over the mailbox's documents, which the planner
drives from ``messages(mailbox_id)``: exact substring semantics at every length. Without the
pg_trgm extension, every needle takes the second path.
"""

from __future__ import annotations

from typing import Any

from merpati.storage import search as s
from merpati.storage.api import NotFound
from merpati.storage.search_doc import SearchDoc
from merpati.storage.search_sql import Compiler, expand_uid_sets, large_uid_sets, order_by
from merpati.storage.threads import ThreadRow

Conn = Any  # asyncpg.Connection
UNINDEXED_BYTES = 32 << 20  # message bytes read per backfill batch


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _trigram_run(text: str, unicode_words: bool) -> bool:
    """Whether pg_trgm can extract a trigram from ``text``: three word characters in a row
    (alphanumerics; non-ASCII ones count only under a non-C ctype)."""
    run = 0
    for c in text:
        word = c.isalnum() and (unicode_words or c.isascii())
        run = run + 1 if word else 0
        if run >= 3:
            return True
    return False


class PgCompiler(Compiler):
    TRUE = "TRUE"
    FALSE = "FALSE"

    def __init__(
        self, now_us: int, expanded: dict[int, list[int]], *, trigram: bool, unicode_words: bool, pending: bool
    ) -> None:
        super().__init__(now_us, expanded)
        self.trigram = trigram
        self.unicode_words = unicode_words
        self.pending = pending  # some document of the mailbox is still in search_pending

    def p(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params) + 1}"  # $1 is the mailbox id

    def uid_list(self, uids: list[int]) -> str:
        return f"m.uid = ANY({self.p(uids)}::bigint[])"

    def flag(self, flag: str) -> str:
        if flag == "\\Seen":
            return "m.seen"
        return f"({self.p(flag)}::text = ANY(m.flags))"

    def keyword(self, keyword: str) -> str:
        # lower() under the "C" collation maps ASCII letters only.
        return f'EXISTS (SELECT 1 FROM unnest(m.flags) AS f(v) WHERE lower(f.v COLLATE "C") = {self.p(keyword)}::text)'

    def header(self, name: str, needle: str) -> str:
        sql = f"EXISTS (SELECT 1 FROM search_headers h WHERE h.doc_id = m.search_id AND h.name = {self.p(name)}::text"
        if needle:
            sql += f" AND strpos(h.value, {self.p(needle)}::text) > 0"
        return sql + ")"

    def fulltext(self, column: str, needle: str) -> str:
        assert column in ("body", "headers")
        if self.trigram and _trigram_run(needle, self.unicode_words):
            pattern = self.p("%" + _like_escape(needle) + "%")
            sql = f"coalesce(m.search_id IN (SELECT doc_id FROM search_text WHERE {column} LIKE {pattern}::text), FALSE)"
        else:
            sql = (
                f"EXISTS (SELECT 1 FROM search_text t WHERE t.doc_id = m.search_id "
                f"AND strpos(t.{column}, {self.p(needle)}::text) > 0)"
            )
        if not self.pending:
            return sql
        return (
            f"({sql} OR EXISTS (SELECT 1 FROM search_pending p WHERE p.doc_id = m.search_id "
            f"AND strpos(p.{column}, {self.p(needle)}::text) > 0))"
        )


# -- index maintenance ------------------------------------------------------------------------------


async def insert_doc(conn: Conn, doc: SearchDoc) -> int:
    """Store one search document; return its id (the message row's ``search_id``)."""
    doc_id = await conn.fetchval(  # one round trip: data-modifying CTEs
        "WITH d AS (INSERT INTO search_docs (sent_us, sent_day, subject_key, reply, from_key, to_key, cc_key, "
        "display_from_key, display_to_key, message_id, refs) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "RETURNING id), "
        "t AS (INSERT INTO search_pending (doc_id, headers, body) SELECT id, $12, $13 FROM d), "
        "h AS (INSERT INTO search_headers (doc_id, name, n, value) SELECT d.id, f.name, f.n - 1, f.value "
        "FROM d, unnest($14::text[], $15::text[]) WITH ORDINALITY AS f(name, value, n)) "
        "SELECT id FROM d",
        doc.sent_us, doc.sent_day, doc.subject_key, doc.reply, doc.from_key, doc.to_key, doc.cc_key,
        doc.display_from_key, doc.display_to_key, doc.message_id, " ".join(doc.refs), doc.headers, doc.body,
        [f[0] for f in doc.fields], [f[1] for f in doc.fields],
    )
    return int(doc_id)


async def unindexed(conn: Conn, mailbox_id: int, limit: int, max_bytes: int = UNINDEXED_BYTES) -> list[tuple[int, bytes]]:
    """(message row id, bytes) of up to ``limit`` messages of the mailbox without a document,
    and no more than ``max_bytes`` of them in all (always at least one)."""
    rows = await conn.fetch(
        "SELECT id, size FROM messages WHERE mailbox_id = $1 AND search_id IS NULL ORDER BY id LIMIT $2",
        mailbox_id, limit,
    )
    ids: list[int] = []
    total = 0
    for r in rows:
        if ids and total + r[1] > max_bytes:
            break
        total += r[1]
        ids.append(r[0])
    data = await conn.fetch(
        "SELECT message_id, data FROM message_blobs WHERE message_id = ANY($1::bigint[]) ORDER BY message_id", ids
    )
    return [(r[0], bytes(r[1])) for r in data]


async def attach_docs(conn: Conn, pairs: list[tuple[int, SearchDoc]]) -> tuple[int, list]:
    done = 0
    for message_id, doc in pairs:
        locked = await conn.fetchval(
            "SELECT 1 FROM messages WHERE id = $1 AND search_id IS NULL FOR UPDATE", message_id
        )
        if locked:
            doc_id = await insert_doc(conn, doc)
            await conn.execute("UPDATE messages SET search_id = $1 WHERE id = $2", doc_id, message_id)
            done += 1
    return done, []


async def index_pending(conn: Conn, max_docs: int, max_chars: int) -> tuple[int, list]:
    """Move up to ``max_docs`` pending documents (oldest first, skipping those another node is
    moving) into the indexed ``search_text``; returns how many were moved. (``max_chars`` is
    SQLite's bound; here the count bounds the transaction.)"""
    status = await conn.execute(
        "WITH picked AS (SELECT doc_id FROM search_pending ORDER BY doc_id LIMIT $1 FOR UPDATE SKIP LOCKED), "
        "moved AS (DELETE FROM search_pending p USING picked WHERE p.doc_id = picked.doc_id "
        "RETURNING p.doc_id, p.headers, p.body) "
        "INSERT INTO search_text (doc_id, headers, body) SELECT doc_id, headers, body FROM moved",
        max_docs,
    )
    return int(status.rsplit(" ", 1)[1]), []


async def pending_count(conn: Conn) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM search_pending"))


async def gc_orphans(conn: Conn, max_docs: int, max_chars: int) -> tuple[int, list]:
    """Nothing to collect here: PostgreSQL deletes a document with its last message (migration
    0004's trigger; the GIN entries of the deleted text are left to VACUUM, so it is cheap)."""
    return 0, []


async def orphan_count(conn: Conn) -> int:
    return 0


# -- queries ------------------------------------------------------------------------------------------

_FROM = "FROM messages m LEFT JOIN search_docs d ON d.id = m.search_id WHERE m.mailbox_id = $1 AND "


async def _prepare(
    conn: Conn, mailbox_id: int, query: s.Query, now_us: int
) -> tuple[str, list[Any], tuple[bool, int]]:
    """(WHERE text, params, (some message of the mailbox lacks a document, how many of its
    documents are still pending, counted up to ``search.INDEX_MIN_PENDING``))."""
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM mailboxes WHERE id = $1), "
        "EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1 AND search_id IS NULL), "
        "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'), "
        "current_setting('lc_ctype') NOT IN ('C', 'POSIX'), "
        "(SELECT count(*) FROM (SELECT 1 FROM search_pending p JOIN messages m ON m.search_id = p.doc_id "
        "WHERE m.mailbox_id = $1 LIMIT $2) x), "
        # For this read transaction only: no JIT (compiling costs more than a search), and no
        # sequential scans: the planner does not count detoasting the text, so it would read
        # every document of every mailbox rather than use the trigram index (15 ms against 1 ms
        # at 4,000 documents). Every search has an index path: mailbox, document id, trigrams.
        "set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)",
        mailbox_id, s.INDEX_MIN_PENDING,
    )
    if not row[0]:
        raise NotFound(f"no mailbox {mailbox_id}")
    big = large_uid_sets(query)
    expanded = {}
    if big:
        uids = [r[0] for r in await conn.fetch("SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", mailbox_id)]
        expanded = expand_uid_sets(big, uids)
    c = PgCompiler(now_us, expanded, trigram=row[2], unicode_words=row[3], pending=row[4] > 0)
    where = c.compile(query)
    return where, [mailbox_id, *c.params], (bool(row[1]), int(row[4]))


async def search_uids(
    conn: Conn, mailbox_id: int, query: s.Query, now_us: int
) -> tuple[list[int], tuple[bool, int]]:
    where, params, state = await _prepare(conn, mailbox_id, query, now_us)
    rows = await conn.fetch(f"SELECT m.uid {_FROM}{where} ORDER BY m.uid", *params)
    return [r[0] for r in rows], state


async def sort_uids(
    conn: Conn, mailbox_id: int, query: s.Query, keys: list[s.SortKey], now_us: int
) -> tuple[list[int], tuple[bool, int]]:
    where, params, state = await _prepare(conn, mailbox_id, query, now_us)
    rows = await conn.fetch(f'SELECT m.uid {_FROM}{where} ORDER BY {order_by(keys, chr(34) + "C" + chr(34))}', *params)
    return [r[0] for r in rows], state


_THREAD_COLS = (
    "m.uid, coalesce(d.sent_us, m.internaldate_us), coalesce(d.subject_key, ''), coalesce(d.reply, false), "
    "d.message_id, coalesce(d.refs, '')"
)


def _thread_row(r: Any) -> ThreadRow:
    return ThreadRow(uid=r[0], sent=r[1], subject=r[2], reply=bool(r[3]), message_id=r[4], refs=tuple(r[5].split()))


async def thread_rows(
    conn: Conn, mailbox_id: int, query: s.Query, now_us: int
) -> tuple[list[ThreadRow], tuple[bool, int]]:
    where, params, state = await _prepare(conn, mailbox_id, query, now_us)
    rows = await conn.fetch(f"SELECT {_THREAD_COLS} {_FROM}{where} ORDER BY m.uid", *params)
    return [_thread_row(r) for r in rows], state


async def thread_data(conn: Conn, mailbox_id: int, uids: list[int]) -> list[ThreadRow]:
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM mailboxes WHERE id = $1)", mailbox_id):
        raise NotFound(f"no mailbox {mailbox_id}")
    rows = await conn.fetch(
        f"SELECT {_THREAD_COLS} {_FROM}m.uid = ANY($2::bigint[]) ORDER BY m.uid", mailbox_id, uids
    )
    return [_thread_row(r) for r in rows]

"""SEARCH, SORT and THREAD through the store, on SQLite and PostgreSQL (the ``store`` fixture).

Every key of storage.search, combinations, substring and case semantics over decoded text
(RFC 2047 subjects, base64 / quoted-printable / ISO-8859-1 bodies), the index following
copies, moves and expunges, messages stored without a document, sort orders and threads.
No timing assertions: bench/search_fts.py measures speed.
"""

from __future__ import annotations

import asyncio
import base64
import random
import sqlite3
from datetime import date, datetime, timedelta, timezone

import pytest
from storage_helpers import PARSED_TYPE

from merpati.mime import parse_message
from merpati.storage import INBOX, Delivery, FlagMode, InvalidInput, NotFound
from merpati.storage import search as s
from merpati.storage.threads import format_threads

pytestmark = pytest.mark.skipif(PARSED_TYPE is not None, reason="needs merpati.mime")

UTC = timezone.utc
T0 = datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-7)))  # 2 May in UTC


def msg(subject="hello", body=b"Hi there.\r\n", *, frm="Alice <alice@example.org>", to="bob@example.com",
        date_hdr="Wed, 01 May 2024 12:00:00 +0700", headers=b"", mid=None) -> bytes:
    head = f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\n".encode()
    if date_hdr is not None:
        head += f"Date: {date_hdr}\r\n".encode()
    if mid:
        head += f"Message-ID: <{mid}>\r\n".encode()
    return head + headers + b"\r\n" + body


async def setup(store, messages, when=T0, flags=None):
    """An account with ``messages`` delivered to INBOX (UIDs 1..n); returns (account, inbox)."""
    if not await store.has_domain("example.com"):
        await store.add_domain("example.com")
    acc = await store.get_account("bob@example.com") or await store.create_account("bob@example.com", "h")
    deliveries = []
    for i, data in enumerate(messages):
        w = when[i] if isinstance(when, list) else when
        f = frozenset(flags[i]) if flags else frozenset()
        deliveries.append(Delivery(acc.id, data, parse_message(data), w, flags=f))
    if deliveries:
        await store.deliver(deliveries)
    return acc, await store.get_mailbox(acc.id, INBOX)


async def raw_sql(backend, sql, *args):
    """Run SQL (``?`` placeholders) directly on the backend's database; returns the rows."""
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.url[len("sqlite:///"):], isolation_level=None)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()
    import asyncpg

    parts = sql.split("?")
    sql = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], 1))
    conn = await asyncpg.connect(backend.url)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


# -- keys ------------------------------------------------------------------------------------------


async def test_all_uids_and_combinations(store):
    _acc, mb = await setup(store, [msg(f"m{i}") for i in range(1, 7)])
    assert await store.search(mb.id, s.All()) == [1, 2, 3, 4, 5, 6]
    assert await store.search(mb.id, s.And()) == [1, 2, 3, 4, 5, 6]
    assert await store.search(mb.id, s.Or()) == []
    assert await store.search(mb.id, s.UidSet.of((2, 4), 6, (100, 200))) == [2, 3, 4, 6]
    assert await store.search(mb.id, s.UidSet([])) == []
    assert await store.search(mb.id, s.Not(s.UidSet.of((2, 4)))) == [1, 5, 6]
    q = s.Or(s.And(s.UidSet.of((1, 4)), s.Not(s.UidSet.of(2))), s.Subject("M6"))
    assert await store.search(mb.id, q) == [1, 3, 4, 6]
    assert await store.search(mb.id, s.Not(s.Not(s.Subject("m5")))) == [5]


async def test_large_uid_sets_are_resolved_against_the_mailbox(store):
    _acc, mb = await setup(store, [msg(f"m{i}") for i in range(1, 101)])
    odd = s.UidSet(range(1, 200, 2))  # 100 ranges: bound as an explicit list, not inlined
    assert await store.search(mb.id, odd) == list(range(1, 101, 2))
    assert await store.search(mb.id, s.Not(odd)) == list(range(2, 101, 2))
    assert await store.search(mb.id, s.And(odd, s.UidSet.of((1, 10)))) == [1, 3, 5, 7, 9]
    assert await store.search(mb.id, s.UidSet(range(500, 600, 2))) == []


async def test_flags_and_keywords(store):
    _acc, mb = await setup(
        store, [msg("a"), msg("b"), msg("c")],
        flags=[{"\\Seen", "$Label1"}, {"\\Flagged", "\\Deleted"}, {"\\Seen", "\\Answered", "\\Draft", "Work"}],
    )
    assert await store.search(mb.id, s.FlagIs("\\Seen")) == [1, 3]
    assert await store.search(mb.id, s.FlagIs("\\seen", present=False)) == [2]
    assert await store.search(mb.id, s.FlagIs("\\FLAGGED")) == [2]
    assert await store.search(mb.id, s.FlagIs("\\Deleted", False)) == [1, 3]
    assert await store.search(mb.id, s.And(s.FlagIs("\\Answered"), s.FlagIs("\\Draft"))) == [3]
    assert await store.search(mb.id, s.Keyword("$label1")) == [1]
    assert await store.search(mb.id, s.Keyword("WORK")) == [3]
    assert await store.search(mb.id, s.Keyword("work", present=False)) == [1, 2]
    assert await store.search(mb.id, s.Keyword("nothing")) == []
    await store.store_flags(mb.id, [2], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    assert await store.search(mb.id, s.FlagIs("\\Seen")) == [1, 2, 3]
    with pytest.raises(InvalidInput):
        await store.search(mb.id, s.FlagIs("\\Recent"))


async def test_modseq(store):
    _acc, mb = await setup(store, [msg("a"), msg("b"), msg("c")])
    changed = await store.store_flags(mb.id, [2], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    assert await store.search(mb.id, s.ModSeq(changed[0].modseq)) == [2]
    assert await store.search(mb.id, s.ModSeq(0)) == [1, 2, 3]
    assert await store.search(mb.id, s.ModSeq(2**63 - 1)) == []


async def test_internal_and_save_dates_use_their_own_date(store):
    _acc, mb = await setup(store, [msg("a"), msg("b"), msg("c")],
                           when=[T0, T0 + timedelta(days=2), datetime(2024, 4, 30, 23, 59, tzinfo=UTC)])
    d = date(2024, 5, 1)  # T0 is 1 May at -0700 although 2 May in UTC
    assert await store.search(mb.id, s.InternalDate(s.DateOp.ON, d)) == [1]
    assert await store.search(mb.id, s.InternalDate(s.DateOp.BEFORE, d)) == [3]
    assert await store.search(mb.id, s.InternalDate(s.DateOp.SINCE, d)) == [1, 2]
    assert await store.search(mb.id, s.InternalDate(s.DateOp.SINCE, date(2024, 5, 2))) == [2]
    assert await store.search(mb.id, s.InternalDate(s.DateOp.ON, date(2024, 5, 3))) == [2]
    today = datetime.now(UTC).date()
    saved = await store.search(mb.id, s.Or(s.SaveDate(s.DateOp.ON, today), s.SaveDate(s.DateOp.ON, today - timedelta(days=1))))
    assert saved == [1, 2, 3]  # saved a moment ago (UTC), whatever the internal date
    assert await store.search(mb.id, s.SaveDate(s.DateOp.BEFORE, date(2024, 1, 1))) == []
    assert await store.search(mb.id, s.SaveDate(s.DateOp.SINCE, date(2024, 1, 1))) == [1, 2, 3]


async def test_sent_dates_and_missing_date_header(store):
    _acc, mb = await setup(store, [
        msg("a", date_hdr="Wed, 01 May 2024 23:30:00 -0700"),  # 2 May in UTC: ON 1 May
        msg("b", date_hdr="Thu, 02 May 2024 00:10:00 +0200"),  # 1 May in UTC: ON 2 May
        msg("c", date_hdr=None),
        msg("d", date_hdr="garbage"),
    ])
    assert await store.search(mb.id, s.SentDate(s.DateOp.ON, date(2024, 5, 1))) == [1]
    assert await store.search(mb.id, s.SentDate(s.DateOp.ON, date(2024, 5, 2))) == [2]
    assert await store.search(mb.id, s.SentDate(s.DateOp.BEFORE, date(2024, 5, 2))) == [1]
    assert await store.search(mb.id, s.SentDate(s.DateOp.SINCE, date(2024, 5, 1))) == [1, 2]
    # no (valid) Date: header matches no SentDate key, so NOT of one matches it
    assert await store.search(mb.id, s.Not(s.SentDate(s.DateOp.SINCE, date(2000, 1, 1)))) == [3, 4]


async def test_age(store):
    now = datetime.now(UTC)
    _acc, mb = await setup(store, [msg("a"), msg("b")], when=[now - timedelta(days=3), now])
    assert await store.search(mb.id, s.Age(s.AgeOp.OLDER, 86400)) == [1]
    assert await store.search(mb.id, s.Age(s.AgeOp.YOUNGER, 86400)) == [2]
    assert await store.search(mb.id, s.Age(s.AgeOp.YOUNGER, 10 * 86400)) == [1, 2]


async def test_size(store):
    small, big = msg("a"), msg("b", b"x" * 1000 + b"\r\n")
    _acc, mb = await setup(store, [small, big])
    assert await store.search(mb.id, s.Size(s.SizeOp.LARGER, len(small))) == [2]
    assert await store.search(mb.id, s.Size(s.SizeOp.LARGER, len(small) - 1)) == [1, 2]
    assert await store.search(mb.id, s.Size(s.SizeOp.SMALLER, len(big))) == [1]
    assert await store.search(mb.id, s.Size(s.SizeOp.SMALLER, len(small))) == []


async def test_header_keys(store):
    _acc, mb = await setup(store, [
        msg("Meeting", frm="Carol <carol@example.net>", to="dave@example.com", headers=b"Cc: erin@example.com\r\n"),
        msg("Lunch", headers=b"X-Custom: Some Value\r\nBcc: frank@example.com\r\n"),
        msg("=?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", frm="=?ISO-8859-1?Q?Andr=E9?= <andre@example.org>",
            headers=b"X-Custom: other\r\n"),
        msg("=?iso-8859-1?q?Caf=E9_cr=E8me?="),
    ])
    assert await store.search(mb.id, s.From("CAROL")) == [1]
    assert await store.search(mb.id, s.From("example.org")) == [2, 3, 4]
    assert await store.search(mb.id, s.To("dave")) == [1]
    assert await store.search(mb.id, s.Cc("erin")) == [1]
    assert await store.search(mb.id, s.Bcc("frank")) == [2]
    assert await store.search(mb.id, s.Subject("eetin")) == [1]  # substring of a word
    assert await store.search(mb.id, s.Header("x-custom", "")) == [2, 3]  # empty: has the field
    assert await store.search(mb.id, s.Header("X-CUSTOM", "some val")) == [2]
    assert await store.search(mb.id, s.Header("X-Missing", "")) == []
    assert await store.search(mb.id, s.Cc("")) == [1]
    # RFC 2047 decoded, compared case-insensitively beyond ASCII
    assert await store.search(mb.id, s.Subject("GRÜSSE")) == [3]
    assert await store.search(mb.id, s.Subject("grüße aus k")) == [3]
    assert await store.search(mb.id, s.From("ANDRÉ")) == [3]
    assert await store.search(mb.id, s.Subject("CAFÉ CRÈME")) == [4]
    assert await store.search(mb.id, s.Subject("é")) == [4]
    # the field name must match exactly: "Subject" is not "Subj"
    assert await store.search(mb.id, s.Header("subj", "")) == []


def _b64(text: str, charset: str = "utf-8") -> bytes:
    return base64.encodebytes(text.encode(charset)).replace(b"\n", b"\r\n")


MIME = b"MIME-Version: 1.0\r\n"


async def test_body_and_text_over_decoded_content(store):
    _acc, mb = await setup(store, [
        msg("plain", b"The quick brown fox jumps\r\nover the lazy dog.\r\n"),
        msg("b64", _b64("Überweisung bestätigt für Straße"),
            headers=MIME + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"),
        msg("qp-latin1", b"Ol=E9 se=F1or, =E7a va? soft=\r\nbreak\r\n",
            headers=MIME + b"Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n"),
        msg("html", b"<html><body><p>Hello <b>World</b></p><script>var secret=1;</script></body></html>\r\n",
            headers=MIME + b"Content-Type: text/html; charset=us-ascii\r\n"),
        msg("specials", b"100% of a_b [x]*? back\\slash 'quote' \"dq\"\r\n"),
        msg("latin1-8bit", "naïve café".encode("latin-1") + b"\r\n",
            headers=MIME + b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n"),
    ])
    B = s.Body  # noqa: N806
    assert await store.search(mb.id, B("QUICK brown")) == [1]
    assert await store.search(mb.id, B("uick")) == [1]  # inside a word
    assert await store.search(mb.id, B("lazy dog.")) == [1]
    assert await store.search(mb.id, B("ÜBERWEISUNG")) == [2]
    assert await store.search(mb.id, B("strasse")) == [2]  # ß folds to ss
    assert await store.search(mb.id, B("SEÑOR")) == [3]
    assert await store.search(mb.id, B("ça va")) == [3]
    assert await store.search(mb.id, B("softbreak")) == [3]  # QP soft line break removed
    assert await store.search(mb.id, B("hello world")) == [4]
    assert await store.search(mb.id, B("secret")) == []  # script is not text
    assert await store.search(mb.id, B("<b>")) == []
    assert await store.search(mb.id, B("CAFÉ")) == [6]
    assert await store.search(mb.id, B("ï")) == [6]
    for needle in ("100%", "a_b", "[x]*?", "\\", "back\\sl", "'quote'", '"dq"', "%", "_", "*", "["):
        assert await store.search(mb.id, B(needle)) == [5], needle
    assert await store.search(mb.id, B("?")) == [3, 5]
    assert await store.search(mb.id, B("a%b")) == []
    assert await store.search(mb.id, B("o")) == [1, 3, 4, 5]  # one character
    assert await store.search(mb.id, B("ox")) == [1]  # two characters
    assert await store.search(mb.id, B("")) == [1, 2, 3, 4, 5, 6]
    assert await store.search(mb.id, B("plain")) == []  # the subject is not the body
    assert await store.search(mb.id, s.Text("subject: plain")) == [1]  # ... but it is in the text
    assert await store.search(mb.id, s.Text("plain")) == [1, 2, 3, 6]  # and so is "Content-Type: text/plain"
    assert await store.search(mb.id, s.Text("subject: b64")) == [2]
    assert await store.search(mb.id, s.Text("lazy")) == [1]
    assert await store.search(mb.id, s.Text("al")) == [1, 2, 3, 4, 5, 6]  # "Alice" in every From
    assert await store.search(mb.id, s.Text("")) == [1, 2, 3, 4, 5, 6]
    assert await store.search(mb.id, s.And(B("fox"), s.Not(s.Text("zzz")))) == [1]
    assert await store.search(mb.id, s.Or(B("señor"), B("café"), B("nothing at all"))) == [3, 6]


async def test_attachments_and_embedded_messages(store):
    body = (
        b"--BB\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--BB\r\nContent-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64("attached notes here") +
        b"--BB\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + _b64("binary payload text") +
        b"--BB\r\nContent-Type: message/rfc822\r\n\r\nSubject: forwarded thing\r\nFrom: zed@example.net\r\n\r\n"
        b"forwarded body\r\n--BB--\r\n"
    )
    _acc, mb = await setup(store, [msg("mixed", body, headers=MIME + b"Content-Type: multipart/mixed; boundary=BB\r\n")])
    for needle, found in (("attached notes", [1]), ("binary payload", []), ("forwarded thing", [1]),
                          ("zed@example", [1]), ("forwarded body", [1])):
        assert await store.search(mb.id, s.Body(needle)) == found, needle
    assert await store.search(mb.id, s.Subject("forwarded")) == []  # only the top-level header


# -- the index follows the messages ----------------------------------------------------------------------


async def _doc_count(backend):
    return (await raw_sql(backend, "SELECT count(*) FROM search_docs"))[0][0]


async def test_copies_share_the_document_and_expunge_removes_it(store, backend):
    acc, mb = await setup(store, [msg("keep", b"alpha bravo\r\n"), msg("other", b"charlie\r\n")])
    assert await _doc_count(backend) == 2
    work = await store.create_mailbox(acc.id, "Work")
    assert await store.copy_messages(mb.id, [1], work.id) == [(1, 1)]
    assert await _doc_count(backend) == 2  # the copy was not re-indexed
    assert await store.search(work.id, s.Body("BRAVO")) == [1]
    assert await store.search(work.id, s.Subject("keep")) == [1]
    await store.expunge(mb.id, [1])
    assert await store.search(mb.id, s.Body("bravo")) == []
    assert await store.search(work.id, s.Body("bravo")) == [1]  # still used by the copy
    assert await _doc_count(backend) == 2
    await store.expunge(work.id, [1])
    await store.collect_search_garbage()  # SQLite collects orphaned documents later (PostgreSQL: at once)
    assert await _doc_count(backend) == 1  # the last user took it along
    text = "search_fts" if backend.name == "sqlite" else "search_text"
    indexed = (await raw_sql(backend, f"SELECT count(*) FROM {text}"))[0][0]
    pending = (await raw_sql(backend, "SELECT count(*) FROM search_pending"))[0][0]
    assert indexed + pending == 1
    assert (await raw_sql(backend, "SELECT count(*) FROM search_headers WHERE value = 'keep'"))[0][0] == 0
    await store.index_pending()
    assert (await raw_sql(backend, f"SELECT count(*) FROM {text}"))[0][0] == 1
    await store.expunge(mb.id, [2])
    await store.collect_search_garbage()
    assert (await raw_sql(backend, f"SELECT count(*) FROM {text}"))[0][0] == 0  # indexed text goes too
    assert await _doc_count(backend) == 0


async def test_move_keeps_the_document(store, backend):
    acc, mb = await setup(store, [msg("a", b"delta echo\r\n")])
    arch = await store.get_mailbox(acc.id, "Archive")
    assert await store.move_messages(mb.id, [1], arch.id) == [(1, 1)]
    assert await store.search(arch.id, s.Body("echo")) == [1]
    assert await store.search(mb.id, s.All()) == []
    assert await _doc_count(backend) == 1


async def test_deleting_a_mailbox_or_account_removes_its_documents(store, backend):
    acc, mb = await setup(store, [msg("a", b"one\r\n"), msg("b", b"two\r\n")])
    work = await store.create_mailbox(acc.id, "Work")
    await store.copy_messages(mb.id, [1, 2], work.id)
    await store.delete_mailbox(acc.id, "Work")
    await store.collect_search_garbage()
    assert await _doc_count(backend) == 2
    await store.delete_account("bob@example.com")
    await store.collect_search_garbage()
    assert await _doc_count(backend) == 0


async def test_expunged_text_is_never_found_before_its_document_is_collected(store, backend):
    acc, mb = await setup(store, [msg("gone", b"zebra quagga\r\n"), msg("kept", b"zebra okapi\r\n")])
    await store.index_pending()  # the first one's text in the full-text index, then ...
    await store.deliver([Delivery(acc.id, m, parse_message(m), T0) for m in [msg("new", b"zebra quagga\r\n")]])
    await store.expunge(mb.id, [1, 3])  # ... one indexed and one pending document orphaned
    assert await store.search(mb.id, s.Body("zebra")) == [2]
    assert await store.search(mb.id, s.Body("quagga")) == []
    assert await store.search(mb.id, s.Or(s.Subject("gone"), s.Subject("new"))) == []
    assert await store.pending_documents() == 0  # an orphan does not wait for the indexer
    await store.index_pending()  # collects, and indexes nothing of the orphans
    assert await _doc_count(backend) == 1
    assert await store.search(mb.id, s.Text("quagga")) == []
    assert await store.search(mb.id, s.Body("okapi")) == [2]


async def test_pending_and_indexed_text_give_the_same_answers(store):
    bodies = [b"alpha beta gamma\r\n", "Grüße aus Köln\r\n".encode(), b"x*y?z [q] 50%_off\r\n", b"ab cd\r\n"]
    _acc, mb = await setup(store, [msg(f"s{i}", b) for i, b in enumerate(bodies)])
    queries = [s.Body("beta"), s.Body("GRÜSSE"), s.Body("ö"), s.Body("y?z"), s.Body("%_"), s.Body("b c"),
               s.Text("subject: s2"), s.Text("s3"), s.Not(s.Body("a")), s.Or(s.Body("zz"), s.Text("köln"))]
    first = [await store.search(mb.id, q) for q in queries]  # all pending (the indexer may run meanwhile)
    assert first == [[1], [2], [2], [3], [3], [4], [3], [4], [3], [2]]
    await store.index_pending(max_batches=1)
    await store.deliver([Delivery(mb.account_id, m, parse_message(m), T0) for m in [msg("s4", b"late beta\r\n")]])
    mixed = [await store.search(mb.id, q) for q in queries]  # some indexed, one pending
    assert mixed[0] == [1, 5] and mixed[1:] == first[1:]
    await store.index_pending()
    assert await store.pending_documents() == 0
    assert [await store.search(mb.id, q) for q in queries] == mixed


async def test_a_search_starts_the_indexer(store):
    _acc, mb = await setup(store, [msg(f"m{i}", f"text {i}\r\n".encode()) for i in range(300)])
    assert await store.pending_documents() == 300
    assert len(await store.search(mb.id, s.Body("text"))) == 300
    for _ in range(1000):  # bounded wait for the background indexer (no timing assertion)
        if await store.pending_documents() == 0:
            break
        await asyncio.sleep(0.01)
    assert await store.pending_documents() == 0
    assert len(await store.search(mb.id, s.Body("text 29"))) == 11


async def test_messages_without_a_document_are_indexed_on_first_search(store, backend):
    _acc, mb = await setup(store, [msg(f"m{i}", f"word{i} common\r\n".encode()) for i in range(1, 131)])
    await raw_sql(backend, "UPDATE messages SET search_id = NULL")  # as stored before migration 0004
    assert await store.search(mb.id, s.Body("word7 ")) == [7]
    assert (await raw_sql(backend, "SELECT count(*) FROM messages WHERE search_id IS NULL"))[0][0] == 0
    assert len(await store.search(mb.id, s.Body("common"))) == 130
    await raw_sql(backend, "UPDATE messages SET search_id = NULL WHERE uid = 5")
    assert await store.sort(mb.id, s.UidSet.of(5, 6), [s.SortKey(s.SortField.SUBJECT, True)]) == [6, 5]
    await raw_sql(backend, "UPDATE messages SET search_id = NULL WHERE uid = 9")
    assert [r.subject for r in await store.thread_data(mb.id, [9])] == ["M9"]


async def test_unknown_mailbox_and_bad_queries(store):
    _acc, mb = await setup(store, [msg("a")])
    with pytest.raises(NotFound):
        await store.search(mb.id + 1000, s.All())
    with pytest.raises(NotFound):
        await store.sort(mb.id + 1000, s.All(), [s.SortKey(s.SortField.DATE)])
    with pytest.raises(InvalidInput):
        await store.search(mb.id, "ALL")
    with pytest.raises(InvalidInput):
        await store.sort(mb.id, s.All(), [])
    with pytest.raises(InvalidInput):
        await store.thread(mb.id, s.All(), "FANCY")
    deep: s.Query = s.Body("hi")
    for _ in range(s.MAX_DEPTH - 1):
        deep = s.Not(deep)  # as deep as allowed: still answered
    assert await store.search(mb.id, deep) == []  # an odd number of NOTs
    deep = s.Body("hi there")
    for i in range(s.MAX_DEPTH - 1):  # alternating kinds: nothing to splice
        deep = [s.Not, lambda q: s.And(q, s.All()), s.Not, lambda q: s.Or(q, s.Body("zz"))][i % 4](deep)
    assert await store.search(mb.id, deep) == [1]


# -- SORT -------------------------------------------------------------------------------------------------


async def test_sort_keys(store):
    when = [T0 + timedelta(hours=h) for h in (3, 1, 2, 1)]
    _acc, mb = await setup(store, [
        msg("Re: banana", b"x" * 300, frm="Zed <a-zed@example.org>", to="Yan <m@example.com>",
            date_hdr="Wed, 01 May 2024 10:00:00 +0000", headers=b"Cc: c@x\r\n"),
        msg("apple", b"x" * 100, frm="bob@example.org", to="b@example.com",
            date_hdr="Wed, 01 May 2024 09:00:00 +0000", headers=b"Cc: a@x\r\n"),
        msg("[list] Cherry", b"x" * 200, frm="=?UTF-8?Q?=C3=89mile?= <c@example.org>", to="a@example.com",
            date_hdr=None),
        msg("Fwd: apple", b"x" * 400, frm="Adam <d@example.org>", to="", date_hdr="Wed, 01 May 2024 11:00:00 +0300"),
    ], when=when)
    K = s.SortKey.parse  # noqa: N806
    assert await store.sort(mb.id, s.All(), K("ARRIVAL")) == [2, 4, 3, 1]  # ties by UID
    assert await store.sort(mb.id, s.All(), K("REVERSE ARRIVAL")) == [1, 3, 2, 4]  # ties still ascending
    # DATE: the header's instant (UTC), else the INTERNALDATE (msg 3: 2 May 08:30 UTC)
    assert await store.sort(mb.id, s.All(), K("DATE")) == [4, 2, 1, 3]
    assert await store.sort(mb.id, s.All(), K("SIZE")) == [2, 3, 1, 4]
    assert await store.sort(mb.id, s.All(), K("REVERSE SIZE")) == [4, 1, 3, 2]
    assert await store.sort(mb.id, s.All(), K("SUBJECT")) == [2, 4, 1, 3]  # apple apple banana cherry
    assert await store.sort(mb.id, s.All(), K("SUBJECT REVERSE SIZE")) == [4, 2, 1, 3]
    assert await store.sort(mb.id, s.All(), K("FROM")) == [1, 2, 3, 4]  # a-zed bob c d (addr-mailbox)
    assert await store.sort(mb.id, s.All(), K("TO")) == [4, 3, 2, 1]  # "" a b m
    assert await store.sort(mb.id, s.All(), K("CC")) == [3, 4, 2, 1]  # "" "" a c
    # DISPLAYFROM: display name, else addr-spec: Adam, bob@example.org, Émile, Zed
    assert await store.sort(mb.id, s.All(), K("DISPLAYFROM")) == [4, 2, 3, 1]
    assert await store.sort(mb.id, s.All(), K("DISPLAYTO")) == [4, 3, 2, 1]  # "", a@, b@, Yan
    assert await store.sort(mb.id, s.Not(s.UidSet.of(2)), K("REVERSE DISPLAYFROM")) == [1, 3, 4]


async def test_sort_collation_is_casemap_then_octets(store):
    _acc, mb = await setup(store, [msg("b"), msg("A_"), msg("a"), msg("AB"), msg("é"), msg("E")])
    # i;ascii-casemap upper-cases letters, so "_" sorts after them; non-ASCII after ASCII
    assert await store.sort(mb.id, s.All(), s.SortKey.parse("SUBJECT")) == [3, 4, 2, 1, 6, 5]


# -- THREAD ----------------------------------------------------------------------------------------------


async def test_thread_through_the_store(store):
    _acc, mb = await setup(store, [
        msg("Project", mid="p1@x", date_hdr="Wed, 01 May 2024 10:00:00 +0000"),
        msg("Re: Project", mid="p2@x", headers=b"References: <p1@x>\r\n", date_hdr="Wed, 01 May 2024 11:00:00 +0000"),
        msg("Other", mid="o1@x", date_hdr="Wed, 01 May 2024 09:00:00 +0000"),
        msg("Re: Project", mid="p3@x", headers=b"In-Reply-To: <p1@x>\r\n", date_hdr="Wed, 01 May 2024 12:00:00 +0000"),
        msg("Re: Re: Project", mid="p4@x", headers=b"References: <p1@x> <p2@x>\r\n", date_hdr="Wed, 01 May 2024 13:00:00 +0000"),
        msg("RE: other", mid="o2@x", date_hdr="Wed, 01 May 2024 14:00:00 +0000"),
    ])
    forest = await store.thread(mb.id, s.All(), "REFERENCES")
    assert format_threads(forest) == "(3 6)(1 (2 5)(4))"
    assert format_threads(await store.thread(mb.id, s.All(), "orderedsubject")) == "(3 6)(1 (2)(4)(5))"
    assert format_threads(await store.thread(mb.id, s.Not(s.UidSet.of(2)), "REFERENCES")) == "(3 6)(1 (4)(5))"
    rows = await store.thread_data(mb.id, [5, 4, 99])
    assert [(r.uid, r.message_id, r.refs, r.reply, r.subject) for r in rows] == [
        (4, "p3@x", ("p1@x",), True, "PROJECT"), (5, "p4@x", ("p1@x", "p2@x"), True, "PROJECT"),
    ]


# -- many messages ----------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_ten_thousand_messages(store):
    rng = random.Random(7)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    texts = [" ".join(rng.choice(words) for _ in range(120)) for _ in range(10_000)]
    texts[4321] += " needle-4321 zürich"
    if not await store.has_domain("example.com"):
        await store.add_domain("example.com")
    acc = await store.create_account("bob@example.com", "h")
    for start in range(0, 10_000, 1000):
        batch = []
        for i in range(start, start + 1000):
            data = msg(f"message {i}", texts[i].encode() + b"\r\n")
            batch.append(Delivery(acc.id, data, parse_message(data), T0))
        await store.deliver(batch)
    mb = await store.get_mailbox(acc.id, INBOX)
    assert await store.search(mb.id, s.Body("NEEDLE-4321")) == [4322]
    assert await store.search(mb.id, s.Body("ZÜRICH")) == [4322]
    word = words[17]
    expected = [i + 1 for i, t in enumerate(texts) if word in t]
    assert await store.search(mb.id, s.Body(word)) == expected
    assert await store.search(mb.id, s.And(s.Body(word), s.UidSet.of((1, 5000)))) == [u for u in expected if u <= 5000]
    assert len(await store.search(mb.id, s.Text("message 99"))) == 111  # 99, 990-999, 9900-9999

"""Schema version 3 (quota usage, messages.deleted, subscriptions) upgrades a version 2 database
in place on both backends: usage and \\Deleted counts are computed from the existing mail, and
mailboxes keep their subscription state."""

from __future__ import annotations

import sqlite3

from storage_helpers import PARSED_TYPE, T0, message, parse

from merpati.storage import INBOX, Delivery, QuotaUsage, common, open_store, sqlite_path_from_url
from merpati.storage.migrations import load_migrations


def _runner_module(backend_name):
    if backend_name == "sqlite":
        from merpati.storage.sqlite import workers

        return workers
    from merpati.storage.postgres import store

    return store


async def _insert_v2_messages(backend, mailbox_id, items):
    """File messages as the version 2 code did: [(data, flags)], no usage counters kept."""
    rows = []
    for uid, (data, flags) in enumerate(items, start=1):
        us, tz = common.dt_to_parts(T0)
        rows.append((uid, sorted(flags), us, tz, data, common.parsed_to_text(parse(data)), common.search_columns(parse(data))))
    if backend.name == "sqlite":
        import json

        conn = sqlite3.connect(sqlite_path_from_url(backend.url), isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for uid, flags, us, tz, data, parsed, search in rows:
                cur = conn.execute(
                    "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, internaldate_tz, "
                    "savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (mailbox_id, uid, uid + 1, json.dumps(flags), "\\Seen" in flags, us, tz, us, len(data), *search),
                )
                conn.execute(
                    "INSERT INTO message_blobs (message_id, data, parsed) VALUES (?, ?, ?)", (cur.lastrowid, data, parsed)
                )
            conn.execute("UPDATE mailboxes SET uidnext = ?, highestmodseq = ? WHERE id = ?", (len(rows) + 1, len(rows) + 1, mailbox_id))
            conn.execute("UPDATE mailboxes SET subscribed = 0 WHERE name = 'Junk'")
            conn.execute("COMMIT")
        finally:
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(backend.url)
    try:
        async with conn.transaction():
            for uid, flags, us, tz, data, parsed, search in rows:
                await conn.execute(
                    "WITH m AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, "
                    "internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id) "
                    "INSERT INTO message_blobs (message_id, data, parsed) SELECT id, $15, $16 FROM m",
                    mailbox_id, uid, uid + 1, flags, "\\Seen" in flags, us, tz, us, len(data), *search, data, parsed,
                )
            await conn.execute(
                "UPDATE mailboxes SET uidnext = $1, highestmodseq = $1 WHERE id = $2", len(rows) + 1, mailbox_id
            )
            await conn.execute("UPDATE mailboxes SET subscribed = false WHERE name = 'Junk'")
    finally:
        await conn.close()


async def test_schema_v2_database_upgrades_to_v3(backend, monkeypatch):
    runner = _runner_module(backend.name)
    real = runner.load_migrations
    monkeypatch.setattr(runner, "load_migrations", lambda name: real(name)[:2])
    old = await open_store(backend.url, parsed_type=PARSED_TYPE)
    try:
        assert old.schema_version == 2
        await old.add_domain("example.com")
        acc = await old.create_account("bob@example.com", "h")
        other = await old.create_account("carol@example.com", "h")
        inbox = await old.get_mailbox(acc.id, INBOX)
    finally:
        await old.close()
    monkeypatch.undo()
    items = [
        (message("a"), {"\\Seen"}),
        (message("b", b"longer body\r\n" * 10), {"\\Deleted"}),
        (message("c"), {"\\Deleted", "\\Seen", "$x"}),
    ]
    await _insert_v2_messages(backend, inbox.id, items)

    new = await backend.open()
    assert new.schema_version == load_migrations(backend.name)[-1].version >= 3
    total = sum(len(d) for d, _f in items)
    assert await new.get_quota(acc.id) == QuotaUsage(total, 0, 3, 0)
    assert await new.get_quota(other.id) == QuotaUsage(0, 0, 0, 0)
    st = await new.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.deleted, st.size) == (3, 1, 2, total)
    subs = await new.list_subscriptions(acc.id)
    assert INBOX in subs and "Sent" in subs and "Junk" not in subs
    assert not (await new.get_mailbox(acc.id, "Junk")).subscribed
    # and the upgraded database keeps the counters from now on
    [m] = await new.deliver([Delivery(acc.id, message("d"), parse(message("d")), T0)])
    assert m.uid == 4
    await new.expunge(inbox.id, [2])
    q = await new.get_quota(acc.id)
    assert (q.storage_used_bytes, q.messages_used) == (total + len(message("d")) - len(items[1][0]), 3)
    assert (await new.mailbox_status(inbox.id)).deleted == 1

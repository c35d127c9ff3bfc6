"""Conformance of the per-message SMTP envelope (RFC 3461 DSN parameters), on every backend.

``Delivery.envelope`` is stored with the message and read back exactly by ``get_envelope``;
schema version 2 added its column, and a version 1 database upgrades in place on open.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from storage_helpers import PARSED_TYPE, T0, message, parse

from merpati.storage import INBOX, Delivery, InvalidInput, MessageEnvelope, NotFound, open_store, sqlite_path_from_url
from merpati.storage import common
from merpati.storage.migrations import load_migrations

FULL = MessageEnvelope(
    sender="alice@example.org",
    recipient="bob@example.com",
    original_recipient="rfc822;Bob+Tag@Example.COM",
    notify=("SUCCESS", "DELAY", "FAILURE"),
    ret="HDRS",
    envid="QQ314159+2Bx\x00 ünï 😀 \udcff",  # xtext-decoded: anything may come back out
    received_from="mx.example.org [192.0.2.1]",
)
NULL_SENDER = MessageEnvelope(sender="", recipient="postmaster@example.com", notify=("NEVER",), ret="FULL")
EMPTY_NOTIFY = MessageEnvelope(sender="a@example.org", recipient="b@example.com", notify=())


async def _account(store, address="bob@example.com"):
    domain = address.rsplit("@", 1)[1]
    if not await store.has_domain(domain):
        await store.add_domain(domain)
    return await store.create_account(address, "hash")


def _delivery(account_id, envelope=None, data=None, mailbox=INBOX):
    data = message() if data is None else data
    return Delivery(account_id=account_id, data=data, parsed=parse(data), internaldate=T0, mailbox=mailbox, envelope=envelope)


# -- the model ---------------------------------------------------------------------------------


def test_envelope_json_round_trips_exactly_and_compactly():
    for env in (FULL, NULL_SENDER, EMPTY_NOTIFY, MessageEnvelope("s", "r")):
        text = env.to_json()
        assert text.isascii() and "\x00" not in text and ": " not in text and ", " not in text
        assert MessageEnvelope.from_json(text) == env
    assert MessageEnvelope("s", "r").to_json() == '{"sender":"s","recipient":"r"}'
    # NOTIFY absent and NOTIFY with no keywords are different things
    assert MessageEnvelope.from_json(EMPTY_NOTIFY.to_json()).notify == ()
    assert MessageEnvelope.from_json('{"sender":"s","recipient":"r"}').notify is None
    assert isinstance(MessageEnvelope.from_json(FULL.to_json()).notify, tuple)


def test_envelope_json_ignores_unknown_keys():
    obj = json.loads(FULL.to_json())
    obj.update({"future_field": {"x": [1, 2]}, "mt_priority": 3})
    assert MessageEnvelope.from_json(json.dumps(obj)) == FULL


def test_delivery_envelope_defaults_to_none_and_keeps_field_order():
    d = Delivery(1, b"x", parse(b"x"), T0)
    assert d.envelope is None
    assert Delivery.__slots__[-1] == "envelope"
    assert Delivery.__slots__[:-1] == ("account_id", "data", "parsed", "internaldate", "mailbox", "flags")


# -- the store ---------------------------------------------------------------------------------


async def test_deliver_with_and_without_envelope(store):
    acc = await _account(store)
    inbox = await store.get_mailbox(acc.id, INBOX)
    plain, full, null_sender, empty_notify = await store.deliver(
        [_delivery(acc.id), _delivery(acc.id, FULL), _delivery(acc.id, NULL_SENDER), _delivery(acc.id, EMPTY_NOTIFY)]
    )
    assert await store.get_envelope(inbox.id, plain.uid) is None
    assert await store.get_envelope(inbox.id, full.uid) == FULL
    assert await store.get_envelope(inbox.id, null_sender.uid) == NULL_SENDER
    got = await store.get_envelope(inbox.id, empty_notify.uid)
    assert got == EMPTY_NOTIFY and got.notify == ()
    # the envelope changes nothing else about the message
    for m in (plain, full):
        assert await store.read_message(inbox.id, m.uid) == message()
    assert [m.size for m in await store.list_messages(inbox.id)] == [len(message())] * 4
    with pytest.raises(NotFound):
        await store.get_envelope(inbox.id, 999)
    with pytest.raises(NotFound):
        await store.get_envelope(inbox.id + 999, full.uid)
    await store.expunge(inbox.id, [full.uid])
    with pytest.raises(NotFound):
        await store.get_envelope(inbox.id, full.uid)


async def test_multi_delivery_batch_keeps_each_envelope(store):
    a = await _account(store, "a@example.com")
    b = await _account(store, "b@example.com")
    envs = [
        MessageEnvelope("s@example.org", f"rcpt{i}@example.com", original_recipient=f"rfc822;orig{i}@example.com",
                        notify=("FAILURE",) * (i % 2), envid=f"env-{i}")
        for i in range(6)
    ]
    targets = [(a.id, INBOX), (b.id, INBOX), (a.id, "Sent"), (b.id, "Nope"), (a.id, INBOX), (b.id, INBOX)]
    deliveries = [_delivery(acc, env, message(f"m{i}"), box) for i, (env, (acc, box)) in enumerate(zip(envs, targets))]
    deliveries.insert(3, _delivery(a.id))  # one without, in the middle
    metas = await store.deliver(deliveries)
    expected = envs[:3] + [None] + envs[3:]
    for meta, env in zip(metas, expected, strict=True):
        assert await store.get_envelope(meta.mailbox_id, meta.uid) == env


async def test_bad_envelope_is_invalid_input_and_stores_nothing(store):
    acc = await _account(store)
    inbox = await store.get_mailbox(acc.id, INBOX)
    for bad in ("MAIL FROM:<a@b>", {"sender": "a", "recipient": "b"},
                MessageEnvelope("a@b", "c@d", notify="SUCCESS"),  # type: ignore[arg-type]
                MessageEnvelope("a@b", None)):  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            await store.deliver([_delivery(acc.id, FULL), _delivery(acc.id, bad)])
    assert await store.list_messages(inbox.id) == []
    assert (await store.get_mailbox(acc.id, INBOX)).uidnext == 1


# -- upgrade from schema version 1 -------------------------------------------------------------


def _runner_module(backend_name):
    if backend_name == "sqlite":
        from merpati.storage.sqlite import workers

        return workers
    from merpati.storage.postgres import store

    return store


async def _insert_v1_message(backend, mailbox_id, data):
    """File a message as the version 1 code did (no envelope column exists yet)."""
    parsed = common.parsed_to_text(parse(data))
    search = common.search_columns(parse(data))
    us, tz = common.dt_to_parts(T0)
    if backend.name == "sqlite":
        conn = sqlite3.connect(sqlite_path_from_url(backend.url), isolation_level=None)
        try:
            assert "envelope" not in [r[1] for r in conn.execute("PRAGMA table_info(message_blobs)")]
            conn.execute("BEGIN IMMEDIATE")
            uid, modseq = conn.execute(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
                "WHERE id = ? RETURNING uidnext - 1, highestmodseq", (mailbox_id,),
            ).fetchone()
            cur = conn.execute(
                "INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, internaldate_tz, "
                "savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (mailbox_id, uid, modseq, '["\\\\Seen"]', 1, us, tz, us, len(data), *search),
            )
            conn.execute(
                "INSERT INTO message_blobs (message_id, data, parsed) VALUES (?, ?, ?)", (cur.lastrowid, data, parsed)
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return uid
    import asyncpg

    conn = await asyncpg.connect(backend.url)
    try:
        cols = await conn.fetch("SELECT column_name FROM information_schema.columns WHERE table_name = 'message_blobs'")
        assert "envelope" not in [r[0] for r in cols]
        async with conn.transaction():
            uid, modseq = await conn.fetchrow(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 "
                "WHERE id = $1 RETURNING uidnext - 1, highestmodseq", mailbox_id,
            )
            await conn.execute(
                "WITH m AS (INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, internaldate_us, "
                "internaldate_tz, savedate_us, size, subject, message_id, from_addr, date_hdr, preview) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id) "
                "INSERT INTO message_blobs (message_id, data, parsed) SELECT id, $15, $16 FROM m",
                mailbox_id, uid, modseq, ["\\Seen"], True, us, tz, us, len(data), *search, data, parsed,
            )
    finally:
        await conn.close()
    return uid


async def test_schema_v1_database_upgrades_in_place(backend, monkeypatch):
    runner = _runner_module(backend.name)
    real = runner.load_migrations
    monkeypatch.setattr(runner, "load_migrations", lambda name: real(name)[:1])
    old = await open_store(backend.url, parsed_type=PARSED_TYPE)
    try:
        assert old.schema_version == 1
        acc = await _account(old)
        inbox = await old.get_mailbox(acc.id, INBOX)
    finally:
        await old.close()
    monkeypatch.undo()
    data = message("from-v1", "written before the envelope existed\r\n".encode())
    uid = await _insert_v1_message(backend, inbox.id, data)

    new = await backend.open()
    assert new.schema_version == load_migrations(backend.name)[-1].version >= 2
    assert await new.get_account(acc.address) == acc
    [meta] = await new.list_messages(inbox.id)
    assert (meta.uid, meta.flags, meta.internaldate, meta.size) == (uid, frozenset({"\\Seen"}), T0, len(data))
    assert await new.read_message(inbox.id, uid) == data
    assert (await new.get_parsed(inbox.id, uid)).to_json() == parse(data).to_json()
    assert await new.get_envelope(inbox.id, uid) is None
    status = await new.mailbox_status(inbox.id)
    assert (status.messages, status.unseen) == (1, 0)
    # and the upgraded database takes envelopes from now on
    [m] = await new.deliver([_delivery(acc.id, FULL)])
    assert m.uid == uid + 1
    assert await new.get_envelope(inbox.id, m.uid) == FULL
    assert await new.get_envelope(inbox.id, uid) is None

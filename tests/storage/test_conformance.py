"""The MailStore conformance suite: one definition of "correct", run against every backend.

Each test takes ``store`` (an open store on a fresh database; see conftest.py), parametrised
over SQLite and PostgreSQL. No timing assertions: waits are bounded only to fail fast.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from storage_helpers import PARSED_TYPE, T0, message, parse

from merpati.storage import (
    DEFAULT_SPECIAL_MAILBOXES,
    INBOX,
    AlreadyExists,
    Delivery,
    Expunged,
    FlagMode,
    FlagsChanged,
    InvalidInput,
    MailboxChanged,
    MessageAdded,
    NotFound,
    SpecialUse,
)
from merpati.storage.migrations import load_migrations

WAIT = 10  # seconds; only a bound so that a missing event fails instead of hanging


async def _account(store, address="bob@example.com"):
    domain = address.rsplit("@", 1)[1]
    if not await store.has_domain(domain):
        await store.add_domain(domain)
    return await store.create_account(address, "hash")


def _delivery(account_id, data=None, mailbox=INBOX, flags=frozenset(), when=T0):
    data = message() if data is None else data
    return Delivery(account_id=account_id, data=data, parsed=parse(data), internaldate=when, mailbox=mailbox, flags=flags)


async def _inbox(store, account_id):
    return await store.get_mailbox(account_id, INBOX)


async def _next_change(sub):
    return await asyncio.wait_for(sub.__anext__(), WAIT)


# -- domains, accounts, aliases -------------------------------------------------------------------


async def test_domains_crud(store):
    assert await store.list_domains() == []
    await store.add_domain("Example.COM")
    await store.add_domain("b.example")
    assert await store.list_domains() == ["b.example", "example.com"]
    assert await store.has_domain("EXAMPLE.com")
    assert not await store.has_domain("other.example")
    with pytest.raises(AlreadyExists):
        await store.add_domain("example.com")
    with pytest.raises(AlreadyExists):
        await store.add_domain("EXAMPLE.COM")
    await store.remove_domain("EXAMPLE.COM")
    assert await store.list_domains() == ["b.example"]
    with pytest.raises(NotFound):
        await store.remove_domain("example.com")
    with pytest.raises(InvalidInput):
        await store.add_domain("")


async def test_accounts_crud(store):
    with pytest.raises(NotFound):
        await store.create_account("alice@nodomain.example", "h")
    await store.add_domain("example.com")
    acc = await store.create_account("Alice.Smith@Example.COM", "h1")
    assert acc.address == "Alice.Smith@example.com"
    assert (acc.password_hash, acc.quota_bytes, acc.quota_messages) == ("h1", 0, 0)
    with pytest.raises(AlreadyExists):
        await store.create_account("alice.smith@example.com", "h2")
    assert await store.get_account("ALICE.SMITH@example.com") == acc
    assert await store.get_account("alice.smith@EXAMPLE.COM") == acc
    assert await store.get_account("nobody@example.com") is None
    assert await store.get_account_by_id(acc.id) == acc
    assert await store.get_account_by_id(acc.id + 1000) is None
    await store.add_domain("other.example")
    other = await store.create_account("zed@other.example", "h")
    assert [a.address for a in await store.list_accounts()] == ["Alice.Smith@example.com", "zed@other.example"]
    assert await store.list_accounts("OTHER.example") == [other]
    assert await store.list_accounts("missing.example") == []
    await store.set_password("alice.smith@example.com", "h3")
    assert (await store.get_account_by_id(acc.id)).password_hash == "h3"
    with pytest.raises(NotFound):
        await store.set_password("nobody@example.com", "x")
    await store.delete_account("ALICE.smith@example.com")
    assert await store.get_account_by_id(acc.id) is None
    with pytest.raises(NotFound):
        await store.delete_account("alice.smith@example.com")
    for bad in ("no-at-sign", "@example.com", "a@", ""):
        with pytest.raises(InvalidInput):
            await store.create_account(bad, "h")


async def test_special_mailboxes_created(store):
    acc = await _account(store)
    boxes = await store.list_mailboxes(acc.id)
    assert boxes[0].name == INBOX and boxes[0].special_use is None
    by_name = {b.name: b for b in boxes}
    assert set(by_name) == {INBOX} | {n for n, _ in DEFAULT_SPECIAL_MAILBOXES}
    for name, use in DEFAULT_SPECIAL_MAILBOXES:
        assert by_name[name].special_use is use
    for b in boxes:
        assert (b.account_id, b.uidnext, b.highestmodseq, b.subscribed) == (acc.id, 1, 1, True)
        assert b.uidvalidity > 0
    assert len({b.uidvalidity for b in boxes}) == len(boxes)
    assert (await store.get_mailbox(acc.id, "inbox")).id == by_name[INBOX].id
    assert await store.get_mailbox(acc.id, "sent") is None  # only INBOX is case-insensitive


async def test_remove_domain_removes_accounts_mail_and_aliases(store):
    acc = await _account(store, "bob@gone.example")
    keep = await _account(store, "carol@kept.example")
    await store.deliver([_delivery(acc.id), _delivery(keep.id)])
    await store.add_alias("info@gone.example", ["bob@gone.example"])
    await store.add_alias("@gone.example", ["bob@gone.example"])
    await store.add_alias("info@kept.example", ["bob@gone.example"])
    inbox = await _inbox(store, acc.id)
    await store.remove_domain("gone.example")
    assert await store.get_account_by_id(acc.id) is None
    assert await store.list_mailboxes(acc.id) == []
    with pytest.raises(NotFound):
        await store.read_message(inbox.id, 1)
    assert await store.get_alias("info@gone.example") is None
    assert await store.get_alias("@gone.example") is None
    assert [a.source for a in await store.list_aliases()] == ["info@kept.example"]
    assert (await store.mailbox_status((await _inbox(store, keep.id)).id)).messages == 1


async def test_aliases(store):
    with pytest.raises(NotFound):
        await store.add_alias("info@example.com", ["a@example.com"])
    await store.add_domain("example.com")
    alias = await store.add_alias("Info@Example.com", ["b@x.example", "a@example.com", "B@X.example"])
    assert alias.source == "Info@example.com"
    assert alias.targets == ("b@x.example", "a@example.com")
    alias = await store.add_alias("info@example.com", ["c@example.com", "a@example.com"])
    assert alias.targets == ("b@x.example", "a@example.com", "c@example.com")
    assert await store.get_alias("INFO@example.COM") == alias
    catch_all = await store.add_alias("@Example.com", ["postmaster@example.com"])
    assert catch_all.source == "@example.com"
    assert await store.get_alias("@example.com") == catch_all
    assert await store.list_aliases() == [catch_all, alias]
    assert await store.list_aliases("example.com") == [catch_all, alias]
    assert await store.list_aliases("other.example") == []
    await store.remove_alias("info@example.com", ["A@example.com"])
    assert (await store.get_alias("info@example.com")).targets == ("b@x.example", "c@example.com")
    with pytest.raises(NotFound):
        await store.remove_alias("info@example.com", ["nobody@example.com"])
    assert (await store.get_alias("info@example.com")).targets == ("b@x.example", "c@example.com")
    await store.remove_alias("info@example.com", ["b@x.example", "c@example.com"])
    assert await store.get_alias("info@example.com") is None  # no targets left: gone
    await store.remove_alias("@example.com")
    assert await store.get_alias("@example.com") is None
    with pytest.raises(NotFound):
        await store.remove_alias("@example.com")
    with pytest.raises(InvalidInput):
        await store.add_alias("x@example.com", [])


# -- mailboxes -------------------------------------------------------------------------------


async def test_mailbox_crud_and_uidvalidity(store):
    acc = await _account(store)
    sub = store.changes.subscribe(acc.id)
    work = await store.create_mailbox(acc.id, "Work")
    assert (work.name, work.uidnext, work.highestmodseq, work.special_use) == ("Work", 1, 1, None)
    assert await _next_change(sub) == MailboxChanged(acc.id, work.id, "created")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "Work")
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "inbox")
    child = await store.create_mailbox(acc.id, "Work/2024")
    flagged = await store.create_mailbox(acc.id, "Important", special_use=SpecialUse.ARCHIVE)
    assert flagged.special_use is SpecialUse.ARCHIVE
    with pytest.raises(NotFound):
        await store.create_mailbox(acc.id + 999, "X")

    await store.deliver([_delivery(acc.id, mailbox="Work")])
    renamed = await store.rename_mailbox(acc.id, "Work", "Jobs")
    assert (renamed.id, renamed.name, renamed.uidvalidity, renamed.uidnext) == (work.id, "Jobs", work.uidvalidity, 2)
    assert (await store.get_mailbox(acc.id, "Jobs/2024")).id == child.id
    assert await store.get_mailbox(acc.id, "Work") is None
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "Jobs", "Sent")
    with pytest.raises(NotFound):
        await store.rename_mailbox(acc.id, "Nope", "Nope2")

    await store.delete_mailbox(acc.id, "Jobs")
    with pytest.raises(NotFound):
        await store.delete_mailbox(acc.id, "Jobs")
    with pytest.raises(InvalidInput):
        await store.delete_mailbox(acc.id, "INBOX")
    again = await store.create_mailbox(acc.id, "Jobs")
    assert again.id != work.id
    assert again.uidvalidity != work.uidvalidity  # re-created: new UIDVALIDITY
    assert again.uidnext == 1
    with pytest.raises(NotFound):
        await store.mailbox_status(work.id)
    await sub.aclose()


async def test_uids_grow_and_uidvalidity_is_stable(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    uids = []
    for i in range(5):
        [meta] = await store.deliver([_delivery(acc.id, message(f"m{i}"))])
        assert meta.mailbox_id == inbox.id
        uids.append(meta.uid)
    assert uids == [1, 2, 3, 4, 5]
    after = await _inbox(store, acc.id)
    assert (after.uidvalidity, after.uidnext) == (inbox.uidvalidity, 6)
    assert await store.expunge(inbox.id, [4, 5]) == [4, 5]
    [meta] = await store.deliver([_delivery(acc.id)])
    assert meta.uid == 6  # never reused
    assert [m.uid for m in await store.list_messages(inbox.id)] == [1, 2, 3, 6]
    assert [m.uid for m in await store.list_messages(inbox.id, uid_min=2, uid_max=3)] == [2, 3]
    assert [m.uid for m in await store.list_messages(inbox.id, uid_min=3)] == [3, 6]
    assert (await _inbox(store, acc.id)).uidvalidity == inbox.uidvalidity


async def test_delivery_metadata_and_mailbox_fallback(store):
    acc = await _account(store)
    data = message("meta")
    [m1, m2, m3] = await store.deliver(
        [
            _delivery(acc.id, data, flags=frozenset({"\\seen", "$Label1"})),
            _delivery(acc.id, mailbox="Junk", when=T0 + timedelta(days=1)),
            _delivery(acc.id, mailbox="No/Such/Box"),
        ]
    )
    inbox, junk = await _inbox(store, acc.id), await store.get_mailbox(acc.id, "Junk")
    assert (m1.mailbox_id, m2.mailbox_id, m3.mailbox_id) == (inbox.id, junk.id, inbox.id)
    assert (m1.uid, m2.uid, m3.uid) == (1, 1, 2)
    assert m1.flags == frozenset({"\\Seen", "$Label1"})
    assert m1.size == len(data)
    assert m1.internaldate == T0 and m1.internaldate.utcoffset() == T0.utcoffset()
    assert m2.internaldate == T0 + timedelta(days=1)
    assert m1.savedate.tzinfo is not None
    listed = await store.list_messages(inbox.id)
    assert listed == [m1, m3]
    assert listed[0].internaldate.utcoffset() == T0.utcoffset()
    with pytest.raises(InvalidInput):
        await store.deliver([_delivery(acc.id, when=T0.replace(tzinfo=None))])
    assert await store.deliver([]) == []


# -- MODSEQ and flags ------------------------------------------------------------------------


async def test_modseq_grows_on_deliver_store_and_expunge(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    assert inbox.highestmodseq == 1
    metas = [m for _ in range(3) for m in await store.deliver([_delivery(acc.id)])]
    modseqs = [m.modseq for m in metas]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 3 and modseqs[0] > 1
    hms = (await _inbox(store, acc.id)).highestmodseq
    assert hms == modseqs[-1]

    changed = await store.store_flags(inbox.id, [1, 3], frozenset({"\\Flagged"}), mode=FlagMode.ADD)
    assert [m.uid for m in changed] == [1, 3]
    assert all(m.modseq > hms for m in changed)
    hms2 = (await _inbox(store, acc.id)).highestmodseq
    assert hms2 == changed[0].modseq
    untouched = {m.uid: m for m in await store.list_messages(inbox.id)}[2]
    assert untouched.modseq == metas[1].modseq

    # No change: no new MODSEQ.
    assert await store.store_flags(inbox.id, [1, 3], frozenset({"\\flagged"}), mode=FlagMode.ADD) == []
    assert (await _inbox(store, acc.id)).highestmodseq == hms2

    assert await store.expunge(inbox.id, [2, 99]) == [2]
    hms3 = (await _inbox(store, acc.id)).highestmodseq
    assert hms3 > hms2
    assert await store.expunge(inbox.id, [2]) == []
    assert (await _inbox(store, acc.id)).highestmodseq == hms3
    [later] = await store.deliver([_delivery(acc.id)])
    assert later.modseq > hms3


async def test_flag_modes_and_normalisation(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    await store.deliver([_delivery(acc.id), _delivery(acc.id)])

    async def flags(uid):
        return {m.uid: m.flags for m in await store.list_messages(inbox.id)}[uid]

    out = await store.store_flags(inbox.id, [1], frozenset({"\\seen", "\\ANSWERED", "$Work"}), mode=FlagMode.REPLACE)
    assert out[0].flags == frozenset({"\\Seen", "\\Answered", "$Work"}) == await flags(1)
    await store.store_flags(inbox.id, [1, 2], frozenset({"\\Flagged"}), mode=FlagMode.ADD)
    assert await flags(1) == frozenset({"\\Seen", "\\Answered", "$Work", "\\Flagged"})
    assert await flags(2) == frozenset({"\\Flagged"})
    await store.store_flags(inbox.id, [1], frozenset({"\\SEEN", "$Work"}), mode=FlagMode.REMOVE)
    assert await flags(1) == frozenset({"\\Answered", "\\Flagged"})
    await store.store_flags(inbox.id, [1], frozenset(), mode=FlagMode.REPLACE)
    assert await flags(1) == frozenset()
    assert await store.store_flags(inbox.id, [77], frozenset({"\\Seen"}), mode=FlagMode.ADD) == []
    with pytest.raises(NotFound):
        await store.store_flags(inbox.id + 999, [1], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    with pytest.raises(InvalidInput):
        await store.store_flags(inbox.id, [1], frozenset({"two words"}), mode=FlagMode.ADD)


async def test_unseen_counts_and_status(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    empty = await store.mailbox_status(inbox.id)
    assert (empty.messages, empty.unseen, empty.size, empty.mailbox) == (0, 0, 0, inbox)
    d = [_delivery(acc.id, message(f"s{i}")) for i in range(4)]
    await store.deliver(d[:3] + [_delivery(acc.id, message("s3"), flags=frozenset({"\\Seen"}))])
    st = await store.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.size) == (4, 3, sum(len(x.data) for x in d))
    assert st.mailbox.uidnext == 5
    await store.store_flags(inbox.id, [1, 2], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    assert (await store.mailbox_status(inbox.id)).unseen == 1
    await store.store_flags(inbox.id, [2], frozenset({"\\Seen"}), mode=FlagMode.REMOVE)
    assert (await store.mailbox_status(inbox.id)).unseen == 2
    await store.expunge(inbox.id, [3])
    st = await store.mailbox_status(inbox.id)
    assert (st.messages, st.unseen) == (3, 1)


# -- message content -------------------------------------------------------------------------


async def test_read_message_is_byte_exact_and_parsed_round_trips(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    bodies = [
        message("8bit", "Grüße, naïve café — 日本語\r\n".encode()),
        message("nul", b"a\x00b\x00\x00c\r\n"),
        message("raw", bytes(range(256)) + b"\r\nlone\rcr and lone\nlf\r\n"),
        message("latin1", "caf\xe9\r\n".encode("latin-1")),
        message("big", b"x" * 1_000_000 + b"\r\n"),
        b"",
    ]
    metas = await store.deliver([_delivery(acc.id, b) for b in bodies])
    for meta, body in zip(metas, bodies, strict=True):
        got = await store.read_message(inbox.id, meta.uid)
        assert type(got) is bytes and got == body and meta.size == len(body)
        parsed = await store.get_parsed(inbox.id, meta.uid)
        assert parsed.to_json() == parse(body).to_json()
        if PARSED_TYPE is not None:
            assert isinstance(parsed, PARSED_TYPE)
    with pytest.raises(NotFound):
        await store.read_message(inbox.id, 999)
    with pytest.raises(NotFound):
        await store.get_parsed(inbox.id, 999)
    with pytest.raises(NotFound):
        await store.read_message(inbox.id + 999, 1)


# -- atomicity and concurrency ----------------------------------------------------------------


async def test_multi_delivery_is_all_or_nothing(store):
    a = await _account(store, "a@example.com")
    b = await _account(store, "b@example.com")
    sub = store.changes.subscribe(a.id)
    before = await _inbox(store, a.id)
    with pytest.raises(NotFound):
        await store.deliver([_delivery(a.id), _delivery(b.id), _delivery(b.id + a.id + 1000)])
    after = await _inbox(store, a.id)
    assert after == before
    assert await store.list_messages(before.id) == []
    assert await store.list_messages((await _inbox(store, b.id)).id) == []
    # A later good delivery gets UID 1 and is the first event: nothing leaked from the failure.
    [m] = await store.deliver([_delivery(a.id)])
    assert m.uid == 1
    assert await _next_change(sub) == MessageAdded(a.id, before.id, 1, m.modseq)
    await sub.aclose()


async def test_concurrent_deliveries_get_distinct_consecutive_uids(store):
    acc = await _account(store)
    other = await _account(store, "carol@example.com")
    inbox = await _inbox(store, acc.id)
    results = await asyncio.gather(
        *(store.deliver([_delivery(acc.id, message(f"c{i}"))]) for i in range(200)),
        *(store.deliver([_delivery(other.id), _delivery(acc.id, mailbox="Sent")]) for _ in range(20)),
    )
    uids = sorted(r[0].uid for r in results[:200])
    assert uids == list(range(1, 201))
    modseqs = [r[0].modseq for r in results[:200]]
    assert len(set(modseqs)) == 200
    assert (await _inbox(store, acc.id)).uidnext == 201
    assert (await store.get_mailbox(acc.id, "Sent")).uidnext == 21
    listed = await store.list_messages(inbox.id)
    assert [m.uid for m in listed] == list(range(1, 201))
    # each UID's bytes are the ones its caller delivered
    by_uid = {r[0].uid: i for i, r in enumerate(results[:200])}
    for uid in (1, 100, 200):
        assert await store.read_message(inbox.id, uid) == message(f"c{by_uid[uid]}")


# -- change feed -----------------------------------------------------------------------------


async def test_change_events_follow_commits(store):
    acc = await _account(store)
    other = await _account(store, "eve@example.com")
    inbox = await _inbox(store, acc.id)
    sub = store.changes.subscribe(acc.id)
    other_sub = store.changes.subscribe(other.id)
    [m] = await store.deliver([_delivery(acc.id)])
    assert await _next_change(sub) == MessageAdded(acc.id, inbox.id, m.uid, m.modseq)
    [f] = await store.store_flags(inbox.id, [m.uid], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    assert await _next_change(sub) == FlagsChanged(acc.id, inbox.id, (m.uid,), f.modseq)
    await store.expunge(inbox.id, [m.uid])
    hms = (await _inbox(store, acc.id)).highestmodseq
    assert await _next_change(sub) == Expunged(acc.id, inbox.id, (m.uid,), hms)
    # A failed write publishes nothing; the next event is the next commit.
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "Sent")
    mb = await store.create_mailbox(acc.id, "New")
    assert await _next_change(sub) == MailboxChanged(acc.id, mb.id, "created")
    # The other account heard nothing of this; a delivery to it reaches only its subscriber.
    [o] = await store.deliver([_delivery(other.id)])
    assert await _next_change(other_sub) == MessageAdded(other.id, o.mailbox_id, o.uid, o.modseq)
    await sub.aclose()
    await other_sub.aclose()


async def test_event_is_visible_in_the_store_when_it_arrives(store):
    acc = await _account(store)
    sub = store.changes.subscribe(acc.id)
    task = asyncio.ensure_future(store.deliver([_delivery(acc.id)]))
    change = await _next_change(sub)
    # the commit happened before the event: a reader sees the message now
    assert [m.uid for m in await store.list_messages(change.mailbox_id)] == [change.uid]
    await task
    await sub.aclose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_pg_notify_crosses_store_instances(backend):
    node_a = await backend.open()
    node_b = await backend.open()
    acc = await _account(node_a)
    sub = node_b.changes.subscribe(acc.id)
    [m] = await node_a.deliver([_delivery(acc.id)])
    assert await _next_change(sub) == MessageAdded(acc.id, m.mailbox_id, m.uid, m.modseq)
    # and the reverse direction, with flags
    sub_a = node_a.changes.subscribe(acc.id)
    [f] = await node_b.store_flags(m.mailbox_id, [m.uid], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    first = await _next_change(sub_a)
    if first == MessageAdded(acc.id, m.mailbox_id, m.uid, m.modseq):
        # Node A's own notification of the delivery may still have been in flight when sub_a
        # subscribed: with LISTEN/NOTIFY "from now on" is as of arrival, never earlier.
        first = await _next_change(sub_a)
    assert first == FlagsChanged(acc.id, m.mailbox_id, (m.uid,), f.modseq)
    assert await _next_change(sub) == FlagsChanged(acc.id, m.mailbox_id, (m.uid,), f.modseq)


async def test_large_flag_change_is_split_into_small_events(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    sub = store.changes.subscribe(acc.id)
    await store.deliver([_delivery(acc.id, b"m") for _ in range(700)])
    changed = await store.store_flags(inbox.id, range(1, 701), frozenset({"\\Seen"}), mode=FlagMode.ADD)
    assert len(changed) == 700
    added: list[int] = []
    seen: list[int] = []
    while len(seen) < 700:
        ev = await _next_change(sub)
        if isinstance(ev, MessageAdded):
            assert not seen  # commit order: all additions come before the flag change
            added.append(ev.uid)
            continue
        assert isinstance(ev, FlagsChanged) and len(ev.uids) <= 500
        seen += ev.uids
    assert added == list(range(1, 701))
    assert seen == list(range(1, 701))
    await sub.aclose()


# -- schema and migrations -------------------------------------------------------------------


async def test_migrations_are_idempotent(backend):
    first = await backend.open()
    acc = await _account(first)
    await first.deliver([_delivery(acc.id)])
    second = await backend.open()  # re-applies nothing
    third = await backend.open()
    latest = load_migrations(backend.name)[-1].version
    assert first.schema_version == second.schema_version == third.schema_version == latest
    assert await third.get_account(acc.address) == acc
    assert len(await third.list_messages((await _inbox(third, acc.id)).id)) == 1


# -- hostile input ---------------------------------------------------------------------------

HOSTILE_OK = ["a'--", "a%u", "a_b", "*)(uid=*", "x'); DROP TABLE accounts; --", 'q"uote', "back\\slash", "ünï"]
HOSTILE_BAD = ["a\x00b", "a\r\nb", "a\udcffb", "tab\there"]


async def test_hostile_strings_are_inert(store):
    await store.add_domain("example.com")
    created = {}
    for local in HOSTILE_OK:
        acc = await store.create_account(f"{local}@example.com", f"hash-{local}")
        created[local] = acc
        assert acc.address == f"{local}@example.com"
    for local, acc in created.items():
        assert await store.get_account(f"{local}@example.com") == acc
    # LIKE-style wildcards are literal: "a%u" and "a_b" match only themselves
    assert await store.get_account("abu@example.com") is None
    assert await store.get_account("axb@example.com") is None
    assert await store.get_account("a%@example.com") is None
    for local in HOSTILE_BAD:
        with pytest.raises(InvalidInput):
            await store.create_account(f"{local}@example.com", "h")
        assert await store.get_account(f"{local}@example.com") is None
        with pytest.raises(NotFound):
            await store.delete_account(f"{local}@example.com")
        assert await store.get_alias(f"{local}@example.com") is None
        assert not await store.has_domain(local)
    assert len(await store.list_accounts()) == len(HOSTILE_OK)
    acc = created["a'--"]
    box = await store.create_mailbox(acc.id, "x'); DELETE FROM messages; --")
    assert (await store.get_mailbox(acc.id, box.name)).id == box.id
    with pytest.raises(InvalidInput):
        await store.create_mailbox(acc.id, "bad\x00name")
    assert await store.get_mailbox(acc.id, "bad\x00name") is None
    [m] = await store.deliver([_delivery(acc.id, mailbox="bad\x00name", flags=frozenset({"$a'--"}))])
    assert m.mailbox_id == (await _inbox(store, acc.id)).id and m.flags == frozenset({"$a'--"})
    alias = await store.add_alias("a%u@example.com", ["a'--@example.com", "*)(uid=*@example.com"])
    assert await store.get_alias("abu@example.com") is None
    assert await store.get_alias("A%U@example.com") == alias
    assert await store.list_domains() == ["example.com"]

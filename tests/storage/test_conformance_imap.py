"""Conformance of what IMAP and POP3 need from the store, on SQLite and PostgreSQL alike.

Copy/move (UIDPLUS, MOVE), append (APPEND, MULTIAPPEND), rename and delete (RFC 9051 §6.3.5-6),
subscriptions, QRESYNC (changedsince, expunged_since), quota (RFC 9208, enforced on deliver,
append and copy), the POP3 maildrop lock, bulk reads, STATUS items and the change events IMAP
sessions turn into untagged responses. Same fixtures as test_conformance.py (``store`` is
parametrised over both backends). No timing assertions: waits are bounded only to fail fast.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from storage_helpers import T0, message, parse

from merpati.storage import (
    INBOX,
    AlreadyExists,
    AppendMessage,
    Delivery,
    Expunged,
    FlagMode,
    FlagsChanged,
    InvalidInput,
    MailboxChanged,
    MessageAdded,
    NotFound,
    OverQuota,
    QuotaUsage,
)
from merpati.storage.changes import change_from_json, change_to_json

WAIT = 10


async def _account(store, address="bob@example.com"):
    domain = address.rsplit("@", 1)[1]
    if not await store.has_domain(domain):
        await store.add_domain(domain)
    return await store.create_account(address, "hash")


def _delivery(account_id, data=None, mailbox=INBOX, flags=frozenset(), when=T0):
    data = message() if data is None else data
    return Delivery(account_id=account_id, data=data, parsed=parse(data), internaldate=when, mailbox=mailbox, flags=flags)


def _msg(n: int) -> bytes:
    return message(f"m{n}", f"body {n}\r\n".encode() * (1 + n % 7))


async def _inbox(store, account_id):
    return await store.get_mailbox(account_id, INBOX)


async def _next(sub):
    return await asyncio.wait_for(sub.__anext__(), WAIT)


async def _drain(sub, count):
    return [await _next(sub) for _ in range(count)]


_SENTINELS = iter(range(10**9))


async def _fresh_sub(store, account_id):
    """A subscription that has seen every event committed before it returns.

    With LISTEN/NOTIFY, "from now on" is as of a notification's arrival: events of writes that
    just returned may still be in flight. A marker change (subscribe + unsubscribe a unique
    name) is committed after them, and events arrive in commit order: skip up to the marker.
    """
    sub = store.changes.subscribe(account_id)
    marker = f"zz-marker-{next(_SENTINELS)}"
    await store.subscribe(account_id, marker)
    await store.unsubscribe(account_id, marker)
    while True:
        ev = await _next(sub)
        if isinstance(ev, MailboxChanged) and ev.kind == "unsubscribed" and ev.name == marker:
            return sub


async def _recount(store, account_id) -> tuple[int, int]:
    """(bytes, messages) of the account, counted the slow way, to check the kept counters."""
    size = count = 0
    for mb in await store.list_mailboxes(account_id):
        st = await store.mailbox_status(mb.id)
        size += st.size
        count += st.messages
    return size, count


async def _assert_usage_exact(store, account_id):
    q = await store.get_quota(account_id)
    assert (q.storage_used_bytes, q.messages_used) == await _recount(store, account_id)


# -- mailboxes -------------------------------------------------------------------------------------


async def test_get_mailbox_by_id(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    assert await store.get_mailbox_by_id(inbox.id) == inbox
    assert await store.get_mailbox_by_id(inbox.id + 10_000) is None
    await store.deliver([_delivery(acc.id)])
    assert (await store.get_mailbox_by_id(inbox.id)).uidnext == 2


async def test_create_makes_missing_superiors_and_is_not_subscribed(store):
    acc = await _account(store)
    sub = await _fresh_sub(store, acc.id)
    leaf = await store.create_mailbox(acc.id, "a/b/c")
    assert leaf.name == "a/b/c" and not leaf.subscribed
    a, ab = await store.get_mailbox(acc.id, "a"), await store.get_mailbox(acc.id, "a/b")
    assert a is not None and ab is not None
    assert len({a.uidvalidity, ab.uidvalidity, leaf.uidvalidity}) == 3
    events = await _drain(sub, 3)
    assert events == [
        MailboxChanged(acc.id, a.id, "created"),
        MailboxChanged(acc.id, ab.id, "created"),
        MailboxChanged(acc.id, leaf.id, "created"),
    ]
    assert [e.name for e in events] == ["a", "a/b", "a/b/c"]
    with pytest.raises(AlreadyExists):
        await store.create_mailbox(acc.id, "a/b")
    # an existing superior is kept as it is
    await store.create_mailbox(acc.id, "a/d")
    assert (await store.get_mailbox(acc.id, "a")).id == a.id
    for bad in ("/x", "x//y", "x/", "a\x00b", "é" * 600):
        with pytest.raises(InvalidInput):
            await store.create_mailbox(acc.id, bad)
    # INBOX/ children are fine, and INBOX stays the one INBOX
    child = await store.create_mailbox(acc.id, "inbox/sub")
    assert child.name == "INBOX/sub"
    await sub.aclose()


async def test_delete_keeps_inferiors_and_subscription(store):
    acc = await _account(store)
    await store.create_mailbox(acc.id, "p/q")
    parent = await store.get_mailbox(acc.id, "p")
    await store.subscribe(acc.id, "p")
    await store.deliver([_delivery(acc.id, _msg(1), mailbox="p"), _delivery(acc.id, _msg(2), mailbox="p/q")])
    sub = await _fresh_sub(store, acc.id)
    await store.delete_mailbox(acc.id, "p")
    ev = await _next(sub)
    assert ev == MailboxChanged(acc.id, parent.id, "deleted") and ev.name == "p"
    assert await store.get_mailbox(acc.id, "p") is None
    assert (await store.get_mailbox(acc.id, "p/q")) is not None
    assert "p" in await store.list_subscriptions(acc.id)  # RFC 9051: not removed unilaterally
    await _assert_usage_exact(store, acc.id)
    assert (await store.get_quota(acc.id)).messages_used == 1
    # re-created: new UIDVALIDITY, and it takes its subscription back
    again = await store.create_mailbox(acc.id, "p")
    assert again.uidvalidity != parent.uidvalidity and again.subscribed
    assert (await store.list_subscriptions(acc.id)).count("p") == 1
    with pytest.raises(InvalidInput):
        await store.delete_mailbox(acc.id, "inbox")
    with pytest.raises(NotFound):
        await store.delete_mailbox(acc.id, "nope")
    await sub.aclose()


async def test_rename_moves_inferiors_creates_superiors_and_keeps_uidvalidity(store):
    acc = await _account(store)
    a = await store.create_mailbox(acc.id, "a")
    ax = await store.create_mailbox(acc.id, "a/x")
    axy = await store.create_mailbox(acc.id, "a/x/y")
    other = await store.create_mailbox(acc.id, "ab")  # shares the prefix "a" but is no inferior
    await store.subscribe(acc.id, "a/x")
    await store.subscribe(acc.id, "a/ghost")  # a subscription without a mailbox
    [m] = await store.deliver([_delivery(acc.id, mailbox="a/x", flags=frozenset({"\\Seen"}))])
    sub = await _fresh_sub(store, acc.id)
    renamed = await store.rename_mailbox(acc.id, "a", "n/b")
    assert (renamed.id, renamed.name, renamed.uidvalidity) == (a.id, "n/b", a.uidvalidity)
    assert (await store.get_mailbox(acc.id, "n/b/x")).id == ax.id
    assert (await store.get_mailbox(acc.id, "n/b/x/y")).id == axy.id
    assert (await store.get_mailbox(acc.id, "ab")).id == other.id
    n = await store.get_mailbox(acc.id, "n")
    assert n is not None
    for old in ("a", "a/x", "a/x/y"):
        assert await store.get_mailbox(acc.id, old) is None
    moved = await store.get_mailbox(acc.id, "n/b/x")
    assert moved.uidvalidity == ax.uidvalidity and moved.subscribed
    [meta] = await store.list_messages(moved.id)
    assert (meta.uid, meta.modseq, meta.flags) == (m.uid, m.modseq, frozenset({"\\Seen"}))
    subs = await store.list_subscriptions(acc.id)
    assert "n/b/x" in subs and "n/b/ghost" in subs and "a/x" not in subs and "a/ghost" not in subs
    events = await _drain(sub, 4)
    assert MailboxChanged(acc.id, n.id, "created") in events
    renames = {e.mailbox_id: e.name for e in events if e.kind == "renamed"}
    assert renames == {a.id: "n/b", ax.id: "n/b/x", axy.id: "n/b/x/y"}
    # a mailbox created under the old name is a different mailbox
    fresh = await store.create_mailbox(acc.id, "a")
    assert fresh.uidvalidity != a.uidvalidity
    await sub.aclose()


async def test_rename_errors(store):
    acc = await _account(store)
    await store.create_mailbox(acc.id, "a/x")
    await store.create_mailbox(acc.id, "b/x")
    await store.create_mailbox(acc.id, "c")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "a", "c")
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "a", "INBOX")
    await store.delete_mailbox(acc.id, "b")  # "b/x" stays: renaming "a" to "b" would clash on "b/x"
    with pytest.raises(AlreadyExists):
        await store.rename_mailbox(acc.id, "a", "b")
    assert (await store.get_mailbox(acc.id, "a/x")) is not None  # nothing half-done
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(acc.id, "a", "a/inner")
    with pytest.raises(NotFound):
        await store.rename_mailbox(acc.id, "zzz", "yyy")
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(acc.id, "a", "x//y")
    same = await store.rename_mailbox(acc.id, "a", "a")
    assert same.name == "a"


async def test_rename_whose_new_names_overlap_old_ones(store):
    # "q/x" → "q": inferiors "q/x/x/z" → "q/x/z" while "q/x/z" (old) → "q/z": a one-by-one
    # rename would collide on the way; the result must be exact.
    acc = await _account(store)
    ids = {}
    for name in ("q/x", "q/x/z", "q/x/x", "q/x/x/z"):
        ids[name] = (await store.create_mailbox(acc.id, name)).id
    await store.delete_mailbox(acc.id, "q")
    await store.rename_mailbox(acc.id, "q/x", "q")
    got = {mb.name: mb.id for mb in await store.list_mailboxes(acc.id) if mb.name.startswith("q")}
    assert got == {"q": ids["q/x"], "q/z": ids["q/x/z"], "q/x": ids["q/x/x"], "q/x/z": ids["q/x/x/z"]}


async def test_rename_inbox_moves_its_messages(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    child = await store.create_mailbox(acc.id, "INBOX/keep")
    metas = await store.deliver([_delivery(acc.id, _msg(i), flags=frozenset({"$k%d" % i})) for i in range(3)])
    await store.expunge(inbox.id, [metas[0].uid])
    before = await store.get_mailbox_by_id(inbox.id)
    sub = await _fresh_sub(store, acc.id)
    old = await store.rename_mailbox(acc.id, "inbox", "Old/Mail")
    assert old.name == "Old/Mail" and old.id != inbox.id and old.uidvalidity != inbox.uidvalidity
    assert await store.get_mailbox(acc.id, "Old") is not None
    moved = await store.list_messages(old.id)
    assert [m.uid for m in moved] == [1, 2]
    assert [m.flags for m in moved] == [metas[1].flags, metas[2].flags]
    assert [await store.read_message(old.id, m.uid) for m in moved] == [_msg(1), _msg(2)]
    now = await store.get_mailbox_by_id(inbox.id)
    assert now.name == INBOX and now.uidvalidity == inbox.uidvalidity
    assert now.uidnext == before.uidnext and now.highestmodseq > before.highestmodseq
    assert await store.list_messages(inbox.id) == []
    assert await store.expunged_since(inbox.id, before.highestmodseq) == [metas[1].uid, metas[2].uid]
    assert (await store.get_mailbox(acc.id, "INBOX/keep")).id == child.id  # inferiors stay
    # new mail still goes to INBOX, with UIDs that never come back
    [new] = await store.deliver([_delivery(acc.id)])
    assert new.mailbox_id == inbox.id and new.uid == before.uidnext
    events = await _drain(sub, 6)
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["MailboxChanged", "MailboxChanged"]
    assert [e for e in events if isinstance(e, MessageAdded) and e.mailbox_id == old.id] == [
        MessageAdded(acc.id, old.id, 1, moved[0].modseq),
        MessageAdded(acc.id, old.id, 2, moved[1].modseq),
    ]
    [gone] = [e for e in events if isinstance(e, Expunged)]
    assert (gone.mailbox_id, gone.uids) == (inbox.id, (metas[1].uid, metas[2].uid))
    await _assert_usage_exact(store, acc.id)
    await sub.aclose()


async def test_rename_empty_inbox(store):
    acc = await _account(store)
    box = await store.rename_mailbox(acc.id, "INBOX", "Empty")
    assert box.name == "Empty" and await store.list_messages(box.id) == []
    assert await _inbox(store, acc.id) is not None


async def test_status_items(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    await store.deliver(
        [
            _delivery(acc.id, _msg(1), flags=frozenset({"\\Seen", "\\Deleted"})),
            _delivery(acc.id, _msg(2), flags=frozenset({"\\deleted"})),
            _delivery(acc.id, _msg(3)),
        ]
    )
    st = await store.mailbox_status(inbox.id)
    assert (st.messages, st.unseen, st.deleted, st.size) == (3, 2, 2, sum(len(_msg(i)) for i in (1, 2, 3)))
    assert (st.uidnext, st.uidvalidity, st.highestmodseq) == (4, inbox.uidvalidity, st.mailbox.highestmodseq)
    await store.store_flags(inbox.id, [1, 2], frozenset({"\\Deleted"}), mode=FlagMode.REMOVE)
    await store.store_flags(inbox.id, [3], frozenset({"\\Deleted"}), mode=FlagMode.ADD)
    assert (await store.mailbox_status(inbox.id)).deleted == 1
    await store.store_flags(inbox.id, [3], frozenset({"x"}), mode=FlagMode.REPLACE)
    assert (await store.mailbox_status(inbox.id)).deleted == 0


# -- subscriptions ----------------------------------------------------------------------------------


async def test_subscriptions(store):
    acc = await _account(store)
    defaults = await store.list_subscriptions(acc.id)
    assert defaults[0] == INBOX and set(defaults) == {b.name for b in await store.list_mailboxes(acc.id)}
    sub = await _fresh_sub(store, acc.id)
    await store.subscribe(acc.id, "Nowhere/Deep")
    ev = await _next(sub)
    assert ev == MailboxChanged(acc.id, 0, "subscribed") and ev.name == "Nowhere/Deep"
    await store.subscribe(acc.id, "Nowhere/Deep")  # idempotent, no event
    work = await store.create_mailbox(acc.id, "Work")
    await store.subscribe(acc.id, "Work")
    assert (await store.get_mailbox(acc.id, "Work")).subscribed
    evs = await _drain(sub, 2)
    assert evs == [MailboxChanged(acc.id, work.id, "created"), MailboxChanged(acc.id, work.id, "subscribed")]
    subs = await store.list_subscriptions(acc.id)
    assert subs == sorted(subs, key=lambda n: (n != INBOX, n)) and "Nowhere/Deep" in subs and "Work" in subs
    await store.unsubscribe(acc.id, "Work")
    assert not (await store.get_mailbox(acc.id, "Work")).subscribed
    assert await _next(sub) == MailboxChanged(acc.id, work.id, "unsubscribed")
    await store.unsubscribe(acc.id, "Nowhere/Deep")
    assert "Nowhere/Deep" not in await store.list_subscriptions(acc.id)
    with pytest.raises(NotFound):
        await store.unsubscribe(acc.id, "Nowhere/Deep")
    with pytest.raises(NotFound):
        await store.unsubscribe(acc.id, "bad\x00")
    with pytest.raises(InvalidInput):
        await store.subscribe(acc.id, "bad\x00")
    with pytest.raises(NotFound):
        await store.subscribe(acc.id + 999, "x")
    await store.subscribe(acc.id, "inbox")  # already subscribed, as INBOX
    assert (await store.list_subscriptions(acc.id)).count(INBOX) == 1
    # another account's subscriptions are its own
    other = await _account(store, "carol@example.com")
    await store.subscribe(other.id, "Work")
    assert "Work" not in await store.list_subscriptions(acc.id)
    await sub.aclose()


# -- append --------------------------------------------------------------------------------------------


async def test_append(store):
    acc = await _account(store)
    drafts = await store.get_mailbox(acc.id, "Drafts")
    sub = await _fresh_sub(store, acc.id)
    when = T0 - timedelta(days=3)
    data = _msg(5)
    meta = await store.append(drafts.id, data, parse(data), flags=frozenset({"\\draft", "\\Recent", "$Label"}), internaldate=when)
    assert (meta.mailbox_id, meta.uid, meta.flags, meta.internaldate, meta.size) == (
        drafts.id, 1, frozenset({"\\Draft", "$Label"}), when, len(data),
    )
    assert meta.savedate.tzinfo is not None
    assert await store.read_message(drafts.id, 1) == data
    assert (await store.get_parsed(drafts.id, 1)).to_json() == parse(data).to_json()
    assert await store.get_envelope(drafts.id, 1) is None
    ev = await _next(sub)
    assert ev == MessageAdded(acc.id, drafts.id, 1, meta.modseq) and ev.flags == ("$Label", "\\Draft")
    with pytest.raises(NotFound):
        await store.append(drafts.id + 10_000, data, parse(data), internaldate=when)
    with pytest.raises(InvalidInput):
        await store.append(drafts.id, data, parse(data), internaldate=when.replace(tzinfo=None))
    await sub.aclose()


async def test_append_many_is_atomic_with_consecutive_uids(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    items = [AppendMessage(_msg(i), parse(_msg(i)), T0, frozenset({"\\Seen"} if i % 2 else ())) for i in range(4)]
    metas = await store.append_many(inbox.id, items)
    assert [m.uid for m in metas] == [1, 2, 3, 4]
    assert [m.modseq for m in metas] == sorted({m.modseq for m in metas})
    assert [await store.read_message(inbox.id, m.uid) for m in metas] == [_msg(i) for i in range(4)]
    assert await store.append_many(inbox.id, []) == []
    await store.set_quota(acc.id, messages=6)
    with pytest.raises(OverQuota) as exc:
        await store.append_many(inbox.id, items[:3])
    assert exc.value.account_ids == (acc.id,)
    assert len(await store.list_messages(inbox.id)) == 4  # none of the three
    assert (await store.get_mailbox_by_id(inbox.id)).uidnext == 5
    await _assert_usage_exact(store, acc.id)


# -- copy and move --------------------------------------------------------------------------------------


async def test_copy(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    archive = await store.get_mailbox(acc.id, "Archive")
    metas = await store.deliver([_delivery(acc.id, _msg(i), flags=frozenset({f"k{i}", "\\Seen"})) for i in range(4)])
    await store.expunge(inbox.id, [2])
    before = await store.get_mailbox_by_id(archive.id)
    sub = await _fresh_sub(store, acc.id)
    pairs = await store.copy_messages(inbox.id, [4, 1, 3, 2, 99, 3], archive.id)
    assert pairs == [(1, 1), (3, 2), (4, 3)]
    copies = await store.list_messages(archive.id)
    assert [c.flags for c in copies] == [metas[0].flags, metas[2].flags, metas[3].flags]
    assert [c.internaldate for c in copies] == [T0] * 3
    assert [c.size for c in copies] == [metas[0].size, metas[2].size, metas[3].size]
    assert all(c.modseq > before.highestmodseq for c in copies)
    assert len({c.modseq for c in copies}) == 3
    assert {c.id for c in copies}.isdisjoint(m.id for m in metas)
    assert await store.read_messages(archive.id, [1, 2, 3]) == {1: _msg(0), 2: _msg(2), 3: _msg(3)}
    # the source is untouched
    assert [m.uid for m in await store.list_messages(inbox.id)] == [1, 3, 4]
    events = await _drain(sub, 3)
    assert events == [MessageAdded(acc.id, archive.id, u, c.modseq) for u, c in zip((1, 2, 3), copies)]
    assert events[0].flags == ("\\Seen", "k0")
    # copy into the same mailbox, and of nothing
    again = await store.copy_messages(inbox.id, [1], inbox.id)
    assert again == [(1, 5)]
    assert await store.copy_messages(inbox.id, [77], archive.id) == []
    assert await store.copy_messages(inbox.id, [], archive.id) == []
    with pytest.raises(NotFound):
        await store.copy_messages(inbox.id, [1], archive.id + 10_000)
    with pytest.raises(NotFound):
        await store.copy_messages(inbox.id + 10_000, [1], archive.id)
    # deleting the original leaves the copy whole
    await store.expunge(inbox.id, [1])
    assert await store.read_message(archive.id, 1) == _msg(0)
    await _assert_usage_exact(store, acc.id)
    await sub.aclose()


async def test_copy_is_refused_over_quota(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    await store.deliver([_delivery(acc.id, _msg(i)) for i in range(3)])
    used = (await store.get_quota(acc.id)).storage_used_bytes
    await store.set_quota(acc.id, bytes=used + len(_msg(0)))
    assert await store.copy_messages(inbox.id, [1], inbox.id) == [(1, 4)]
    with pytest.raises(OverQuota):
        await store.copy_messages(inbox.id, [2], inbox.id)
    assert [m.uid for m in await store.list_messages(inbox.id)] == [1, 2, 3, 4]
    assert (await store.get_mailbox_by_id(inbox.id)).uidnext == 5


async def test_move(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    trash = await store.get_mailbox(acc.id, "Trash")
    metas = await store.deliver([_delivery(acc.id, _msg(i), flags=frozenset({"\\Flagged"})) for i in range(3)])
    usage = await store.get_quota(acc.id)
    before = await store.get_mailbox_by_id(inbox.id)
    sub = await _fresh_sub(store, acc.id)
    pairs = await store.move_messages(inbox.id, [3, 1, 42], trash.id)
    assert pairs == [(1, 1), (3, 2)]
    assert [m.uid for m in await store.list_messages(inbox.id)] == [2]
    moved = await store.list_messages(trash.id)
    assert [m.flags for m in moved] == [frozenset({"\\Flagged"})] * 2
    assert await store.read_messages(trash.id, [1, 2]) == {1: _msg(0), 2: _msg(2)}
    assert (await store.get_parsed_many(trash.id, [2]))[2].to_json() == parse(_msg(2)).to_json()
    after = await store.get_mailbox_by_id(inbox.id)
    assert after.highestmodseq > before.highestmodseq
    assert await store.expunged_since(inbox.id, before.highestmodseq) == [1, 3]
    events = await _drain(sub, 3)
    assert events[:2] == [MessageAdded(acc.id, trash.id, 1, moved[0].modseq), MessageAdded(acc.id, trash.id, 2, moved[1].modseq)]
    assert events[2] == Expunged(acc.id, inbox.id, (1, 3), after.highestmodseq)
    assert await store.get_quota(acc.id) == usage  # same account: nothing added or freed
    with pytest.raises(InvalidInput):
        await store.move_messages(inbox.id, [2], inbox.id)
    with pytest.raises(NotFound):
        await store.read_message(inbox.id, metas[0].uid)
    await sub.aclose()


async def test_move_across_accounts_moves_the_usage(store):
    a = await _account(store)
    b = await _account(store, "carol@example.com")
    [m] = await store.deliver([_delivery(a.id, _msg(1))])
    b_inbox = await _inbox(store, b.id)
    await store.set_quota(b.id, messages=1)
    assert await store.move_messages(m.mailbox_id, [m.uid], b_inbox.id) == [(1, 1)]
    assert (await store.get_quota(a.id)).messages_used == 0
    assert (await store.get_quota(b.id)).messages_used == 1
    [m2] = await store.deliver([_delivery(a.id, _msg(2))])
    with pytest.raises(OverQuota) as exc:
        await store.move_messages(m2.mailbox_id, [m2.uid], b_inbox.id)
    assert exc.value.account_ids == (b.id,)
    assert [x.uid for x in await store.list_messages(m2.mailbox_id)] == [m2.uid]
    for acc in (a, b):
        await _assert_usage_exact(store, acc.id)


# -- QRESYNC -----------------------------------------------------------------------------------------


async def test_changedsince_and_expunged_since(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    metas = await store.deliver([_delivery(acc.id, _msg(i)) for i in range(5)])
    mark = (await store.get_mailbox_by_id(inbox.id)).highestmodseq
    assert await store.list_messages(inbox.id, changedsince=mark) == []
    assert await store.expunged_since(inbox.id, mark) == []
    [f] = await store.store_flags(inbox.id, [2], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    await store.expunge(inbox.id, [4, 5, 6])
    mid = (await store.get_mailbox_by_id(inbox.id)).highestmodseq
    assert mid > f.modseq
    await store.expunge(inbox.id, [1])
    changed = await store.list_messages(inbox.id, changedsince=mark)
    assert [(m.uid, m.modseq) for m in changed] == [(2, f.modseq)]
    assert [m.uid for m in await store.list_messages(inbox.id, changedsince=0)] == [2, 3]
    assert await store.list_messages(inbox.id, changedsince=mark, uid_min=3) == []
    assert await store.expunged_since(inbox.id, mark) == [1, 4, 5]
    assert await store.expunged_since(inbox.id, mid) == [1]
    assert await store.expunged_since(inbox.id, mark, uid_min=2, uid_max=4) == [4]
    assert await store.expunged_since(inbox.id, 0) == [1, 4, 5]
    assert metas[0].modseq <= mark
    with pytest.raises(NotFound):
        await store.expunged_since(inbox.id + 10_000, 0)
    with pytest.raises(InvalidInput):
        await store.expunged_since(inbox.id, -1)


async def test_modseq_only_grows_under_concurrent_writers(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    other = await store.get_mailbox(acc.id, "Archive")
    await store.deliver([_delivery(acc.id, _msg(i)) for i in range(6)])
    seen_modseqs: list[int] = []

    async def watch() -> None:
        for _ in range(40):
            seen_modseqs.append((await store.get_mailbox_by_id(inbox.id)).highestmodseq)
            await asyncio.sleep(0)

    async def writer(i: int) -> None:
        await store.store_flags(inbox.id, [1 + i % 6], frozenset({f"k{i}"}), mode=FlagMode.ADD)
        await store.deliver([_delivery(acc.id, _msg(10 + i))])
        await store.copy_messages(inbox.id, [1 + i % 6], inbox.id)
        await store.move_messages(inbox.id, [1 + i % 6], other.id)

    await asyncio.gather(watch(), *(writer(i) for i in range(6)))
    assert seen_modseqs == sorted(seen_modseqs)
    all_meta = await store.list_messages(inbox.id)
    top = (await store.get_mailbox_by_id(inbox.id)).highestmodseq
    assert all(m.modseq <= top for m in all_meta)
    assert max(await store.expunged_since(inbox.id, 0), default=0) < (await store.get_mailbox_by_id(inbox.id)).uidnext
    await _assert_usage_exact(store, acc.id)


# -- bulk reads ------------------------------------------------------------------------------------------


async def test_bulk_reads(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    await store.deliver([_delivery(acc.id, b"Subject: %d\r\n\r\nx\r\n" % i) for i in range(620)])
    await store.expunge(inbox.id, [7])
    datas = await store.read_messages(inbox.id, range(1, 700))
    assert sorted(datas) == [u for u in range(1, 621) if u != 7]
    assert datas[600] == b"Subject: 599\r\n\r\nx\r\n"
    parsed = await store.get_parsed_many(inbox.id, [1, 7, 620, 5000])
    assert sorted(parsed) == [1, 620]
    assert parsed[620].to_json() == parse(b"Subject: 619\r\n\r\nx\r\n").to_json()
    assert await store.read_messages(inbox.id, []) == {}
    assert await store.get_parsed_many(inbox.id, [0, -3]) == {}
    with pytest.raises(NotFound):
        await store.read_messages(inbox.id + 10_000, [1])


# -- quota -------------------------------------------------------------------------------------------------


async def test_quota_get_set_and_usage(store):
    acc = await _account(store)
    assert await store.get_quota(acc.id) == QuotaUsage(0, 0, 0, 0)
    metas = await store.deliver([_delivery(acc.id, _msg(i)) for i in range(3)])
    total = sum(m.size for m in metas)
    assert await store.get_quota(acc.id) == QuotaUsage(total, 0, 3, 0)
    q = await store.set_quota(acc.id, bytes=10_000)
    assert q == QuotaUsage(total, 10_000, 3, 0)
    assert await store.set_quota(acc.id, messages=7) == QuotaUsage(total, 10_000, 3, 7)
    assert (await store.get_account_by_id(acc.id)).quota_messages == 7
    assert await store.set_quota(acc.id, bytes=0) == QuotaUsage(total, 0, 3, 7)
    with pytest.raises(InvalidInput):
        await store.set_quota(acc.id, bytes=-1)
    with pytest.raises(NotFound):
        await store.get_quota(acc.id + 999)
    with pytest.raises(NotFound):
        await store.set_quota(acc.id + 999, bytes=1)
    assert not q.would_exceed(10_000 - total) and q.would_exceed(10_001 - total)
    await store.expunge(metas[0].mailbox_id, [metas[0].uid])
    assert await store.get_quota(acc.id) == QuotaUsage(total - metas[0].size, 0, 2, 7)
    await _assert_usage_exact(store, acc.id)


async def test_deliver_enforces_quota_all_or_none_and_names_accounts(store):
    full = await _account(store)
    roomy = await _account(store, "carol@example.com")
    also_full = await _account(store, "dave@example.com")
    await store.set_quota(full.id, messages=1)
    await store.set_quota(also_full.id, bytes=10)
    await store.deliver([_delivery(full.id)])
    sub = await _fresh_sub(store, roomy.id)
    with pytest.raises(OverQuota) as exc:
        await store.deliver([_delivery(roomy.id), _delivery(full.id), _delivery(also_full.id)])
    assert exc.value.account_ids == (full.id, also_full.id)
    assert (await store.get_quota(roomy.id)).messages_used == 0  # all or none
    assert await store.list_messages((await _inbox(store, roomy.id)).id) == []
    # the caller drops the full ones and delivers the rest
    [m] = await store.deliver([_delivery(roomy.id)])
    assert m.uid == 1  # UIDs of the refused batch were not burnt
    assert await _next(sub) == MessageAdded(roomy.id, m.mailbox_id, 1, m.modseq)
    # lowering a limit below usage removes nothing; expunging makes room again
    await store.set_quota(roomy.id, messages=0, bytes=1)
    assert (await store.get_quota(roomy.id)).messages_used == 1
    with pytest.raises(OverQuota):
        await store.deliver([_delivery(roomy.id)])
    await store.expunge(m.mailbox_id, [1])
    await store.set_quota(roomy.id, bytes=len(message()))
    await store.deliver([_delivery(roomy.id)])
    await sub.aclose()


async def test_concurrent_deliveries_never_exceed_the_quota(store):
    acc = await _account(store)
    await store.set_quota(acc.id, messages=5)
    results = await asyncio.gather(*(store.deliver([_delivery(acc.id, _msg(i))]) for i in range(12)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, list)]
    assert len(ok) == 5 and all(isinstance(r, OverQuota) for r in results if not isinstance(r, list))
    assert (await store.get_quota(acc.id)).messages_used == 5
    await _assert_usage_exact(store, acc.id)


async def test_delete_account_mailbox_and_domain_keep_counts_exact(store):
    acc = await _account(store)
    box = await store.create_mailbox(acc.id, "Big")
    await store.deliver([_delivery(acc.id, _msg(i), mailbox="Big") for i in range(4)] + [_delivery(acc.id)])
    await store.copy_messages(box.id, [1, 2], (await _inbox(store, acc.id)).id)
    await _assert_usage_exact(store, acc.id)
    await store.delete_mailbox(acc.id, "Big")
    await _assert_usage_exact(store, acc.id)
    assert (await store.get_quota(acc.id)).messages_used == 3


# -- concurrency --------------------------------------------------------------------------------------------


async def test_concurrent_copies_into_one_mailbox_get_distinct_uids(backend):
    stores = [await backend.open(), await backend.open()]  # two nodes, or two SQLite stores
    store = stores[0]
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    dst = await store.get_mailbox(acc.id, "Archive")
    await store.deliver([_delivery(acc.id, _msg(i)) for i in range(5)])
    results = await asyncio.gather(
        *(stores[i % 2].copy_messages(inbox.id, [1, 2, 3, 4, 5], dst.id) for i in range(8)),
        *(stores[i % 2].deliver([_delivery(acc.id, _msg(i), mailbox="Archive")]) for i in range(4)),
    )
    copy_uids = [u for r in results[:8] for _s, u in r]
    deliver_uids = [m.uid for r in results[8:] for m in r]
    assert len(copy_uids) == 40
    every = copy_uids + deliver_uids
    assert len(set(every)) == len(every) == 44
    for r in results[:8]:
        dst_uids = [u for _s, u in r]
        assert dst_uids == list(range(dst_uids[0], dst_uids[0] + 5))  # each copy: consecutive
    metas = await store.list_messages(dst.id)
    assert sorted(m.uid for m in metas) == sorted(every)
    assert len({m.modseq for m in metas}) == 44
    await _assert_usage_exact(store, acc.id)


# -- events ---------------------------------------------------------------------------------------------------


async def test_flag_events_carry_the_resulting_flags(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    await store.deliver([_delivery(acc.id, _msg(i), flags=frozenset({"a"} if i % 2 else ())) for i in range(4)])
    sub = await _fresh_sub(store, acc.id)
    changed = await store.store_flags(inbox.id, [1, 2, 3, 4], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    modseq = changed[0].modseq
    events = await _drain(sub, 2)
    by_flags = {e.flags: e for e in events}
    assert set(by_flags) == {("\\Seen",), ("\\Seen", "a")}
    assert by_flags[("\\Seen",)] == FlagsChanged(acc.id, inbox.id, (1, 3), modseq)
    assert by_flags[("\\Seen", "a")] == FlagsChanged(acc.id, inbox.id, (2, 4), modseq)
    # a flag list too long for a notification is left out: the session reads the store
    many = frozenset(f"$kw{i:04d}" for i in range(300))
    await store.store_flags(inbox.id, [1], many, mode=FlagMode.ADD)
    ev = await _next(sub)
    assert isinstance(ev, FlagsChanged) and ev.uids == (1,) and ev.flags is None
    await sub.aclose()


def test_event_payloads_round_trip_json():
    for ev in (
        MessageAdded(1, 2, 3, 4, ("\\Seen", "x")),
        MessageAdded(1, 2, 3, 4),
        FlagsChanged(1, 2, (3, 4), 5, ()),
        MailboxChanged(1, 2, "renamed", "a/b"),
        MailboxChanged(1, 0, "subscribed", "ünï"),
    ):
        back = change_from_json(change_to_json(ev))
        assert back == ev
        assert getattr(back, "flags", None) == getattr(ev, "flags", None)
        assert getattr(back, "name", None) == getattr(ev, "name", None)
    # old payloads without the new fields still decode
    assert change_from_json('{"t":"MessageAdded","account_id":1,"mailbox_id":2,"uid":3,"modseq":4}').flags is None


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_pg_events_with_payloads_cross_nodes(backend):
    node_a = await backend.open()
    node_b = await backend.open()
    acc = await _account(node_a)
    inbox = await _inbox(node_a, acc.id)
    sub = node_b.changes.subscribe(acc.id)
    [m] = await node_a.deliver([_delivery(acc.id, flags=frozenset({"\\Flagged"}))])
    ev = await _next(sub)
    assert ev == MessageAdded(acc.id, inbox.id, m.uid, m.modseq) and ev.flags == ("\\Flagged",)
    pairs = await node_a.move_messages(inbox.id, [m.uid], (await node_a.get_mailbox(acc.id, "Trash")).id)
    added, gone = await _drain(sub, 2)
    assert isinstance(added, MessageAdded) and added.uid == pairs[0][1] and added.flags == ("\\Flagged",)
    assert isinstance(gone, Expunged) and gone.uids == (m.uid,)
    box = await node_a.create_mailbox(acc.id, "Ünïcode")
    ev = await _next(sub)
    assert ev == MailboxChanged(acc.id, box.id, "created") and ev.name == "Ünïcode"
    await node_a.rename_mailbox(acc.id, "Ünïcode", "Renamed")
    ev = await _next(sub)
    assert ev.kind == "renamed" and ev.name == "Renamed"


# -- POP3 maildrop lock ---------------------------------------------------------------------------------------


async def test_maildrop_lock_is_exclusive(backend):
    node_a = await backend.open()
    node_b = await backend.open()
    acc = await _account(node_a)
    other = await _account(node_a, "carol@example.com")
    lock = await node_a.lock_maildrop(acc.id)
    assert lock is not None and lock.held and lock.account_id == acc.id
    assert await node_a.lock_maildrop(acc.id) is None  # same store, another session
    assert await node_b.lock_maildrop(acc.id) is None  # another store / node
    other_lock = await node_b.lock_maildrop(other.id)  # other accounts are independent
    assert other_lock is not None
    await lock.release()
    assert not lock.held
    await lock.release()  # harmless
    again = await node_b.lock_maildrop(acc.id)
    assert again is not None
    assert await node_a.lock_maildrop(acc.id) is None
    async with again:
        pass
    assert not again.held
    async with await node_a.lock_maildrop(acc.id) as held:
        assert held.held and await node_b.lock_maildrop(acc.id) is None
    await other_lock.release()
    with pytest.raises(InvalidInput):
        await node_a.lock_maildrop(0)


async def test_maildrop_lock_contention(backend):
    stores = [await backend.open(), await backend.open()]
    acc = await _account(stores[0])
    results = await asyncio.gather(*(stores[i % 2].lock_maildrop(acc.id) for i in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    await winners[0].release()


async def test_maildrop_lock_closing_the_store_releases_it(backend):
    first = await backend.open()
    acc = await _account(first)
    lock = await first.lock_maildrop(acc.id)
    assert lock is not None
    second = await backend.open()
    assert await second.lock_maildrop(acc.id) is None
    backend.opened.remove(first)
    await first.close()
    assert not lock.held
    got = await second.lock_maildrop(acc.id)
    assert got is not None
    await got.release()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_pg_maildrop_lock_released_when_holder_connection_dies(backend):
    import asyncpg

    holder = await backend.open()
    other = await backend.open()
    acc = await _account(holder)
    lock = await holder.lock_maildrop(acc.id)
    assert lock is not None and await other.lock_maildrop(acc.id) is None
    admin = await asyncpg.connect(backend.url)
    try:
        killed = await admin.fetchval(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'merpati-maildrop-locks' "
            "AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')) t"
        )
    finally:
        await admin.close()
    assert killed >= 1
    got = None
    for _ in range(200):  # PostgreSQL releases the lock when the session ends
        got = await other.lock_maildrop(acc.id)
        if got is not None:
            break
        await asyncio.sleep(0.05)
    assert got is not None
    for _ in range(200):  # and the holder learns it lost the lock
        if not lock.held:
            break
        await asyncio.sleep(0.05)
    assert not lock.held
    await lock.release()  # harmless after the loss
    assert await holder.lock_maildrop(acc.id) is None  # reconnects; still exclusive
    await got.release()
    again = await holder.lock_maildrop(acc.id)
    assert again is not None
    await again.release()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_maildrop_lock_of_a_killed_process_is_released(backend, tmp_path):
    import signal
    import sys

    store = await backend.open()
    acc = await _account(store)
    script = tmp_path / "hold.py"
    script.write_text(
        "import asyncio, sys\n"
        "from merpati.storage.sqlite.maildrop import FileMaildropLocks\n"
        "lock = FileMaildropLocks(sys.argv[1]).try_lock(int(sys.argv[2]))\n"
        "print('held' if lock else 'busy', flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), store.path, str(acc.id),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), WAIT)).strip() == b"held"
        assert await store.lock_maildrop(acc.id) is None  # held by another process
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), WAIT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lock = await store.lock_maildrop(acc.id)
    assert lock is not None
    await lock.release()


# -- POP3 UPDATE: expunge -----------------------------------------------------------------------------------


async def test_expunge_is_one_change_seen_by_other_sessions(backend):
    node_a = await backend.open()
    node_b = await backend.open()
    acc = await _account(node_a)
    inbox = await _inbox(node_a, acc.id)
    await node_a.deliver([_delivery(acc.id, _msg(i)) for i in range(4)])
    sub = node_b.changes.subscribe(acc.id)
    # skip MessageAdded notifications of the delivery still in flight (PostgreSQL)
    removed = await node_a.expunge(inbox.id, [2, 4, 9])
    assert removed == [2, 4]
    while True:
        ev = await _next(sub)
        if isinstance(ev, Expunged):
            break
    top = (await node_b.get_mailbox_by_id(inbox.id)).highestmodseq
    assert ev == Expunged(acc.id, inbox.id, (2, 4), top)
    assert [m.uid for m in await node_b.list_messages(inbox.id)] == [1, 3]
    assert await node_b.expunged_since(inbox.id, top - 1) == [2, 4]
    assert await node_a.expunge(inbox.id, [2, 4]) == []  # nothing left to remove: no new MODSEQ
    assert (await node_b.get_mailbox_by_id(inbox.id)).highestmodseq == top


# -- hostile input ----------------------------------------------------------------------------------------


async def test_hostile_names_and_uids_are_inert(store):
    acc = await _account(store)
    inbox = await _inbox(store, acc.id)
    for name in ("a%", "a_", "a*/..", "x'); DROP TABLE messages; --", "%/%"):
        box = await store.create_mailbox(acc.id, name)
        assert (await store.get_mailbox(acc.id, name)).id == box.id
    await store.create_mailbox(acc.id, "ab/c")
    await store.subscribe(acc.id, "a%/z")
    # renaming "a%" touches its own inferiors only, never what a LIKE pattern would match
    await store.rename_mailbox(acc.id, "a%", "pct")
    assert await store.get_mailbox(acc.id, "ab/c") is not None and await store.get_mailbox(acc.id, "a_") is not None
    assert "pct/z" in await store.list_subscriptions(acc.id)
    # a rename that would make an inferior's name too long is refused whole
    await store.create_mailbox(acc.id, "s/" + "y" * 1000)
    with pytest.raises(InvalidInput):
        await store.rename_mailbox(acc.id, "s", "z" * 100)
    assert await store.get_mailbox(acc.id, "s") is not None
    # UIDs: out-of-range values select nothing; non-integers are refused
    await store.deliver([_delivery(acc.id)])
    archive = await store.get_mailbox(acc.id, "Archive")
    assert await store.copy_messages(inbox.id, [0, -1, 2**32, 2**63], archive.id) == []
    for bad in (["1"], [True], [1.0]):
        with pytest.raises(InvalidInput):
            await store.copy_messages(inbox.id, bad, archive.id)
        with pytest.raises(InvalidInput):
            await store.read_messages(inbox.id, bad)
    with pytest.raises(InvalidInput):
        await store.list_messages(inbox.id, changedsince=-5)
    with pytest.raises(InvalidInput):
        await store.lock_maildrop(True)
    with pytest.raises(InvalidInput):
        await store.set_quota(acc.id, messages=True)
    assert [m.uid for m in await store.list_messages(inbox.id)] == [1]

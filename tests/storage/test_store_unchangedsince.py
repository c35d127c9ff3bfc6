"""CONDSTORE's conditional STORE in the store (RFC 7162 §3.1.3), on SQLite and PostgreSQL alike.

``store_flags_conditional(mailbox, uids, flags, mode=, unchangedsince=n)`` changes only the
messages whose MODSEQ is <= n, checked in the same transaction as the change, and returns
(changed metas, failed UIDs). ``store_flags(..., unchangedsince=n)`` does the same and returns
only the changed ones. Same fixtures as test_conformance.py (``store``/``backend`` are
parametrised over both backends). No timing assertions.
"""

from __future__ import annotations

import asyncio

import pytest
from storage_helpers import T0, message, parse

from merpati.storage import INBOX, Delivery, FlagMode, FlagsChanged, InvalidInput, NotFound

WAIT = 10


async def _setup(store, count: int = 3, address: str = "carol@example.com"):
    domain = address.rsplit("@", 1)[1]
    if not await store.has_domain(domain):
        await store.add_domain(domain)
    acc = await store.create_account(address, "hash")
    metas = await store.deliver(
        [
            Delivery(account_id=acc.id, data=message(f"c{n}"), parsed=parse(message(f"c{n}")), internaldate=T0, mailbox=INBOX)
            for n in range(count)
        ]
    )
    inbox = await store.get_mailbox(acc.id, INBOX)
    return acc, inbox, metas


async def _modseqs(store, mailbox_id: int) -> dict[int, int]:
    return {m.uid: m.modseq for m in await store.list_messages(mailbox_id)}


async def test_messages_changed_since_fail_and_stay_untouched(store):
    _acc, inbox, metas = await _setup(store)
    since = (await store.get_mailbox(inbox.account_id, INBOX)).highestmodseq
    # another client changes message 2 after our client read ``since``
    [other] = await store.store_flags(inbox.id, [2], frozenset({"$Other"}), mode=FlagMode.ADD)
    assert other.modseq > since
    changed, failed = await store.store_flags_conditional(
        inbox.id, [1, 2, 3], frozenset({"\\Deleted"}), mode=FlagMode.ADD, unchangedsince=since
    )
    assert failed == [2]
    assert [m.uid for m in changed] == [1, 3]
    assert all(m.flags == frozenset({"\\Deleted"}) and m.modseq > other.modseq for m in changed)
    by_uid = {m.uid: m for m in await store.list_messages(inbox.id)}
    assert by_uid[2].flags == frozenset({"$Other"}) and by_uid[2].modseq == other.modseq
    assert by_uid[1].flags == by_uid[3].flags == frozenset({"\\Deleted"})


async def test_condition_is_modseq_at_most_n(store):
    _acc, inbox, metas = await _setup(store)
    # exactly equal passes, one below fails (per message)
    m2 = metas[1]
    changed, failed = await store.store_flags_conditional(
        inbox.id, [m.uid for m in metas], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=m2.modseq
    )
    assert [m.uid for m in changed] == [metas[0].uid, m2.uid]
    assert failed == [metas[2].uid]


async def test_zero_fails_everything_and_changes_nothing(store):
    _acc, inbox, metas = await _setup(store)
    before = await store.get_mailbox(inbox.account_id, INBOX)
    changed, failed = await store.store_flags_conditional(
        inbox.id, [1, 2, 3], frozenset({"\\Seen"}), mode=FlagMode.REPLACE, unchangedsince=0
    )
    assert changed == [] and failed == [1, 2, 3]
    assert (await store.get_mailbox(inbox.account_id, INBOX)).highestmodseq == before.highestmodseq
    assert all(not m.flags for m in await store.list_messages(inbox.id))


async def test_passing_messages_without_a_change_are_neither_changed_nor_failed(store):
    _acc, inbox, _metas = await _setup(store)
    await store.store_flags(inbox.id, [1], frozenset({"\\Seen"}), mode=FlagMode.ADD)
    hms = (await store.get_mailbox(inbox.account_id, INBOX)).highestmodseq
    changed, failed = await store.store_flags_conditional(
        inbox.id, [1, 2, 99], frozenset({"\\seen"}), mode=FlagMode.ADD, unchangedsince=hms
    )
    assert [m.uid for m in changed] == [2]
    assert failed == []  # UID 1 passed but already had \Seen; UID 99 does not exist
    assert await store.store_flags_conditional(
        inbox.id, [1, 2], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=2**63 - 1
    ) == ([], [])


async def test_keyword_form_of_store_flags(store):
    _acc, inbox, metas = await _setup(store)
    await store.store_flags(inbox.id, [3], frozenset({"\\Answered"}), mode=FlagMode.ADD)
    changed = await store.store_flags(
        inbox.id, [1, 2, 3], frozenset({"\\Flagged"}), mode=FlagMode.ADD, unchangedsince=metas[-1].modseq
    )
    assert [m.uid for m in changed] == [1, 2]
    assert (await _modseqs(store, inbox.id))[3] < changed[0].modseq
    assert {m.uid: m.flags for m in await store.list_messages(inbox.id)}[3] == frozenset({"\\Answered"})


async def test_errors(store):
    _acc, inbox, _metas = await _setup(store)
    with pytest.raises(NotFound):
        await store.store_flags_conditional(inbox.id + 999, [1], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=5)
    for bad in (-1, True, "5", None):
        with pytest.raises(InvalidInput):
            await store.store_flags_conditional(inbox.id, [1], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=bad)
    with pytest.raises(InvalidInput):
        await store.store_flags_conditional(
            inbox.id, [1], frozenset({"two words"}), mode=FlagMode.ADD, unchangedsince=100
        )
    assert await store.store_flags_conditional(inbox.id, [], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=9) == ([], [])


async def test_events_only_for_the_changed_messages(store):
    acc, inbox, _metas = await _setup(store)
    sub = store.changes.subscribe(acc.id)
    marker = await store.create_mailbox(acc.id, "marker")  # skip notifications of earlier writes
    while (change := await asyncio.wait_for(sub.__anext__(), WAIT)).mailbox_id != marker.id:
        pass
    await store.store_flags(inbox.id, [2], frozenset({"$X"}), mode=FlagMode.ADD)
    first = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert isinstance(first, FlagsChanged) and first.uids == (2,)
    changed, failed = await store.store_flags_conditional(
        inbox.id, [1, 2, 3], frozenset({"\\Seen"}), mode=FlagMode.ADD, unchangedsince=first.modseq - 1
    )
    assert failed == [2]
    event = await asyncio.wait_for(sub.__anext__(), WAIT)
    assert event == FlagsChanged(acc.id, inbox.id, (1, 3), changed[0].modseq, event.flags)
    await sub.aclose()


async def test_racing_conditional_stores_on_two_store_instances_let_exactly_one_win(backend):
    """The lost update the condition exists to prevent: many clients read the same MODSEQ and
    each replaces the flags UNCHANGEDSINCE it. Checked and applied in one transaction, exactly
    one replacement lands and every other one fails (never two "successes" overwriting each other)."""
    node_a = await backend.open()
    node_b = await backend.open()
    _acc, inbox, metas = await _setup(node_a, count=1)
    uid, since = metas[0].uid, metas[0].modseq
    for round_ in range(3):
        calls = [
            (node_a if i % 2 else node_b).store_flags_conditional(
                inbox.id, [uid], frozenset({f"$r{round_}c{i}"}), mode=FlagMode.REPLACE, unchangedsince=since
            )
            for i in range(12)
        ]
        results = await asyncio.gather(*calls)
        winners = [i for i, (changed, failed) in enumerate(results) if changed]
        assert len(winners) == 1, results
        assert all(failed == [uid] for i, (_c, failed) in enumerate(results) if i not in winners)
        [final] = await node_b.list_messages(inbox.id)
        assert final.flags == frozenset({f"$r{round_}c{winners[0]}"})
        assert final.modseq == results[winners[0]][0][0].modseq
        since = final.modseq

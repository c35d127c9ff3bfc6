"""SelectedMailbox.sync after the session's own APPEND: no store read when what it added and the
queued change-feed events leave no UID gap after the last known one; a read otherwise."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from merpati.services.imap.view import SelectedMailbox
from merpati.storage.changes import Expunged, MessageAdded
from merpati.storage.models import Mailbox, MessageMeta

T = datetime(2024, 5, 1, tzinfo=timezone.utc)


def meta(uid: int, modseq: int) -> MessageMeta:
    return MessageMeta(id=uid, mailbox_id=7, uid=uid, modseq=modseq, flags=frozenset(), internaldate=T,
                       savedate=T, size=10)


class FakeStore:
    def __init__(self, metas: list[MessageMeta]) -> None:
        self.metas = metas
        self.reads = 0

    async def list_messages(self, mailbox_id: int, *, uid_min: int = 1, uid_max: int | None = None,
                            changedsince: int | None = None) -> list[MessageMeta]:
        self.reads += 1
        return [m for m in self.metas if m.uid >= uid_min and (uid_max is None or m.uid <= uid_max)]


def view() -> SelectedMailbox:
    mb = Mailbox(id=7, account_id=1, name="INBOX", uidvalidity=1, uidnext=3, highestmodseq=2)
    return SelectedMailbox(mb, [meta(1, 1), meta(2, 2)], read_only=False)


def sync(v: SelectedMailbox, store: FakeStore) -> bytes:
    return asyncio.run(v.sync(store, expunges=True, rev1=False))  # type: ignore[arg-type]


def test_own_append_right_after_the_last_uid_needs_no_read() -> None:
    v, store = view(), FakeStore([meta(1, 1), meta(2, 2), meta(3, 5)])
    v.note(MessageAdded(1, 7, 3, 5))
    v.expect_new([meta(3, 5)])
    assert sync(v, store) == b"* 3 EXISTS\r\n"
    assert store.reads == 0 and v.uids == [1, 2, 3] and v.highestmodseq == 5


def test_a_gap_before_the_own_append_is_read_from_the_store() -> None:
    v, store = view(), FakeStore([meta(1, 1), meta(2, 2), meta(3, 3), meta(4, 4)])
    v.expect_new([meta(4, 4)])  # UID 3 (someone else's) not announced by the feed yet
    assert sync(v, store) == b"* 4 EXISTS\r\n"
    assert store.reads == 1 and v.uids == [1, 2, 3, 4]


def test_an_own_message_expunged_before_the_sync_is_not_announced() -> None:
    v, store = view(), FakeStore([meta(1, 1), meta(2, 2), meta(4, 6)])
    v.note(MessageAdded(1, 7, 3, 5))
    v.expect_new([meta(3, 5), meta(4, 6)])
    v.note(Expunged(1, 7, (3,), 7))  # another session expunged it at once
    assert sync(v, store) == b"* 3 EXISTS\r\n"
    assert store.reads == 1 and v.uids == [1, 2, 4]

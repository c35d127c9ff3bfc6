"""The selected mailbox as one session sees it: the seq↔UID map and pending notifications.

Theory of operation
-------------------
* At SELECT the session subscribes to the account's change feed *first*, then reads the
  mailbox (``MailStore.list_messages``): every change committed after the read reaches the
  view as an event, and events about changes the read already saw are recognised as such
  (UIDs at or below the last known one, MODSEQs at or below the one reported) and dropped.
* Events are hints (``note``): they only mark UIDs as expunged, flags as changed, or "there
  may be new mail". At a *safe point* ``sync`` turns them into untagged responses, reading
  the store for what it needs (new UIDs, current flags). The client's view changes only
  through what ``sync`` (or the session's own command) tells it, so the map never diverges
  from the client's (RFC 9051 §2.3.1.2).
* RFC 9051 §7.5.1: EXPUNGE (or VANISHED) is never sent while no command is in progress, nor
  during FETCH, STORE or SEARCH (the UID forms allow it): the session calls
  ``sync(expunges=False)`` there. Until an expunge is announced the message keeps its
  sequence number (a FETCH of it returns nothing for it; its data is gone).
* EXISTS only grows between announced expunges, and is pushed at once during IDLE.
* ``\\Recent`` (IMAP4rev1) is given to exactly one session across every process and node: the
  store keeps, per mailbox, the highest UID already handed out (``MailStore.claim_recent`` /
  ``peek_recent``, column ``mailboxes.recent_uid``; Dovecot keeps the same in its index). A
  read-write session claims up to the highest UID it sees (at SELECT and when ``sync`` finds new
  mail); the UIDs above the previous watermark are recent for it, so a restart hands out nothing
  twice and mail delivered while nobody had the mailbox selected is recent for the next one.
  ``recent_above`` peeks first and writes only when something is above the watermark; the view
  keeps the last watermark it knew (``recent_uid``) so new mail at or below it needs no store
  call. Read-only (EXAMINE) sessions see the UIDs above the watermark as recent but do not claim
  them (RFC 3501 §6.3.2). IMAP4rev2 sessions neither see nor claim ``\\Recent``.
* A change-feed overflow (``FeedOverflow``) makes the next sync compare the whole mailbox
  with the map (``note_overflow``).

No method here writes to a socket; ``sync`` returns the bytes to send.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from merpati.services.imap.fmt import flags_bytes
from merpati.storage.api import FeedOverflow, MailStore, StoreError
from merpati.storage.changes import Change, Expunged, FlagsChanged, MailboxChanged, MessageAdded
from merpati.storage.models import Mailbox, MessageMeta
from merpati.wire.imap.seqset import SequenceSet

log = logging.getLogger("merpati.imap")

RECENT_FLAG = "\\Recent"


class BadSequence(ValueError):
    """A message sequence number above the number of messages (RFC 9051 §9: BAD)."""


class RecentMarks:
    """Per process: a lower bound of each mailbox's ``\\Recent`` watermark in the store, learnt
    from this process's peeks and claims, and the claims in flight. When one delivery wakes
    many IDLE sessions of a mailbox, the first claims and the others neither call the store
    nor wait for that claim's commit (without this, 50 IDLE sessions on one mailbox each peeked
    and wrote a claim, and SMTP 250 -> EXISTS went from ~1 to ~4.5 ms at p50). Keyed by
    (mailbox id, UIDVALIDITY):
    a re-created mailbox that reuses an id starts afresh. The watermark only grows, so a lower
    bound is always safe to answer "not recent" from."""

    MAX = 100_000

    def __init__(self) -> None:
        self._marks: dict[tuple[int, int], int] = {}
        # claims in flight: key -> (up to which UID, a token of the claim); sessions woken by
        # the same delivery count on it instead of each writing a claim of their own
        self._claims: dict[tuple[int, int], tuple[int, object]] = {}

    def get(self, key: tuple[int, int]) -> int:
        return self._marks.get(key, 0)

    def claim_in_flight(self, key: tuple[int, int], top: int) -> int | None:
        """The UID up to which a claim of this process is in flight, when it covers ``top``."""
        pending = self._claims.get(key)
        return pending[0] if pending is not None and pending[0] >= top else None

    def claiming(self, key: tuple[int, int], top: int) -> object:
        token = object()
        self._claims[key] = (top, token)
        return token

    def claimed(self, key: tuple[int, int], token: object, known: int | None) -> None:
        """End a claim started with ``claiming``: ``known`` the resulting watermark, None if it failed."""
        pending = self._claims.get(key)
        if pending is not None and pending[1] is token:
            del self._claims[key]
        if known is not None:
            self.note(key, known)

    def note(self, key: tuple[int, int], value: int) -> None:
        if value > self._marks.get(key, 0):
            if len(self._marks) >= self.MAX:
                self._marks.clear()
            self._marks[key] = value


async def recent_above(
    store: MailStore, mailbox_id: int, top: int, *, read_only: bool,
    marks: RecentMarks | None = None, uidvalidity: int = 0,
) -> tuple[int, int]:
    """``(previous, known)`` for a rev1 session that sees UIDs up to ``top``: its recent UIDs are
    those above ``previous``; ``known`` is a watermark the store now has at least. Read-only
    sessions only peek. A read-write one claims up to ``top``, but only when the peeked
    watermark is below it (no write when nothing new is there; the claim itself decides
    between racing sessions). ``marks`` answers without the store when this process already
    knows a watermark at or above ``top``."""
    key = (mailbox_id, uidvalidity)
    if marks is None:
        mark = await store.peek_recent(mailbox_id)
        if read_only or top <= mark:
            return mark, mark
        previous = await store.claim_recent(mailbox_id, top)
        return previous, max(previous, top)
    cached = marks.get(key)
    if top <= cached:
        return cached, cached
    pending = marks.claim_in_flight(key, top)
    if pending is not None:
        # Another session of this process is claiming these UIDs: they are not recent here,
        # whatever that claim's outcome (if it fails they are recent nowhere, which only costs
        # a flag). Not waiting for its commit keeps every other IDLE session's EXISTS prompt.
        return pending, pending
    mark = await store.peek_recent(mailbox_id)
    if read_only or top <= mark:
        marks.note(key, mark)
        return mark, mark
    token = marks.claiming(key, top)
    known_after: int | None = None
    try:
        previous = await store.claim_recent(mailbox_id, top)
        known_after = max(previous, top)
        return previous, known_after
    finally:
        marks.claimed(key, token, known_after)


class SelectedMailbox:
    """One session's selected mailbox (see the module docstring)."""

    def __init__(
        self,
        mailbox: Mailbox,
        metas: Sequence[MessageMeta],
        *,
        read_only: bool,
        recent: Iterable[int] = (),
        recent_uid: int = 0,
        recent_marks: RecentMarks | None = None,
    ) -> None:
        self.mailbox_id = mailbox.id
        self.name = mailbox.name
        self.uidvalidity = mailbox.uidvalidity
        self.read_only = read_only
        uids = [m.uid for m in metas]
        if any(a >= b for a, b in zip(uids, uids[1:])):
            uids = sorted(set(uids))
        self.uids: list[int] = uids
        last = uids[-1] if uids else 0
        self.uidnext = max(mailbox.uidnext, last + 1)
        top = max((m.modseq for m in metas), default=0)
        self.highestmodseq = max(mailbox.highestmodseq, top)
        self._base_modseq = self.highestmodseq
        self.recent: set[int] = set(recent)
        self.recent_uid = recent_uid  # the store's \Recent watermark is at least this (recent_above)
        self._recent_marks = recent_marks  # the process's shared lower bounds (RecentMarks)
        self._expunged: set[int] = set()  # gone from the store, not yet announced
        self._flags: set[int] = set()  # flags changed by others, not yet announced
        self._reported: dict[int, int] = {}  # uid -> MODSEQ the client already got
        self._maybe_new = False  # the session added mail itself: read the store for it ...
        self._own: dict[int, int] = {}  # ... unless what it added (uid -> modseq) closes every gap
        self._added: dict[int, int] = {}  # uid -> modseq, from MessageAdded events (no read needed)
        self._resync = False
        self.gone = False  # the mailbox was deleted (or renamed away) by another session

    # -- the map ---------------------------------------------------------------------------
    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def last_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def uid_at(self, seq: int) -> int:
        return self.uids[seq - 1]

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> list[int]:
        """The UIDs (ascending, once each) a sequence set names.

        Message numbers above EXISTS are a ``BadSequence`` (``*`` is always valid); UIDs that
        do not exist are ignored (RFC 9051 §6.4.8). The cost is bounded by the number of
        ranges and the matched messages, never by the numbers written.
        """
        uids = self.uids
        if uid:
            if not uids:
                return []
            out: list[int] = []
            for lo, hi in seqset.resolve(uids[-1]):
                out.extend(uids[bisect_left(uids, lo) : bisect_right(uids, hi)])
            return out
        n = len(uids)
        if seqset.max_number() > n:
            raise BadSequence("Invalid message sequence number")
        out = []
        for lo, hi in seqset.resolve(n):
            out.extend(uids[lo - 1 : hi])
        return out

    def pairs(self, uids: Iterable[int]) -> list[tuple[int, int]]:
        """``(seq, uid)`` for the UIDs still in the map, in the given order."""
        out = []
        for u in uids:
            s = self.seq_of(u)
            if s is not None:
                out.append((s, u))
        return out

    def is_expunged(self, uid: int) -> bool:
        return uid in self._expunged

    # -- what the session itself did ---------------------------------------------------------
    def reported(self, uid: int, modseq: int) -> None:
        """The client was told this message's flags as of ``modseq`` (own STORE/FETCH)."""
        if modseq > self._reported.get(uid, 0):
            self._reported[uid] = modseq
        if modseq > self.highestmodseq:
            self.highestmodseq = modseq

    def remove(self, uids: Iterable[int]) -> list[int]:
        """Drop announced expunges; returns the numbers for ``* n EXPUNGE`` lines in the
        order to send them: ascending, each as it is once the previous ones are gone
        (messages 2 and 5 go as ``2`` then ``4``, as Dovecot sends them)."""
        gone = set(uids)
        seqs = []
        for i, u in enumerate(self.uids):
            if u in gone:
                seqs.append(i + 1)
        if seqs:
            self.uids = [u for u in self.uids if u not in gone]
        self._expunged -= gone
        self._flags -= gone
        self.recent -= gone
        for u in gone:
            self._reported.pop(u, None)
        return [n - i for i, n in enumerate(seqs)]

    def expect_new(self, metas: Iterable[MessageMeta] = ()) -> None:
        """The session added mail here itself (APPEND, COPY): look for it at the next sync.
        ``metas``, what it added: when they and the change-feed events already queued make an
        unbroken run of UIDs after the last known one, no message can be missing and the sync
        needs no store read (UIDs are allocated one by one; a gap means something unseen)."""
        self._maybe_new = True
        for m in metas:
            self._own[m.uid] = m.modseq

    # -- change feed -------------------------------------------------------------------------
    def note(self, change: Change) -> bool:
        """Record one event; True when it concerns this mailbox."""
        if change.mailbox_id != self.mailbox_id:
            return False
        if isinstance(change, MessageAdded):
            if change.uid > self.last_uid:
                # Trusted as is: events of one mailbox arrive in commit order, and a lost event
                # shows as a feed overflow (full resync). No store read on the IDLE path.
                self._added[change.uid] = change.modseq
        elif isinstance(change, FlagsChanged):
            if change.modseq > self._base_modseq:
                self._flags.update(change.uids)
        elif isinstance(change, Expunged):
            last = self.last_uid
            for u in change.uids:
                if u <= last:
                    self._expunged.add(u)
                else:
                    self._added.pop(u, None)  # gone before the client heard of it
                    self._own.pop(u, None)
            if change.modseq > self.highestmodseq:
                self.highestmodseq = change.modseq
        elif isinstance(change, MailboxChanged):
            if change.kind == "deleted":
                self.gone = True
            elif change.kind == "renamed":
                self._resync = True
        return True

    def note_overflow(self) -> None:
        self._resync = True

    @property
    def pending(self) -> bool:
        return bool(self._maybe_new or self._added or self._flags or self._expunged or self._resync)

    @property
    def pending_expunges(self) -> bool:
        return bool(self._expunged)

    # -- safe points -------------------------------------------------------------------------
    async def sync(
        self,
        store: MailStore,
        *,
        expunges: bool,
        qresync: bool = False,
        condstore: bool = False,
        rev1: bool = True,
    ) -> bytes:
        """The untagged responses that bring the client up to date (b"" when nothing changed)."""
        if not self.pending:
            return b""
        out: list[bytes] = []
        if self._resync:
            await self._full_resync(store)
        if expunges and self._expunged:
            out.append(self.announce_expunges(self._expunged, qresync=qresync))
        new: list[int] = []
        if self._maybe_new and self._own_run_complete():
            self._maybe_new = False
            self._added.update(self._own)
        self._own.clear()
        if self._maybe_new:
            self._maybe_new = False
            self._added.clear()
            metas = await store.list_messages(self.mailbox_id, uid_min=self.last_uid + 1)
            new = [m.uid for m in metas if m.uid > self.last_uid]
            for m in metas:
                self._note_modseq(m.modseq)
        elif self._added:
            last = self.last_uid
            new = sorted(u for u in self._added if u > last)
            for modseq in self._added.values():
                self._note_modseq(modseq)
            self._added.clear()
        if new:
            if rev1 and new[-1] > self.recent_uid:
                await self._claim_new(store, new)
            self.uids.extend(new)
            self.uidnext = max(self.uidnext, new[-1] + 1)
            out.append(b"* %d EXISTS\r\n" % len(self.uids))
            if rev1:
                out.append(b"* %d RECENT\r\n" % len(self.recent))
        if self._flags:
            out.append(await self._flag_updates(store, condstore=condstore))
        return b"".join(out)

    async def _claim_new(self, store: MailStore, new: list[int]) -> None:
        """The new UIDs above the store's watermark become recent here (claimed unless read-only).
        A store error only costs this session those \\Recent flags: the client's map must still
        learn of the new messages."""
        try:
            previous, known = await recent_above(
                store, self.mailbox_id, new[-1], read_only=self.read_only,
                marks=self._recent_marks, uidvalidity=self.uidvalidity,
            )
        except StoreError as exc:
            log.warning("\\Recent claim failed for mailbox %d: %s", self.mailbox_id, exc)
            return
        self.recent.update(u for u in new if u > previous)
        self.recent_uid = max(self.recent_uid, known)

    def _own_run_complete(self) -> bool:
        if not self._own:
            return False
        last = self.last_uid
        uids = {u for u in self._own if u > last} | {u for u in self._added if u > last}
        return bool(uids) and min(uids) == last + 1 and max(uids) == last + len(uids)

    def announce_expunges(self, uids: Iterable[int], *, qresync: bool) -> bytes:
        uids = sorted(u for u in set(uids) if self.seq_of(u) is not None)
        seqs = self.remove(uids)
        if not seqs:
            return b""
        if qresync:
            return b"* VANISHED " + SequenceSet.from_numbers(uids).format().encode() + b"\r\n"
        return b"".join([b"* %d EXPUNGE\r\n" % s for s in seqs])

    async def _flag_updates(self, store: MailStore, *, condstore: bool) -> bytes:
        wanted = {u for u in self._flags if u not in self._expunged and self.seq_of(u) is not None}
        self._flags.clear()
        if not wanted:
            return b""
        metas = await store.list_messages(self.mailbox_id, uid_min=min(wanted), uid_max=max(wanted))
        out = []
        for m in metas:
            if m.uid not in wanted or m.modseq <= self._reported.get(m.uid, self._base_modseq):
                continue
            seq = self.seq_of(m.uid)
            if seq is None:
                continue
            self._reported[m.uid] = m.modseq
            self._note_modseq(m.modseq)
            out.append(self.fetch_flags_line(seq, m, condstore=condstore))
        return b"".join(out)

    def fetch_flags_line(self, seq: int, meta: MessageMeta, *, condstore: bool) -> bytes:
        flags = flags_bytes(meta.flags, recent=meta.uid in self.recent)
        if condstore:
            return b"* %d FETCH (UID %d MODSEQ (%d) FLAGS %s)\r\n" % (seq, meta.uid, meta.modseq, flags)
        return b"* %d FETCH (UID %d FLAGS %s)\r\n" % (seq, meta.uid, flags)

    def _note_modseq(self, modseq: int) -> None:
        if modseq > self.highestmodseq:
            self.highestmodseq = modseq

    async def _full_resync(self, store: MailStore) -> None:
        self._resync = False
        metas = await store.list_messages(self.mailbox_id)
        present = {m.uid for m in metas}
        last = self.last_uid
        for u in self.uids:
            if u not in present:
                self._expunged.add(u)
        for m in metas:
            if m.uid > last:
                self._added[m.uid] = m.modseq
            elif m.modseq > self._reported.get(m.uid, self._base_modseq):
                self._flags.add(m.uid)


async def drain(subscription: Any) -> tuple[list[Change], bool]:
    """Every event already queued on a subscription, without waiting: ``(events, overflowed)``.

    Uses the public surface of ``storage.notify.local.Subscription`` (also behind the
    PostgreSQL feed): ``pending()`` and ``__anext__``, which returns at once while events are
    queued. After an overflow the caller resyncs (``SelectedMailbox.note_overflow``).
    """
    events: list[Change] = []
    overflowed = False
    while True:
        if getattr(subscription, "overflowed", False):
            try:
                await subscription.__anext__()
            except FeedOverflow:
                overflowed = True
                events.clear()
                continue
        if not subscription.pending():
            return events, overflowed
        try:
            events.append(await subscription.__anext__())
        except FeedOverflow:
            overflowed = True
            events.clear()
        except StopAsyncIteration:
            return events, overflowed

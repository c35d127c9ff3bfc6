"""One POP3 session's view of the maildrop (INBOX): fixed at login, read on demand.

RFC 1939 §4-§5: message numbers and sizes are fixed for the session. The listing comes from
one ``list_messages`` call at login; messages delivered later appear in the next session.
Sizes are the exact octet counts of the CRLF form the client receives (``to_crlf``), which
equals the stored size for mail that arrived over SMTP but not for an imported file with bare
LF line endings, so a size is known only once the message was read. Known sizes are kept in
the service-wide ``SizeCache`` (message bytes never change), so after the first session the
listing costs no reads; a session that needs unknown sizes (STAT, LIST) reads those messages
in bulk (``read_messages``, a few hundred at a time) and keeps their bytes, up to a budget,
for the RETRs that usually follow. A RETR of a message not read yet reads it together with the
next few live messages (``prefetch`` messages, ``prefetch_bytes`` at most), since clients
retrieve in order: one unit of work per batch instead of one per message.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from merpati.storage.api import MailStore, NotFound
from merpati.storage.models import Mailbox, MessageMeta
from merpati.wire.pop3 import crlf_size, to_crlf


@dataclass(slots=True)
class Entry:
    uid: int
    stored_size: int
    size: int | None  # CRLF size, None until known
    deleted: bool = False
    retrieved: bool = False


class SizeCache:
    """CRLF sizes of messages already read, keyed by (mailbox id, uid, stored size); bounded LRU."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._sizes: OrderedDict[tuple[int, int, int], int] = OrderedDict()

    def get(self, key: tuple[int, int, int]) -> int | None:
        return self._sizes.get(key)

    def put(self, key: tuple[int, int, int], size: int) -> None:
        if self._max <= 0:
            return
        self._sizes[key] = size
        self._sizes.move_to_end(key)
        while len(self._sizes) > self._max:
            self._sizes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sizes)


class Maildrop:
    def __init__(
        self,
        store: MailStore,
        mailbox: Mailbox,
        metas: list[MessageMeta],
        sizes: SizeCache,
        *,
        read_ahead_bytes: int,
        chunk: int,
        prefetch: int = 16,
        prefetch_bytes: int = 1024 * 1024,
    ) -> None:
        self._store = store
        self.mailbox = mailbox
        self._sizes = sizes
        self._budget = read_ahead_bytes
        self._chunk = max(1, chunk)
        self._prefetch = prefetch
        self._prefetch_bytes = prefetch_bytes
        self._ahead: dict[int, bytes] = {}  # uid -> stored bytes read ahead, not yet sent
        self.entries = [
            Entry(m.uid, m.size, sizes.get((mailbox.id, m.uid, m.size))) for m in metas
        ]
        self._index = {e.uid: i for i, e in enumerate(self.entries)}

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, msg: int) -> Entry | None:
        """The entry of message number ``msg`` (1-based), None when there is none."""
        return self.entries[msg - 1] if 1 <= msg <= len(self.entries) else None

    def live(self) -> list[tuple[int, Entry]]:
        return [(i, e) for i, e in enumerate(self.entries, 1) if not e.deleted]

    def uidl(self, entry: Entry) -> str:
        # Dovecot's pop3_uidl_format "%08Xu%08Xv": unique for the mailbox's life (UIDs never
        # come back) and stable across sessions and restarts.
        return f"{entry.uid:08X}{self.mailbox.uidvalidity:08X}"

    async def ensure_sizes(self, entries: list[Entry]) -> None:
        """Make every ``entry.size`` known, reading the messages whose size is not cached."""
        missing = [e for e in entries if e.size is None]
        for start in range(0, len(missing), self._chunk):
            part = missing[start : start + self._chunk]
            found = await self._store.read_messages(self.mailbox.id, [e.uid for e in part])
            for e in part:
                data = found.get(e.uid)
                if data is None:  # expunged by another client meanwhile; RETR will say so
                    e.size = e.stored_size
                    continue
                e.size = crlf_size(data)
                self._sizes.put((self.mailbox.id, e.uid, e.stored_size), e.size)
                if len(data) <= self._budget:
                    self._budget -= len(data)
                    self._ahead[e.uid] = data

    async def read(self, entry: Entry, *, keep: bool = False) -> bytes:
        """The message in CRLF form; NotFound when another client expunged it."""
        data = self._ahead.get(entry.uid) if keep else self._ahead.pop(entry.uid, None)
        if data is None:
            data = await self._fetch(entry)
        elif not keep:
            self._budget += len(data)
        data = to_crlf(data)
        if entry.size is None:
            entry.size = len(data)
            self._sizes.put((self.mailbox.id, entry.uid, entry.stored_size), entry.size)
        return data

    async def _fetch(self, entry: Entry) -> bytes:
        """``entry``'s bytes, reading the next live messages along with it (kept in ``_ahead``)."""
        batch = [entry]
        room = min(self._prefetch_bytes, self._budget)
        for following in self.entries[self._index[entry.uid] + 1 :]:
            if len(batch) >= self._prefetch or following.stored_size > room:
                break
            if not following.deleted and following.uid not in self._ahead:
                batch.append(following)
                room -= following.stored_size
        if len(batch) == 1:
            return await self._store.read_message(self.mailbox.id, entry.uid)
        found = await self._store.read_messages(self.mailbox.id, [e.uid for e in batch])
        data = found.pop(entry.uid, None)
        for uid, other in found.items():
            if len(other) <= self._budget:
                self._budget -= len(other)
                self._ahead[uid] = other
        if data is None:
            raise NotFound(f"message {entry.uid} was expunged")
        return data

    def drop_cache(self) -> None:
        self._ahead.clear()

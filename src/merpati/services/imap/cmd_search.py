"""SEARCH, SORT, THREAD and their UID forms (RFC 9051 §6.4.4, ESEARCH RFC 4731, SEARCHRES
RFC 5182, CONDSTORE MODSEQ RFC 7162 §3.1.5, SORT/THREAD RFC 5256, WITHIN RFC 5032)."""

from __future__ import annotations

from typing import Any

from merpati.services.imap.session import ImapBad, ImapNo, ImapSession, Reply
from merpati.storage import search as q
from merpati.storage.api import InvalidInput
from merpati.storage.threads import format_threads
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

CHARSETS = ("UTF-8", "US-ASCII")
_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True), "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False), "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False), "UNSEEN": ("\\Seen", False),
}
_HEADER_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}


def _check_charset(charset: str | None) -> None:
    if charset is not None and charset.upper() not in CHARSETS:
        raise ImapNo("Unsupported charset", "BADCHARSET (" + " ".join(CHARSETS) + ")")


class _Translator:
    """Wire search keys → the store's query AST; session state (sequence numbers, ``$``,
    \\Recent) becomes UID sets here, as ``storage.search`` requires."""

    def __init__(self, s: ImapSession) -> None:
        self.s = s
        self.view = s.require_selected()
        self.uses_modseq = False

    def uids(self, uids: Any) -> q.UidSet:
        return q.UidSet(SequenceSet.from_numbers(uids).ranges if uids else ())

    def __call__(self, key: Any) -> q.Query:
        # iterative over AND chains would not help: depth is bounded by the engine (32)
        if isinstance(key, c.SearchAnd):
            return q.And(*[self(k) for k in key.keys]) if key.keys else q.All()
        if isinstance(key, c.SearchOr):
            return q.Or(self(key.left), self(key.right))
        if isinstance(key, c.SearchNot):
            return q.Not(self(key.key))
        if isinstance(key, c.SearchSimple):
            return self.simple(key.name)
        if isinstance(key, (c.SearchSeq, c.SearchUid)):
            return self.uids(self.s.uids_for(key.set, uid=isinstance(key, c.SearchUid)))
        if isinstance(key, c.SearchText):
            if key.field == "BODY":
                return q.Body(key.value)
            if key.field == "TEXT":
                return q.Text(key.value)
            return q.Header(_HEADER_KEYS[key.field], key.value)
        if isinstance(key, c.SearchHeader):
            return q.Header(key.field, key.value)
        if isinstance(key, c.SearchKeyword):
            return q.Keyword(key.keyword, key.present)
        if isinstance(key, c.SearchDate):
            cls = {"INTERNAL": q.InternalDate, "SENT": q.SentDate, "SAVED": q.SaveDate}[key.field]
            return cls(q.DateOp(key.op), key.date)
        if isinstance(key, c.SearchSize):
            return q.Size(q.SizeOp(key.op), key.size)
        if isinstance(key, c.SearchModseq):
            self.uses_modseq = True
            return q.ModSeq(key.modseq)
        if isinstance(key, c.SearchAge):
            return q.Age(q.AgeOp(key.op), key.seconds)
        raise ImapBad("Unsupported search key")

    def simple(self, name: str) -> q.Query:
        if name in ("ALL", "SAVEDATESUPPORTED"):
            return q.All()
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return q.FlagIs(flag, present)
        recent = self.uids(sorted(self.view.recent))
        if name == "RECENT":
            return recent
        if name == "OLD":
            return q.Not(recent)
        if name == "NEW":
            return q.And(recent, q.FlagIs("\\Seen", False))
        raise ImapBad("Unsupported search key")


async def _matching(s: ImapSession, key: c.SearchAnd) -> tuple[q.Query | None, _Translator]:
    """The store query for ``key`` limited to the messages the client knows (None: none)."""
    tr = _Translator(s)
    view = tr.view
    query = tr(key)
    if tr.uses_modseq:
        s.condstore = True
    if not view.uids:
        return None, tr
    return q.And(query, q.UidSet([(1, view.last_uid)])), tr


async def _search_uids(s: ImapSession, key: c.SearchAnd) -> tuple[list[int], _Translator]:
    query, tr = await _matching(s, key)
    if query is None:
        return [], tr
    try:
        uids = await s.store.search(tr.view.mailbox_id, query)
    except InvalidInput:
        raise ImapNo("Search too complex", "LIMIT") from None
    view = tr.view
    return [u for u in uids if view.seq_of(u) is not None and not view.is_expunged(u)], tr


async def _highest_modseq(s: ImapSession, uids: list[int]) -> int:
    if not uids:
        return 0
    view = s.require_selected()
    wanted = set(uids)
    metas = await s.store.list_messages(view.mailbox_id, uid_min=uids[0], uid_max=uids[-1])
    return max((m.modseq for m in metas if m.uid in wanted), default=0)


async def search(s: ImapSession, tag: str, cmd: c.Search) -> Reply:
    view = s.require_selected()
    _check_charset(cmd.charset)
    options = cmd.return_options
    try:
        uids, tr = await _search_uids(s, cmd.key)
    except ImapNo:
        if options and "SAVE" in options:
            s.saved_search = []
        raise
    modseq = await _highest_modseq(s, uids) if tr.uses_modseq else 0
    if options is not None and "SAVE" in options:
        s.saved_search = uids
        options = options - {"SAVE"}
        if not options:
            return Reply(text="SEARCH completed")
    numbers = uids if cmd.uid else [n for n in (view.seq_of(u) for u in uids) if n is not None]
    if options is None and s.rev1:
        line = b"* SEARCH" + b"".join([b" %d" % n for n in numbers])
        if modseq:
            line += b" (MODSEQ %d)" % modseq
        s.out.append(line + b"\r\n")
        return Reply(text="SEARCH completed")
    s.out.append(esearch_line(tag, numbers, options or frozenset({"ALL"}), uid=cmd.uid, modseq=modseq))
    return Reply(text="SEARCH completed")


def esearch_line(tag: str, numbers: list[int], options: frozenset[str], *, uid: bool, modseq: int = 0) -> bytes:
    parts = [b'* ESEARCH (TAG "' + tag.encode("ascii", "replace").replace(b'"', b"") + b'")']
    if uid:
        parts.append(b"UID")
    if numbers:
        if "MIN" in options:
            parts.append(b"MIN %d" % min(numbers))
        if "MAX" in options:
            parts.append(b"MAX %d" % max(numbers))
    if "COUNT" in options:
        parts.append(b"COUNT %d" % len(numbers))
    if numbers and "ALL" in options:
        parts.append(b"ALL " + SequenceSet.from_numbers(numbers).format().encode())
    if modseq and numbers:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


async def sort(s: ImapSession, tag: str, cmd: c.Sort) -> Reply:
    view = s.require_selected()
    _check_charset(cmd.charset)
    if cmd.return_options is not None:
        raise ImapBad("ESORT is not supported")
    try:
        keys = [q.SortKey(q.SortField(k.key), k.reverse) for k in cmd.criteria]
    except ValueError:
        raise ImapBad("Unsupported sort key") from None
    query, _ = await _matching(s, cmd.key)
    uids = await s.store.sort(view.mailbox_id, query, keys) if query is not None else []
    uids = [u for u in uids if view.seq_of(u) is not None and not view.is_expunged(u)]
    numbers = uids if cmd.uid else [view.seq_of(u) or 0 for u in uids]
    s.out.append(b"* SORT" + b"".join([b" %d" % n for n in numbers]) + b"\r\n")
    return Reply(text="SORT completed")


async def thread(s: ImapSession, tag: str, cmd: c.Thread) -> Reply:
    view = s.require_selected()
    _check_charset(cmd.charset)
    if cmd.algorithm not in ("ORDEREDSUBJECT", "REFERENCES"):
        raise ImapBad("Unsupported threading algorithm")
    query, _ = await _matching(s, cmd.key)
    threads = await s.store.thread(view.mailbox_id, query, cmd.algorithm) if query is not None else []
    number = None if cmd.uid else {u: i + 1 for i, u in enumerate(view.uids)}
    text = format_threads(threads, number).encode()
    s.out.append(b"* THREAD" + (b" " + text if text else b"") + b"\r\n")
    return Reply(text="THREAD completed")

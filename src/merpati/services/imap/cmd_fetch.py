"""FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2; BINARY RFC 3516; CONDSTORE/QRESYNC RFC 7162
§3.1.4, §3.2.6; SAVEDATE RFC 8514; PREVIEW RFC 8970).

Everything comes from what was stored at delivery: metadata (flags, dates, size, MODSEQ)
from one ``list_messages`` over the UID range, the parse (ENVELOPE, BODYSTRUCTURE, part
offsets, preview) from ``get_parsed_many`` and message bytes from ``read_messages``, both in
chunks bounded by count and by size. The message is never re-parsed. Responses are built as
bytes joins and written chunk by chunk (``ImapSession.flush_out``).
"""

from __future__ import annotations

from typing import Any

from merpati.mime import render_imap
from merpati.services.imap.fmt import date_time, flags_bytes, string
from merpati.services.imap.session import ImapBad, ImapNo, ImapSession, Reply
from merpati.storage.models import FlagMode, MessageMeta
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

SEEN = "\\Seen"
_META_ONLY = frozenset({"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ", "SAVEDATE"})
_PARSED_ATTRS = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE", "RFC822.HEADER", "RFC822.TEXT"})
_DATA_ATTRS = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT"})


class _Plan:
    """What a FETCH needs from the store, worked out once per command."""

    __slots__ = ("parsed", "data", "sets_seen", "flags", "modseq", "items")

    def __init__(self, items: tuple[Any, ...], *, uid: bool, changedsince: int | None, condstore: bool) -> None:
        self.parsed = self.data = self.sets_seen = False
        out: list[Any] = []
        names = set()
        if uid:
            out.append(c.FetchAttr("UID"))
            names.add("UID")
        for item in items:
            if isinstance(item, c.FetchAttr):
                name = item.name
                if name in ("EMAILID", "THREADID"):
                    raise ImapBad(f"{name} is not supported")
                if name in names:
                    continue
                names.add(name)
                if name in _PARSED_ATTRS:
                    self.parsed = True
                if name in _DATA_ATTRS:
                    self.data = True
                if name in ("RFC822", "RFC822.TEXT"):
                    self.sets_seen = True
            elif isinstance(item, c.FetchBody):
                self.data = True
                if item.section.part or item.section.text:
                    self.parsed = True
                if not item.peek:
                    self.sets_seen = True
            elif isinstance(item, c.FetchBinary):
                self.data = self.parsed = True
                if not item.peek:
                    self.sets_seen = True
            elif isinstance(item, c.FetchBinarySize):
                self.data = self.parsed = True
            elif isinstance(item, c.FetchPreview):
                self.parsed = True
            out.append(item)
        self.modseq = changedsince is not None or "MODSEQ" in names
        if self.modseq and "MODSEQ" not in names and condstore:
            out.append(c.FetchAttr("MODSEQ"))
            names.add("MODSEQ")
        self.flags = "FLAGS" in names
        self.items = tuple(out)


def _chunks(metas: list[MessageMeta], *, count: int, size: int, by_size: bool) -> list[list[MessageMeta]]:
    out: list[list[MessageMeta]] = []
    cur: list[MessageMeta] = []
    total = 0
    for m in metas:
        if cur and (len(cur) >= count or (by_size and total + m.size > size)):
            out.append(cur)
            cur, total = [], 0
        cur.append(m)
        total += m.size
    if cur:
        out.append(cur)
    return out


async def fetch(s: ImapSession, tag: str, cmd: c.Fetch) -> Reply:
    view = s.require_selected()
    uids = s.uids_for(cmd.sequence, uid=cmd.uid)
    if cmd.changedsince is not None or any(isinstance(i, c.FetchAttr) and i.name == "MODSEQ" for i in cmd.items):
        s.condstore = True
    plan = _Plan(cmd.items, uid=cmd.uid, changedsince=cmd.changedsince, condstore=s.condstore)
    if cmd.vanished:
        if not s.qresync:
            raise ImapBad("VANISHED needs QRESYNC enabled")
        await _vanished_earlier(s, cmd, uids)
    if not uids:
        return Reply(text="FETCH completed")
    metas = await s.store.list_messages(view.mailbox_id, uid_min=uids[0], uid_max=uids[-1], changedsince=cmd.changedsince)
    first, last = view.seq_of(uids[0]), view.seq_of(uids[-1])
    if first is None or last is None or last - first + 1 != len(uids):
        wanted = set(uids)  # not every message of the range: keep only the asked ones
        metas = [m for m in metas if m.uid in wanted]
    if view.pending_expunges:
        metas = [m for m in metas if not view.is_expunged(m.uid)]
    seen_added: set[int] = set()
    if plan.sets_seen and not view.read_only:
        unseen = [m.uid for m in metas if SEEN not in m.flags]
        if unseen:
            changed = await s.store.store_flags(view.mailbox_id, unseen, frozenset({SEEN}), mode=FlagMode.ADD)
            by_uid = {m.uid: m for m in changed}
            seen_added = set(by_uid)
            metas = [by_uid.get(m.uid, m) for m in metas]
    settings = s.ctx.settings
    for chunk in _chunks(metas, count=settings.fetch_chunk, size=settings.fetch_chunk_bytes, by_size=plan.data):
        chunk_uids = [m.uid for m in chunk]
        parsed = await s.store.get_parsed_many(view.mailbox_id, chunk_uids) if plan.parsed else {}
        data = await s.store.read_messages(view.mailbox_id, chunk_uids) if plan.data else {}
        out = s.out
        for m in chunk:
            seq = view.seq_of(m.uid)
            if seq is None:
                continue
            if (plan.parsed and m.uid not in parsed) or (plan.data and m.uid not in data):
                continue  # expunged meanwhile; its EXPUNGE comes at the next safe point
            parts = _render(s, plan, m, parsed.get(m.uid), data.get(m.uid), extra_flags=m.uid in seen_added)
            out.append(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts)))
            if plan.flags or m.uid in seen_added:
                view.reported(m.uid, m.modseq)
        await s.flush_out()
    return Reply(text="FETCH completed")


async def _vanished_earlier(s: ImapSession, cmd: c.Fetch, uids: list[int]) -> None:
    """UID FETCH ... (CHANGEDSINCE m VANISHED): expunged UIDs of the set (RFC 7162 §3.2.6)."""
    view = s.require_selected()
    assert cmd.changedsince is not None
    top = max(view.uidnext - 1, 1)
    gone = await s.store.expunged_since(view.mailbox_id, cmd.changedsince)
    gone = [u for u in gone if not cmd.sequence.saved and cmd.sequence.contains(u, top)]
    if gone:
        s.out.append(b"* VANISHED (EARLIER) " + SequenceSet.from_numbers(gone).format().encode() + b"\r\n")


def _render(s: ImapSession, plan: _Plan, m: MessageMeta, parsed: Any, data: bytes | None, *, extra_flags: bool) -> list[bytes]:
    parts: list[bytes] = []
    view = s.selected
    assert view is not None
    flags_done = False
    for item in plan.items:
        if isinstance(item, c.FetchAttr):
            name = item.name
            if name == "UID":
                parts.append(b"UID %d" % m.uid)
            elif name == "FLAGS":
                parts.append(b"FLAGS " + flags_bytes(m.flags, recent=m.uid in view.recent))
                flags_done = True
            elif name == "INTERNALDATE":
                parts.append(b"INTERNALDATE " + date_time(m.internaldate))
            elif name == "RFC822.SIZE":
                parts.append(b"RFC822.SIZE %d" % m.size)
            elif name == "MODSEQ":
                parts.append(b"MODSEQ (%d)" % m.modseq)
            elif name == "SAVEDATE":
                parts.append(b"SAVEDATE " + date_time(m.savedate))
            elif name == "ENVELOPE":
                parts.append(b"ENVELOPE " + render_imap(parsed.envelope()))
            elif name == "BODYSTRUCTURE":
                parts.append(b"BODYSTRUCTURE " + render_imap(parsed.bodystructure(True)))
            elif name == "BODY":
                parts.append(b"BODY " + render_imap(parsed.bodystructure(False)))
            elif name == "RFC822":
                assert data is not None
                parts.append(b"RFC822 {%d}\r\n" % len(data) + data)
            elif name == "RFC822.HEADER":
                body = parsed.section(data, "HEADER") or b""
                parts.append(b"RFC822.HEADER {%d}\r\n" % len(body) + body)
            elif name == "RFC822.TEXT":
                body = parsed.section(data, "TEXT") or b""
                parts.append(b"RFC822.TEXT {%d}\r\n" % len(body) + body)
        elif isinstance(item, c.FetchBody):
            parts.append(_body(item, parsed, data))
        elif isinstance(item, c.FetchBinary):
            parts.append(_binary(item, parsed, data))
        elif isinstance(item, c.FetchBinarySize):
            decoded = _decoded(item.part, parsed, data)
            parts.append(b"BINARY.SIZE[%s] %d" % (_part_spec(item.part).encode(), len(decoded)))
        elif isinstance(item, c.FetchPreview):
            preview = getattr(parsed, "preview", None)
            parts.append(b"PREVIEW " + (string(preview) if preview is not None else b"NIL"))
    if extra_flags and not flags_done:
        parts.append(b"FLAGS " + flags_bytes(m.flags, recent=m.uid in view.recent))
    return parts


def _part_spec(part: tuple[int, ...]) -> str:
    return ".".join(str(p) for p in part)


def _body(item: c.FetchBody, parsed: Any, data: bytes | None) -> bytes:
    assert data is not None
    spec = item.section.spec
    if not spec:
        body: bytes | None = data
    else:
        body = parsed.section(data, spec)
    head = b"BODY[" + spec.encode("ascii", "replace") + b"]"
    if item.partial is not None:
        origin, count = item.partial
        head += b"<%d>" % origin
        if body is not None:
            body = body[origin : origin + count]
    if body is None:
        return head + b' ""' if item.partial is not None else head + b" NIL"
    return head + b" {%d}\r\n" % len(body) + body


def _decoded(part: tuple[int, ...], parsed: Any, data: bytes | None) -> bytes:
    assert data is not None
    spec = _part_spec(part)
    try:
        out = parsed.binary(data, spec)
    except (ValueError, LookupError):
        out = None
    if out is None:
        if spec and not parsed.part_exists(spec):
            raise ImapNo("No such message part", "NONEXISTENT")
        raise ImapNo("Unknown content transfer encoding", "UNKNOWN-CTE")
    return out


def _binary(item: c.FetchBinary, parsed: Any, data: bytes | None) -> bytes:
    body = _decoded(item.part, parsed, data)
    head = b"BINARY[" + _part_spec(item.part).encode() + b"]"
    if item.partial is not None:
        origin, count = item.partial
        head += b"<%d>" % origin
        body = body[origin : origin + count]
    if b"\x00" in body:
        return head + b" ~{%d}\r\n" % len(body) + body
    return head + b" {%d}\r\n" % len(body) + body

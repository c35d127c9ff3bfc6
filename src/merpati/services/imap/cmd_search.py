"""SEARCH, SORT, THREAD and their UID forms (RFC 9051 §6.4.4, ESEARCH RFC 4731, SEARCHRES
RFC 5182, CONDSTORE MODSEQ RFC 7162 §3.1.5, SORT/THREAD RFC 5256, WITHIN RFC 5032)."""

from __future__ import annotations

from typing import Any

from merpati.services.imap import sorting
from merpati.services.imap.search_eval import Compiler, evaluate
from merpati.services.imap.session import ImapBad, ImapNo, ImapSession, Reply
from merpati.storage.models import MessageMeta
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

CHARSETS = ("UTF-8", "US-ASCII")


def _check_charset(charset: str | None) -> None:
    if charset is not None and charset.upper() not in CHARSETS:
        raise ImapNo("Unsupported charset", "BADCHARSET (" + " ".join(CHARSETS) + ")")


async def _matching(s: ImapSession, key: c.SearchAnd) -> tuple[list[MessageMeta], Compiler]:
    view = s.require_selected()

    def resolve(seqset: Any, uid: bool) -> set[int]:
        return set(s.uids_for(seqset, uid=uid))

    compiler = Compiler(resolve_set=resolve, recent=view.recent)
    metas = await s.store.list_messages(view.mailbox_id, uid_max=view.last_uid) if view.uids else []
    if len(metas) != view.exists or view.pending_expunges:
        metas = [m for m in metas if view.seq_of(m.uid) is not None and not view.is_expunged(m.uid)]
    try:
        found = await evaluate(s.store, view.mailbox_id, metas, key, compiler)
    except ValueError as exc:
        raise ImapBad(str(exc)) from None
    if compiler.uses_modseq:
        s.condstore = True
    return found, compiler


async def search(s: ImapSession, tag: str, cmd: c.Search) -> Reply:
    view = s.require_selected()
    _check_charset(cmd.charset)
    options = cmd.return_options
    try:
        found, compiler = await _matching(s, cmd.key)
    except ImapNo:
        if options and "SAVE" in options:
            s.saved_search = []
        raise
    uids = [m.uid for m in found]
    modseq = max((m.modseq for m in found), default=0) if compiler.uses_modseq else 0
    if options is not None and "SAVE" in options:
        s.saved_search = uids
        options = options - {"SAVE"}
        if not options:
            return Reply(text="SEARCH completed")
    numbers = uids if cmd.uid else [n for n in (view.seq_of(u) for u in uids) if n is not None]
    if options is None and s.rev1:
        line = b"* SEARCH" + b"".join(b" %d" % n for n in numbers)
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
    found, _ = await _matching(s, cmd.key)
    parsed = await _parses(s, found) if sorting.needs_parse(cmd.criteria) else {}
    ordered = sorting.sort_messages(found, parsed, cmd.criteria, seq_of=view.seq_of)
    numbers = [m.uid for m in ordered] if cmd.uid else [view.seq_of(m.uid) or 0 for m in ordered]
    s.out.append(b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
    return Reply(text="SORT completed")


async def thread(s: ImapSession, tag: str, cmd: c.Thread) -> Reply:
    view = s.require_selected()
    _check_charset(cmd.charset)
    if cmd.algorithm not in ("ORDEREDSUBJECT", "REFERENCES"):
        raise ImapBad("Unsupported threading algorithm")
    found, _ = await _matching(s, cmd.key)
    parsed = await _parses(s, found)
    if cmd.algorithm == "ORDEREDSUBJECT":
        threads = sorting.thread_orderedsubject(found, parsed)
    else:
        threads = sorting.thread_references(found, parsed)
    number = (lambda u: u) if cmd.uid else (lambda u: view.seq_of(u) or 0)
    rendered = sorting.render_threads(threads, number)
    s.out.append(b"* THREAD" + (b" " + rendered if rendered else b"") + b"\r\n")
    return Reply(text="THREAD completed")


async def _parses(s: ImapSession, metas: list[MessageMeta]) -> dict[int, Any]:
    view = s.require_selected()
    out: dict[int, Any] = {}
    uids = [m.uid for m in metas]
    for i in range(0, len(uids), 500):
        out.update(await s.store.get_parsed_many(view.mailbox_id, uids[i:i + 500]))
    return out

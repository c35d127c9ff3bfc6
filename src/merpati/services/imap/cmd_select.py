"""SELECT, EXAMINE (with CONDSTORE/QRESYNC), CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE
(RFC 9051 §6.3.2-3, §6.4.2-3; RFC 3691; RFC 4315 §2.1; RFC 7162 §3.1.2, §3.2.5)."""

from __future__ import annotations

from merpati.services.imap import names
from merpati.services.imap.fmt import flags_bytes
from merpati.services.imap.session import ImapBad, ImapNo, ImapSession, Reply
from merpati.services.imap.view import SelectedMailbox, recent_above
from merpati.storage.models import MessageMeta
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
DELETED = "\\Deleted"


async def select(s: ImapSession, tag: str, cmd: c.Select) -> Reply:
    return await _open(s, cmd, read_only=False)


async def examine(s: ImapSession, tag: str, cmd: c.Examine) -> Reply:
    return await _open(s, cmd, read_only=True)


async def _open(s: ImapSession, cmd: c.Select | c.Examine, *, read_only: bool) -> Reply:
    if cmd.qresync is not None and not s.qresync:
        raise ImapBad("QRESYNC must be enabled first")
    if s.selected is not None:
        s.unselect()
        s.out.append(b"* OK [CLOSED] Previous mailbox closed\r\n")
    name = names.canonical(cmd.mailbox)
    if cmd.condstore:
        s.condstore = True
    subscription = s.store.changes.subscribe(s.account_id)
    try:
        mailbox = await s.store.get_mailbox(s.account_id, name)
        if mailbox is None:
            raise ImapNo("Mailbox does not exist", "NONEXISTENT")
        metas = await s.store.list_messages(mailbox.id)
        recent: set[int] = set()
        known = 0
        if s.rev1 and metas:  # \Recent: the UIDs above the store's watermark (claimed by SELECT)
            previous, known = await recent_above(
                s.store, mailbox.id, metas[-1].uid, read_only=read_only,
                marks=s.ctx.recent_marks, uidvalidity=mailbox.uidvalidity,
            )
            recent = {m.uid for m in metas if m.uid > previous}
    except BaseException:
        subscription.close()
        raise
    view = SelectedMailbox(
        mailbox, metas, read_only=read_only, recent=recent, recent_uid=known, recent_marks=s.ctx.recent_marks,
    )
    s.select(view, subscription)
    s.out.append(_select_responses(s, view, metas))
    if cmd.qresync is not None and cmd.qresync.uidvalidity == view.uidvalidity:
        s.out.append(await _qresync(s, view, cmd.qresync))
    return Reply(code="READ-ONLY" if read_only else "READ-WRITE", text=("EXAMINE" if read_only else "SELECT") + " completed")


def _select_responses(s: ImapSession, view: SelectedMailbox, metas: list[MessageMeta]) -> bytes:
    keywords: set[str] = set()
    first_unseen = 0
    for i, m in enumerate(metas):
        for f in m.flags:
            if not f.startswith("\\"):
                keywords.add(f)
        if not first_unseen and "\\Seen" not in m.flags:
            first_unseen = i + 1
    flags = " ".join([*SYSTEM_FLAGS, *sorted(keywords)]).encode()
    out = [b"* FLAGS (" + flags + b")\r\n"]
    if view.read_only:
        out.append(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n")
    else:
        out.append(b"* OK [PERMANENTFLAGS (" + flags + b" \\*)] Flags permitted\r\n")
    out.append(b"* %d EXISTS\r\n" % view.exists)
    if s.rev1:
        out.append(b"* %d RECENT\r\n" % len(view.recent))
        if first_unseen:
            out.append(b"* OK [UNSEEN %d] First unseen\r\n" % first_unseen)
    out.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % view.uidvalidity)
    out.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % view.uidnext)
    out.append(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % view.highestmodseq)
    if s.rev2:
        out.append(b'* LIST () "/" ' + names.wire(view.name, utf8=s.utf8) + b"\r\n")
    return b"".join(out)


# RFC 7162 §3.2.5
async def _qresync(s: ImapSession, view: SelectedMailbox, q: c.QresyncParams) -> bytes:
    known = q.known_uids
    top = view.uidnext - 1
    vanished = await s.store.expunged_since(view.mailbox_id, q.modseq)
    if known is not None and not known.saved:
        vanished = [u for u in vanished if known.contains(u, max(top, known.max_number()))]
    out = []
    if vanished:
        out.append(b"* VANISHED (EARLIER) " + SequenceSet.from_numbers(vanished).format().encode() + b"\r\n")
    changed = await s.store.list_messages(view.mailbox_id, changedsince=q.modseq)
    for m in changed:
        if known is not None and not known.saved and not known.contains(m.uid, max(top, 1)):
            continue
        seq = view.seq_of(m.uid)
        if seq is None:
            continue
        view.reported(m.uid, m.modseq)
        out.append(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (
            seq, m.uid, flags_bytes(m.flags, recent=m.uid in view.recent), m.modseq))
    return b"".join(out)


# RFC 9051 §6.4.2
async def close(s: ImapSession, tag: str, cmd: c.Close) -> Reply:
    view = s.require_selected()
    if not view.read_only:
        uids = await _deleted_uids(s, view, None)
        if uids:
            await s.store.expunge(view.mailbox_id, uids)
    s.unselect()
    return Reply(text="CLOSE completed")


# RFC 3691
async def unselect(s: ImapSession, tag: str, cmd: c.Unselect) -> Reply:
    s.require_selected()
    s.unselect()
    return Reply(text="UNSELECT completed")


async def _deleted_uids(s: ImapSession, view: SelectedMailbox, only: list[int] | None) -> list[int]:
    if only is not None and not only:
        return []
    lo = only[0] if only else 1
    hi = only[-1] if only else view.last_uid
    if hi < lo or not view.uids:
        return []
    metas = await s.store.list_messages(view.mailbox_id, uid_min=lo, uid_max=hi)
    wanted = set(only) if only is not None else None
    return [m.uid for m in metas if DELETED in m.flags and (wanted is None or m.uid in wanted)
            and view.seq_of(m.uid) is not None]


async def _expunge(s: ImapSession, only: list[int] | None) -> Reply:
    view = s.require_writable()
    uids = await _deleted_uids(s, view, only)
    if uids:
        removed = await s.store.expunge(view.mailbox_id, uids)
        s.out.append(view.announce_expunges(removed, qresync=s.qresync))
    return Reply(text="EXPUNGE completed")


# RFC 9051 §6.4.3
async def expunge(s: ImapSession, tag: str, cmd: c.Expunge) -> Reply:
    return await _expunge(s, None)


# RFC 4315 §2.1
async def uid_expunge(s: ImapSession, tag: str, cmd: c.UidExpunge) -> Reply:
    uids = s.uids_for(cmd.uids, uid=True)
    return await _expunge(s, uids)

"""STORE and UID STORE (RFC 9051 §6.4.6; CONDSTORE UNCHANGEDSINCE / MODIFIED RFC 7162 §3.1.3).

The untagged FETCH of each message in the set carries its flags after the change (also for
messages the change left as they were, as Dovecot does, so clients that read the answer see
every message); ``.SILENT`` suppresses them, except that a CONDSTORE client still gets the
new MODSEQ of the messages that changed. UNCHANGEDSINCE is checked against the MODSEQs read
just before the change; messages modified since are left alone and reported in
``[MODIFIED ...]``.
"""

from __future__ import annotations

from merpati.services.imap.fmt import flags_bytes
from merpati.services.imap.session import ImapSession, Reply
from merpati.storage.models import FlagMode, MessageMeta
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet

_MODES = {c.StoreMode.REPLACE: FlagMode.REPLACE, c.StoreMode.ADD: FlagMode.ADD, c.StoreMode.REMOVE: FlagMode.REMOVE}


async def store(s: ImapSession, tag: str, cmd: c.Store) -> Reply:
    view = s.require_writable()
    uids = s.uids_for(cmd.sequence, uid=cmd.uid)
    if cmd.unchangedsince is not None:
        s.condstore = True
    flags = frozenset(f for f in cmd.flags if f.lower() != "\\recent")
    modified: list[int] = []
    current: dict[int, MessageMeta] = {}
    if uids and cmd.unchangedsince is not None:
        metas = await s.store.list_messages(view.mailbox_id, uid_min=uids[0], uid_max=uids[-1])
        wanted = set(uids)
        current = {m.uid: m for m in metas if m.uid in wanted}
        modified = sorted(u for u, m in current.items() if m.modseq > cmd.unchangedsince)
        if modified:
            gone = set(modified)
            uids = [u for u in uids if u not in gone]
    changed: list[MessageMeta] = []
    if uids:
        changed = await s.store.store_flags(view.mailbox_id, uids, flags, mode=_MODES[cmd.mode])
    by_uid = {m.uid: m for m in changed}
    if not cmd.silent:
        missing = [u for u in uids if u not in by_uid and u not in current]
        if missing:
            for m in await s.store.list_messages(view.mailbox_id, uid_min=missing[0], uid_max=missing[-1]):
                current[m.uid] = m
        lines = []
        for u in uids:
            m = by_uid.get(u) or current.get(u)
            seq = view.seq_of(u)
            if m is None or seq is None:
                continue
            lines.append(_fetch_line(s, seq, m, uid=cmd.uid))
            view.reported(u, m.modseq)
        s.out.append(b"".join(lines))
    else:
        for m in changed:
            view.reported(m.uid, m.modseq)
            seq = view.seq_of(m.uid)
            if s.condstore and seq is not None:
                s.out.append(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (seq, m.uid, m.modseq))
    if modified:
        if cmd.uid:
            numbers = modified
        else:
            numbers = [n for n in (view.seq_of(u) for u in modified) if n is not None]
        return Reply(code="MODIFIED " + SequenceSet.from_numbers(numbers).format(), text="Conditional STORE failed")
    return Reply(text="STORE completed")


def _fetch_line(s: ImapSession, seq: int, m: MessageMeta, *, uid: bool) -> bytes:
    view = s.selected
    assert view is not None
    flags = flags_bytes(m.flags, recent=m.uid in view.recent)
    parts = [b"FLAGS " + flags]
    if uid or s.qresync:
        parts.insert(0, b"UID %d" % m.uid)
    if s.condstore:
        parts.append(b"MODSEQ (%d)" % m.modseq)
    return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts))

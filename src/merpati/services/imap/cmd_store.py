"""STORE and UID STORE (RFC 9051 §6.4.6; CONDSTORE UNCHANGEDSINCE / MODIFIED RFC 7162 §3.1.3).

The untagged FETCH of each message in the set carries its flags after the change (also for
messages the change left as they were, as Dovecot does, so clients that read the answer see
every message); ``.SILENT`` suppresses them, except that a CONDSTORE client still gets the
new MODSEQ of the messages that changed.

UNCHANGEDSINCE is checked by the store in the same transaction as the change
(``store_flags_conditional``): a message whose MODSEQ is above the value, also because another
session changed it a moment before, is left alone and reported in ``[MODIFIED ...]``. Each
failed message also gets an untagged FETCH with its current flags and MODSEQ (even with
``.SILENT``), so the client learns the change that beat it without another round trip
(RFC 7162 §3.1.3 example). A failed ``+FLAGS``/``-FLAGS`` whose message already is as asked
is not reported in MODIFIED (the RFC's "avoid spurious MODIFIED"): the FETCH says it all.
"""

from __future__ import annotations

from merpati.services.imap.fmt import flags_bytes
from merpati.services.imap.session import ImapSession, Reply
from merpati.storage import common
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
    mode = _MODES[cmd.mode]
    changed: list[MessageMeta] = []
    failed: list[int] = []
    if uids and cmd.unchangedsince is not None:
        changed, failed = await s.store.store_flags_conditional(
            view.mailbox_id, uids, flags, mode=mode, unchangedsince=cmd.unchangedsince
        )
    elif uids:
        changed = await s.store.store_flags(view.mailbox_id, uids, flags, mode=mode)
    by_uid = {m.uid: m for m in changed}
    lost = set(failed)
    done = [u for u in uids if u not in lost]
    # the current state of the failed messages, and (without .SILENT) of those left as they were
    wanted = set(failed)
    if not cmd.silent:
        wanted.update(u for u in done if u not in by_uid)
    current: dict[int, MessageMeta] = {}
    if wanted:
        for m in await s.store.list_messages(view.mailbox_id, uid_min=min(wanted), uid_max=max(wanted)):
            if m.uid in wanted:
                current[m.uid] = m
    lines = []
    for u in done if not cmd.silent else []:
        m = by_uid.get(u) or current.get(u)
        seq = view.seq_of(u)
        if m is None or seq is None:
            continue
        lines.append(_fetch_line(s, seq, m, uid=cmd.uid))
        view.reported(u, m.modseq)
    if cmd.silent:
        for m in changed:
            view.reported(m.uid, m.modseq)
            seq = view.seq_of(m.uid)
            if s.condstore and seq is not None:
                lines.append(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (seq, m.uid, m.modseq))
    modified: list[int] = []
    asked = common.normalize_flags(flags) if failed and mode is not FlagMode.REPLACE else frozenset()
    for u in failed:
        m = current.get(u)
        seq = view.seq_of(u)
        if m is not None and seq is not None:
            lines.append(_fetch_line(s, seq, m, uid=True))
            view.reported(u, m.modseq)
        if m is None or mode is FlagMode.REPLACE or common.apply_flags(m.flags, asked, mode) != m.flags:
            modified.append(u)
    s.out.append(b"".join(lines))
    numbers = modified if cmd.uid else [n for n in (view.seq_of(u) for u in modified) if n is not None]
    if numbers:
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

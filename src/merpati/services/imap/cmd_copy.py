"""COPY, MOVE and their UID forms (RFC 9051 §6.4.7-8, MOVE RFC 6851, UIDPLUS COPYUID RFC 4315)."""

from __future__ import annotations

from merpati.services.imap import names
from merpati.services.imap.session import ImapNo, ImapSession, Reply
from merpati.storage.api import InvalidInput, NotFound, OverQuota
from merpati.storage.models import Mailbox
from merpati.wire.imap import commands as c
from merpati.wire.imap.seqset import SequenceSet


async def _target(s: ImapSession, name: str) -> Mailbox:
    mailbox = await s.store.get_mailbox(s.account_id, names.canonical(name))
    if mailbox is None:
        raise ImapNo("Mailbox does not exist", "TRYCREATE")
    return mailbox


def _copyuid(dst: Mailbox, pairs: list[tuple[int, int]]) -> str:
    src = SequenceSet.from_numbers(p[0] for p in pairs).format()
    new = SequenceSet.from_numbers(p[1] for p in pairs).format()
    return f"COPYUID {dst.uidvalidity} {src} {new}"


async def copy(s: ImapSession, tag: str, cmd: c.Copy) -> Reply:
    view = s.require_selected()
    uids = s.uids_for(cmd.sequence, uid=cmd.uid)
    dst = await _target(s, cmd.mailbox)
    if not uids:
        return Reply(text="COPY completed")
    try:
        pairs = await s.store.copy_messages(view.mailbox_id, uids, dst.id)
    except OverQuota:
        raise ImapNo("Quota exceeded", "OVERQUOTA") from None
    except NotFound:
        raise ImapNo("Mailbox does not exist", "TRYCREATE") from None
    if dst.id == view.mailbox_id:
        view.expect_new()
    if not pairs:
        return Reply(text="COPY completed")
    return Reply(code=_copyuid(dst, pairs), text="COPY completed")


async def move(s: ImapSession, tag: str, cmd: c.Move) -> Reply:
    view = s.require_writable()
    uids = s.uids_for(cmd.sequence, uid=cmd.uid)
    dst = await _target(s, cmd.mailbox)
    if dst.id == view.mailbox_id:
        raise ImapNo("Cannot move a message into its own mailbox", "CANNOT")
    if not uids:
        return Reply(text="MOVE completed")
    try:
        pairs = await s.store.move_messages(view.mailbox_id, uids, dst.id)
    except OverQuota:
        raise ImapNo("Quota exceeded", "OVERQUOTA") from None
    except NotFound:
        raise ImapNo("Mailbox does not exist", "TRYCREATE") from None
    except InvalidInput:
        raise ImapNo("Cannot move there", "CANNOT") from None
    if pairs:
        s.out.append(b"* OK [" + _copyuid(dst, pairs).encode() + b"] Moved\r\n")
        s.out.append(view.announce_expunges([p[0] for p in pairs], qresync=s.qresync))
    return Reply(text="MOVE completed")

"""GETQUOTA, GETQUOTAROOT, SETQUOTA (RFC 9208): one quota root ``""`` per account with the
STORAGE (KiB, rounded up) and MESSAGE resources. Limits are set by the administrator (CLI);
SETQUOTA is refused (QUOTASET is not advertised)."""

from __future__ import annotations

from merpati.services.imap import names
from merpati.services.imap.session import ImapNo, ImapSession, Reply
from merpati.wire.imap import commands as c

ROOT = ""


async def _quota_line(s: ImapSession) -> bytes | None:
    q = await s.store.get_quota(s.account_id)
    items = []
    if q.storage_limit_bytes:
        items.append(b"STORAGE %d %d" % (-(-q.storage_used_bytes // 1024), q.storage_limit_bytes // 1024))
    if q.messages_limit:
        items.append(b"MESSAGE %d %d" % (q.messages_used, q.messages_limit))
    if not items:
        return None
    return b'* QUOTA "" (' + b" ".join(items) + b")\r\n"


async def getquota(s: ImapSession, tag: str, cmd: c.GetQuota) -> Reply:
    line = await _quota_line(s) if cmd.root == ROOT else None
    if line is None:
        raise ImapNo("No such quota root", "NONEXISTENT")
    s.out.append(line)
    return Reply(text="GETQUOTA completed")


async def getquotaroot(s: ImapSession, tag: str, cmd: c.GetQuotaRoot) -> Reply:
    name = names.canonical(cmd.mailbox)
    mailbox = await s.store.get_mailbox(s.account_id, name)
    if mailbox is None:
        raise ImapNo("Mailbox does not exist", "NONEXISTENT")
    line = await _quota_line(s)
    wire_name = names.wire(mailbox.name, utf8=s.utf8)
    if line is None:
        s.out.append(b"* QUOTAROOT " + wire_name + b"\r\n")
    else:
        s.out.append(b"* QUOTAROOT " + wire_name + b' ""\r\n' + line)
    return Reply(text="GETQUOTAROOT completed")


async def setquota(s: ImapSession, tag: str, cmd: c.SetQuota) -> Reply:
    raise ImapNo("Quota limits are set by the administrator", "NOPERM")

"""APPEND and MULTIAPPEND (RFC 9051 §6.3.12, RFC 3502; UIDPLUS APPENDUID RFC 4315;
APPENDLIMIT RFC 7889; BINARY literal8 RFC 3516; UTF8 RFC 6855; QUOTA RFC 9208).

Before each message literal the engine asks (``AppendLiteral``): the mailbox must exist
(else ``NO [TRYCREATE]``) and the account's quota must have room (else ``NO [OVERQUOTA]``),
so a refused message is never transferred (no ``+`` continuation). Sizes over the message
limit never reach us (the engine answers ``NO [TOOBIG]``). Every message is parsed once here
and stored with its parse; MULTIAPPEND is one atomic, durable store call.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from merpati.mime import MimeLimitError, parse_message
from merpati.services.imap import names
from merpati.services.imap.session import ImapNo, ImapSession, Reply
from merpati.storage.api import NotFound, OverQuota
from merpati.storage.models import AppendMessage, Mailbox
from merpati.wire.imap import commands as c
from merpati.wire.imap.events import AppendLiteral
from merpati.wire.imap.seqset import SequenceSet


async def _mailbox(s: ImapSession, name: str) -> Mailbox:
    mailbox = await s.store.get_mailbox(s.account_id, names.canonical(name))
    if mailbox is None:
        raise ImapNo("Mailbox does not exist", "TRYCREATE")
    return mailbox


async def _append_target(s: ImapSession, name: str) -> Mailbox:
    """The mailbox the literal check just looked up for this command (no second read), else a
    fresh lookup. (A mailbox deleted in between fails the append: TRYCREATE, as before.)"""
    found, s.append_mailbox = s.append_mailbox, None
    if found is not None and found[0] == name:
        return found[1]  # type: ignore[no-any-return]
    return await _mailbox(s, name)


async def check_literal(s: ImapSession, ev: AppendLiteral) -> Reply | None:
    """Decide on one APPEND literal before it is sent: None accepts it, a Reply refuses."""
    try:
        s.append_mailbox = None
        s.append_mailbox = (ev.mailbox, await _mailbox(s, ev.mailbox))
        if ev.index == 0:
            s.append_bytes = 0
        s.append_bytes += ev.size
        quota = await s.store.get_quota(s.account_id)
        if quota.would_exceed(s.append_bytes, ev.index + 1):
            raise ImapNo("Quota exceeded", "OVERQUOTA")
    except ImapNo as exc:
        return Reply("NO", exc.text, exc.code)
    return None


def _parse(data: bytes, parse: Any) -> Any:
    try:
        return parse(data)
    except MimeLimitError:
        raise ImapNo("Message structure exceeds the server's limits", "LIMIT") from None


async def append(s: ImapSession, tag: str, cmd: c.Append) -> Reply:
    mailbox = await _append_target(s, cmd.mailbox)
    parse = s.ctx.parse_message or parse_message
    now = datetime.now(timezone.utc)
    messages = []
    for msg in cmd.messages:
        data = msg.data or b""
        if len(data) > s.ctx.settings.message_size:
            raise ImapNo("Message too big", "TOOBIG")
        messages.append(AppendMessage(
            data=data, parsed=_parse(data, parse), internaldate=msg.internal_date or now,
            flags=frozenset(f for f in msg.flags if f.lower() != "\\recent"),
        ))
    try:
        metas = await s.store.append_many(mailbox.id, messages)
    except OverQuota:
        raise ImapNo("Quota exceeded", "OVERQUOTA") from None
    except NotFound:
        raise ImapNo("Mailbox does not exist", "TRYCREATE") from None
    view = s.selected
    if view is not None and view.mailbox_id == mailbox.id:
        view.expect_new(metas)
    if not metas:
        return Reply(text="APPEND completed")
    uids = SequenceSet.from_numbers(m.uid for m in metas).format()
    return Reply(code=f"APPENDUID {mailbox.uidvalidity} {uids}", text="APPEND completed")

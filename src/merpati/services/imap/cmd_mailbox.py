"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS
(RFC 9051 §6.3.4-9, §6.3.11; LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819, SPECIAL-USE and
CREATE-SPECIAL-USE RFC 6154, CHILDREN RFC 3348, STATUS=SIZE RFC 8438, RFC 9208 DELETED)."""

from __future__ import annotations

from merpati.services.imap import names
from merpati.services.imap.session import ImapNo, ImapSession, Reply
from merpati.storage.api import AlreadyExists, InvalidInput, NotFound
from merpati.storage.models import INBOX, Mailbox, SpecialUse
from merpati.wire.imap import commands as c

_SPECIAL = {u.value.lower(): u for u in SpecialUse}


# RFC 9051 §6.3.4; RFC 6154 §3
async def create(s: ImapSession, tag: str, cmd: c.Create) -> Reply:
    name = names.check_new_name(cmd.mailbox)
    if name == INBOX:
        raise ImapNo("INBOX always exists", "ALREADYEXISTS")
    special = None
    if cmd.special_use:
        if len(cmd.special_use) > 1:
            raise ImapNo("Only one special-use attribute per mailbox", "USEATTR")
        special = _SPECIAL.get(cmd.special_use[0].lower())
        if special is None:
            raise ImapNo("Unsupported special-use attribute", "USEATTR")
    try:
        await s.store.create_mailbox(s.account_id, name, special_use=special)
    except AlreadyExists:
        raise ImapNo("Mailbox already exists", "ALREADYEXISTS") from None
    except InvalidInput:
        raise ImapNo("Invalid mailbox name", "CANNOT") from None
    return Reply(text="CREATE completed")


# RFC 9051 §6.3.5
async def delete(s: ImapSession, tag: str, cmd: c.Delete) -> Reply:
    name = names.canonical(cmd.mailbox)
    if name == INBOX:
        raise ImapNo("INBOX cannot be deleted", "CANNOT")
    names.check_name(name)
    if s.selected is not None and s.selected.name == name:
        s.unselect()
        s.out.append(b"* OK [CLOSED] Previous mailbox closed\r\n")
    try:
        await s.store.delete_mailbox(s.account_id, name)
    except NotFound:
        raise ImapNo("Mailbox does not exist", "NONEXISTENT") from None
    except InvalidInput:
        raise ImapNo("Mailbox cannot be deleted", "CANNOT") from None
    return Reply(text="DELETE completed")


# RFC 9051 §6.3.6
async def rename(s: ImapSession, tag: str, cmd: c.Rename) -> Reply:
    old = names.canonical(cmd.old)
    names.check_name(old)
    new = names.check_new_name(cmd.new)
    if new == INBOX:
        raise ImapNo("Cannot rename to INBOX", "ALREADYEXISTS")
    try:
        mailbox = await s.store.rename_mailbox(s.account_id, old, new)
    except NotFound:
        raise ImapNo("Mailbox does not exist", "NONEXISTENT") from None
    except AlreadyExists:
        raise ImapNo("Mailbox already exists", "ALREADYEXISTS") from None
    except InvalidInput:
        raise ImapNo("Mailbox cannot be renamed there", "CANNOT") from None
    view = s.selected
    if view is not None and view.mailbox_id == mailbox.id:
        view.name = mailbox.name
    return Reply(text="RENAME completed")


# RFC 9051 §6.3.7
async def subscribe(s: ImapSession, tag: str, cmd: c.Subscribe) -> Reply:
    name = names.canonical(cmd.mailbox)
    names.check_name(name)
    try:
        await s.store.subscribe(s.account_id, name)
    except InvalidInput:
        raise ImapNo("Invalid mailbox name", "CANNOT") from None
    return Reply(text="SUBSCRIBE completed")


# RFC 9051 §6.3.8
async def unsubscribe(s: ImapSession, tag: str, cmd: c.Unsubscribe) -> Reply:
    try:
        await s.store.unsubscribe(s.account_id, names.canonical(cmd.mailbox))
    except NotFound:
        raise ImapNo("Not subscribed to that mailbox", "NONEXISTENT") from None
    except InvalidInput:
        raise ImapNo("Invalid mailbox name", "CANNOT") from None
    return Reply(text="UNSUBSCRIBE completed")


# -- LIST --------------------------------------------------------------------------------------
class _Tree:
    """The account's mailboxes, the names implied by them (parents) and subscriptions."""

    def __init__(self, mailboxes: list[Mailbox], subscribed: list[str] | None) -> None:
        self.boxes = {m.name: m for m in mailboxes}
        self.subscribed = set(subscribed or ())
        self.all: set[str] = set(self.boxes)
        self.has_children: set[str] = set()
        self.sub_parents: set[str] = set()  # names with a subscribed descendant
        for name in self.boxes:
            for p in names.parents(name):
                self.all.add(p)
                self.has_children.add(p)
        for name in self.subscribed:
            self.sub_parents.update(names.parents(name))

    def attributes(self, name: str, *, rev2: bool, with_subscribed: bool) -> list[str]:
        attrs = []
        box = self.boxes.get(name)
        if box is None:
            attrs.append("\\NonExistent" if rev2 or with_subscribed else "\\Noselect")
        attrs.append("\\HasChildren" if name in self.has_children else "\\HasNoChildren")
        if box is not None and box.special_use is not None:
            attrs.append(box.special_use.value)
        if with_subscribed and name in self.subscribed:
            attrs.append("\\Subscribed")
        return attrs


def _list_line(kind: bytes, attrs: list[str], name_wire: bytes, extra: bytes = b"") -> bytes:
    return b"* " + kind + b" (" + " ".join(attrs).encode() + b') "/" ' + name_wire + extra + b"\r\n"


# RFC 9051 §6.3.9, RFC 5258
async def list_(s: ImapSession, tag: str, cmd: c.List) -> Reply:
    patterns = [names.full_pattern(cmd.reference, p) for p in cmd.patterns]
    if not cmd.extended and patterns == [""]:
        root = cmd.reference.split("/", 1)[0] + "/" if "/" in cmd.reference else ""
        s.out.append(b'* LIST (\\Noselect) "/" ' + names.wire(root, utf8=s.utf8) + b"\r\n")
        return Reply(text="LIST completed")
    sel = cmd.selection
    ret = cmd.return_options
    want_subs = "SUBSCRIBED" in sel or "SUBSCRIBED" in ret
    mailboxes = await s.store.list_mailboxes(s.account_id)
    subs = await s.store.list_subscriptions(s.account_id) if want_subs else None
    tree = _Tree(mailboxes, subs)
    if "SUBSCRIBED" in sel:
        candidates = set(tree.subscribed)
        if "RECURSIVEMATCH" in sel:
            candidates |= tree.sub_parents
    else:
        candidates = tree.all
    status_items = cmd.status_items
    if status_items and any(i == "HIGHESTMODSEQ" for i in status_items):
        s.condstore = True
    for name in sorted(candidates, key=_sort_key):
        if not any(names.pattern_matches(p, name) for p in patterns):
            continue
        box = tree.boxes.get(name)
        if "SPECIAL-USE" in sel and (box is None or box.special_use is None):
            continue
        extra = b""
        if "SUBSCRIBED" in sel and name not in tree.subscribed:
            if "RECURSIVEMATCH" not in sel:
                continue
            attrs = [a for a in tree.attributes(name, rev2=s.rev2, with_subscribed=True)]
            extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        else:
            attrs = tree.attributes(name, rev2=s.rev2, with_subscribed=want_subs)
            if "SUBSCRIBED" in sel and "RECURSIVEMATCH" in sel and name in tree.sub_parents:
                extra = b' ("CHILDINFO" ("SUBSCRIBED"))'
        wire_name = names.wire(name, utf8=s.utf8)
        s.out.append(_list_line(b"LIST", attrs, wire_name, extra))
        if status_items and box is not None:
            s.out.append(await _status_line(s, box, status_items, wire_name))
    return Reply(text="LIST completed")


def _sort_key(name: str) -> tuple[int, str]:
    return (0 if name == INBOX else 1, name)


# RFC 3501 §6.3.9
async def lsub(s: ImapSession, tag: str, cmd: c.Lsub) -> Reply:
    pattern = names.full_pattern(cmd.reference, cmd.pattern)
    if pattern == "":
        s.out.append(b'* LSUB (\\Noselect) "/" ""\r\n')
        return Reply(text="LSUB completed")
    subs = set(await s.store.list_subscriptions(s.account_id))
    implied = set()
    for name in subs:
        implied.update(names.parents(name))
    for name in sorted(subs | implied, key=_sort_key):
        if not names.pattern_matches(pattern, name):
            continue
        attrs = "" if name in subs else "\\Noselect"
        s.out.append(b"* LSUB (" + attrs.encode() + b') "/" ' + names.wire(name, utf8=s.utf8) + b"\r\n")
    return Reply(text="LSUB completed")


# -- STATUS ------------------------------------------------------------------------------------
async def _status_line(s: ImapSession, mailbox: Mailbox, items: tuple[str, ...], wire_name: bytes) -> bytes:
    st = await s.store.mailbox_status(mailbox.id)
    values = []
    for item in items:
        if item == "MESSAGES":
            v = st.messages
        elif item == "UIDNEXT":
            v = st.mailbox.uidnext
        elif item == "UIDVALIDITY":
            v = st.mailbox.uidvalidity
        elif item == "UNSEEN":
            v = st.unseen
        elif item == "DELETED":
            v = st.deleted
        elif item == "SIZE":
            v = st.size
        elif item == "HIGHESTMODSEQ":
            v = st.mailbox.highestmodseq
        elif item == "APPENDLIMIT":
            v = s.ctx.settings.message_size
        elif item == "RECENT":
            if not s.rev1:
                continue
            v = await _recent_count(s, mailbox, st.mailbox.uidnext)
        else:
            continue
        values.append(b"%s %d" % (item.encode(), v))
    return b"* STATUS " + wire_name + b" (" + b" ".join(values) + b")\r\n"


async def _recent_count(s: ImapSession, mailbox: Mailbox, uidnext: int) -> int:
    """STATUS RECENT: the messages above the store's \\Recent watermark (nothing claimed); for
    the selected mailbox, what this session holds as recent."""
    view = s.selected
    if view is not None and view.mailbox_id == mailbox.id:
        return len(view.recent)
    mark = await s.store.peek_recent(mailbox.id)
    if uidnext - 1 <= mark:
        return 0
    return len(await s.store.list_messages(mailbox.id, uid_min=mark + 1))


# RFC 9051 §6.3.11
async def status(s: ImapSession, tag: str, cmd: c.Status) -> Reply:
    name = names.canonical(cmd.mailbox)
    mailbox = await s.store.get_mailbox(s.account_id, name)
    if mailbox is None:
        raise ImapNo("Mailbox does not exist", "NONEXISTENT")
    if "HIGHESTMODSEQ" in cmd.items:
        s.condstore = True
    s.out.append(await _status_line(s, mailbox, cmd.items, names.wire(mailbox.name, utf8=s.utf8)))
    return Reply(text="STATUS completed")

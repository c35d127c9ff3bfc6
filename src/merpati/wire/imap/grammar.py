"""The per-command grammar: one small function per command (RFC 9051 §9 ``command-*``)
and the ``COMMANDS`` table from command name to parser. ``parse_command`` is the entry
point the engine calls on a framed command; ``parse_append_prefix`` checks an APPEND up
to the message literal about to be read.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from merpati.wire.imap import commands as c
from merpati.wire.imap.parser import (
    _ATTR_ITEMS,
    _FETCH_NAME,
    _LITERAL,
    HEAD_RE,
    MAX_MODSEQ,
    ParseError,
    Parser,
)

__all__ = ["COMMANDS", "UID_COMMANDS", "parse_append_prefix", "parse_command"]

_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")

# -- command parsers (called after "tag SP NAME"; uid says a UID prefix was seen) ---------
def _no_args(cls: type) -> Callable[[Parser, bool], c.AnyCommand]:
    inst = cls()

    def parse(p: Parser, uid: bool) -> c.AnyCommand:
        p.end()
        return inst

    return parse


def _p_authenticate(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    mech = p.keyword()
    initial = None
    if p.try_sp():
        raw = p.s[p.pos:]
        p.pos = len(p.s)
        if raw == b"=":
            initial = b""
        else:
            if not raw or not _BASE64.match(raw):
                raise ParseError("Invalid base64 in initial response")
            initial = binascii.a2b_base64(raw)
    p.end()
    return c.Authenticate(mech, initial)


def _p_login(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    user = p.astring()
    p.sp()
    pw = p.astring()
    p.end()
    return c.Login(p.text(user), p.text(pw))


def _p_enable(p: Parser, uid: bool) -> c.AnyCommand:
    caps = []
    while p.try_sp():
        caps.append(p.keyword())
    if not caps:
        raise p.fail("ENABLE needs a capability")
    p.end()
    return c.Enable(tuple(caps))


def _p_select(cls: type) -> Callable[[Parser, bool], c.AnyCommand]:
    def parse(p: Parser, uid: bool) -> c.AnyCommand:
        p.sp()
        mbox = p.mailbox()
        condstore = False
        qresync = None
        if p.try_sp():
            p.open()
            first = True
            while not p.try_close():
                if not first:
                    p.sp()
                first = False
                name = p.keyword()
                if name == "CONDSTORE":
                    condstore = True
                elif name == "QRESYNC":
                    p.sp()
                    qresync = _qresync(p)
                else:
                    raise p.fail(f"unknown select parameter {name[:40]}")
        p.end()
        return cls(mbox, condstore, qresync)

    return parse


def _qresync(p: Parser) -> c.QresyncParams:
    p.open()
    uidvalidity = p.number(nz=True)
    p.sp()
    modseq = p.modseq()
    known = match = None
    if p.try_sp():
        if p.peek() != 0x28:
            known = p.seqset()
            if not p.try_sp():
                p.close()
                return c.QresyncParams(uidvalidity, modseq, known, None)
        p.open()
        seqs = p.seqset()
        p.sp()
        uids = p.seqset()
        p.close()
        match = (seqs, uids)
    p.close()
    return c.QresyncParams(uidvalidity, modseq, known, match)


def _p_create(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    mbox = p.mailbox()
    uses: tuple[str, ...] = ()
    if p.try_sp():
        p.open()
        name = p.keyword()
        if name != "USE":
            raise p.fail(f"unknown create parameter {name[:40]}")
        p.sp()
        uses = p.flag_list()
        p.close()
    p.end()
    return c.Create(mbox, uses)


def _p_mailbox(cls: type) -> Callable[[Parser, bool], c.AnyCommand]:
    def parse(p: Parser, uid: bool) -> c.AnyCommand:
        p.sp()
        mbox = p.mailbox()
        p.end()
        return cls(mbox)

    return parse


def _p_rename(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    p.end()
    return c.Rename(old, new)


def _p_list(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    selection: tuple[str, ...] = ()
    extended = False
    if p.peek() == 0x28:
        selection = p.atom_list()
        extended = True
        p.sp()
    ref = p.mailbox()
    p.sp()
    if p.peek() == 0x28:
        extended = True
        p.open()
        pats = [p.list_mailbox()]
        while not p.try_close():
            p.sp()
            pats.append(p.list_mailbox())
    else:
        pats = [p.list_mailbox()]
    ret: list[str] = []
    status: tuple[str, ...] | None = None
    if p.try_sp():
        extended = True
        if p.keyword() != "RETURN":
            raise p.fail("expected RETURN")
        p.sp()
        p.open()
        first = True
        while not p.try_close():
            if not first:
                p.sp()
            first = False
            opt = p.keyword()
            if opt == "STATUS":
                p.sp()
                status = _status_items(p)
            else:
                ret.append(opt)
    p.end()
    return c.List(ref, tuple(pats), frozenset(selection), frozenset(ret), status, extended)


def _p_lsub(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    ref = p.mailbox()
    p.sp()
    pat = p.list_mailbox()
    p.end()
    return c.Lsub(ref, pat)


def _status_items(p: Parser) -> tuple[str, ...]:
    items = p.atom_list()
    if not items:
        raise p.fail("empty status item list")
    for it in items:
        if it not in c.STATUS_ITEMS:
            raise p.fail(f"unknown status item {it[:40]}")
    return items


def _p_status(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    mbox = p.mailbox()
    p.sp()
    items = _status_items(p)
    p.end()
    return c.Status(mbox, items)


def _p_append(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    mbox = p.mailbox()
    messages = []
    while p.try_sp():
        _extra_spaces(p)
        flags: tuple[str, ...] = ()
        when = None
        if p.peek() == 0x28:
            flags = p.flag_list()
            p.sp()
        if p.peek() == 0x22:
            when = p.datetime()
            p.sp()
        utf8 = False
        if p.s[p.pos:p.pos + 6].upper() == b"UTF8 (":
            p.pos += 5
            p.open()
            utf8 = True
            if p.peek() != 0x7E:
                raise p.fail("UTF8 needs a literal8")
        binary = p.peek() == 0x7E
        if p.peek() not in (0x7B, 0x7E):
            raise p.fail("expected a message literal")
        m = _LITERAL.match(p.s, p.pos)
        if m is None:
            raise p.fail("bad literal")
        size = int(m.group(2))
        data = p.literal()
        if utf8:
            p.close()
        messages.append(c.AppendMessage(flags, when, size, data, binary, utf8))
    if not messages:
        raise p.fail("APPEND needs a message")
    p.end()
    return c.Append(mbox, tuple(messages))


def _extra_spaces(p: Parser) -> None:
    """IMAPClient's MULTIAPPEND sends two spaces between messages (" " after a literal, then
    " {n+}"); Dovecot takes it, so we do too, between APPEND messages only."""
    while p.peek() == 0x20:
        p.pos += 1


def parse_append_prefix(p: Parser) -> str:
    """Check an APPEND up to the literal header that ends ``p.s`` (the message literal
    about to be read); return the mailbox. Earlier literals must be in ``p.lits``."""
    m = HEAD_RE.match(p.s)
    if m is None:
        raise p.fail("expected tag and command")
    p.pos = m.end()
    p.sp()
    mbox = p.mailbox()
    last = len(p.lit_ends) - 1
    while True:
        p.sp()
        _extra_spaces(p)
        if p.peek() == 0x28:
            p.flag_list()
            p.sp()
        if p.peek() == 0x22:
            p.datetime()
            p.sp()
        utf8 = False
        if p.s[p.pos:p.pos + 6].upper() == b"UTF8 (":
            p.pos += 5
            p.open()
            utf8 = True
            if p.peek() != 0x7E:
                raise p.fail("UTF8 needs a literal8")
        if p.peek() not in (0x7B, 0x7E):
            raise p.fail("expected a message literal")
        if p.lit_i == last:
            h = _LITERAL.match(p.s, p.pos)
            if h is None or h.end() != len(p.s):
                raise p.fail("bad literal")
            return mbox
        p.literal()
        if utf8:
            p.close()


def _p_uid_expunge(p: Parser, uid: bool) -> c.AnyCommand:
    if not uid:
        p.end()
        return c.Expunge()
    p.sp()
    s = p.seqset()
    p.end()
    return c.UidExpunge(s)


def _return_opts(p: Parser) -> frozenset[str] | None:
    if p.s[p.pos:p.pos + 7].upper() != b"RETURN ":
        return None
    p.pos += 7
    opts = p.atom_list()
    p.sp()
    for o in opts:
        if o not in ("MIN", "MAX", "ALL", "COUNT", "SAVE"):
            raise p.fail(f"unknown RETURN option {o[:40]}")
    return frozenset(opts) if opts else frozenset({"ALL"})


def _p_search(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    ret = _return_opts(p)
    charset, key = p.search_program(charset_required=False)
    return c.Search(key, charset, ret, uid)


def _p_sort(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    ret = _return_opts(p)
    p.open()
    crit = []
    reverse = False
    while True:
        k = p.keyword()
        if k == "REVERSE":
            reverse = True
            p.sp()
            continue
        if k not in ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM",
                     "DISPLAYTO"):
            raise p.fail(f"unknown sort key {k[:40]}")
        crit.append(c.SortCriterion(k, reverse))
        reverse = False
        if p.try_close():
            break
        p.sp()
    p.sp()
    charset, key = p.search_program(charset_required=True)
    return c.Sort(tuple(crit), charset or "UTF-8", key, uid, ret)


def _p_thread(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    alg = p.keyword()
    p.sp()
    charset, key = p.search_program(charset_required=True)
    return c.Thread(alg, charset or "UTF-8", key, uid)


def _p_fetch(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    seq = p.seqset()
    p.sp()
    macro = None
    items: list[c.FetchItem] | None = None
    simple = _SIMPLE_ITEMS.match(p.s, p.pos)
    if simple is not None and p.depth < p.max_depth:  # "(FLAGS UID ...)": attributes only
        found = [_ATTR_ITEMS.get(name) for name in simple.group(1).upper().split(b" ")]
        if None not in found:
            items = found  # type: ignore[assignment]
            p.pos = simple.end()
    if items is not None:
        pass
    elif p.peek() == 0x28:
        p.open()
        items = [p.fetch_att()]
        while not p.try_close():
            p.sp()
            items.append(p.fetch_att())
    else:
        save = p.pos
        word = p.match(_FETCH_NAME)
        name = word.decode("ascii").upper() if word else ""
        if name in c.FETCH_MACROS and p.peek() != 0x5B:
            macro = name
            items = [_ATTR_ITEMS[n.encode("ascii")] for n in c.FETCH_MACROS[name]]
        else:
            p.pos = save
            items = [p.fetch_att()]
    changedsince = None
    vanished = False
    if p.try_sp():
        p.open()
        first = True
        while not p.try_close():
            if not first:
                p.sp()
            first = False
            mod = p.keyword()
            if mod == "CHANGEDSINCE":
                p.sp()
                changedsince = p.modseq()
            elif mod == "VANISHED":
                vanished = True
            else:
                raise p.fail(f"unknown fetch modifier {mod[:40]}")
        if vanished and not (uid and changedsince is not None):
            raise p.fail("VANISHED needs UID FETCH with CHANGEDSINCE")
    p.end()
    return c.Fetch(seq, tuple(items), uid, changedsince, vanished, macro)


_SIMPLE_ITEMS = re.compile(rb"\(([A-Za-z0-9.]+(?: [A-Za-z0-9.]+)*)\)(?= |\Z)")

_STORE_ATT = re.compile(rb"([+-]?)FLAGS(\.SILENT)?", re.I)


def _p_store(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    seq = p.seqset()
    p.sp()
    unchangedsince = None
    if p.peek() == 0x28:
        p.open()
        if p.keyword() != "UNCHANGEDSINCE":
            raise p.fail("unknown store modifier")
        p.sp()
        unchangedsince = p.modseq(zero=True)
        p.close()
        p.sp()
    m = _STORE_ATT.match(p.s, p.pos)
    if m is None:
        raise p.fail("expected FLAGS, +FLAGS or -FLAGS")
    p.pos = m.end()
    p.sp()
    if p.peek() == 0x28:
        flags = p.flag_list()
    else:
        fl = [p.flag()]
        while p.try_sp():
            fl.append(p.flag())
        flags = tuple(fl)
        if "\\*" in flags:
            raise p.fail("\\* is not a flag")
    p.end()
    mode = c.StoreMode(m.group(1).decode("ascii"))
    return c.Store(seq, mode, flags, bool(m.group(2)), uid, unchangedsince)


def _p_copy(cls: type) -> Callable[[Parser, bool], c.AnyCommand]:
    def parse(p: Parser, uid: bool) -> c.AnyCommand:
        p.sp()
        seq = p.seqset()
        p.sp()
        mbox = p.mailbox()
        p.end()
        return cls(seq, mbox, uid)

    return parse


def _p_id(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    if p.s[p.pos:].upper() == b"NIL":
        p.pos = len(p.s)
        return c.Id(None)
    p.open()
    out = []
    first = True
    while not p.try_close():
        if not first:
            p.sp()
        first = False
        key = p.string()
        p.sp()
        val = p.nstring()
        if len(out) >= 30 or len(key) > 30 or (val is not None and len(val) > 1024):
            raise ParseError("ID parameters too long")
        out.append((p.text(key), None if val is None else p.text(val)))
    p.end()
    return c.Id(tuple(out))


def _p_getquota(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    root = p.text(p.astring())
    p.end()
    return c.GetQuota(root)


def _p_setquota(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    root = p.text(p.astring())
    p.sp()
    p.open()
    res = []
    first = True
    while not p.try_close():
        if not first:
            p.sp()
        first = False
        name = p.keyword()
        p.sp()
        res.append((name, p.number(maximum=MAX_MODSEQ)))
    p.end()
    return c.SetQuota(root, tuple(res))


def _p_compress(p: Parser, uid: bool) -> c.AnyCommand:
    p.sp()
    mech = p.keyword()
    p.end()
    return c.Compress(mech)


_Handler = Callable[[Parser, bool], c.AnyCommand]
COMMANDS: dict[bytes, _Handler] = {
    b"CAPABILITY": _no_args(c.Capability),
    b"NOOP": _no_args(c.Noop),
    b"LOGOUT": _no_args(c.Logout),
    b"STARTTLS": _no_args(c.StartTls),
    b"AUTHENTICATE": _p_authenticate,
    b"LOGIN": _p_login,
    b"ENABLE": _p_enable,
    b"SELECT": _p_select(c.Select),
    b"EXAMINE": _p_select(c.Examine),
    b"CREATE": _p_create,
    b"DELETE": _p_mailbox(c.Delete),
    b"RENAME": _p_rename,
    b"SUBSCRIBE": _p_mailbox(c.Subscribe),
    b"UNSUBSCRIBE": _p_mailbox(c.Unsubscribe),
    b"LIST": _p_list,
    b"LSUB": _p_lsub,
    b"NAMESPACE": _no_args(c.Namespace),
    b"STATUS": _p_status,
    b"APPEND": _p_append,
    b"IDLE": _no_args(c.Idle),
    b"CHECK": _no_args(c.Check),
    b"CLOSE": _no_args(c.Close),
    b"UNSELECT": _no_args(c.Unselect),
    b"EXPUNGE": _p_uid_expunge,
    b"SEARCH": _p_search,
    b"SORT": _p_sort,
    b"THREAD": _p_thread,
    b"FETCH": _p_fetch,
    b"STORE": _p_store,
    b"COPY": _p_copy(c.Copy),
    b"MOVE": _p_copy(c.Move),
    b"ID": _p_id,
    b"GETQUOTA": _p_getquota,
    b"GETQUOTAROOT": _p_mailbox(c.GetQuotaRoot),
    b"SETQUOTA": _p_setquota,
    b"COMPRESS": _p_compress,
}
UID_COMMANDS = frozenset({b"FETCH", b"STORE", b"SEARCH", b"SORT", b"THREAD", b"COPY", b"MOVE",
                          b"EXPUNGE"})

_WORD = re.compile(rb"[A-Za-z]+")


def parse_command(p: Parser) -> tuple[str, c.AnyCommand]:
    """Parse ``tag SP command`` from ``p.s``; raises ParseError (tag unknown → ``None``
    is the framer's job: it extracts the tag with TAG_RE before calling)."""
    m = HEAD_RE.match(p.s)
    if m is None:
        raise p.fail("expected tag and command")
    tag = m.group(1).decode("ascii")
    name = m.group(2).upper()
    p.pos = m.end()
    uid = False
    if name == b"UID":
        p.sp()
        word = p.match(_WORD)
        name = word.upper() if word else b""
        if name not in UID_COMMANDS:
            raise ParseError("Unknown UID command")
        uid = True
    handler = COMMANDS.get(name)
    if handler is None:
        raise ParseError("Unknown command")
    return tag, handler(p, uid)

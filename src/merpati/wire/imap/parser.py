"""Parser primitives for one framed IMAP command (RFC 9051 §9, RFC 3501 §9): tokens,
strings, literals, numbers, sequence sets, mailbox names, dates, search keys and fetch
items. The per-command grammar is in ``grammar.py``.

The framer (``server.py``) hands over the command as one ``bytes`` text — its lines
without their CRLF, concatenated — plus the literal octets in order and the offsets in
the text just after each literal header (``{n}``, ``{n+}``, ``~{n}``). A literal header
anywhere else is a syntax error. Every helper raises :class:`ParseError`; nothing here
recurses deeper than ``max_depth``/``max_search_depth`` (both small).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone

from merpati.wire.imap import commands as c
from merpati.wire.imap.limits import ImapLimits
from merpati.wire.imap.mutf7 import MailboxNameError, decode_name
from merpati.wire.imap.seqset import MAX_NZ, SequenceSet, SequenceSetError

__all__ = ["HEAD_RE", "MAX_MODSEQ", "ParseError", "Parser", "TAG_RE"]

MAX_MODSEQ = 2**63 - 1

# ATOM-CHAR: any CHAR except atom-specials "(" ")" "{" SP CTL "%" "*" DQUOTE "\" "]"
_ATOM_CLASS = rb"!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~"
_ASTRING_CLASS = _ATOM_CLASS + rb"\]"
_TAG_CLASS = rb"!#$&',\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~"  # ASTRING-CHAR except "+"
_LIST_CLASS = _ASTRING_CLASS + rb"%*"

TAG_RE = re.compile(rb"[" + _TAG_CLASS + rb"]+")
HEAD_RE = re.compile(rb"([" + _TAG_CLASS + rb"]+) ([A-Za-z]+)")  # tag SP command-name
_ATOM = re.compile(rb"[" + _ATOM_CLASS + rb"]+")
_ASTRING_ATOM = re.compile(rb"[" + _ASTRING_CLASS + rb"]+")
_LIST_ATOM = re.compile(rb"[" + _LIST_CLASS + rb"]+")
_QUOTED = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_LITERAL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}")
_NUMBER = re.compile(rb"[0-9]+")
_SEQSET = re.compile(rb"[0-9*:,]+|\$")
_FLAG = re.compile(rb"\\?[" + _ATOM_CLASS + rb"]+|\\\*")
_PART = re.compile(rb"[1-9][0-9]{0,9}(?:\.[1-9][0-9]{0,9})*")
_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATETIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)
_MONTHS = {m: i + 1 for i, m in enumerate(
    (b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC"))}
_CHARSETS = {"US-ASCII": "utf-8", "UTF-8": "utf-8"}  # US-ASCII strings are a subset
BADCHARSET = "BADCHARSET (US-ASCII UTF-8)"

_UNESCAPE = re.compile(rb"\\(.)")


class ParseError(Exception):
    """A command that must be answered ``status [code] text``."""

    def __init__(self, text: str, *, status: str = "BAD", code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.code = code


class Parser:
    """A cursor over one framed command. ``pos`` is an index into ``s``."""

    __slots__ = ("depth", "lim", "lit_ends", "lit_i", "lits", "max_depth", "nkeys", "pos", "s",
                 "utf8", "charset")

    def __init__(self, s: bytes, lits: list[bytes | None], lit_ends: list[int], *,
                 limits: ImapLimits, max_depth: int, utf8: bool) -> None:
        self.s = s
        self.pos = 0
        self.lits = lits
        self.lit_ends = lit_ends
        self.lit_i = 0
        self.lim = limits
        self.max_depth = max_depth
        self.depth = 0
        self.utf8 = utf8
        self.nkeys = 0
        self.charset = "utf-8"

    # -- primitives ----------------------------------------------------------------------
    def fail(self, what: str) -> ParseError:
        return ParseError(f"Syntax error: {what}")

    def at_end(self) -> bool:
        return self.pos >= len(self.s)

    def end(self) -> None:
        if self.pos != len(self.s):
            raise self.fail("unexpected characters at end of command")

    def peek(self) -> int:
        return self.s[self.pos] if self.pos < len(self.s) else -1

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise self.fail("expected a space")
        self.pos += 1

    def try_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def char(self, ch: int, what: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"expected {what}")
        self.pos += 1

    def open(self) -> None:
        if self.peek() != 0x28:
            raise self.fail("expected '('")
        self.depth += 1
        if self.depth > self.max_depth:
            raise ParseError("Too many nested parentheses")
        self.pos += 1

    def try_open(self) -> bool:
        if self.peek() == 0x28:
            self.open()
            return True
        return False

    def close(self) -> None:
        if self.peek() != 0x29:
            raise self.fail("expected ')'")
        self.depth -= 1
        self.pos += 1

    def try_close(self) -> bool:
        if self.peek() == 0x29:
            self.close()
            return True
        return False

    def match(self, rx: re.Pattern[bytes]) -> bytes | None:
        m = rx.match(self.s, self.pos)
        if m is None:
            return None
        self.pos = m.end()
        return m.group()

    def atom(self) -> bytes:
        a = self.match(_ATOM)
        if a is None:
            raise self.fail("expected an atom")
        return a

    def keyword(self) -> str:
        return self.atom().decode("ascii").upper()

    def literal(self) -> bytes | None:
        """The literal whose header starts at ``pos`` (must be one the framer saw)."""
        m = _LITERAL.match(self.s, self.pos)
        if m is None:
            raise self.fail("bad literal")
        if self.lit_i >= len(self.lit_ends) or self.lit_ends[self.lit_i] != m.end():
            raise self.fail("literal not at end of line")
        self.pos = m.end()
        data = self.lits[self.lit_i]
        self.lit_i += 1
        return data

    def _lit_bytes(self) -> bytes:
        binary = self.s[self.pos:self.pos + 1] == b"~"
        data = self.literal()
        if data is None:  # streamed APPEND data: not a string
            raise self.fail("unexpected literal")
        if binary:
            raise self.fail("literal8 not allowed here")
        return data

    def string(self) -> bytes:
        ch = self.peek()
        if ch == 0x22:  # '"'
            m = _QUOTED.match(self.s, self.pos)
            if m is None:
                if b"\x00" in self.s[self.pos:]:
                    raise ParseError("NULs not allowed in strings")
                raise self.fail("bad quoted string")
            self.pos = m.end()
            v = m.group(1)
            return _UNESCAPE.sub(rb"\1", v) if b"\\" in v else v
        if ch == 0x7B:  # '{'
            return self._lit_bytes()
        raise self.fail("expected a string")

    def astring(self) -> bytes:
        a = self.match(_ASTRING_ATOM)
        if a is not None:
            return a
        return self.string()

    def nstring(self) -> bytes | None:
        if self.s.startswith(b"NIL", self.pos) or self.s[self.pos:self.pos + 3].upper() == b"NIL":
            end = self.pos + 3
            if end >= len(self.s) or self.s[end] in b" )":
                self.pos = end
                return None
        return self.string()

    def text(self, b: bytes) -> str:
        try:
            return b.decode(self.charset)
        except UnicodeDecodeError:
            raise ParseError("Invalid UTF-8 in string") from None

    def number(self, *, nz: bool = False, maximum: int = MAX_NZ) -> int:
        d = self.match(_NUMBER)
        if d is None or len(d) > 20:
            raise self.fail("expected a number")
        n = int(d)
        if n > maximum or (nz and n == 0):
            raise ParseError("Number out of range")
        return n

    def modseq(self, *, zero: bool = False) -> int:
        return self.number(nz=not zero, maximum=MAX_MODSEQ)

    def seqset(self) -> c.SequenceSet:
        raw = self.match(_SEQSET)
        if raw is None:
            raise self.fail("expected a sequence set")
        try:
            return SequenceSet.parse(raw, max_ranges=self.lim.max_sequence_ranges)
        except SequenceSetError as exc:
            raise ParseError(f"Invalid sequence set: {exc}") from None

    def mailbox(self) -> str:
        raw = self.astring()
        return self._mailbox_name(raw)

    def _mailbox_name(self, raw: bytes) -> str:
        if len(raw) == 5 and raw.upper() == b"INBOX":
            return "INBOX"
        try:
            return decode_name(raw, utf8=self.utf8)
        except MailboxNameError as exc:
            raise ParseError(f"Invalid mailbox name: {exc}") from None

    def list_mailbox(self) -> str:
        raw = self.match(_LIST_ATOM)
        if raw is None:
            raw = self.string()
        return self._mailbox_name(raw)

    def flag(self) -> str:
        f = self.match(_FLAG)
        if f is None:
            raise self.fail("expected a flag")
        return f.decode("ascii")

    def flag_list(self) -> tuple[str, ...]:
        self.open()
        out = []
        if not self.try_close():
            out.append(self.flag())
            while not self.try_close():
                self.sp()
                out.append(self.flag())
        if any(f == "\\*" for f in out):
            raise self.fail("\\* is not a flag")
        return tuple(out)

    def date(self) -> date:
        quoted = self.peek() == 0x22
        if quoted:
            self.pos += 1
        m = _DATE.match(self.s, self.pos)
        if m is None:
            raise self.fail("expected a date")
        self.pos = m.end()
        if quoted:
            self.char(0x22, "'\"'")
        month = _MONTHS.get(m.group(2).upper())
        if month is None:
            raise self.fail("bad month")
        try:
            return date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.fail("bad date") from None

    def datetime(self) -> datetime:
        m = _DATETIME.match(self.s, self.pos)
        if m is None:
            raise self.fail("bad date-time")
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon.upper())
        if month is None:
            raise self.fail("bad month")
        zmin = int(zh) * 60 + int(zm)
        if int(zm) > 59 or zmin > 24 * 60 - 1:
            raise self.fail("bad zone")
        try:
            tz = timezone(timedelta(minutes=-zmin if sign == b"-" else zmin))
            return datetime(int(year), month, int(day.strip()), int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError:
            raise self.fail("bad date-time") from None

    def atom_list(self) -> tuple[str, ...]:
        """``"(" [atom *(SP atom)] ")"`` upper-cased."""
        self.open()
        out = []
        if not self.try_close():
            out.append(self.keyword())
            while not self.try_close():
                self.sp()
                out.append(self.keyword())
        return tuple(out)

    # -- search --------------------------------------------------------------------------
    def search_program(self, *, charset_required: bool) -> tuple[str | None, c.SearchAnd]:
        charset: str | None = None
        if charset_required:
            charset = self.astring().decode("ascii", "replace").upper()
            self.sp()
        elif self.s[self.pos:self.pos + 8].upper() == b"CHARSET ":
            self.pos += 8
            charset = self.astring().decode("ascii", "replace").upper()
            self.sp()
        if charset is not None:
            codec = _CHARSETS.get(charset)
            if codec is None:
                raise ParseError("Unsupported charset", status="NO", code=BADCHARSET)
            self.charset = codec
        keys = [self.search_key(0)]
        while self.try_sp():
            keys.append(self.search_key(0))
        self.end()
        return charset, c.SearchAnd(tuple(keys))

    def search_key(self, depth: int) -> c.SearchKey:
        self.nkeys += 1
        if self.nkeys > self.lim.max_search_keys:
            raise ParseError("Too many search keys")
        if depth > self.lim.max_search_depth:
            raise ParseError("Search keys nested too deeply")
        ch = self.peek()
        if ch == 0x28:  # "("
            self.open()
            keys = [self.search_key(depth + 1)]
            while not self.try_close():
                self.sp()
                keys.append(self.search_key(depth + 1))
            return c.SearchAnd(tuple(keys))
        if 0x30 <= ch <= 0x39 or ch in (0x2A, 0x24):  # digit, "*", "$"
            return c.SearchSeq(self.seqset())
        name = self.keyword()
        if name in c.SEARCH_SIMPLE_KEYS:
            return c.SearchSimple(name)
        handler = _SEARCH_KEYS.get(name)
        if handler is None:
            raise self.fail(f"unknown search key {name[:40]}")
        self.sp()
        return handler(self, name, depth)

    # -- fetch ---------------------------------------------------------------------------
    def section_part(self) -> tuple[int, ...]:
        raw = self.match(_PART)
        if raw is None:
            return ()
        parts = tuple(int(x) for x in raw.split(b"."))
        if any(p > MAX_NZ for p in parts):
            raise ParseError("Number out of range")
        return parts

    def section(self) -> c.Section:
        self.char(0x5B, "'['")
        part = self.section_part()
        text: str | None = None
        fields: tuple[str, ...] = ()
        if self.peek() != 0x5D:
            if part:
                self.char(0x2E, "'.'")
            t = self.match(_SECTION_TEXT)
            if t is None:
                raise self.fail("bad section")
            text = t.decode("ascii").upper()
            if text not in _SECTION_TEXTS or (text == "MIME" and not part):
                raise self.fail("bad section")
            if text.startswith("HEADER.FIELDS"):
                self.sp()
                m = _FIELD_LIST.match(self.s, self.pos)
                if m is not None and self.depth < self.max_depth:  # common case: plain atoms
                    self.pos = m.end()
                    fields = tuple(m.group(1).decode("ascii").upper().split(" "))
                else:
                    self.open()
                    names = [self.astring()]
                    while not self.try_close():
                        self.sp()
                        names.append(self.astring())
                    fields = tuple(n.decode("ascii", "replace").upper() for n in names)
        self.char(0x5D, "']'")
        return c.Section(part, text, fields)

    def partial(self) -> tuple[int, int] | None:
        if self.peek() != 0x3C:  # "<"
            return None
        self.pos += 1
        origin = self.number()
        self.char(0x2E, "'.'")
        count = self.number()
        self.char(0x3E, "'>'")
        return origin, count

    def fetch_att(self) -> c.FetchItem:
        m = _FETCH_NAME.match(self.s, self.pos)
        if m is None:
            raise self.fail("expected a fetch item")
        self.pos = m.end()
        name = m.group().decode("ascii").upper()
        if self.peek() == 0x5B:  # "["
            if name in ("BODY", "BODY.PEEK"):
                sec = self.section()
                return c.FetchBody(sec, self.partial(), name == "BODY.PEEK")
            if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
                self.pos += 1
                part = self.section_part()
                self.char(0x5D, "']'")
                if name == "BINARY.SIZE":
                    return c.FetchBinarySize(part)
                return c.FetchBinary(part, self.partial(), name == "BINARY.PEEK")
            raise self.fail(f"unexpected '[' after {name[:40]}")
        if name in _FETCH_ATTRS:
            return c.FetchAttr(name)
        if name == "PREVIEW":
            if self.s.startswith(b" (", self.pos) and self.s[self.pos + 2:self.pos + 7].upper() == b"LAZY)":
                self.pos += 7
                return c.FetchPreview(True)
            return c.FetchPreview(False)
        raise self.fail(f"unknown fetch item {name[:40]}")


_FIELD_LIST = re.compile(rb"\(([" + _ASTRING_CLASS + rb"]+(?: [" + _ASTRING_CLASS + rb"]+)*)\)")
_SECTION_TEXT = re.compile(rb"[A-Za-z][A-Za-z.]*[A-Za-z]")
_SECTION_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})
_FETCH_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9.]*")
_FETCH_ATTRS = frozenset({
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.TEXT",
    "RFC822.SIZE", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID",
})


# -- search key handlers (after "NAME SP") ------------------------------------------------
def _sk_text(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchText(name, p.text(p.astring()))


def _sk_header(p: Parser, name: str, depth: int) -> c.SearchKey:
    field = p.astring().decode("ascii", "replace")
    p.sp()
    return c.SearchHeader(field, p.text(p.astring()))


def _sk_keyword(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchKeyword(p.atom().decode("ascii"), name == "KEYWORD")


def _sk_date(p: Parser, name: str, depth: int) -> c.SearchKey:
    for field in ("SENT", "SAVED"):
        if name.startswith(field):
            return c.SearchDate(field, name[len(field):], p.date())
    return c.SearchDate("INTERNAL", name, p.date())


def _sk_size(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchSize(name, p.number(maximum=MAX_MODSEQ))


def _sk_uid(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchUid(p.seqset())


def _sk_not(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchNot(p.search_key(depth + 1))


def _sk_or(p: Parser, name: str, depth: int) -> c.SearchKey:
    left = p.search_key(depth + 1)
    p.sp()
    return c.SearchOr(left, p.search_key(depth + 1))


def _sk_modseq(p: Parser, name: str, depth: int) -> c.SearchKey:
    entry = etype = None
    if p.peek() == 0x22:
        entry = p.string().decode("ascii", "replace")
        p.sp()
        etype = p.keyword().lower()
        if etype not in ("priv", "shared", "all"):
            raise p.fail("bad entry type")
        p.sp()
    return c.SearchModseq(p.modseq(zero=True), entry, etype)


def _sk_age(p: Parser, name: str, depth: int) -> c.SearchKey:
    return c.SearchAge(name, p.number(nz=True))


_SearchHandler = Callable[[Parser, str, int], c.SearchKey]
_SEARCH_KEYS: dict[str, _SearchHandler] = {
    **dict.fromkeys(("BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"), _sk_text),
    "HEADER": _sk_header,
    "KEYWORD": _sk_keyword,
    "UNKEYWORD": _sk_keyword,
    **dict.fromkeys(("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE",
                     "SAVEDBEFORE", "SAVEDON", "SAVEDSINCE"), _sk_date),
    "LARGER": _sk_size,
    "SMALLER": _sk_size,
    "UID": _sk_uid,
    "NOT": _sk_not,
    "OR": _sk_or,
    "MODSEQ": _sk_modseq,
    "OLDER": _sk_age,
    "YOUNGER": _sk_age,
}
_ATTR_ITEMS = {n.encode("ascii"): c.FetchAttr(n) for n in _FETCH_ATTRS}

"""The store's search language: a backend-neutral query AST, SORT keys, and their semantics.

Theory of operation
-------------------
The IMAP session translates the wire search keys (``wire.imap.commands.Search*``) into this
AST, after turning message sequence numbers, ``$`` (SEARCHRES), ``\\Recent``/NEW/OLD and
``*`` into UID sets: the store knows UIDs only. ``MailStore.search(mailbox_id, query)`` answers
with the matching UIDs ascending; ``sort(mailbox_id, query, keys)`` with the UIDs in RFC 5256
order; ``thread(mailbox_id, query, algorithm)`` with the RFC 5256 thread tree
(``merpati.storage.threads``). Both backends compile the whole query to one SQL statement
(``search_sql``); nothing re-parses a message on this path.

What each node means (RFC 9051 §6.4.4 unless said otherwise):

* ``All()`` every message; ``And(...)`` all of (an empty And is All); ``Or(...)`` any of (an
  empty Or matches nothing); ``Not(q)``. Every predicate is strictly true or false: a message
  without a Date: header is not SENTBEFORE x, so it *is* ``Not(SentDate(BEFORE, x))``.
* ``UidSet(ranges)``: inclusive ``(low, high)`` ranges of UIDs (``UidSet.of(3, (5, 9))``).
* ``FlagIs(flag, present)``: system flags (``\\Seen``...) match case-insensitively in their
  canonical spelling; keywords (``Keyword(name)``) match ASCII-case-insensitively.
  ``\\Recent`` is session state: the session turns RECENT/NEW/OLD into UID sets, and
  ``FlagIs("\\Recent")`` is refused (``InvalidInput``).
* Dates (``InternalDate``, ``SentDate``, ``SaveDate``; op BEFORE/ON/SINCE) compare calendar
  dates, "disregarding time and timezone": the date part of the value *in its own timezone*.
  An INTERNALDATE of ``01-May-2024 23:30:00 -0700`` is ON 1 May 2024 (although it is 2 May in
  UTC); a Date: header likewise (its written date); the save date (RFC 8514) is kept in UTC,
  so its date is the UTC date. A message whose Date: header is missing or unparsable matches
  no SentDate key. BEFORE is strictly before, SINCE is on or after.
* ``Age(op, seconds)`` (RFC 5032 OLDER/YOUNGER): OLDER n matches an internal date at least n
  seconds before the time of the search; YOUNGER n the others (they are complements).
* ``Size(LARGER, n)``: RFC822.SIZE > n; ``Size(SMALLER, n)``: < n.
* ``Header(field, s)``: the message has a top-level header field named ``field`` (any case)
  whose decoded value (RFC 2047 words decoded, unfolded) contains ``s``; an empty ``s``
  matches every message having the field. ``From/To/Cc/Bcc/Subject(s)`` are Header keys.
* ``Body(s)``: the decoded text of the message contains ``s``: every text/* part (attachments
  included; base64 and quoted-printable undone, charset converted; HTML without tags) and the
  header of every attached message/rfc822. At most ``search_doc.MAX_BODY_CHARS`` characters of
  text per message are indexed (the rest is not searchable).
* ``Text(s)``: ``Body(s)`` or the message's decoded header (``Name: value`` lines) contains s.
* ``ModSeq(n)``: the message's MODSEQ is >= n (RFC 7162 §3.1.5).

Substring matching (Header, Body, Text) is case-insensitive with ``fold()``: Unicode
NFKC + full case folding, CRLF as LF, so ``"STRASSE"`` finds ``"Straße"``, ``"ÉTÉ"`` finds
``"été"``, and any substring matches ("foo" finds "xfoox"); the empty string matches all.
This stands in for RFC 5051 i;unicode-casemap (which would also fold accents away in
decomposition); we keep accents significant, as most users expect.

SORT (RFC 5256 §3, RFC 5957): keys compare with ``sort_fold()`` (per-character titlecase
mapping then NFKD, RFC 5051 i;unicode-casemap; for ASCII it is i;ascii-casemap), as UTF-8
octets; ties fall back to the next key and finally to the UID (sequence) order. SUBJECT uses
``base_subject()`` (RFC 5256 §2.1); FROM/TO/CC the addr-mailbox (local part) of the first
address; DISPLAYFROM/DISPLAYTO the decoded display name of the first address, or its
addr-spec when it has none; DATE the Date: header's instant, or the INTERNALDATE when the
header is missing or unparsable; ARRIVAL the INTERNALDATE; SIZE the size.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Union

from merpati.storage.api import InvalidInput

__all__ = [
    "All", "And", "Or", "Not", "UidSet", "FlagIs", "Keyword", "InternalDate", "SentDate",
    "SaveDate", "Age", "Size", "Header", "Body", "Text", "ModSeq", "From", "To", "Cc", "Bcc",
    "Subject", "DateOp", "SizeOp", "AgeOp", "SortField", "SortKey", "Query", "fold", "sort_fold",
    "base_subject", "validate", "MAX_NODES", "MAX_DEPTH", "MAX_STRING", "MAX_TEXT_KEYS",
]

# Hostile-input bounds (IMAP-06 nesting, huge queries): a query over them is InvalidInput.
MAX_NODES = 2000
MAX_DEPTH = 40  # wire.imap allows 32; SQLite's parser overflows near 48 nested NOTs
MAX_STRING = 4096  # characters of one search string
MAX_TEXT_KEYS = 64  # Header/Body/Text keys with a non-empty string per query (each one is a subquery)
MAX_UID = 0xFFFFFFFF
# A search starts the full-text indexer only when the mailbox has this many pending documents:
# below it, scanning their text (``instr``/``strpos``, exact either way) costs less than indexing
# them, which a mailbox with churn (messages expunged within minutes) would pay for nothing.
INDEX_MIN_PENDING = 64


class DateOp(str, enum.Enum):
    BEFORE = "BEFORE"
    ON = "ON"
    SINCE = "SINCE"


class SizeOp(str, enum.Enum):
    LARGER = "LARGER"
    SMALLER = "SMALLER"


class AgeOp(str, enum.Enum):
    OLDER = "OLDER"
    YOUNGER = "YOUNGER"


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Query, ...]

    def __init__(self, *items: Query | Iterable[Query]) -> None:
        object.__setattr__(self, "items", _items(items))


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Query, ...]

    def __init__(self, *items: Query | Iterable[Query]) -> None:
        object.__setattr__(self, "items", _items(items))


@dataclass(frozen=True, slots=True)
class Not:
    item: Query


@dataclass(frozen=True, slots=True)
class UidSet:
    """Inclusive UID ranges, normalised: sorted, merged, within 1..2^32-1."""

    ranges: tuple[tuple[int, int], ...]

    def __init__(self, ranges: Iterable[tuple[int, int] | int]) -> None:
        object.__setattr__(self, "ranges", _merge_ranges(ranges))

    @classmethod
    def of(cls, *items: tuple[int, int] | int) -> UidSet:
        return cls(items)

    def __contains__(self, uid: int) -> bool:
        import bisect

        i = bisect.bisect_right(self.ranges, (uid, MAX_UID + 1)) - 1
        return i >= 0 and self.ranges[i][0] <= uid <= self.ranges[i][1]


@dataclass(frozen=True, slots=True)
class FlagIs:
    flag: str
    present: bool = True


def Keyword(name: str, present: bool = True) -> FlagIs:  # noqa: N802 - reads as a key
    """KEYWORD / UNKEYWORD: a FlagIs on a keyword."""
    return FlagIs(name, present)


@dataclass(frozen=True, slots=True)
class InternalDate:
    op: DateOp
    date: date


@dataclass(frozen=True, slots=True)
class SentDate:
    op: DateOp
    date: date


@dataclass(frozen=True, slots=True)
class SaveDate:
    op: DateOp
    date: date


@dataclass(frozen=True, slots=True)
class Age:
    op: AgeOp
    seconds: int


@dataclass(frozen=True, slots=True)
class Size:
    op: SizeOp
    size: int


@dataclass(frozen=True, slots=True)
class Header:
    field: str
    substring: str


@dataclass(frozen=True, slots=True)
class Body:
    substring: str


@dataclass(frozen=True, slots=True)
class Text:
    substring: str


@dataclass(frozen=True, slots=True)
class ModSeq:
    min: int


Query = Union[All, And, Or, Not, UidSet, FlagIs, InternalDate, SentDate, SaveDate, Age, Size,
              Header, Body, Text, ModSeq]


def From(s: str) -> Header:  # noqa: N802
    return Header("from", s)


def To(s: str) -> Header:  # noqa: N802
    return Header("to", s)


def Cc(s: str) -> Header:  # noqa: N802
    return Header("cc", s)


def Bcc(s: str) -> Header:  # noqa: N802
    return Header("bcc", s)


def Subject(s: str) -> Header:  # noqa: N802
    return Header("subject", s)


def _items(items: tuple) -> tuple:
    out: list = []
    for it in items:
        if isinstance(it, (list, tuple)) or (not _is_node(it) and isinstance(it, Iterable)):
            out.extend(it)
        else:
            out.append(it)
    return tuple(out)


_NODE_TYPES = (All, And, Or, Not, UidSet, FlagIs, InternalDate, SentDate, SaveDate, Age, Size,
               Header, Body, Text, ModSeq)


def _is_node(x: object) -> bool:
    return isinstance(x, _NODE_TYPES)


def _int(value: object, what: str, low: int = 0, high: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"invalid {what}: {value!r}")
    return value


def _merge_ranges(items: Iterable[tuple[int, int] | int]) -> tuple[tuple[int, int], ...]:
    if isinstance(items, (str, bytes)):
        raise InvalidInput("UidSet takes UIDs or (low, high) ranges")
    pairs = []
    for it in items:
        if isinstance(it, tuple):
            if len(it) != 2:
                raise InvalidInput(f"invalid UID range {it!r}")
            lo, hi = _int(it[0], "UID", 0, 2**63), _int(it[1], "UID", 0, 2**63)
            lo, hi = min(lo, hi), max(lo, hi)  # "5:3" means 3:5 (RFC 9051 §9)
        else:
            lo = hi = _int(it, "UID", 0, 2**63)
        lo, hi = max(lo, 1), min(hi, MAX_UID)
        if lo <= hi:
            pairs.append((lo, hi))
    pairs.sort()
    merged: list[tuple[int, int]] = []
    for lo, hi in pairs:
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return tuple(merged)


# -- SORT keys --------------------------------------------------------------------------------


class SortField(str, enum.Enum):
    ARRIVAL = "ARRIVAL"
    CC = "CC"
    DATE = "DATE"
    FROM = "FROM"
    SIZE = "SIZE"
    SUBJECT = "SUBJECT"
    TO = "TO"
    DISPLAYFROM = "DISPLAYFROM"  # RFC 5957
    DISPLAYTO = "DISPLAYTO"  # RFC 5957


@dataclass(frozen=True, slots=True)
class SortKey:
    field: SortField
    reverse: bool = False

    @classmethod
    def parse(cls, spec: str) -> list[SortKey]:
        """``"REVERSE DATE SUBJECT"`` → [SortKey(DATE, True), SortKey(SUBJECT)] (for tests and tools)."""
        out: list[SortKey] = []
        reverse = False
        for word in spec.upper().split():
            if word == "REVERSE":
                reverse = True
                continue
            try:
                out.append(cls(SortField(word), reverse))
            except ValueError:
                raise InvalidInput(f"unknown sort key {word!r}") from None
            reverse = False
        if reverse or not out:
            raise InvalidInput(f"invalid sort criteria {spec!r}")
        return out


# -- validation ---------------------------------------------------------------------------------

_SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def ascii_lower(s: str) -> str:
    return s.translate(_ASCII_LOWER)


def canonical_flag(flag: str) -> tuple[str, bool]:
    """(stored spelling to compare, is a system flag). Keywords come back ASCII-lower-cased."""
    if not isinstance(flag, str) or not flag:
        raise InvalidInput(f"invalid flag {flag!r}")
    low = flag.lower()
    if low == "\\recent":
        raise InvalidInput("\\Recent is session state: search it as a UID set")
    if low in _SYSTEM_FLAGS:
        return _SYSTEM_FLAGS[low], True
    return ascii_lower(flag), False


def validate(query: Query) -> Query:
    """Check a query's shape and bounds; returns it. InvalidInput for anything malformed:
    unknown node types, more than MAX_NODES nodes, MAX_DEPTH levels or MAX_TEXT_KEYS
    substring keys, strings over MAX_STRING characters, bad values. (The IMAP session
    answers ``NO [LIMIT]`` for those.)"""
    count = texts = 0
    stack: list[tuple[object, int]] = [(query, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InvalidInput(f"search query has more than {MAX_NODES} keys")
        if depth > MAX_DEPTH:
            raise InvalidInput(f"search query nested deeper than {MAX_DEPTH}")
        if isinstance(node, (And, Or)):
            stack.extend((it, depth + 1) for it in node.items)
        elif isinstance(node, Not):
            stack.append((node.item, depth + 1))
        elif isinstance(node, FlagIs):
            canonical_flag(node.flag)
        elif isinstance(node, (InternalDate, SentDate, SaveDate)):
            DateOp(node.op)
            if not isinstance(node.date, date):
                raise InvalidInput(f"invalid date {node.date!r}")
        elif isinstance(node, Size):
            SizeOp(node.op)
            _int(node.size, "size")
        elif isinstance(node, Age):
            AgeOp(node.op)
            _int(node.seconds, "interval")
        elif isinstance(node, ModSeq):
            _int(node.min, "MODSEQ")
        elif isinstance(node, Header):
            if not isinstance(node.field, str) or not node.field or len(node.field) > 256:
                raise InvalidInput(f"invalid header field name {node.field!r}")
            texts += bool(_string(node.substring))
        elif isinstance(node, (Body, Text)):
            texts += bool(_string(node.substring))
        elif not isinstance(node, (All, UidSet)):
            raise InvalidInput(f"not a search key: {node!r}")
        if texts > MAX_TEXT_KEYS:
            raise InvalidInput(f"search query has more than {MAX_TEXT_KEYS} text keys")
    return query


def _string(s: object) -> str:
    if not isinstance(s, str):
        raise InvalidInput(f"search strings are str, not {type(s).__name__}")
    if len(s) > MAX_STRING:
        raise InvalidInput(f"search string longer than {MAX_STRING} characters")
    return s


# -- folding -----------------------------------------------------------------------------------


def fold(text: str) -> str:
    """The case-insensitive form used for substring search (stored text and needles alike).

    NFKC, full case folding, NFKC again (folding can denormalise), CRLF and lone CR as LF,
    NUL as U+FFFD (PostgreSQL text cannot hold NUL)."""
    if text.isascii():
        out = text.lower()
    else:
        out = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    if "\r" in out:
        out = out.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in out:
        out = out.replace("\x00", "\ufffd")
    return out


def sort_fold(text: str) -> str:
    """RFC 5051 i;unicode-casemap key: titlecase each character, then NFKD. Compared as
    UTF-8 octets (code points). For ASCII this is i;ascii-casemap (letters upper-cased)."""
    if text.isascii():
        return text.upper().replace("\x00", "")
    titled = "".join(c.title() if c.isalpha() else c for c in text)
    return unicodedata.normalize("NFKD", titled).replace("\x00", "")


# -- RFC 5256 §2.1 base subject -------------------------------------------------------------------

_WS_RUN = re.compile(r"[ \t\r\n]+")
# Longest subject considered (the steps below are quadratic in the worst case).
MAX_SUBJECT = 2048
# subj-blob = "[" *BLOBCHAR "]" *WSP   (BLOBCHAR: any CHAR except "[" and "]")
_BLOB = r"\[[^\[\]]*\] *"
# subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD = r"(?:re|fwd?) *(?:" + _BLOB + r")?:"
# subj-leader = (*subj-blob subj-refwd) / WSP
_LEADER = re.compile(r"(?:(?:" + _BLOB + r")*" + _REFWD + r"| )", re.I)
_BLOB_RE = re.compile(_BLOB)


def base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, is a reply or forward) of a decoded subject, RFC 5256 §2.1.

    The subject must already have its RFC 2047 words decoded (step 1's first half). The
    flag is what the REFERENCES algorithm (§2.3 step 5) calls "a reply or forward": a
    subj-refwd leader, a "(fwd)" trailer or a [fwd: ...] wrapper was removed. The result keeps
    its case; compare with ``sort_fold``.
    """
    if not subject:
        return "", False
    # (1) tabs and continuations to space, runs of spaces to one.
    s = _WS_RUN.sub(" ", subject[:MAX_SUBJECT])
    reply = False
    while True:
        # (2) remove subj-trailer text (subj-trailer = "(fwd)" / WSP), repeatedly.
        while True:
            if s.endswith(" "):
                s = s[:-1]
            elif s[-5:].lower() == "(fwd)":
                s = s[:-5]
                reply = True
            else:
                break
        # (3)-(5): remove subj-leader prefixes, and a subj-blob prefix when what is left is not empty.
        while True:
            changed = False
            m = _LEADER.match(s)
            while m and m.end() > 0:
                if m.group(0) != " ":
                    reply = True
                s = s[m.end():]
                changed = True
                m = _LEADER.match(s)
            m = _BLOB_RE.match(s)
            if m and s[m.end():].strip(" "):
                s = s[m.end():]
                changed = True
            if not changed:
                break
        # (6) [fwd: ...] wrapper: remove it and repeat from (2).
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        return s, reply

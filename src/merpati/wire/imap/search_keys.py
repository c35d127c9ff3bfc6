"""SEARCH keys (the search-key AST) and the SEARCH, SORT and THREAD commands
(RFC 9051 §6.4.4, RFC 5256, ESEARCH RFC 4731, ESORT RFC 5267).

Part of the command vocabulary of ``commands.py``, which re-exports every name here;
its field conventions apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from merpati.wire.imap.seqset import SequenceSet

__all__ = [
    "SEARCH_SIMPLE_KEYS",
    "Search",
    "SearchAge",
    "SearchAnd",
    "SearchDate",
    "SearchHeader",
    "SearchKey",
    "SearchKeyword",
    "SearchModseq",
    "SearchNot",
    "SearchOr",
    "SearchSeq",
    "SearchSimple",
    "SearchSize",
    "SearchText",
    "SearchUid",
    "Sort",
    "SortCriterion",
    "Thread",
]

SEARCH_SIMPLE_KEYS = frozenset(
    {
        "ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN",
        "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN",
        "NEW", "OLD", "RECENT",  # IMAP4rev1 only
        "SAVEDATESUPPORTED",  # RFC 8514
    }
)


@dataclass(frozen=True, slots=True)
class SearchSimple:
    """An argument-less key from :data:`SEARCH_SIMPLE_KEYS` (upper-cased ``name``)."""

    name: str


@dataclass(frozen=True, slots=True)
class SearchText:
    """``field`` in BCC, BODY, CC, FROM, SUBJECT, TEXT, TO: case-insensitive substring."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchHeader:
    """HEADER field-name string (an empty ``value`` matches every message having the field)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class SearchKeyword:
    """KEYWORD flag (``present=True``) or UNKEYWORD flag (``present=False``)."""

    keyword: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class SearchDate:
    """Date comparisons. ``field``: ``INTERNAL`` (BEFORE/ON/SINCE), ``SENT``
    (SENTBEFORE/SENTON/SENTSINCE) or ``SAVED`` (SAVEDBEFORE/SAVEDON/SAVEDSINCE, RFC 8514);
    ``op``: ``BEFORE``, ``ON`` or ``SINCE``. Dates ignore time and timezone."""

    field: str
    op: str
    date: date


@dataclass(frozen=True, slots=True)
class SearchSize:
    """LARGER n / SMALLER n (``op`` is ``LARGER`` or ``SMALLER``; RFC822.SIZE)."""

    op: str
    size: int


@dataclass(frozen=True, slots=True)
class SearchSeq:
    """A bare sequence set (message sequence numbers, or ``$``)."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchUid:
    """UID sequence-set (or ``UID $``)."""

    set: SequenceSet


@dataclass(frozen=True, slots=True)
class SearchNot:
    """NOT key."""

    key: SearchKey


@dataclass(frozen=True, slots=True)
class SearchOr:
    """OR key1 key2."""

    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchAnd:
    """All keys must match: a parenthesised list, and the top level of every SEARCH."""

    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class SearchModseq:
    """MODSEQ [entry-name entry-type] mod-sequence-valzer (RFC 7162 §3.1.5): the message's
    MODSEQ is >= ``modseq``. ``entry``/``entry_type`` (``priv``/``shared``/``all``,
    lower-cased) are None when absent."""

    modseq: int
    entry: str | None = None
    entry_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchAge:
    """OLDER n / YOUNGER n (WITHIN, RFC 5032): internal date relative to now, seconds."""

    op: str
    seconds: int


SearchKey = (
    SearchSimple | SearchText | SearchHeader | SearchKeyword | SearchDate | SearchSize
    | SearchSeq | SearchUid | SearchNot | SearchOr | SearchAnd | SearchModseq | SearchAge
)


@dataclass(frozen=True, slots=True)
class Search:
    """[UID] SEARCH [RETURN (...)] [CHARSET x] keys (RFC 9051 §6.4.4, ESEARCH RFC 4731,
    SEARCHRES RFC 5182).

    * ``key`` is always a :class:`SearchAnd` of the top-level keys.
    * ``charset`` upper-cased, or None when not given; strings were decoded with it.
    * ``return_options``: None when no RETURN was given (plain ``* SEARCH`` answer in
      IMAP4rev1); else the upper-cased options (``MIN MAX ALL COUNT SAVE``); an empty
      ``RETURN ()`` means ``ALL`` (RFC 4731 §3.1) and is given here as ``{"ALL"}``.
    """

    key: SearchAnd
    charset: str | None = None
    return_options: frozenset[str] | None = None
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SortCriterion:
    """One SORT key (RFC 5256): ARRIVAL CC DATE FROM SIZE SUBJECT TO (also DISPLAYFROM,
    DISPLAYTO RFC 5957), with REVERSE."""

    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class Sort:
    """[UID] SORT [RETURN (...)] (criteria) charset keys (RFC 5256, ESORT RFC 5267)."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchAnd
    uid: bool = False
    return_options: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Thread:
    """[UID] THREAD algorithm charset keys (RFC 5256): algorithm upper-cased
    (``ORDEREDSUBJECT``, ``REFERENCES``)."""

    algorithm: str
    charset: str
    key: SearchAnd
    uid: bool = False

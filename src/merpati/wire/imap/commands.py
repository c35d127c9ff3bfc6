"""Typed IMAP commands: what ``ImapServer.next_event()`` hands over in ``Command.command``.

This module is the contract between the wire engine and ``services.imap``: every class
here is a frozen dataclass, changes are additive only; it holds no logic. Import the
whole command vocabulary from here: the SEARCH keys with SEARCH/SORT/THREAD
(``search_keys.py``) and the FETCH items with FETCH (``fetch_items.py``) live in their
own modules and are re-exported.

Conventions for every field
---------------------------
* Mailbox names (``mailbox``, ``old``/``new``, LIST/LSUB ``reference`` and patterns) are
  decoded ``str``: from modified UTF-7 (RFC 3501 §5.1.3), or raw UTF-8 once the session
  called ``ImapServer.enable_utf8()`` (RFC 6855 §3). A name that is exactly ``INBOX`` in
  any case is normalised to ``"INBOX"`` (RFC 9051 §5.1); nothing else is case-folded.
  Malformed names never reach the session: they become a ``ProtocolError``.
* Keywords that the RFCs define as case-insensitive (command names, fetch/status/search
  key names, options) are upper-cased. Flags keep their spelling (``\\Seen``,
  ``$Forwarded``); compare them case-insensitively in the session.
* Other strings (LOGIN arguments, search strings, header names) are ``str`` decoded
  from UTF-8 (or from the SEARCH/SORT/THREAD ``charset``). Byte values the session must
  see raw (SASL data, APPEND message data) are ``bytes``.
* Numbers are ``int`` and have been range-checked: nz-number / number are 32-bit,
  mod-sequence values 63-bit (RFC 7162 §7), sizes within the configured limits.
* ``uid=True`` marks the ``UID`` prefixed form (UID FETCH, UID STORE, UID SEARCH,
  UID SORT, UID THREAD, UID COPY, UID MOVE); ``UID EXPUNGE`` is its own class.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from merpati.wire.imap.fetch_items import (
    FETCH_MACROS,
    Fetch,
    FetchAttr,
    FetchBinary,
    FetchBinarySize,
    FetchBody,
    FetchItem,
    FetchPreview,
    Section,
)
from merpati.wire.imap.search_keys import (
    SEARCH_SIMPLE_KEYS,
    Search,
    SearchAge,
    SearchAnd,
    SearchDate,
    SearchHeader,
    SearchKey,
    SearchKeyword,
    SearchModseq,
    SearchNot,
    SearchOr,
    SearchSeq,
    SearchSimple,
    SearchSize,
    SearchText,
    SearchUid,
    Sort,
    SortCriterion,
    Thread,
)
from merpati.wire.imap.seqset import MAX_NZ, STAR, SequenceSet, SequenceSetError

__all__ = [
    "MAX_NZ",
    "STAR",
    "Append",
    "AppendMessage",
    "Authenticate",
    "Capability",
    "Check",
    "Close",
    "AnyCommand",
    "Compress",
    "Copy",
    "Create",
    "Delete",
    "Enable",
    "Examine",
    "Expunge",
    "Fetch",
    "FetchAttr",
    "FetchBinary",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "FetchPreview",
    "GetQuota",
    "GetQuotaRoot",
    "Id",
    "Idle",
    "List",
    "Login",
    "Logout",
    "Lsub",
    "Move",
    "Namespace",
    "Noop",
    "QresyncParams",
    "Rename",
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
    "Search",
    "Section",
    "Select",
    "SequenceSet",
    "SequenceSetError",
    "SetQuota",
    "Sort",
    "SortCriterion",
    "StartTls",
    "Status",
    "Store",
    "StoreMode",
    "Subscribe",
    "Thread",
    "UidExpunge",
    "Unselect",
    "Unsubscribe",
    "FETCH_MACROS",
    "SEARCH_SIMPLE_KEYS",
    "STATUS_ITEMS",
]


# ---------------------------------------------------------------------------------------
# Any state (RFC 9051 §6.1)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Capability:
    """CAPABILITY: answer ``* CAPABILITY ...`` then OK."""


@dataclass(frozen=True, slots=True)
class Noop:
    """NOOP: send pending untagged updates, then OK."""


@dataclass(frozen=True, slots=True)
class Logout:
    """LOGOUT: ``* BYE`` then tagged OK, then close."""


@dataclass(frozen=True, slots=True)
class Id:
    """ID (RFC 2971). ``params`` is None for ``ID NIL``, else (field, value-or-None) pairs.

    At most 30 pairs; field names at most 30 octets, values at most 1024 (RFC 2971 §3.3).
    """

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class Compress:
    """COMPRESS (RFC 4978). ``mechanism`` upper-cased (only ``DEFLATE`` is defined).

    The engine pauses after this event; see ``ImapServer.start_compress()``.
    """

    mechanism: str


# ---------------------------------------------------------------------------------------
# Not authenticated (RFC 9051 §6.2)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartTls:
    """STARTTLS. The engine pauses; on acceptance call ``ImapServer.start_tls()``
    (discards buffered plaintext, CVE-2011-0411) after writing the tagged OK."""


@dataclass(frozen=True, slots=True)
class Authenticate:
    """AUTHENTICATE mechanism [initial-response] (RFC 9051 §6.2.2, SASL-IR RFC 4959).

    ``mechanism`` is upper-cased. ``initial_response`` is base64-*decoded*: ``b""`` for
    ``=``, None when absent (then send an empty ``+ `` challenge). The engine pauses;
    see ``ImapServer.continue_auth()`` / ``resume()``.
    """

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class Login:
    """LOGIN userid password (RFC 9051 §6.2.3), both astrings decoded from UTF-8."""

    username: str
    password: str


# ---------------------------------------------------------------------------------------
# Authenticated (RFC 9051 §6.3)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Enable:
    """ENABLE (RFC 5161): capability names, upper-cased, in the order given."""

    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QresyncParams:
    """SELECT/EXAMINE ``(QRESYNC (uidvalidity modseq [known-uids [seq-match]]))``
    (RFC 7162 §3.2.5). ``seq_match`` is (known sequence set, matching UID set)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT mailbox [(CONDSTORE) / (QRESYNC (...))] (RFC 9051 §6.3.2, RFC 7162)."""

    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Examine:
    """EXAMINE: read-only SELECT, same parameters (RFC 9051 §6.3.3)."""

    mailbox: str
    condstore: bool = False
    qresync: QresyncParams | None = None


@dataclass(frozen=True, slots=True)
class Create:
    """CREATE mailbox [(USE (\\Drafts ...))] (RFC 9051 §6.3.4, CREATE-SPECIAL-USE RFC 6154).

    ``special_use`` keeps the attributes as written (e.g. ``("\\\\Sent",)``).
    """

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    """DELETE mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Rename:
    """RENAME old new (renaming INBOX moves its messages, RFC 9051 §6.3.6)."""

    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUBSCRIBE mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUBSCRIBE mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class List:
    """LIST, basic or extended (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS
    RFC 5819, SPECIAL-USE RFC 6154).

    * ``reference`` and ``patterns`` are decoded names (``*`` and ``%`` kept);
      several patterns come from ``LIST "" ("a" "b")``.
    * ``selection``: upper-cased selection options (``SUBSCRIBED``, ``REMOTE``,
      ``RECURSIVEMATCH``, ``SPECIAL-USE``).
    * ``return_options``: upper-cased return options other than STATUS (``SUBSCRIBED``,
      ``CHILDREN``, ``SPECIAL-USE``, ``MYRIGHTS``...).
    * ``status_items``: the items of ``RETURN (STATUS (...))``, upper-cased, or None.
    * ``extended``: True when any extended syntax was used (selection options, a
      pattern list or RETURN); the basic LIST rules apply otherwise.
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_options: frozenset[str] = frozenset()
    status_items: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class Lsub:
    """LSUB reference pattern (IMAP4rev1 only; RFC 3501 §6.3.9)."""

    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class Namespace:
    """NAMESPACE (RFC 2342, RFC 9051 §6.3.10)."""


STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "DELETED", "SIZE",  # RFC 9051 / 8438
        "RECENT",  # IMAP4rev1
        "HIGHESTMODSEQ",  # RFC 7162
        "APPENDLIMIT",  # RFC 7889
        "MAILBOXID",  # RFC 8474 (parsed, answer only if advertised)
    }
)


@dataclass(frozen=True, slots=True)
class Status:
    """STATUS mailbox (items): upper-cased items from :data:`STATUS_ITEMS`, in order."""

    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of an APPEND (MULTIAPPEND RFC 3502 allows several).

    * ``flags`` as written; ``internal_date`` timezone-aware or None.
    * ``size`` is the literal's declared size (always equal to ``len(data)`` when
      ``data`` is given).
    * ``data`` is the message octets, or None when the engine streams APPEND literals
      as ``AppendChunk`` events (``ImapServer(stream_append=True)``).
    * ``binary``: sent as literal8 ``~{n}`` (RFC 3516; may contain NUL).
    * ``utf8``: sent as ``UTF8 (~{n})`` (RFC 6855 §4).
    """

    flags: tuple[str, ...] = ()
    internal_date: datetime | None = None
    size: int = 0
    data: bytes | None = None
    binary: bool = False
    utf8: bool = False


@dataclass(frozen=True, slots=True)
class Append:
    """APPEND mailbox [flags] [date-time] literal {...} (RFC 9051 §6.3.12, RFC 3502).

    Emitted once the whole command (every message) has been read. Before each message's
    literal the engine emits ``AppendLiteral`` so the session can refuse early
    (TRYCREATE, OVERQUOTA, TOOBIG) before a ``+`` continuation is sent.
    """

    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class Idle:
    """IDLE (RFC 2177). The engine pauses; see ``ImapServer.start_idle()`` / ``resume()``."""


# ---------------------------------------------------------------------------------------
# Selected (RFC 9051 §6.4)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Check:
    """CHECK (IMAP4rev1 only; a NOOP for us)."""


@dataclass(frozen=True, slots=True)
class Close:
    """CLOSE: expunge silently (unless read-only) and unselect."""


@dataclass(frozen=True, slots=True)
class Unselect:
    """UNSELECT (RFC 3691): unselect without expunging."""


@dataclass(frozen=True, slots=True)
class Expunge:
    """EXPUNGE."""


@dataclass(frozen=True, slots=True)
class UidExpunge:
    """UID EXPUNGE uid-set (UIDPLUS RFC 4315 §2.1)."""

    uids: SequenceSet


# SEARCH / SORT / THREAD are in search_keys.py, FETCH in fetch_items.py.
class StoreMode(enum.Enum):
    """STORE FLAGS (replace), +FLAGS (add), -FLAGS (remove)."""

    REPLACE = ""
    ADD = "+"
    REMOVE = "-"


@dataclass(frozen=True, slots=True)
class Store:
    """[UID] STORE set [(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flags) (RFC 9051 §6.4.6,
    RFC 7162 §3.1.3)."""

    sequence: SequenceSet
    mode: StoreMode
    flags: tuple[str, ...]
    silent: bool = False
    uid: bool = False
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class Copy:
    """[UID] COPY set mailbox."""

    sequence: SequenceSet
    mailbox: str
    uid: bool = False


@dataclass(frozen=True, slots=True)
class Move:
    """[UID] MOVE set mailbox (RFC 6851)."""

    sequence: SequenceSet
    mailbox: str
    uid: bool = False


# ---------------------------------------------------------------------------------------
# QUOTA (RFC 9208)
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GetQuota:
    """GETQUOTA quota-root (the root name as an astring, not a mailbox)."""

    root: str


@dataclass(frozen=True, slots=True)
class GetQuotaRoot:
    """GETQUOTAROOT mailbox."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class SetQuota:
    """SETQUOTA root ((resource limit)...): resource names upper-cased."""

    root: str
    resources: tuple[tuple[str, int], ...]


AnyCommand = (
    Capability | Noop | Logout | Id | Compress | StartTls | Authenticate | Login | Enable
    | Select | Examine | Create | Delete | Rename | Subscribe | Unsubscribe | List | Lsub
    | Namespace | Status | Append | Idle | Check | Close | Unselect | Expunge | UidExpunge
    | Search | Sort | Thread | Fetch | Store | Copy | Move | GetQuota | GetQuotaRoot
    | SetQuota
)
"""Any command class above (a type alias for annotations)."""

"""Storage models: neutral frozen dataclasses shared by every backend.

The model is IMAP's from day one (RFC 9051 §2.3.1): each mailbox has a UIDVALIDITY, a UIDNEXT
and a HIGHESTMODSEQ (RFC 7162); each message has a UID, a MODSEQ, flags (system flags such as
``\\Seen`` and keywords together), an internal date, a save date and an exact size in octets.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merpati.mime import ParsedMessage

INBOX = "INBOX"
HIERARCHY_DELIMITER = "/"


class SpecialUse(str, enum.Enum):
    """RFC 6154 special-use attributes; each account gets one mailbox of each."""

    SENT = "\\Sent"
    DRAFTS = "\\Drafts"
    TRASH = "\\Trash"
    JUNK = "\\Junk"
    ARCHIVE = "\\Archive"


# The mailboxes created with every account, besides INBOX (names as Dovecot's defaults).
DEFAULT_SPECIAL_MAILBOXES: tuple[tuple[str, SpecialUse], ...] = (
    ("Sent", SpecialUse.SENT),
    ("Drafts", SpecialUse.DRAFTS),
    ("Trash", SpecialUse.TRASH),
    ("Junk", SpecialUse.JUNK),
    ("Archive", SpecialUse.ARCHIVE),
)


class FlagMode(enum.Enum):
    """How store_flags combines the given flags with the current ones (IMAP STORE FLAGS, +FLAGS, -FLAGS)."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    address: str  # "local@domain", local part as created, domain lower-case
    password_hash: str
    quota_bytes: int = 0  # 0: no limit
    quota_messages: int = 0  # 0: no limit


@dataclass(frozen=True, slots=True)
class Alias:
    source: str  # "local@domain", or "@domain" for a catch-all
    targets: tuple[str, ...]  # local or remote addresses


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: int
    account_id: int
    name: str  # UTF-8, hierarchy delimiter "/"; "INBOX" is always spelled so
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    special_use: SpecialUse | None = None
    subscribed: bool = True


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    mailbox: Mailbox
    messages: int
    unseen: int
    size: int  # sum of message sizes in octets


@dataclass(frozen=True, slots=True)
class MessageMeta:
    id: int  # backend row id; stable for the life of the message in that mailbox
    mailbox_id: int
    uid: int
    modseq: int
    flags: frozenset[str]
    internaldate: datetime  # timezone-aware
    savedate: datetime  # timezone-aware
    size: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to file into one account's mailbox, as part of an atomic batch.

    ``data`` is exactly what IMAP will serve (trace headers already prepended); ``parsed`` is
    ``merpati.mime.parse_message(data)``, computed once by the caller and stored beside it.
    When ``mailbox`` does not exist the message goes to INBOX (as Dovecot's lda does).
    """

    account_id: int
    data: bytes
    parsed: ParsedMessage
    internaldate: datetime
    mailbox: str = INBOX
    flags: frozenset[str] = field(default_factory=frozenset)

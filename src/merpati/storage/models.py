"""Storage models: neutral frozen dataclasses shared by every backend.

The model is IMAP's from day one (RFC 9051 §2.3.1): each mailbox has a UIDVALIDITY, a UIDNEXT
and a HIGHESTMODSEQ (RFC 7162); each message has a UID, a MODSEQ, flags (system flags such as
``\\Seen`` and keywords together), an internal date, a save date and an exact size in octets.
"""

from __future__ import annotations

import enum
import json
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
    """What IMAP STATUS (RFC 9051 §6.3.11, RFC 8438 STATUS=SIZE, RFC 9208 DELETED) needs, from
    one consistent snapshot: MESSAGES, UNSEEN, SIZE and DELETED here; UIDNEXT, UIDVALIDITY and
    HIGHESTMODSEQ from ``mailbox`` (also as properties)."""

    mailbox: Mailbox
    messages: int
    unseen: int
    size: int  # sum of message sizes in octets
    deleted: int = 0  # messages with the \Deleted flag

    @property
    def uidnext(self) -> int:
        return self.mailbox.uidnext

    @property
    def uidvalidity(self) -> int:
        return self.mailbox.uidvalidity

    @property
    def highestmodseq(self) -> int:
        return self.mailbox.highestmodseq


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """One account's quota root (RFC 9208: resources STORAGE and MESSAGE).

    ``storage_used_bytes`` is the exact sum of the sizes of every message in every mailbox of the
    account (RFC 9208 counts STORAGE in units of 1024 octets: round up when answering
    GETQUOTA); ``messages_used`` their number. A limit of 0 means "no limit". Both counters are
    kept by the store in the same transaction as every change (no scans).
    """

    storage_used_bytes: int
    storage_limit_bytes: int
    messages_used: int
    messages_limit: int

    def would_exceed(self, add_bytes: int, add_messages: int = 1) -> bool:
        """Whether adding that much would go over a limit (what the store refuses with OverQuota)."""
        if self.storage_limit_bytes and self.storage_used_bytes + add_bytes > self.storage_limit_bytes:
            return True
        return bool(self.messages_limit) and self.messages_used + add_messages > self.messages_limit


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
class MessageEnvelope:
    """The SMTP envelope of one delivered message, kept for the queue to honour later.

    ``sender`` is the MAIL FROM reverse-path ("" for the null sender ``<>``); ``recipient`` the
    RCPT TO forward-path this copy was delivered for. The RFC 3461 DSN parameters are kept as
    received (already xtext-decoded by the SMTP layer): ``original_recipient`` is ORCPT
    ("addr-type;address"), ``notify`` the NOTIFY keywords (None: the parameter was absent),
    ``ret`` RET ("FULL" or "HDRS"), ``envid`` ENVID. ``received_from`` names the client
    (e.g. the HELO name and address) for bounce reports. The store keeps every value exactly;
    it interprets none of them.
    """

    sender: str
    recipient: str
    original_recipient: str | None = None
    notify: tuple[str, ...] | None = None
    ret: str | None = None
    envid: str | None = None
    received_from: str | None = None

    def to_json(self) -> str:
        """Compact JSON (ASCII only, so any database text column holds it); None fields are left out."""
        _check_str(self.sender, "sender")
        _check_str(self.recipient, "recipient")
        out: dict[str, object] = {"sender": self.sender, "recipient": self.recipient}
        for name in _ENVELOPE_OPTIONAL:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "notify":
                if isinstance(value, str) or not isinstance(value, (tuple, list)):
                    raise TypeError(f"MessageEnvelope.notify must be a tuple of str, not {value!r}")
                for v in value:
                    _check_str(v, "notify keyword")
                value = list(value)
            else:
                _check_str(value, name)
            out[name] = value
        return json.dumps(out, ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> MessageEnvelope:
        """The inverse of ``to_json``; keys it does not know (from later versions) are ignored."""
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("MessageEnvelope JSON must be an object")
        notify = obj.get("notify")
        return cls(
            sender=_check_str(obj.get("sender"), "sender"),
            recipient=_check_str(obj.get("recipient"), "recipient"),
            original_recipient=_opt_str(obj.get("original_recipient"), "original_recipient"),
            notify=None if notify is None else tuple(_check_str(v, "notify keyword") for v in _check_list(notify)),
            ret=_opt_str(obj.get("ret"), "ret"),
            envid=_opt_str(obj.get("envid"), "envid"),
            received_from=_opt_str(obj.get("received_from"), "received_from"),
        )


_ENVELOPE_OPTIONAL = ("original_recipient", "notify", "ret", "envid", "received_from")


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"MessageEnvelope.{what} must be str, not {value!r}")
    return value


def _opt_str(value: object, what: str) -> str | None:
    return None if value is None else _check_str(value, what)


def _check_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"MessageEnvelope.notify must be a list in JSON, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to file into one account's mailbox, as part of an atomic batch.

    ``data`` is exactly what IMAP will serve (trace headers already prepended); ``parsed`` is
    ``merpati.mime.parse_message(data)``, computed once by the caller and stored beside it.
    When ``mailbox`` does not exist the message goes to INBOX (as Dovecot's lda does).
    ``envelope``, when given, is stored with the message (``MailStore.get_envelope``).
    """

    account_id: int
    data: bytes
    parsed: ParsedMessage
    internaldate: datetime
    mailbox: str = INBOX
    flags: frozenset[str] = field(default_factory=frozenset)
    envelope: MessageEnvelope | None = None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message for ``MailStore.append_many`` (IMAP APPEND / MULTIAPPEND into a mailbox id).

    ``data`` exactly as IMAP will serve it; ``parsed`` is ``merpati.mime.parse_message(data)``;
    ``internaldate`` timezone-aware (APPEND's date-time, or now); ``flags`` as given by the
    client (``\\Recent`` is dropped, system flags canonicalised).
    """

    data: bytes
    parsed: ParsedMessage
    internaldate: datetime
    flags: frozenset[str] = field(default_factory=frozenset)

"""Events the SMTP server engine hands to the session (all frozen dataclasses).

Two kinds:

* **decision events** need exactly one ``SmtpServer.send(reply)`` before the engine goes
  on (``next_event()`` returns ``PAUSED`` until then): :class:`Hello`, :class:`MailFrom`,
  :class:`RcptTo`, :class:`DataStart`, :class:`DataEnd`, :class:`StartTls`,
  :class:`AuthStart`, :class:`AuthData`, :class:`Quit`;
* **informative events** need no reply (the engine already answered or none is due):
  :class:`DataChunk`, :class:`Reset`, :class:`Vrfy`, :class:`AuthAbort`, :class:`Close`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from merpati.core.address import Address

__all__ = [
    "DECISION_EVENTS",
    "NEED_DATA",
    "PAUSED",
    "AuthAbort",
    "AuthData",
    "AuthStart",
    "Close",
    "CloseReason",
    "DataChunk",
    "DataEnd",
    "DataError",
    "DataStart",
    "Event",
    "Hello",
    "MailFrom",
    "MailParams",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Reset",
    "Sentinel",
    "StartTls",
    "Vrfy",
]


class Sentinel(enum.Enum):
    """What ``next_event()`` returns when it has no event."""

    NEED_DATA = "NEED_DATA"  # feed more bytes (or EOF) before asking again
    PAUSED = "PAUSED"  # a decision event waits for send(), or STARTTLS waits for tls_started()

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


class DataError(enum.Enum):
    """Why a completed DATA/BDAT body must be rejected (the session picks the reply)."""

    TOO_BIG = "too-big"  # body exceeded SmtpLimits.message_size → 552 5.3.4
    BARE_LINE_ENDING = "bare-line-ending"  # bare CR or LF under policy REJECT → 550 5.5.2


class CloseReason(enum.StrEnum):
    """``Close.reason`` values."""

    EOF = "eof"  # the client closed its side (no reply queued)
    EOF_IN_DATA = "eof-in-data"  # truncated DATA/BDAT body: abort the transaction
    QUIT = "quit"  # QUIT was answered
    SYNC_ERROR = "sync-error"  # RFC 2920 pipelining violation (554 5.5.0 queued)
    PREGREET = "pregreet"  # client talked before the greeting (554 5.5.0 queued)
    TOO_MANY_ERRORS = "too-many-errors"  # hard error limit (421 4.7.0 queued)
    PROTOCOL_ERROR = "protocol-error"  # unrecoverable framing (e.g. bad BDAT size; reply queued)
    SERVICE_CLOSING = "service-closing"  # the session answered 421 (its reply was written)


@dataclass(frozen=True, slots=True)
class MailParams:
    """ESMTP parameters of MAIL FROM (RFC 1870, 6152, 3030, 6531, 3461, 4954)."""

    size: int | None = None
    body: str | None = None  # "7BIT" / "8BITMIME" / "BINARYMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" / "HDRS"
    envid: str | None = None  # xtext-decoded
    auth: str | None = None  # xtext-decoded mailbox or "<>"


@dataclass(frozen=True, slots=True)
class RcptParams:
    """ESMTP parameters of RCPT TO (RFC 3461 §4)."""

    notify: tuple[str, ...] | None = None  # ("NEVER",) or subset of SUCCESS/FAILURE/DELAY
    orcpt: str | None = None  # "addr-type;address", the address part xtext-decoded


@dataclass(frozen=True, slots=True)
class Hello:
    """HELO (``extended=False``) or EHLO. Reply with ``srv.hello_reply()`` or a rejection."""

    name: str  # the argument, printable ASCII only (anything else became "?")
    extended: bool


@dataclass(frozen=True, slots=True)
class MailFrom:
    sender: Address | None  # None is the null reverse-path <>
    params: MailParams = field(default_factory=MailParams)


@dataclass(frozen=True, slots=True)
class RcptTo:
    recipient: Address  # Address("Postmaster", "") for the bare <Postmaster> (RFC 5321 §4.5.1)
    params: RcptParams = field(default_factory=RcptParams)


@dataclass(frozen=True, slots=True)
class DataStart:
    """DATA (reply 354 to start) or the first BDAT chunk (reply 2xx to accept; not written)."""

    bdat: bool = False


@dataclass(frozen=True, slots=True)
class DataChunk:
    data: bytes  # dot-unstuffed, CRLF line endings (DATA) or raw octets (BDAT)


@dataclass(frozen=True, slots=True)
class DataEnd:
    """End of the body: reply 250 (or 4xx/5xx). ``error`` says the body must be refused."""

    error: DataError | None = None
    size: int = 0  # octets of body seen (emitted or not)


@dataclass(frozen=True, slots=True)
class StartTls:
    """Reply 220 (TLS_GO), do the handshake, then call ``srv.tls_started()``."""


@dataclass(frozen=True, slots=True)
class AuthStart:
    mechanism: str  # upper-cased, one of the configured mechanisms
    initial_response: bytes | None  # base64-decoded; b"" for "="; None when absent


@dataclass(frozen=True, slots=True)
class AuthData:
    line: bytes  # the client's SASL response, base64-decoded


@dataclass(frozen=True, slots=True)
class AuthAbort:
    """The SASL exchange ended without the session (client sent ``*``, bad base64, too long).

    The engine already replied (501 5.0.0, 501 5.5.2 or 500 5.5.6). Informative.
    """


@dataclass(frozen=True, slots=True)
class Reset:
    """The transaction was cleared (RSET, or HELO/EHLO during a transaction). Informative."""


@dataclass(frozen=True, slots=True)
class Vrfy:
    """VRFY was answered with 252 2.5.0 by the engine. Informative (for logging)."""

    arg: str  # printable ASCII only


@dataclass(frozen=True, slots=True)
class Quit:
    """Reply 221 (BYE) and close."""


@dataclass(frozen=True, slots=True)
class Close:
    """The engine is done: write ``data_to_send()`` (its final reply, if any), then close."""

    reason: str


Event = (
    Hello | MailFrom | RcptTo | DataStart | DataChunk | DataEnd | StartTls | AuthStart
    | AuthData | AuthAbort | Reset | Vrfy | Quit | Close
)
DECISION_EVENTS = (Hello, MailFrom, RcptTo, DataStart, DataEnd, StartTls, AuthStart, AuthData, Quit)

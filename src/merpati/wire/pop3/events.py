"""Events the POP3 server engine hands to the session (frozen dataclasses).

Two kinds:

* **decision events** need exactly one ``Pop3Server.send(response)`` before the engine looks
  at more input (``next_event()`` returns ``PAUSED`` until then): :class:`Login` and every
  TRANSACTION command (:class:`Stat`, :class:`Listing`, :class:`UidListing`, :class:`Retr`,
  :class:`Top`, :class:`Dele`, :class:`Rset`, :class:`Noop`, :class:`Quit`);
* **informative events** need no response: :class:`StartTls` (the engine already queued
  ``+OK``; upgrade the connection, then call ``tls_started()``) and :class:`Close`.

Message numbers in events are syntactically valid (1 ≤ n ≤ ``MAX_MSGNUM``); whether such a
message exists, or is marked deleted, is the session's business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DECISION_EVENTS",
    "NEED_DATA",
    "PAUSED",
    "Close",
    "CloseReason",
    "Dele",
    "Event",
    "Listing",
    "Login",
    "Noop",
    "Quit",
    "Retr",
    "Rset",
    "Sentinel",
    "StartTls",
    "Stat",
    "Top",
    "UidListing",
]


class Sentinel(enum.Enum):
    """What ``next_event()`` returns when it has no event."""

    NEED_DATA = "NEED_DATA"  # feed more bytes (or EOF) before asking again
    PAUSED = "PAUSED"  # a decision event waits for send(), or STLS waits for tls_started()

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


class CloseReason(enum.Enum):
    QUIT = "quit"
    EOF = "eof"  # the client closed (or half-closed) the connection
    TOO_MANY_ERRORS = "too many invalid commands"
    TOO_MANY_AUTH_FAILURES = "too many authentication failures"


@dataclass(frozen=True, slots=True)
class Login:
    """Credentials from USER/PASS or a finished SASL exchange (RFC 5034).

    ``mechanism`` is "USER" for USER/PASS, else the SASL mechanism name. ``authzid`` is the
    SASL authorization identity ("" when none was given). Answer ``Ok`` to enter the
    TRANSACTION state, ``Err`` to stay in AUTHORIZATION.
    """

    username: str
    password: str
    mechanism: str
    authzid: str = ""

    def __repr__(self) -> str:  # never log the password
        return f"Login(username={self.username!r}, mechanism={self.mechanism!r})"


@dataclass(frozen=True, slots=True)
class Stat:
    pass


@dataclass(frozen=True, slots=True)
class Listing:
    """LIST [msg]: ``msg`` None asks for the whole scan listing (a multi-line answer)."""

    msg: int | None = None


@dataclass(frozen=True, slots=True)
class UidListing:
    """UIDL [msg] (RFC 1939 §7)."""

    msg: int | None = None


@dataclass(frozen=True, slots=True)
class Retr:
    msg: int


@dataclass(frozen=True, slots=True)
class Top:
    """TOP msg n: the header, the blank line and the first ``lines`` body lines."""

    msg: int
    lines: int


@dataclass(frozen=True, slots=True)
class Dele:
    msg: int


@dataclass(frozen=True, slots=True)
class Rset:
    pass


@dataclass(frozen=True, slots=True)
class Noop:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT in the TRANSACTION state: the session enters UPDATE (removes marked messages)."""


@dataclass(frozen=True, slots=True)
class StartTls:
    """STLS accepted: ``+OK`` is queued; every byte received after the command is discarded."""


@dataclass(frozen=True, slots=True)
class Close:
    reason: CloseReason


Event = Login | Stat | Listing | UidListing | Retr | Top | Dele | Rset | Noop | Quit | StartTls | Close

DECISION_EVENTS = (Login, Stat, Listing, UidListing, Retr, Top, Dele, Rset, Noop, Quit)

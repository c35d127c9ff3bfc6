"""Events the IMAP server engine hands to the session (all frozen dataclasses).

``ImapServer.next_event()`` returns one of these, :data:`NEED_DATA` (feed more bytes) or
:data:`PAUSED` (the engine waits for a session call before it looks at more input).

Which events pause the engine, and what ends the pause:

=====================================  =================================================
event                                  session must call (after writing its response)
=====================================  =================================================
``Command`` with ``StartTls``          ``start_tls()`` (accepted) or ``resume()``
``Command`` with ``Compress``          ``start_compress()`` (accepted) or ``resume()``
``Command`` with ``Idle``              ``start_idle()`` (``+ idling`` sent) or ``resume()``
``Command`` with ``Authenticate``      ``continue_auth()`` (a ``+ challenge`` sent) or
                                       ``resume()`` (tagged answer sent)
``AuthResponse``                       ``continue_auth()`` or ``resume()``
``AppendLiteral``                      ``accept_literal()`` or ``reject_literal()``
=====================================  =================================================

Every other event is followed by further parsing at once (commands may be pipelined:
the engine parses ahead; answer in order).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from merpati.wire.imap.commands import AnyCommand

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "AppendChunk",
    "AppendLiteral",
    "AuthCancel",
    "AuthResponse",
    "Command",
    "ConnectionClosed",
    "Event",
    "IdleDone",
    "ProtocolError",
    "Sentinel",
]


class Sentinel(enum.Enum):
    """What ``next_event()`` returns when it has no event."""

    NEED_DATA = "NEED_DATA"  # feed more bytes (or EOF) before asking again
    PAUSED = "PAUSED"  # waiting for a session call (see the module table)

    def __repr__(self) -> str:
        return self.value


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


@dataclass(frozen=True, slots=True)
class Command:
    """A complete, syntactically valid command. ``tag`` is the client's tag (ASCII).

    The engine does not check that the command is allowed in the session's state: use
    ``merpati.wire.imap.states.ALLOWED`` (answer ``BAD`` when it is not).
    """

    tag: str
    command: AnyCommand


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """A command that cannot be parsed or exceeds a limit.

    Answer ``{tag} {status} [{code}] {text}`` (``*`` instead of the tag when ``tag`` is
    None); ``ImapServer.error_response(event)`` builds exactly that. ``status`` is
    ``BAD`` (syntax, limits) or ``NO`` (``[TOOBIG]`` APPEND literal over the message
    size, ``[BADCHARSET]``). ``code`` is the response code text without brackets, or None.

    ``fatal=True``: the engine cannot resynchronise (a non-synchronising literal over
    the limit whose octets are already on their way, a line that never ends); send the
    answer, then ``* BYE`` and close. The engine ignores further input.
    The rest of the offending command has been skipped; no ``+`` was sent for it.
    """

    tag: str | None
    text: str
    status: str = "BAD"
    code: str | None = None
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class AppendLiteral:
    """APPEND reached the literal of message number ``index`` (0-based) of ``mailbox``.

    A *decision event*: check the state (``ALLOWED``: APPEND is invalid before login),
    the mailbox, quota and size, then call
    ``accept_literal()`` (the engine sends ``+ Ready`` itself when ``synchronizing``) or
    write a tagged ``NO [TRYCREATE]`` / ``NO [OVERQUOTA]`` / ``NO [TOOBIG]`` and call
    ``reject_literal()`` (the engine skips a non-synchronizing literal's octets and the
    rest of the command). Literals over ``ImapLimits.message_size`` never reach the
    session: they are refused with ``ProtocolError(NO, TOOBIG)``.
    """

    tag: str
    mailbox: str
    index: int
    size: int
    synchronizing: bool
    binary: bool = False


@dataclass(frozen=True, slots=True)
class AppendChunk:
    """A piece of the current APPEND message's octets, only with ``stream_append=True``.

    The chunks of one message add up to ``AppendLiteral.size``; the message ends with
    the next ``AppendLiteral`` or the ``Command(Append)`` (whose ``AppendMessage.data``
    is then None).
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class IdleDone:
    """The client ended IDLE with ``DONE``: answer ``{tag} OK``. The engine is back in
    command mode. Anything else than DONE during IDLE gives ``ProtocolError`` with the
    IDLE tag (answer BAD; IDLE is over)."""

    tag: str


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """A client line during AUTHENTICATE, base64-*decoded* (``b""`` for an empty line).

    Bad base64 or an over-long line gives ``ProtocolError`` with the AUTHENTICATE tag
    instead (answer BAD; the exchange is over and the engine back in command mode).
    """

    tag: str
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthCancel:
    """The client sent ``*``: answer ``{tag} BAD`` (RFC 9051 §6.2.2); the engine is back in
    command mode."""

    tag: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed its side (``receive_eof``). ``in_command`` tells that a command
    (or a literal) was cut short."""

    in_command: bool = False


Event = (
    Command | ProtocolError | AppendLiteral | AppendChunk | IdleDone | AuthResponse
    | AuthCancel | ConnectionClosed
)

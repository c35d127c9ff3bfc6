"""The POP3 engine's states, commands and the table of which command runs in which state.

RFC 1939 §3-§7, RFC 2449 (CAPA), RFC 2595 (STLS), RFC 5034 (AUTH), RFC 6856 (UTF8).
Anything not in ``ALLOWED`` for the current state is answered ``-ERR`` by the engine and
counts as a bad command. ``SYNTAX`` says what arguments each command takes.
"""

from __future__ import annotations

import enum
from types import MappingProxyType


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    SASL = "sasl"  # inside an AUTH exchange: lines are base64 responses, not commands
    TLS_PENDING = "tls-pending"  # +OK to STLS sent; nothing is read until tls_started()
    TRANSACTION = "transaction"
    UPDATE = "update"  # QUIT in TRANSACTION: waiting for the session's commit
    CLOSED = "closed"

    __hash__ = object.__hash__  # identity hash: a table lookup per command


class Command(enum.Enum):
    USER = "USER"
    PASS = "PASS"
    AUTH = "AUTH"
    STLS = "STLS"
    CAPA = "CAPA"
    UTF8 = "UTF8"
    QUIT = "QUIT"
    STAT = "STAT"
    LIST = "LIST"
    RETR = "RETR"
    DELE = "DELE"
    NOOP = "NOOP"
    RSET = "RSET"
    TOP = "TOP"
    UIDL = "UIDL"

    __hash__ = object.__hash__


class Args(enum.Enum):
    NONE = "none"  # nothing may follow the keyword
    TEXT = "text"  # the rest of the line, required (USER, PASS keep inner spaces)
    OPT_TEXT = "opt-text"  # the rest of the line, optional (AUTH [mechanism [initial-response]])
    MSG = "msg"  # one message number
    OPT_MSG = "opt-msg"  # an optional message number
    MSG_LINES = "msg-lines"  # a message number and a line count (TOP)

    __hash__ = object.__hash__


COMMANDS = MappingProxyType({c.value: c for c in Command})

SYNTAX = MappingProxyType({
    Command.USER: Args.TEXT,
    Command.PASS: Args.TEXT,
    Command.AUTH: Args.OPT_TEXT,
    Command.STLS: Args.NONE,
    Command.CAPA: Args.NONE,
    Command.UTF8: Args.NONE,
    Command.QUIT: Args.NONE,
    Command.STAT: Args.NONE,
    Command.LIST: Args.OPT_MSG,
    Command.RETR: Args.MSG,
    Command.DELE: Args.MSG,
    Command.NOOP: Args.NONE,
    Command.RSET: Args.NONE,
    Command.TOP: Args.MSG_LINES,
    Command.UIDL: Args.OPT_MSG,
})

_AUTHORIZATION = frozenset({
    Command.USER, Command.PASS, Command.AUTH, Command.STLS, Command.CAPA, Command.UTF8, Command.QUIT,
})
_TRANSACTION = frozenset({
    Command.STAT, Command.LIST, Command.RETR, Command.DELE, Command.NOOP, Command.RSET, Command.TOP,
    Command.UIDL, Command.CAPA, Command.QUIT,
})

ALLOWED = MappingProxyType({
    State.AUTHORIZATION: _AUTHORIZATION,
    State.TRANSACTION: _TRANSACTION,
})

"""States, commands, and the tables that say which command is allowed where.

Everything here is data (read-only mappings and frozensets); ``server.py`` only looks
things up. A command missing from ``ALLOWED[state]`` is answered ``503 5.5.1`` with the
text from ``SEQUENCE_TEXT`` (RFC 5321 §4.1.4 ordering rules, §3.3 transaction).

State diagram (decision replies move the state only when they are 2xx/3xx)::

    NEED_HELO --HELO/EHLO 250--> READY --MAIL 250--> MAIL --RCPT 250--> RCPT
    RCPT --DATA 354--> DATA --CRLF.CRLF + reply--> READY
    RCPT --BDAT (accepted)--> CHUNK --chunk read--> BDAT --BDAT--> CHUNK ... LAST + reply --> READY
    READY --STARTTLS 220--> TLS --tls_started()--> NEED_HELO
    READY --AUTH 334--> AUTH --response 334--> AUTH --other reply--> READY
    any --RSET--> READY (or NEED_HELO); any --QUIT 221--> CLOSED
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from merpati.wire.smtp.events import Hello, MailFrom, RcptTo, StartTls

__all__ = [
    "ALLOWED",
    "COMMAND_STATES",
    "JUNK",
    "LAST_IN_GROUP",
    "ON_SUCCESS",
    "PRE_TLS",
    "SEQUENCE_TEXT",
    "TRANSACTION_STATES",
    "VERBS",
    "Command",
    "State",
]


class State(enum.Enum):
    NEED_HELO = "need-helo"  # after the greeting and after STARTTLS
    READY = "ready"  # greeted, no transaction
    MAIL = "mail"  # MAIL accepted, no recipient yet
    RCPT = "rcpt"  # at least one recipient accepted
    BDAT = "bdat"  # between BDAT chunks of one transaction
    DATA = "data"  # reading a DATA body
    CHUNK = "chunk"  # reading (or discarding) the octets of one BDAT chunk
    AUTH = "auth"  # SASL exchange: the next line is a client response
    TLS = "tls"  # STARTTLS accepted, waiting for tls_started(); input is dropped
    CLOSED = "closed"

    # Members are singletons compared by identity, so the identity hash is consistent with
    # equality; Enum's own __hash__ is a Python-level call, and the engine looks states and
    # commands up in dicts and frozensets several times per command line.
    __hash__ = object.__hash__


class Command(enum.Enum):
    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    BDAT = "BDAT"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    HELP = "HELP"
    VRFY = "VRFY"
    EXPN = "EXPN"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"

    __hash__ = object.__hash__  # see State.__hash__


VERBS: Mapping[bytes, Command] = MappingProxyType({c.value.encode(): c for c in Command})

_ANYTIME = frozenset(
    {
        Command.HELO,
        Command.EHLO,
        Command.RSET,
        Command.NOOP,
        Command.QUIT,
        Command.HELP,
        Command.VRFY,
        Command.EXPN,
    }
)

# "command allowed in state" (RFC 5321 §4.1.4; RFC 3030 §2; RFC 3207 §4; RFC 4954 §4)
ALLOWED: Mapping[State, frozenset[Command]] = MappingProxyType(
    {
        State.NEED_HELO: _ANYTIME,
        State.READY: _ANYTIME | {Command.MAIL, Command.STARTTLS, Command.AUTH},
        State.MAIL: _ANYTIME | {Command.RCPT},
        State.RCPT: _ANYTIME | {Command.RCPT, Command.DATA, Command.BDAT},
        State.BDAT: _ANYTIME | {Command.BDAT},
    }
)
COMMAND_STATES = frozenset(ALLOWED)
TRANSACTION_STATES = frozenset({State.MAIL, State.RCPT, State.BDAT})

# RFC 2920 §3.1: these "can only appear as the last command in a group" (plus HELO, and
# STARTTLS / AUTH whose replies change the session). BDAT is deliberately absent.
LAST_IN_GROUP = frozenset(
    {
        Command.EHLO,
        Command.HELO,
        Command.DATA,
        Command.VRFY,
        Command.EXPN,
        Command.NOOP,
        Command.QUIT,
        Command.STARTTLS,
        Command.AUTH,
    }
)

# Postfix smtpd_junk_command_limit: beyond the limit each of these counts as an error.
JUNK = frozenset({Command.NOOP, Command.RSET, Command.VRFY, Command.HELP, Command.EXPN})

# With require_tls, only these run before TLS (Postfix SMTPD_CMD_FLAG_PRE_TLS).
PRE_TLS = frozenset(
    {Command.HELO, Command.EHLO, Command.STARTTLS, Command.NOOP, Command.QUIT, Command.RSET, Command.HELP}
)

_NEED_HELO = "Error: send HELO/EHLO first"
_NEED_MAIL = "Error: need MAIL command"
_NEED_RCPT = "Error: need RCPT command"
_IN_TRANSACTION = "Error: MAIL transaction in progress"

# (command, state) → 503 text; the state None row is the command's default.
SEQUENCE_TEXT: Mapping[tuple[Command, State | None], str] = MappingProxyType(
    {
        (Command.MAIL, State.NEED_HELO): _NEED_HELO,
        (Command.MAIL, None): "Error: nested MAIL command",
        (Command.RCPT, State.NEED_HELO): _NEED_HELO,
        (Command.RCPT, State.BDAT): "Error: BDAT transaction in progress",
        (Command.RCPT, None): _NEED_MAIL,
        (Command.DATA, State.NEED_HELO): _NEED_HELO,
        (Command.DATA, State.MAIL): _NEED_RCPT,
        (Command.DATA, State.BDAT): "Error: DATA not allowed after BDAT",
        (Command.DATA, None): _NEED_MAIL,
        (Command.BDAT, State.NEED_HELO): _NEED_HELO,
        (Command.BDAT, State.MAIL): _NEED_RCPT,
        (Command.BDAT, None): _NEED_MAIL,
        (Command.STARTTLS, State.NEED_HELO): "Error: send EHLO first",
        (Command.STARTTLS, None): _IN_TRANSACTION,
        (Command.AUTH, State.NEED_HELO): "Error: send EHLO first",
        (Command.AUTH, None): _IN_TRANSACTION,
    }
)

# decision event → state after a positive (2xx/3xx) reply; a negative one keeps the state.
# DataStart, DataEnd, AuthStart/AuthData and Quit have their own transition code.
ON_SUCCESS: Mapping[type, State] = MappingProxyType(
    {Hello: State.READY, MailFrom: State.MAIL, RcptTo: State.RCPT, StartTls: State.TLS}
)

"""POP3 command-line parsing with strict argument checks (RFC 1939 §3, SECURITY-CASES POP-03).

``parse(line)`` returns the command and its parsed arguments, or raises ``CommandError``
holding the ``-ERR`` to answer. Keywords are case-insensitive. Message numbers are decimal
digits only (no sign, no spaces inside, nothing after them), at least 1 and at most
``MAX_MSGNUM``: ``RETR 0``, ``RETR -1``, ``RETR 4294967297``, ``DELE 1 2`` and ``LIST 1x``
are refused here, before any session sees them, and no value can wrap around. A TOP line
count larger than any message simply means "the whole body" (RFC 1939 §7).
"""

from __future__ import annotations

import re
from types import MappingProxyType

from merpati.wire.pop3.responses import Err
from merpati.wire.pop3.tables import COMMANDS, SYNTAX, Args, Command

__all__ = ["MAX_LINES", "MAX_MSGNUM", "CommandError", "parse", "parse_msgnum"]

MAX_MSGNUM = 2**31 - 1
MAX_LINES = 2**62  # TOP counts above this are clamped to it: more lines than any message has
_DIGITS = frozenset(b"0123456789")
_WS = b" \t"
_CONTROLS = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # NUL, CR, ...; TAB and 8-bit (UTF-8) pass


class CommandError(Exception):
    def __init__(self, response: Err) -> None:
        super().__init__(response.text)
        self.response = response


UNKNOWN = Err("Unknown command.")
BAD_CHARS = Err("Invalid characters in command.")
INVALID_MSGNUM = Err("Invalid message number.")
TOO_LARGE = Err("Message number too large.")
NOISE = Err("Noise after message number.")
MISSING_MSGNUM = Err("Missing message number.")
BAD_LINES = Err("Invalid number of lines.")
NOISE_AFTER_COMMAND = Err("Unexpected arguments.")
MISSING_ARGUMENT = Err("Missing argument.")


def parse(line: bytes) -> tuple[Command, tuple[object, ...]]:
    """``(command, args)``: args are () / (text,) / (msg or None,) / (msg, lines)."""
    if _CONTROLS.search(line):
        raise CommandError(BAD_CHARS)
    keyword, _, rest = line.partition(b" ")
    command = COMMANDS.get(keyword.decode("ascii", "replace").upper())
    if command is None:
        raise CommandError(UNKNOWN)
    return command, _ARG_PARSERS[SYNTAX[command]](rest)


def parse_msgnum(token: bytes) -> int:
    if not token or not _DIGITS.issuperset(token):
        raise CommandError(INVALID_MSGNUM)
    if len(token.lstrip(b"0")) > 10:
        raise CommandError(TOO_LARGE)
    value = int(token)
    if value == 0:
        raise CommandError(INVALID_MSGNUM)
    if value > MAX_MSGNUM:
        raise CommandError(TOO_LARGE)
    return value


def _none(rest: bytes) -> tuple[object, ...]:
    if rest.strip(_WS):
        raise CommandError(NOISE_AFTER_COMMAND)
    return ()


def _text(rest: bytes) -> tuple[object, ...]:
    if not rest.strip(_WS):
        raise CommandError(MISSING_ARGUMENT)
    return (rest,)


def _opt_text(rest: bytes) -> tuple[object, ...]:
    return (rest.strip(_WS),)


def _msg(rest: bytes) -> tuple[object, ...]:
    tokens = rest.split()
    if not tokens:
        raise CommandError(MISSING_MSGNUM)
    msg = parse_msgnum(tokens[0])
    if len(tokens) > 1:
        raise CommandError(NOISE)
    return (msg,)


def _opt_msg(rest: bytes) -> tuple[object, ...]:
    return _msg(rest) if rest.strip(_WS) else (None,)


def _msg_lines(rest: bytes) -> tuple[object, ...]:
    tokens = rest.split()
    if not tokens:
        raise CommandError(MISSING_MSGNUM)
    msg = parse_msgnum(tokens[0])
    if len(tokens) < 2 or not _DIGITS.issuperset(tokens[1]):
        raise CommandError(BAD_LINES)
    if len(tokens) > 2:
        raise CommandError(NOISE)
    digits = tokens[1].lstrip(b"0")
    lines = MAX_LINES if len(digits) > 19 else min(int(tokens[1]), MAX_LINES)
    return (msg, lines)


_ARG_PARSERS = MappingProxyType({
    Args.NONE: _none,
    Args.TEXT: _text,
    Args.OPT_TEXT: _opt_text,
    Args.MSG: _msg,
    Args.OPT_MSG: _opt_msg,
    Args.MSG_LINES: _msg_lines,
})

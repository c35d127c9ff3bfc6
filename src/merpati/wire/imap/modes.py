"""The engine's input modes, its pauses, and the commands that pause it (internal to
``server.py`` and ``literals.py``)."""

from __future__ import annotations

import enum

from merpati.wire.imap import commands as c

__all__ = ["PAUSING", "Mode", "Pause"]


class Mode(enum.Enum):
    COMMAND = 1  # reading command lines
    LITERAL = 2  # reading literal octets
    SKIP_LINE = 3  # dropping input up to the next LF
    IDLE = 4  # waiting for DONE
    AUTH = 5  # waiting for a SASL response line
    CLOSED = 6  # fatal error: input ignored

    __hash__ = object.__hash__


class Pause(enum.Enum):
    STARTTLS = 1
    COMPRESS = 2
    IDLE = 3
    AUTH = 4
    LITERAL = 5

    __hash__ = object.__hash__


PAUSING = {c.StartTls: Pause.STARTTLS, c.Compress: Pause.COMPRESS, c.Idle: Pause.IDLE,
           c.Authenticate: Pause.AUTH}

"""Literals inside a command, for ``ImapServer`` (a mixin): checking a literal header
against the limits (and, for APPEND, pausing with ``AppendLiteral`` before the message
data), then reading the literal octets (collected, or streamed as ``AppendChunk``).
The limit rules are in the invariants of ``server.py``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from merpati.wire.imap.events import AppendChunk, AppendLiteral, Event, ProtocolError, Sentinel
from merpati.wire.imap.grammar import parse_append_prefix
from merpati.wire.imap.limits import ImapLimits
from merpati.wire.imap.modes import Mode, Pause
from merpati.wire.imap.parser import HEAD_RE, ParseError, Parser

__all__ = ["CONTINUE", "LIT_TAIL", "LiteralFraming"]

LIT_TAIL = re.compile(rb"(~?)\{([0-9]+)(\+?)\}\Z")
CONTINUE = b"+ Ready for literal data\r\n"


class LiteralFraming:
    """The literal half of the framer; the state lives in ``ImapServer``'s slots."""

    __slots__ = ()

    # ImapServer's state and helpers this mixin uses (declared for type checkers only).
    limits: ImapLimits
    literal_plus: bool
    stream_append: bool
    _authenticated: bool
    _utf8: bool
    _buf: bytearray
    _start: int
    _out: list[bytes]
    _mode: Mode
    _pause: Pause | None
    _parts: list[bytes]
    _lits: list[bytes | None]
    _lit_ends: list[int]
    _text_len: int
    _total: int
    _tag: str | None
    _is_append: bool
    _append_mailbox: str | None
    _append_count: int
    _continuing: bool
    _discard: bool
    _lit_left: int
    _lit_chunks: list[bytes]
    _lit_binary: bool
    _lit_message: bool
    _lit_sync: bool
    _lit_size: int

    if TYPE_CHECKING:
        def _reset_command(self) -> None: ...
        def _need_data(self) -> Event | Sentinel: ...
        def _error(self, text: str, *, status: str = "BAD", code: str | None = None,
                   fatal: bool = False, tag: str | None = None) -> ProtocolError: ...
        def _fail_line(self, text: str, lit: re.Match[bytes] | None, *, status: str = "BAD",
                       code: str | None = None) -> Event: ...

    # -- literal headers ---------------------------------------------------------------------
    def _literal_header(self, lit: re.Match[bytes]) -> Event | None:
        binary = bool(lit.group(1))
        digits = lit.group(2)
        sync = not lit.group(3)
        lim = self.limits
        message = self._is_append and self._append_mailbox_done()
        if len(digits) > lim.max_literal_digits:
            size = -1
        else:
            size = int(digits)
        if not sync and not self.literal_plus and (size < 0 or size > lim.max_nonsync_literal):
            return self._error("Non-synchronizing literal size too large", fatal=True)
        if message:  # before login APPEND is invalid anyway: no big literal for it
            limit = lim.message_size if self._authenticated else lim.max_literal_prelogin
        elif self._authenticated:
            limit = min(lim.max_literal, lim.max_command - self._total)
        else:
            limit = min(lim.max_literal_prelogin, lim.max_command_prelogin - self._total)
        if size < 0 or size > limit:
            if not sync:
                if message:
                    return self._error("Message too large", status="NO", code="TOOBIG", fatal=True)
                return self._error("Literal too large", fatal=True)
            self._parts.pop()
            ev = self._error("Message too large" if message else "Literal too large",
                             status="NO" if message else "BAD", code="TOOBIG" if message else None)
            self._reset_command()
            return ev
        if binary and not message:
            self._parts.pop()
            return self._fail_line("literal8 is only allowed for APPEND data", lit)
        self._lit_ends.append(self._text_len)
        self._lit_left = size
        self._lit_chunks = []
        self._lit_binary = binary
        self._lit_message = message
        self._lit_sync = sync
        self._lit_size = size
        if not message:
            if sync:
                self._out.append(CONTINUE)
            self._mode = Mode.LITERAL
            return None
        if self._append_count >= lim.max_append_messages:
            self._parts.pop()
            return self._fail_line("Too many messages in APPEND", lit)
        try:
            self._append_mailbox = self._parse_append_prefix()
        except ParseError as exc:
            self._lit_ends.pop()
            self._parts.pop()
            return self._fail_line(exc.text, lit, status=exc.status, code=exc.code)
        index = self._append_count
        self._append_count += 1
        self._pause = Pause.LITERAL
        assert self._tag is not None
        return AppendLiteral(self._tag, self._append_mailbox, index, size, sync, binary)

    def _append_mailbox_done(self) -> bool:
        """Whether the literal at the end of the current line is message data (not the
        mailbox name): the mailbox is the first argument after APPEND."""
        if self._lits:
            return True
        m = HEAD_RE.match(self._parts[0])
        if m is None:
            return True
        rest = self._parts[0][m.end():]
        return not (rest.startswith(b" {") or rest.startswith(b" ~{"))

    def _parse_append_prefix(self) -> str:
        text = b"".join(self._parts)
        p = Parser(text, self._lits, self._lit_ends, limits=self.limits,
                   max_depth=self.limits.max_depth if self._authenticated else self.limits.max_depth_prelogin,
                   utf8=self._utf8)
        return parse_append_prefix(p)

    # -- literal octets ----------------------------------------------------------------------
    def _read_literal(self) -> Event | Sentinel | None:
        left = self._lit_left
        if left:
            buf = self._buf
            start = self._start
            avail = len(buf) - start
            if avail <= 0:
                return self._need_data()
            take = left if left < avail else avail
            chunk = bytes(buf[start:start + take])
            self._start = start + take
            self._lit_left = left = left - take
            if not self._discard:
                if not self._lit_binary and b"\x00" in chunk:
                    return self._literal_nul()
                if self._lit_message and self.stream_append:
                    if not left:
                        self._finish_literal(None)
                    return AppendChunk(chunk)
                self._lit_chunks.append(chunk)
            if left:
                return None
        if self._discard:
            self._mode = Mode.COMMAND
            self._continuing = True
            return None
        if self._lit_message and self.stream_append:
            self._finish_literal(None)
            return None
        chunks = self._lit_chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._lit_chunks = []
        self._finish_literal(data)
        return None

    def _finish_literal(self, data: bytes | None) -> None:
        self._lits.append(data)
        self._total += 0 if self._lit_message else self._lit_size
        self._mode = Mode.COMMAND
        self._continuing = True

    def _literal_nul(self) -> Event:
        ev = self._error("NULs not allowed in literals")
        self._discard = True
        self._lit_chunks = []
        return ev

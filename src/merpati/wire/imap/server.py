"""The sans-IO IMAP server engine: bytes in, typed events out.

Theory of operation
-------------------
The caller feeds bytes with ``receive_data`` / ``receive_eof`` and pulls events with
``next_event``, which returns an event (``events.py``), ``NEED_DATA`` or ``PAUSED``.
The engine writes only one kind of output itself: the ``+ Ready`` continuation for a
synchronizing literal it accepts. Collect it with ``data_to_send()`` after every
``next_event()`` (and after ``accept_literal()``) and write it in that order. Every
other response is the session's, built with ``merpati.wire.imap.response``.

Framing (this module, and ``literals.py`` for the literals) cuts the input into
commands: a command is a line, or several lines joined by literals (``{n}``, ``{n+}``,
``~{n}`` at the very end of a line). Then ``parser.py`` turns the framed text into a
typed command. Lines end with CRLF (a bare LF is accepted as well; a bare CR is part
of the line and a syntax error).

Invariants
----------
* A line (one line of a command, of IDLE or of AUTHENTICATE) is never buffered beyond
  its limit: past it the engine reports ``ProtocolError`` at once and drops input up
  to the next LF. A whole command is bounded by ``max_command(_prelogin)``.
* A literal size is looked at as digits first: more than ``max_literal_digits`` digits
  is refused without converting to an integer. A literal over its limit gets no ``+``
  continuation and allocates nothing. Synchronizing: ``ProtocolError`` (``NO [TOOBIG]``
  for APPEND message data, ``BAD`` otherwise) and the engine reads the next command.
  Non-synchronizing (its octets are already coming): ``ProtocolError(fatal=True)``;
  that is also how ``{n+}`` over 4096 is refused under LITERAL- (RFC 7888 §5: "MUST
  reject ... MAY close"; we close).
* NUL is refused in command lines and in literals (``BAD``, Dovecot CVE-2019-11500),
  except in a literal8 ``~{n}`` (BINARY / UTF8 APPEND data, RFC 3516 §4.4).
* Limits: lines and literals are stricter before ``set_authenticated()``, and so is
  the nesting depth (one open parenthesis, SECURITY-CASES IMAP-03).
* STARTTLS / COMPRESS / IDLE / AUTHENTICATE pause the engine after their ``Command``
  event, so bytes pipelined behind them are not interpreted before the session has
  decided. ``start_tls()`` drops everything buffered (CVE-2011-0411, IMAP-01).
* After an error inside a command the rest of the command is skipped: the rest of
  the line, and any non-synchronizing literal that follows; a synchronizing literal the
  engine has not acknowledged ends the command (the client got the tagged answer).
"""

from __future__ import annotations

import binascii
import re

from merpati.wire.imap import response as R
from merpati.wire.imap.events import (
    NEED_DATA,
    PAUSED,
    AuthCancel,
    AuthResponse,
    Command,
    ConnectionClosed,
    Event,
    IdleDone,
    ProtocolError,
    Sentinel,
)
from merpati.wire.imap.grammar import parse_command
from merpati.wire.imap.limits import ImapLimits
from merpati.wire.imap.literals import CONTINUE, LIT_TAIL, LiteralFraming
from merpati.wire.imap.modes import PAUSING, Mode, Pause
from merpati.wire.imap.parser import HEAD_RE, TAG_RE, ParseError, Parser

__all__ = ["ImapServer", "ImapUsageError"]

_DEFAULT_LIMITS = ImapLimits()
_BASE64 = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")


class ImapUsageError(RuntimeError):
    """The session called a method that does not fit the engine's state."""


class ImapServer(LiteralFraming):
    """One IMAP connection's protocol state (server side). Not thread-safe.

    Parameters
    ----------
    limits:
        :class:`ImapLimits`.
    literal_plus:
        True: LITERAL+ (RFC 7888; non-synchronizing literals up to the normal limits).
        False: LITERAL- (non-synchronizing literals of at most ``max_nonsync_literal``).
    stream_append:
        False (default): APPEND message octets are collected (at most ``message_size``
        each) into ``AppendMessage.data``. True: they come as ``AppendChunk`` events and
        ``AppendMessage.data`` is None.
    authenticated:
        Start with the post-login limits (PREAUTH connections).
    utf8:
        Start in UTF8=ACCEPT mode (see :meth:`enable_utf8`).

    Session-facing methods: :meth:`receive_data`, :meth:`receive_eof`,
    :meth:`next_event`, :meth:`data_to_send`, :meth:`set_authenticated`,
    :meth:`enable_utf8`, and the pause resolvers :meth:`resume`, :meth:`start_tls`,
    :meth:`start_compress`, :meth:`start_idle`, :meth:`continue_auth`,
    :meth:`accept_literal`, :meth:`reject_literal`. :meth:`error_response` formats a
    ``ProtocolError``.
    """

    __slots__ = (
        "_after_skip",
        "_append_count",
        "_append_mailbox",
        "_authenticated",
        "_buf",
        "_continuing",
        "_discard",
        "_eof",
        "_is_append",
        "_lit_binary",
        "_lit_chunks",
        "_lit_ends",
        "_lit_left",
        "_lit_message",
        "_lit_size",
        "_lit_sync",
        "_lits",
        "_mode",
        "_out",
        "_parts",
        "_pause",
        "_pending",
        "_special_tag",
        "_start",
        "_tag",
        "_text_len",
        "_total",
        "_utf8",
        "limits",
        "literal_plus",
        "stream_append",
    )

    def __init__(self, *, limits: ImapLimits = _DEFAULT_LIMITS, literal_plus: bool = True,
                 stream_append: bool = False, authenticated: bool = False,
                 utf8: bool = False) -> None:
        self.limits = limits
        self.literal_plus = literal_plus
        self.stream_append = stream_append
        self._authenticated = authenticated
        self._utf8 = utf8
        self._buf = bytearray()
        self._start = 0
        self._eof = False
        self._out: list[bytes] = []
        self._mode = Mode.COMMAND
        self._after_skip = Mode.COMMAND
        self._pause: Pause | None = None
        self._pending: list[Event] = []
        self._special_tag = ""  # IDLE / AUTHENTICATE tag
        self._reset_command()

    # -- command accumulation --------------------------------------------------------------
    def _reset_command(self) -> None:
        self._parts: list[bytes] = []
        self._lits: list[bytes | None] = []
        self._lit_ends: list[int] = []  # text offsets just after each literal header
        self._text_len = 0
        self._total = 0
        self._tag: str | None = None
        self._is_append = False
        self._append_mailbox: str | None = None
        self._append_count = 0
        self._continuing = False  # a literal was read: the next line continues the command
        self._discard = False  # an error was reported: drop the rest of this command
        self._lit_left = 0
        self._lit_chunks: list[bytes] = []
        self._lit_binary = False
        self._lit_message = False
        self._lit_sync = False
        self._lit_size = 0

    @property
    def in_command(self) -> bool:
        """True while a command has been started but not completed."""
        return bool(self._parts) or self._continuing or self._mode is Mode.LITERAL

    @property
    def buffered(self) -> bytes:
        """Input received but not consumed yet (for tests and diagnostics)."""
        return bytes(self._buf[self._start:])

    @property
    def closed(self) -> bool:
        """True after a fatal ProtocolError: input is ignored, close the connection."""
        return self._mode is Mode.CLOSED

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def utf8(self) -> bool:
        return self._utf8

    # -- input -------------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Append bytes from the client. Feed only after ``NEED_DATA`` to stay bounded."""
        if self._mode is Mode.CLOSED or not data:
            return
        if self._eof:
            raise ImapUsageError("receive_data after receive_eof")
        if self._start and self._start >= len(self._buf) // 2:
            del self._buf[:self._start]
            self._start = 0
        self._buf += data

    def receive_eof(self) -> None:
        """The client closed its side: ``next_event`` ends with ``ConnectionClosed``."""
        self._eof = True

    def data_to_send(self) -> bytes:
        """The engine's own output (``+`` continuations) since the last call."""
        if not self._out:
            return b""
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- session switches ---------------------------------------------------------------------
    def set_authenticated(self, value: bool = True) -> None:
        """Switch to the post-login limits (after LOGIN/AUTHENTICATE succeeded)."""
        self._authenticated = value

    def enable_utf8(self, value: bool = True) -> None:
        """UTF8=ACCEPT (RFC 6855 §3): mailbox names are raw UTF-8 from now on."""
        self._utf8 = value

    @property
    def paused(self) -> bool:
        return self._pause is not None

    def resume(self) -> None:
        """End a pause by refusing or finishing: STARTTLS/COMPRESS/IDLE refused,
        AUTHENTICATE finished (tagged answer written). Not for AppendLiteral."""
        if self._pause is None or self._pause is Pause.LITERAL:
            raise ImapUsageError("resume() without a pausing command")
        self._pause = None
        if self._mode is Mode.AUTH:
            self._mode = Mode.COMMAND

    def start_tls(self) -> None:
        """STARTTLS accepted (tagged OK written): drop every byte buffered after the
        STARTTLS line (RFC 3501 §6.2.1, CVE-2011-0411) and go on reading command lines.
        Call it before the TLS handshake; feed only decrypted bytes afterwards."""
        if self._pause is not Pause.STARTTLS:
            raise ImapUsageError("start_tls() without a pending STARTTLS")
        self._buf = bytearray()
        self._start = 0
        self._reset_command()
        self._pause = None

    def start_compress(self) -> bytes:
        """COMPRESS accepted (tagged OK written, uncompressed). Returns the bytes already
        buffered after the COMPRESS line — they are compressed: the net layer puts them
        through its inflater first and feeds the result back with ``receive_data``."""
        if self._pause is not Pause.COMPRESS:
            raise ImapUsageError("start_compress() without a pending COMPRESS")
        rest = bytes(self._buf[self._start:])
        self._buf = bytearray()
        self._start = 0
        self._pause = None
        return rest

    def start_idle(self) -> None:
        """IDLE accepted (``+ idling`` written): only ``DONE`` is valid from now on."""
        if self._pause is not Pause.IDLE:
            raise ImapUsageError("start_idle() without a pending IDLE")
        self._pause = None
        self._mode = Mode.IDLE

    def continue_auth(self) -> None:
        """A ``+ challenge`` was written: the next line is the client's SASL response."""
        if self._pause is not Pause.AUTH:
            raise ImapUsageError("continue_auth() without a pending AUTHENTICATE")
        self._pause = None
        self._mode = Mode.AUTH

    def accept_literal(self) -> None:
        """Answer to ``AppendLiteral``: read the message (queues ``+`` if synchronizing)."""
        if self._pause is not Pause.LITERAL:
            raise ImapUsageError("accept_literal() without a pending AppendLiteral")
        self._pause = None
        if self._lit_sync:
            self._out.append(CONTINUE)
        self._mode = Mode.LITERAL

    def reject_literal(self) -> None:
        """Answer to ``AppendLiteral`` after writing a tagged NO: skip the message octets
        (if non-synchronizing) and the rest of the command."""
        if self._pause is not Pause.LITERAL:
            raise ImapUsageError("reject_literal() without a pending AppendLiteral")
        self._pause = None
        if self._lit_sync:
            self._reset_command()
            self._mode = Mode.COMMAND
        else:
            self._discard = True
            self._mode = Mode.LITERAL

    @staticmethod
    def error_response(ev: ProtocolError) -> bytes:
        """The answer to a ``ProtocolError``: ``tag BAD|NO [code] text`` (``*`` untagged
        when the tag is unknown)."""
        if ev.tag is None:
            return R.untagged_status(ev.status, ev.text, ev.code)
        return R.tagged(ev.tag, ev.status, ev.text, ev.code)

    # -- events -------------------------------------------------------------------------------
    def _line_limit(self) -> int:
        if self._mode is Mode.AUTH:
            return self.limits.max_auth_line
        return self.limits.max_line if self._authenticated else self.limits.max_line_prelogin

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``."""
        while True:
            if self._pending:
                return self._pending.pop(0)
            if self._pause is not None:
                return PAUSED
            mode = self._mode
            if mode is Mode.LITERAL:
                ev = self._read_literal()
                if ev is None:
                    continue
                return ev
            if mode is Mode.CLOSED:
                return NEED_DATA
            buf = self._buf
            start = self._start
            lf = buf.find(b"\n", start)
            if mode is Mode.SKIP_LINE:
                if lf < 0:
                    del buf[:]
                    self._start = 0
                    return self._need_data()
                self._start = lf + 1
                self._mode = self._after_skip
                continue
            limit = self._line_limit()
            if lf < 0:
                if len(buf) - start >= limit:
                    self._too_long(start, -1)
                    continue
                return self._need_data()
            if lf - start + 1 > limit:
                self._too_long(start, lf)
                continue
            end = lf - 1 if lf > start and buf[lf - 1] == 0x0D else lf
            line = bytes(buf[start:end])
            self._start = lf + 1
            if mode is Mode.COMMAND:
                ev = self._command_line(line)
            elif mode is Mode.IDLE:
                ev = self._idle_line(line)
            else:
                ev = self._auth_line(line)
            if ev is not None:
                return ev

    def _need_data(self) -> Event | Sentinel:
        if self._eof:
            return ConnectionClosed(self.in_command)
        return NEED_DATA

    # -- errors ---------------------------------------------------------------------------
    def _error(self, text: str, *, status: str = "BAD", code: str | None = None,
               fatal: bool = False, tag: str | None = None) -> ProtocolError:
        ev = ProtocolError(tag if tag is not None else self._tag, text, status, code, fatal)
        if fatal:
            self._mode = Mode.CLOSED
            self._buf = bytearray()
            self._start = 0
            self._reset_command()
        return ev

    def _too_long(self, start: int, lf: int) -> None:
        """The line at ``start`` is over its limit: report it and drop it up to its LF
        (``lf``, or -1 when the LF has not arrived yet)."""
        buf = self._buf
        mode = self._mode
        if mode is Mode.COMMAND:
            tag = self._tag
            if not self._parts and not self._continuing:
                first = bytes(buf[start:start + 256])
                m = TAG_RE.match(first)
                tag = m.group().decode("ascii") if m and first[m.end():m.end() + 1] == b" " else None
            ev = ProtocolError(tag, "Command line too long")
            self._reset_command()
        elif mode is Mode.IDLE:
            ev = ProtocolError(self._special_tag, "Expected DONE")
        else:  # AUTH
            ev = ProtocolError(self._special_tag, "SASL response too long")
        self._pending.append(ev)
        if lf < 0:
            del buf[:]
            self._start = 0
            self._mode = Mode.SKIP_LINE
            self._after_skip = Mode.COMMAND
        else:
            self._start = lf + 1
            self._mode = Mode.COMMAND

    def _fail_line(self, text: str, lit: re.Match[bytes] | None, *, status: str = "BAD",
                   code: str | None = None) -> Event:
        """An error found on a command line: skip the rest of the command."""
        ev = self._error(text, status=status, code=code)
        self._skip_after_line(lit)
        return ev

    def _skip_after_line(self, lit: re.Match[bytes] | None) -> None:
        if lit is not None and lit.group(3):  # non-synchronizing: its octets are coming
            digits = lit.group(2)
            if len(digits) > self.limits.max_literal_digits or int(digits) > self._skip_bound():
                self._pending.append(self._error("Literal too large", fatal=True))
                return
            self._discard = True
            self._lit_left = int(digits)
            self._lit_chunks = []
            self._lit_message = False
            self._mode = Mode.LITERAL
            return
        self._reset_command()

    def _skip_bound(self) -> int:
        if not self._authenticated:
            return self.limits.max_literal_prelogin
        return max(self.limits.message_size, self.limits.max_literal)

    # -- command lines --------------------------------------------------------------------------
    def _command_line(self, line: bytes) -> Event | None:
        first = not self._parts and not self._continuing
        if first and not line:
            return None  # stray empty line between commands: ignored
        lit = LIT_TAIL.search(line) if line.endswith(b"}") else None
        if first:
            m = TAG_RE.match(line)
            self._tag = m.group().decode("ascii") if m and line[m.end():m.end() + 1] == b" " else None
            if lit is not None and self._tag is not None:
                hm = HEAD_RE.match(line)
                self._is_append = bool(hm) and hm.group(2).upper() == b"APPEND"
        if self._discard:
            self._continuing = False
            self._skip_after_line(lit)
            return None
        if b"\x00" in line:
            return self._fail_line("NULs not allowed in commands", lit)
        self._total += len(line) + 2
        max_command = self.limits.max_command if self._authenticated else self.limits.max_command_prelogin
        if self._total > max_command:
            return self._fail_line("Command too long", lit)
        self._parts.append(line)
        self._text_len += len(line)
        self._continuing = False
        if lit is None:
            return self._complete()
        return self._literal_header(lit)

    def _complete(self) -> Event:
        text = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        p = Parser(text, self._lits, self._lit_ends, limits=self.limits,
                   max_depth=self.limits.max_depth if self._authenticated else self.limits.max_depth_prelogin,
                   utf8=self._utf8)
        tag = self._tag
        try:
            tag, cmd = parse_command(p)
        except ParseError as exc:
            self._reset_command()
            return ProtocolError(tag, exc.text, exc.status, exc.code)
        except RecursionError:  # cannot happen with sane limits; never crash
            self._reset_command()
            return ProtocolError(tag, "Command too complex")
        self._reset_command()
        pause = PAUSING.get(type(cmd))
        if pause is not None:
            self._pause = pause
            self._special_tag = tag
        return Command(tag, cmd)

    # -- IDLE and AUTHENTICATE lines --------------------------------------------------------
    def _idle_line(self, line: bytes) -> Event:
        self._mode = Mode.COMMAND
        if line.upper() == b"DONE":
            return IdleDone(self._special_tag)
        return ProtocolError(self._special_tag, "Expected DONE")

    def _auth_line(self, line: bytes) -> Event:
        tag = self._special_tag
        if line == b"*":
            self._mode = Mode.COMMAND
            return AuthCancel(tag)
        if not _BASE64.match(line):
            self._mode = Mode.COMMAND
            return ProtocolError(tag, "Invalid base64 in SASL response")
        self._pause = Pause.AUTH
        return AuthResponse(tag, binascii.a2b_base64(line) if line else b"")

"""The sans-IO SMTP server engine (RFC 5321, 2920, 3030, 3207, 4954, 6531, 1870, 3461).

Theory of operation
-------------------
The caller feeds bytes with ``receive_data`` / ``receive_eof`` and pulls events with
``next_event``. Each call returns an event, ``NEED_DATA`` or ``PAUSED``:

* A *decision event* (``Hello``, ``MailFrom``, ``RcptTo``, ``DataStart``, ``DataEnd``,
  ``StartTls``, ``AuthStart``, ``AuthData``, ``Quit``) waits for exactly one
  ``send(reply)``; until then ``next_event`` returns ``PAUSED`` and no further input is
  looked at, so replies always leave in command order.
* Everything the engine can answer alone (NOOP, RSET, HELP, VRFY, EXPN, syntax and
  sequence errors, intermediate BDAT chunks, limits) is queued in an output buffer.
  ``send`` returns that buffer followed by the session's reply; ``data_to_send`` drains it.
  Write whatever either returns, in the order you get it.

This module holds the command loop, the command handlers and the reply bookkeeping; the
DATA/BDAT commands, the body readers and the state after ``DataStart``/``DataEnd`` are in
``body.py`` (``BodyReading``, a mixin of ``SmtpServer``).

Invariants
----------
* Only a CRLF-terminated line is a command. A line with a bare CR or LF, or a NUL, is
  answered 500 5.5.2 and never acted on (SECURITY-CASES SMTP-06). A line longer than
  ``max_line`` is answered 500 5.5.2 and discarded without buffering it (SMTP-20).
* DATA ends only at CRLF.CRLF (``data.DotReader``, SMTP-01..05). EOF inside a body gives
  ``Close(EOF_IN_DATA)``, never ``DataEnd``.
* BDAT octets are always consumed, even for a refused BDAT, so chunk content is never
  read as commands. A BDAT size that cannot be parsed, or that would push the message
  over ``message_size``, is answered and the connection closed: resynchronising is
  impossible or pointless.
* RFC 2920 (SMTP-07): without negotiated PIPELINING (before EHLO, after HELO) any input
  buffered behind a command line or behind the end of a body is a synchronisation
  error: ``554 5.5.0`` and ``Close``. With PIPELINING the same holds for the
  commands in ``tables.LAST_IN_GROUP`` when they are accepted for processing (a DATA
  refused with 503 is not: SMTP-08).
* STARTTLS: after the 220 every byte is dropped; ``tls_started()`` clears the input,
  the EHLO state, authentication and the transaction (RFC 3207 §4.2, CVE-2011-0411).
* Errors: every 4xx/5xx reply counts; at ``hard_error_limit`` the engine queues
  ``421 4.7.0`` and closes. A 2xx answer to ``DataEnd`` resets the count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from merpati.wire.smtp import replies as R
from merpati.wire.smtp.codes import Code, Enhanced
from merpati.wire.smtp.body import BodyReading
from merpati.wire.smtp.body import Result as _Result
from merpati.wire.smtp.commands import b64decode, parse_auth, parse_mail, parse_rcpt
from merpati.wire.smtp.data import ChunkReader, DotReader
from merpati.wire.smtp.events import (
    DECISION_EVENTS,
    NEED_DATA,
    PAUSED,
    AuthAbort,
    AuthData,
    AuthStart,
    Close,
    CloseReason,
    DataEnd,
    DataStart,
    Event,
    Hello,
    MailFrom,
    Quit,
    RcptTo,
    Reset,
    Sentinel,
    StartTls,
    Vrfy,
)
from merpati.wire.smtp.limits import (
    DEFAULT_EXTENSIONS,
    BareLineEndings,
    Extension,
    SmtpLimits,
    ehlo_keywords,
)
from merpati.wire.smtp.lines import LineBuffer, LineTooLong
from merpati.wire.smtp.reply import Reply, SmtpReplyError, sanitise
from merpati.wire.smtp.tables import (
    ALLOWED,
    JUNK,
    LAST_IN_GROUP,
    ON_SUCCESS,
    PRE_TLS,
    SEQUENCE_TEXT,
    TRANSACTION_STATES,
    VERBS,
    Command,
    State,
)

__all__ = ["SmtpProtocolError", "SmtpServer"]

_DEFAULT_LIMITS = SmtpLimits()  # frozen: one shared instance spares its validation per connection
# Field-less (or constant) frozen events: one shared instance each, equal to a fresh one.
_QUIT = Quit()
_RESET = Reset()


# Every connection of one listener builds the same banner and EHLO reply: memoise them per
# configuration (pure functions of immutable arguments, bounded; engines share no state).
@functools.lru_cache(maxsize=32)
def _greeting(hostname: str, banner: str) -> bytes:
    return Reply(Code.READY, None, f"{hostname} {banner}").to_bytes()


@functools.lru_cache(maxsize=32)
def _ehlo_reply(
    hostname: str, extensions: frozenset[Extension], message_size: int, starttls: bool, auth: tuple[str, ...]
) -> tuple[Reply, bytes]:
    keywords = ehlo_keywords(extensions, message_size=message_size, starttls=starttls, auth=auth)
    reply = Reply(Code.OK, None, [hostname, *keywords])
    return reply, reply.to_bytes()  # no enhanced code: the same bytes either way


class SmtpProtocolError(RuntimeError):
    """The caller broke the engine's contract (e.g. send() with nothing pending)."""


class SmtpServer(BodyReading):
    """One inbound SMTP connection, as a state machine. See the module docstring."""

    def __init__(
        self,
        *,
        hostname: str,
        limits: SmtpLimits | None = None,
        tls_available: bool = False,
        tls_active: bool = False,
        auth_mechanisms: Sequence[str] = (),
        auth_allowed: bool = False,
        bare_line_endings: BareLineEndings = BareLineEndings.REJECT,
        extensions: Iterable[Extension] = DEFAULT_EXTENSIONS,
        banner: str = "ESMTP Merpati",
        require_tls: bool = False,
    ) -> None:
        self.hostname = hostname
        self.limits = limits if limits is not None else _DEFAULT_LIMITS
        self.tls_available = tls_available
        self.auth_allowed = auth_allowed  # the session may change it (e.g. after TLS)
        self.auth_mechanisms = tuple(m.upper() for m in auth_mechanisms)
        self.bare_line_endings = bare_line_endings
        self.extensions = frozenset(extensions)
        self.banner = banner
        self.require_tls = require_tls
        self.error_count = 0
        self._enhanced = Extension.ENHANCEDSTATUSCODES in self.extensions
        self._tls_active = tls_active
        self._authenticated = False
        self._in = LineBuffer()
        self._buf = self._in.data  # the same bytearray: the body readers consume from it
        self._out = bytearray()
        self._eof = False
        self._greeted = False
        self._pregreet = False
        self._state = State.NEED_HELO
        self._pending: Event | None = None
        self._next: Event | None = None
        self._close: Close | None = None
        self._helo: Hello | None = None  # accepted HELO/EHLO
        self._last_hello: Hello | None = None
        self._junk = 0
        self._ehlo: tuple[Reply, bytes] | None = None  # the last hello_reply() and its bytes
        self._reset_transaction()

    # ---- public API ---------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def closed(self) -> bool:
        return self._close is not None

    @property
    def extended(self) -> bool:
        """True once an EHLO was accepted (cleared by tls_started)."""
        return self._helo is not None and self._helo.extended

    @property
    def pipelining(self) -> bool:
        return self.extended and Extension.PIPELINING in self.extensions

    @property
    def tls_active(self) -> bool:
        return self._tls_active

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def mail_from(self) -> MailFrom | None:
        """The accepted MAIL of the current transaction."""
        return self._mail

    @property
    def recipient_count(self) -> int:
        return self._rcpts

    @property
    def buffered(self) -> bytes:
        """Input received but not yet consumed (for tests and diagnostics)."""
        return bytes(self._buf)

    def error_delay_due(self) -> bool:
        """True from soft_error_limit errors on: the net layer should pause before replies."""
        return self.error_count >= self.limits.soft_error_limit

    def set_authenticated(self, value: bool) -> None:
        self._authenticated = value

    def greeting(self) -> bytes:
        """The 220 banner; call it before feeding any data."""
        self._greeted = True
        return _greeting(self.hostname, self.banner)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes as they arrive. ``b""`` is not EOF (use receive_eof)."""
        if self._close is not None or self._state is State.TLS or not data:
            return
        if not self._greeted:
            self._pregreet = True
        self._buf += data

    def receive_eof(self) -> None:
        self._eof = True

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""  # the usual case: the net layer asks after every event
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> Event | Sentinel:
        if self._close is not None:
            return self._close
        if self._next is not None:
            event, self._next = self._next, None
            return self._hold(event)
        if self._pending is not None or self._state is State.TLS:
            return PAUSED
        if self._pregreet:
            return self._close_with(CloseReason.PREGREET, R.SYNC_ERROR)
        # Nothing to read: every reader would answer NEED_DATA without a side effect. Not so
        # for a BDAT chunk (it may be complete with no octets) or a DATA body whose end was
        # consumed with its last chunk (DataEnd is still to come).
        reader = self._reader
        if not self._buf and not self._eof and self._state is not State.CHUNK:
            if reader is None or not reader.done:
                return NEED_DATA
        while self._close is None:
            result = _READERS[self._state](self)
            if result is not None:
                return self._hold(result)
        return self._close

    def send(self, reply: Reply) -> bytes:
        """Answer the pending decision event; returns every byte to write now, in order."""
        event = self._pending
        if event is None:
            raise SmtpProtocolError("send() called with no decision event pending")
        self._pending = None
        if _AFTER_REPLY[type(event)](self, event, reply):
            self._reply(reply)
        if reply.code == Code.UNAVAILABLE:
            self._close_with(CloseReason.SERVICE_CLOSING)  # RFC 5321 §3.8: 421 closes
        return self.data_to_send()

    def tls_started(self) -> None:
        """The TLS handshake after StartTls completed: forget everything from before."""
        if self._state is not State.TLS:
            raise SmtpProtocolError("tls_started() without an accepted STARTTLS")
        self._in.clear()
        self._tls_active = True
        self._authenticated = False
        self._helo = None
        self._reset_transaction()
        self._state = State.NEED_HELO

    def hello_reply(self) -> Reply:
        """The 250 for the pending Hello: EHLO lists the extensions, HELO is one line."""
        hello = self._last_hello
        if hello is None or not hello.extended:
            return Reply(Code.OK, None, self.hostname)
        self._ehlo = _ehlo_reply(
            self.hostname,
            self.extensions,
            self.limits.message_size,
            self.tls_available and not self._tls_active,
            self.auth_mechanisms if self.auth_allowed else (),
        )
        return self._ehlo[0]

    # ---- output helpers -----------------------------------------------------------------
    def _reply(self, reply: Reply) -> None:
        ehlo = self._ehlo
        if ehlo is not None and reply is ehlo[0]:
            self._out += ehlo[1]  # already serialised
        else:
            self._out += reply.to_bytes(enhanced=self._enhanced)
        if reply.code >= 400:
            self.error_count += 1
        if self.error_count >= self.limits.hard_error_limit and self._close is None:
            self._close_with(CloseReason.TOO_MANY_ERRORS, R.TOO_MANY_ERRORS)

    def _close_with(self, reason: str, reply: Reply | None = None) -> Close:
        if self._close is not None:
            return self._close
        if reply is not None:
            self._out += reply.to_bytes(enhanced=self._enhanced)
        self._state = State.CLOSED
        self._pending = self._next = None
        self._in.clear()
        self._close = Close(reason)
        return self._close

    def _hold(self, event: Event | Sentinel) -> Event | Sentinel:
        if isinstance(event, DECISION_EVENTS):
            self._pending = event
        if isinstance(event, Hello):
            self._last_hello = event
        return event

    def _reset_transaction(self) -> None:
        self._mail: MailFrom | None = None
        self._rcpts = 0
        self._reader: DotReader | None = None
        self._bdat_total = 0
        self._chunk: ChunkReader | None = None
        self._chunk_reply: Reply | None = None  # refused BDAT: the reply after the octets
        self._chunk_return = State.READY  # refused BDAT: the state after the octets

    def _idle_state(self) -> State:
        return State.READY if self._helo is not None else State.NEED_HELO

    @property
    def _offered(self) -> frozenset[Extension]:
        return self.extensions if self.extended else frozenset()

    def _auth_offered(self) -> bool:
        return self.extended and self.auth_allowed and bool(self.auth_mechanisms)

    # ---- line reading -------------------------------------------------------------------
    def _next_line(self) -> bytes | Close | Sentinel:
        """The next command (or SASL) line; raises SmtpReplyError for a bad line."""
        limit = self.limits.max_line
        # The limit only matters once more than max_line octets are buffered: skip the
        # AUTH check (a slice and an upper()) for the usual short command line.
        if len(self._buf) > limit and (self._state is State.AUTH or self._in.starts_with_auth()):
            limit = max(limit, self.limits.max_auth_line)
        line = self._in.next_line(limit)
        if line is not None:
            return line
        return self._close_with(CloseReason.EOF) if self._eof else NEED_DATA

    def _read_command(self) -> _Result:
        try:
            line = self._next_line()
            if not isinstance(line, bytes):
                return line
            return self._dispatch(line)
        except SmtpReplyError as err:
            self._reply(err.reply)
            return None

    def _dispatch(self, line: bytes) -> _Result:
        verb, _, arg = line.partition(b" ")
        command = VERBS.get(verb.upper())
        if self._buf and not self.pipelining and command is not Command.BDAT:
            return self._close_with(CloseReason.SYNC_ERROR, R.SYNC_ERROR)
        if command is None:
            raise SmtpReplyError(R.UNKNOWN_COMMAND)
        if command is Command.BDAT:
            return self._cmd_bdat(arg)  # must consume its octets whatever the answer
        if command in JUNK:
            self._junk += 1
            if self._junk > self.limits.max_junk_commands:
                self.error_count += 1
        if self.require_tls and not self._tls_active and command not in PRE_TLS:
            raise SmtpReplyError(R.TLS_REQUIRED)
        if command not in ALLOWED[self._state]:
            raise SmtpReplyError(self._sequence_error(command))
        if command in LAST_IN_GROUP and self._buf:
            return self._close_with(CloseReason.SYNC_ERROR, R.SYNC_ERROR)
        return _HANDLERS[command](self, arg)

    def _sequence_error(self, command: Command) -> Reply:
        text = SEQUENCE_TEXT.get((command, self._state)) or SEQUENCE_TEXT.get(
            (command, None), "Error: bad sequence of commands"
        )
        return Reply(Code.BAD_SEQUENCE, Enhanced.BAD_SEQUENCE, text)

    # ---- commands -----------------------------------------------------------------------
    def _cmd_hello(self, arg: bytes, extended: bool) -> _Result:
        # RFC 5321 §4.1.1.1; §4.1.4: an accepted EHLO resets the transaction like RSET
        name = arg.strip(b" ")
        if not name:
            raise SmtpReplyError(R.HELO_SYNTAX)
        hello = Hello(sanitise(name).decode("ascii"), extended)
        if self._state in TRANSACTION_STATES:
            self._reset_transaction()
            self._state = State.READY
            self._next = hello
            return _RESET
        return hello

    def _cmd_helo(self, arg: bytes) -> _Result:
        return self._cmd_hello(arg, False)

    def _cmd_ehlo(self, arg: bytes) -> _Result:
        return self._cmd_hello(arg, True)

    def _cmd_mail(self, arg: bytes) -> _Result:
        return parse_mail(arg, offered=self._offered, auth_offered=self._auth_offered(), limits=self.limits)

    def _cmd_rcpt(self, arg: bytes) -> _Result:
        if self._rcpts >= self.limits.max_recipients:
            raise SmtpReplyError(R.TOO_MANY_RCPTS)  # RFC 5321 §4.5.3.1.10
        utf8 = self._mail is not None and self._mail.params.smtputf8
        return parse_rcpt(arg, offered=self._offered, smtputf8=utf8, limits=self.limits)

    def _cmd_rset(self, arg: bytes) -> _Result:
        if arg:
            raise SmtpReplyError(R.NO_ARGUMENTS)
        self._reset_transaction()
        self._state = self._idle_state()
        self._reply(R.OK)
        return _RESET

    def _cmd_noop(self, arg: bytes) -> _Result:
        self._reply(R.OK)
        return None

    def _cmd_quit(self, arg: bytes) -> _Result:
        if arg:
            raise SmtpReplyError(R.NO_ARGUMENTS)
        return _QUIT

    def _cmd_help(self, arg: bytes) -> _Result:
        self._reply(R.HELP)
        return None

    def _cmd_vrfy(self, arg: bytes) -> _Result:
        # RFC 5321 §3.5.3: 252 without revealing whether the user exists
        if not arg.strip(b" "):
            raise SmtpReplyError(R.VRFY_SYNTAX)
        self._reply(R.VRFY_CANNOT)
        return Vrfy(sanitise(arg.strip(b" ")).decode("ascii"))

    def _cmd_expn(self, arg: bytes) -> _Result:
        self._reply(R.EXPN_DISABLED)
        return None

    def _cmd_starttls(self, arg: bytes) -> _Result:
        # RFC 3207 §4
        if arg:
            raise SmtpReplyError(R.NO_ARGUMENTS)
        if self._tls_active:
            raise SmtpReplyError(R.TLS_ALREADY)
        if not self.tls_available:
            raise SmtpReplyError(R.TLS_NOT_OFFERED)
        if not self.extended:
            raise SmtpReplyError(R.NEED_EHLO)
        return StartTls()

    def _cmd_auth(self, arg: bytes) -> _Result:
        # RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]
        if not self.extended:
            raise SmtpReplyError(R.NEED_EHLO)
        if self._authenticated:
            raise SmtpReplyError(R.AUTH_ALREADY)
        if not (self.auth_allowed and self.auth_mechanisms):
            raise SmtpReplyError(R.AUTH_NOT_ENABLED if self._tls_active else R.AUTH_NEEDS_TLS)
        mechanism, initial = parse_auth(arg, self.auth_mechanisms)
        return AuthStart(mechanism, initial)

    # ---- SASL reader --------------------------------------------------------------------
    def _read_auth(self) -> _Result:
        try:
            line = self._next_line()
        except LineTooLong:
            return self._auth_abort(R.AUTH_LINE_TOO_LONG)
        except SmtpReplyError as err:
            return self._auth_abort(err.reply)
        if not isinstance(line, bytes):
            return line
        if line == b"*":
            return self._auth_abort(R.AUTH_ABORTED)  # RFC 4954 §4
        decoded = b64decode(line, initial=False)
        if decoded is None:
            return self._auth_abort(R.AUTH_BAD_BASE64)
        return AuthData(decoded)

    def _auth_abort(self, reply: Reply) -> _Result:
        self._state = State.READY
        self._reply(reply)
        return AuthAbort()

    # ---- after the session's reply (True: write the reply as is) ------------------------
    def _after_envelope(self, event: Hello | MailFrom | RcptTo | StartTls, reply: Reply) -> bool:
        if not reply.is_success:
            return True  # a refusal leaves the state alone (RFC 5321 §4.1.4)
        self._state = ON_SUCCESS[type(event)]
        if isinstance(event, Hello):
            self._helo = event
        elif isinstance(event, MailFrom):
            self._mail, self._rcpts = event, 0
        elif isinstance(event, RcptTo):
            self._rcpts += 1
        else:
            self._in.clear()  # StartTls: nothing sent before the handshake may count
        return True

    def _after_auth(self, event: AuthStart | AuthData, reply: Reply) -> bool:
        self._state = State.AUTH if reply.code == Code.AUTH_CONTINUE else State.READY
        if reply.code == Code.AUTH_SUCCEEDED:
            self._authenticated = True
        return True

    def _after_quit(self, event: Quit, reply: Reply) -> bool:
        self._reply(reply)
        self._close_with(CloseReason.QUIT)
        return False


_Handler = Callable[[SmtpServer, bytes], _Result]
_HANDLERS: Mapping[Command, _Handler] = MappingProxyType(
    {
        Command.HELO: SmtpServer._cmd_helo,
        Command.EHLO: SmtpServer._cmd_ehlo,
        Command.MAIL: SmtpServer._cmd_mail,
        Command.RCPT: SmtpServer._cmd_rcpt,
        Command.DATA: SmtpServer._cmd_data,
        Command.BDAT: SmtpServer._cmd_bdat,
        Command.RSET: SmtpServer._cmd_rset,
        Command.NOOP: SmtpServer._cmd_noop,
        Command.QUIT: SmtpServer._cmd_quit,
        Command.HELP: SmtpServer._cmd_help,
        Command.VRFY: SmtpServer._cmd_vrfy,
        Command.EXPN: SmtpServer._cmd_expn,
        Command.STARTTLS: SmtpServer._cmd_starttls,
        Command.AUTH: SmtpServer._cmd_auth,
    }
)
_Reader = Callable[[SmtpServer], _Result]
_READERS: Mapping[State, _Reader] = MappingProxyType(
    {
        State.NEED_HELO: SmtpServer._read_command,
        State.READY: SmtpServer._read_command,
        State.MAIL: SmtpServer._read_command,
        State.RCPT: SmtpServer._read_command,
        State.BDAT: SmtpServer._read_command,
        State.DATA: SmtpServer._read_data,
        State.CHUNK: SmtpServer._read_chunk,
        State.AUTH: SmtpServer._read_auth,
    }
)
_AFTER_REPLY: Mapping[type, Callable[[SmtpServer, Any, Reply], bool]] = MappingProxyType(
    {
        Hello: SmtpServer._after_envelope,
        MailFrom: SmtpServer._after_envelope,
        RcptTo: SmtpServer._after_envelope,
        DataStart: SmtpServer._after_data_start,
        DataEnd: SmtpServer._after_data_end,
        StartTls: SmtpServer._after_envelope,
        AuthStart: SmtpServer._after_auth,
        AuthData: SmtpServer._after_auth,
        Quit: SmtpServer._after_quit,
    }
)

"""The sans-IO POP3 server engine (RFC 1939, 2449, 2595, 3206, 5034, 6856).

Theory of operation
-------------------
The caller feeds bytes with ``receive_data`` / ``receive_eof`` and pulls events with
``next_event``, which returns an event, ``NEED_DATA`` or ``PAUSED``:

* A *decision event* (``Login`` and the TRANSACTION commands, ``events.DECISION_EVENTS``)
  waits for exactly one ``send(response)``; until then ``next_event`` returns ``PAUSED`` and
  no further input is looked at, so responses leave in command order however many commands
  a client pipelines into one write (RFC 2449 §6.6 PIPELINING).
* Everything the engine can answer alone (USER, CAPA, UTF8, STLS, AUTH challenges, QUIT
  before login, syntax and state errors, limits) is queued in an output buffer; ``send``
  returns that buffer followed by the session's response and ``data_to_send`` drains it.
  Write whatever either returns, in the order you get it.

Invariants
----------
* The state machine is the table ``tables.ALLOWED``; a command not in it for the current
  state is answered ``-ERR`` and counts as a bad command. At ``max_bad_prelogin`` bad
  commands before login (``max_bad`` after) the engine answers ``-ERR`` and closes
  (SECURITY-CASES POP-07). After ``max_auth_failures`` refused logins it closes too.
* Lines are bounded: ``max_line`` octets, ``max_auth_line`` for AUTH commands and SASL
  responses (Dovecot's 8192); a longer line is dropped as it arrives (POP-04).
* USER, PASS and AUTH are refused with ``-ERR [AUTH]`` and not advertised unless
  ``plaintext_auth`` (a TLS connection, or one the session policy counts as secure)
  (POP-02, AUTH-06).
* STLS (RFC 2595 §4): after the ``+OK`` every byte already received is dropped and
  nothing is read until ``tls_started()``, which drops the input again and forgets the
  USER name and UTF8 mode: a command pipelined behind STLS in plaintext never runs inside
  TLS (POP-01, CVE-2011-0411 class).
* Message-number syntax is checked before any session sees a command (``parser``, POP-03).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from merpati.wire import sasl
from merpati.wire.pop3.events import (
    NEED_DATA,
    PAUSED,
    Close,
    CloseReason,
    Dele,
    Event,
    Listing,
    Login,
    Noop,
    Quit,
    Retr,
    Rset,
    Sentinel,
    StartTls,
    Stat,
    Top,
    UidListing,
)
from merpati.wire.pop3.lines import LineBuffer, LineTooLong
from merpati.wire.pop3.parser import CommandError, parse
from merpati.wire.pop3.responses import Err, MultiLine, Ok, RespCode, Response, to_bytes
from merpati.wire.pop3.tables import ALLOWED, Command, State

__all__ = ["Pop3Limits", "Pop3ProtocolError", "Pop3Server"]


class Pop3ProtocolError(Exception):
    """The caller broke the engine's contract (e.g. ``send`` without a pending decision)."""


@dataclass(frozen=True, slots=True)
class Pop3Limits:
    max_line: int = 512  # octets incl. CRLF (Dovecot POP3_RFC_MAX_LINE_LEN; RFC 2449 says 255)
    max_auth_line: int = 8192  # AUTH lines and SASL responses (Dovecot LOGIN_MAX_AUTH_BUF_SIZE)
    max_bad_prelogin: int = 3  # bad commands before login, then -ERR and close (Dovecot)
    max_bad: int = 20  # bad commands after login
    max_auth_failures: int = 3  # refused logins on one connection, then close


DEFAULT_LIMITS = Pop3Limits()

PLAINTEXT_REFUSED = Err("Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", RespCode.AUTH)
TOO_MANY_ERRORS = Err("Too many invalid commands.")
TOO_MANY_AUTH_FAILURES = Err("Too many authentication failures.", RespCode.AUTH)


class Pop3Server:
    def __init__(
        self,
        *,
        limits: Pop3Limits = DEFAULT_LIMITS,
        tls_available: bool = False,
        tls_active: bool = False,
        plaintext_auth: bool = False,
        mechanisms: tuple[str, ...] = sasl.MECHANISMS,
        implementation: str = "Merpati",
        login_delay: int = 0,
        greeting_text: str = "Merpati POP3 server ready.",
    ) -> None:
        """``plaintext_auth``: whether USER/PASS/AUTH are allowed before TLS (always after it)."""
        self.limits = limits
        self.tls_available = tls_available
        self.tls_active = tls_active
        self.plaintext_auth = plaintext_auth or tls_active
        self._mechanisms = tuple(m.upper() for m in mechanisms)
        self._implementation = implementation
        self._login_delay = login_delay
        self._greeting_text = greeting_text
        self._state = State.AUTHORIZATION
        self._buf = LineBuffer()
        self._out = bytearray()
        self._pending: Event | None = None
        self._eof = False
        self._user: str | None = None
        self.utf8 = False
        self._exchange: sasl.Exchange | None = None
        self._bad = 0
        self._auth_failures = 0
        self._close_reason: CloseReason | None = None
        self._was_logged_in = False
        self._handlers: dict[Command, Any] = {
            Command.USER: self._cmd_user, Command.PASS: self._cmd_pass, Command.AUTH: self._cmd_auth,
            Command.STLS: self._cmd_stls, Command.CAPA: self._cmd_capa, Command.UTF8: self._cmd_utf8,
            Command.QUIT: self._cmd_quit, Command.STAT: Stat, Command.LIST: Listing,
            Command.UIDL: UidListing, Command.RETR: Retr, Command.TOP: Top, Command.DELE: Dele,
            Command.NOOP: Noop, Command.RSET: Rset,
        }

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> State:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is State.CLOSED

    @property
    def logged_in(self) -> bool:
        """Whether a login succeeded on this connection (stays True once closed)."""
        return self._was_logged_in

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf.data)

    def greeting(self) -> bytes:
        return to_bytes(Ok(self._greeting_text))

    # -- input -----------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self._state in (State.CLOSED, State.TLS_PENDING):
            return  # after STLS's +OK nothing received in plaintext may ever be read
        self._buf.data += data

    def receive_eof(self) -> None:
        self._eof = True

    def next_event(self) -> Event | Sentinel:
        if self._pending is not None or self._state is State.TLS_PENDING:
            return PAUSED
        while self._state is not State.CLOSED:
            limit = self._line_limit()
            try:
                line = self._buf.next_line(limit)
            except LineTooLong:
                self._line_too_long()
                continue
            if line is None:
                if self._eof:
                    self._close(CloseReason.EOF)
                    break
                return NEED_DATA
            event = self._sasl_line(line) if self._state is State.SASL else self._command(line)
            if event is not None:
                if not isinstance(event, StartTls):
                    self._pending = event  # a decision event: nothing more is read until send()
                return event
        assert self._close_reason is not None
        return Close(self._close_reason)

    def _line_limit(self) -> int:
        if self._state is State.SASL or self._buf.data[:5].upper() == b"AUTH ":
            return self.limits.max_auth_line
        return self.limits.max_line

    def _line_too_long(self) -> None:
        if self._state is State.SASL:
            self._exchange = None
            self._state = State.AUTHORIZATION
        self._bad_command(Err("Line too long."))

    # -- output ----------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    def send(self, response: Response) -> bytes:
        """Answer the pending decision event; returns every byte to write, in order."""
        event = self._pending
        if event is None:
            raise Pop3ProtocolError("send() without a pending decision event")
        if isinstance(response, MultiLine) and isinstance(event, (Login, Quit, Dele, Rset, Noop, Stat)):
            raise Pop3ProtocolError(f"a multi-line response cannot answer {type(event).__name__}")
        self._pending = None
        data = to_bytes(response, utf8=self.utf8)
        if isinstance(event, Login):
            self._after_login(isinstance(response, Ok))
        elif isinstance(event, Quit):
            self._close(CloseReason.QUIT)
        if self._out:
            data = self.data_to_send() + data
        return data

    def _after_login(self, ok: bool) -> None:
        if ok:
            self._state = State.TRANSACTION
            self._was_logged_in = True
            self._bad = 0
            return
        self._auth_failures += 1
        if self._auth_failures >= self.limits.max_auth_failures:
            self._close(CloseReason.TOO_MANY_AUTH_FAILURES)

    def tls_started(self) -> None:
        """The TLS handshake after STLS succeeded: forget everything learned in plaintext."""
        if self._state is not State.TLS_PENDING:
            raise Pop3ProtocolError("tls_started() without an accepted STLS")
        self._buf.clear()
        self.tls_active = True
        self.plaintext_auth = True
        self._user = None
        self.utf8 = False
        self._state = State.AUTHORIZATION

    # -- commands --------------------------------------------------------------------------
    def _command(self, line: bytes) -> Event | None:
        try:
            command, args = parse(line)
        except CommandError as exc:
            self._bad_command(exc.response)
            return None
        if command not in ALLOWED[self._state]:
            pre = self._state is State.AUTHORIZATION
            self._bad_command(Err("Unknown command." if pre else "Command not valid in this state."))
            return None
        return self._handlers[command](*args)  # type: ignore[no-any-return]

    def _queue(self, response: Response) -> None:
        self._out += to_bytes(response, utf8=self.utf8)

    def _bad_command(self, response: Err) -> None:
        self._bad += 1
        limit = self.limits.max_bad if self._was_logged_in else self.limits.max_bad_prelogin
        if self._bad >= limit:
            self._queue(TOO_MANY_ERRORS)
            self._close(CloseReason.TOO_MANY_ERRORS)
        else:
            self._queue(response)

    def _close(self, reason: CloseReason) -> None:
        self._state = State.CLOSED
        self._close_reason = reason
        self._exchange = None

    def _cmd_user(self, text: bytes) -> None:
        if not self.plaintext_auth:
            return self._bad_command(PLAINTEXT_REFUSED)
        try:
            self._user = text.strip(b" \t").decode("utf-8")
        except UnicodeDecodeError:
            self._user = None
            return self._bad_command(Err("Invalid user name.", RespCode.AUTH))
        self._queue(Ok())
        return None

    def _cmd_pass(self, text: bytes) -> Login | None:
        if not self.plaintext_auth:
            return self._bad_command(PLAINTEXT_REFUSED)
        user, self._user = self._user, None
        if user is None:
            return self._bad_command(Err("No user name given."))
        try:
            password = text.decode("utf-8")
        except UnicodeDecodeError:
            password = ""  # refused by the authenticator like any wrong password
        return Login(user, password, "USER")

    def _cmd_auth(self, text: bytes) -> Login | None:
        if not self.plaintext_auth:
            return self._bad_command(PLAINTEXT_REFUSED)
        if not text:  # a mechanism listing, as many servers answer a bare AUTH
            self._queue(MultiLine.from_lines("Supported SASL mechanisms", self._mechanisms))
            return None
        name, _, initial = text.partition(b" ")
        mechanism = name.decode("ascii", "replace").upper()
        exchange = sasl.new_exchange(mechanism) if mechanism in self._mechanisms else None
        if exchange is None:
            return self._bad_command(Err("Unsupported authentication mechanism."))
        try:
            data = sasl.decode_base64(initial) if initial.strip() else None
            return self._sasl_step(exchange.start(data), exchange)
        except sasl.SaslError as exc:
            return self._bad_command(Err(f"Invalid SASL response: {exc}."))

    def _sasl_line(self, line: bytes) -> Login | None:
        exchange = self._exchange
        assert exchange is not None
        self._exchange = None
        self._state = State.AUTHORIZATION
        if line.strip() == b"*":  # RFC 5034 §4: the client cancels
            return self._bad_command(Err("Authentication cancelled."))
        try:
            return self._sasl_step(exchange.step(sasl.decode_base64(line)), exchange)
        except sasl.SaslError as exc:
            return self._bad_command(Err(f"Invalid SASL response: {exc}."))

    def _sasl_step(self, step: sasl.Step, exchange: sasl.Exchange) -> Login | None:
        if isinstance(step, sasl.Challenge):
            self._out += b"+ " + sasl.encode_base64(step.data) + b"\r\n"
            self._exchange = exchange
            self._state = State.SASL
            return None
        creds = step.credentials
        return Login(creds.username, creds.password, exchange.name, creds.authzid)

    def _cmd_stls(self) -> StartTls | None:
        if self.tls_active:
            return self._bad_command(Err("TLS is already active."))
        if not self.tls_available:
            return self._bad_command(Err("TLS is not available."))
        self._queue(Ok("Begin TLS negotiation now."))
        self._state = State.TLS_PENDING
        self._buf.clear()
        return StartTls()

    def _cmd_capa(self) -> None:
        self._queue(MultiLine.from_lines("Capability list follows", self.capabilities()))

    def capabilities(self) -> list[str]:
        """The CAPA listing for the current state (RFC 2449 §5)."""
        caps = ["CAPA", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"]
        if self._login_delay > 0:
            caps.append(f"LOGIN-DELAY {self._login_delay}")
        if self._state is State.AUTHORIZATION:
            if self.plaintext_auth:
                caps += ["USER", "SASL " + " ".join(self._mechanisms)]
            if self.tls_available and not self.tls_active:
                caps.append("STLS")
        caps.append("UTF8 USER")
        caps.append(f"IMPLEMENTATION {self._implementation}")
        return caps

    def _cmd_utf8(self) -> None:
        self.utf8 = True  # RFC 6856 §2: only in AUTHORIZATION (the table enforces it)
        self._queue(Ok("UTF8 enabled."))

    def _cmd_quit(self) -> Quit | None:
        if self._state is State.AUTHORIZATION:
            self._queue(Ok("Logging out."))
            self._close(CloseReason.QUIT)
            return None
        self._state = State.UPDATE
        return Quit()

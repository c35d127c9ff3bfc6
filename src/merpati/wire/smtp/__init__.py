"""Sans-IO SMTP server engine: bytes in, typed events out, typed replies back to bytes.

Typical session loop (the net layer owns the socket)::

    srv = SmtpServer(hostname="mx.example.test")
    write(srv.greeting())
    while not srv.closed:
        ev = srv.next_event()
        write(srv.data_to_send())          # engine's own replies, in order
        if ev is NEED_DATA:
            data = await read()
            srv.receive_data(data) if data else srv.receive_eof()
        elif isinstance(ev, Close):
            break
        elif isinstance(ev, DECISION_EVENTS):
            write(srv.send(decide(ev)))    # exactly one reply per decision event
        # DataChunk / Reset / Vrfy / AuthAbort are informative

Feed bytes only after ``NEED_DATA`` (that keeps the input buffer bounded); answer every
decision event (``DECISION_EVENTS``) with exactly one ``send``; never ``send`` for the
informative ones (``DataChunk``, ``Reset``, ``Vrfy``, ``AuthAbort``, ``Close``): that
raises ``SmtpProtocolError``. Call ``greeting()`` before feeding anything.

Policies (see ``server.py`` for the invariants, ``events.py`` for the event contract):

* Command lines end with CRLF only. A bare CR/LF or a NUL in a command line is answered
  ``500 5.5.2`` and the line is dropped (never executed, never waited on).
* Paths are strict: ``MAIL FROM:<path>`` with no space after the colon and the angle
  brackets required (``501 5.5.4`` otherwise); source routes are accepted and stripped;
  ``RCPT TO:<Postmaster>`` gives ``Address("Postmaster", "")``.
* DATA ends only at CRLF.CRLF. ``BareLineEndings.REJECT`` (default) reports a bare CR or
  LF as ``DataEnd(BARE_LINE_ENDING)`` at the real end; ``NORMALIZE`` emits CRLF instead.
  Over ``message_size`` the body is read to its end and reported ``TOO_BIG``.
* BDAT chunks are passed through verbatim (no line-ending policy: the size frames them).
  A refused BDAT still has its octets consumed; a BDAT whose size cannot be parsed or
  would exceed ``message_size`` is answered and the connection closed.
* ``DataStart(bdat=True)``: a 2xx/3xx answer is not written (the chunk gets its own reply).
* AUTH: ``AuthStart.initial_response`` and ``AuthData.line`` are base64-*decoded*; the
  engine itself answers ``*`` (501 5.0.0), bad base64 (501 5.5.2) and over-long lines
  (500 5.5.6) and then emits ``AuthAbort``. A 334 answer continues the exchange, 235
  marks the connection authenticated.
* ``Reset`` is emitted for RSET and, just before ``Hello``, when EHLO/HELO arrives during
  a transaction (the transaction is cleared whatever the answer to Hello).
* VRFY is answered ``252 2.5.0`` by the engine; ``Vrfy`` is for logging. EXPN gets 502.
* A ``421`` answer from the session closes the engine.
"""

from merpati.core.address import Address, AddressError, parse_address
from merpati.wire.smtp import replies
from merpati.wire.smtp.codes import Code, Enhanced
from merpati.wire.smtp.events import (
    DECISION_EVENTS,
    NEED_DATA,
    PAUSED,
    AuthAbort,
    AuthData,
    AuthStart,
    Close,
    CloseReason,
    DataChunk,
    DataEnd,
    DataError,
    DataStart,
    Event,
    Hello,
    MailFrom,
    MailParams,
    Quit,
    RcptParams,
    RcptTo,
    Reset,
    Sentinel,
    StartTls,
    Vrfy,
)
from merpati.wire.smtp.limits import DEFAULT_EXTENSIONS, BareLineEndings, Extension, SmtpLimits
from merpati.wire.smtp.replies import auth_challenge, ok_queued
from merpati.wire.smtp.reply import Reply, SmtpReplyError, sanitise
from merpati.wire.smtp.server import SmtpProtocolError, SmtpServer
from merpati.wire.smtp.tables import Command, State

__all__ = [
    "DECISION_EVENTS",
    "DEFAULT_EXTENSIONS",
    "NEED_DATA",
    "PAUSED",
    "Address",
    "AddressError",
    "AuthAbort",
    "AuthData",
    "AuthStart",
    "BareLineEndings",
    "Close",
    "CloseReason",
    "Code",
    "Command",
    "DataChunk",
    "DataEnd",
    "DataError",
    "DataStart",
    "Enhanced",
    "Event",
    "Extension",
    "Hello",
    "MailFrom",
    "MailParams",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Reply",
    "Reset",
    "Sentinel",
    "SmtpLimits",
    "SmtpProtocolError",
    "SmtpReplyError",
    "SmtpServer",
    "StartTls",
    "State",
    "Vrfy",
    "auth_challenge",
    "ok_queued",
    "parse_address",
    "replies",
    "sanitise",
]

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

See ``server.py`` for the invariants and ``events.py`` for the event contract.
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

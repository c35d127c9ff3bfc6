"""Sans-IO POP3 server engine: bytes in, typed events out, typed responses back to bytes.

Typical session loop (the net layer owns the socket)::

    srv = Pop3Server(tls_available=True, plaintext_auth=is_secure)
    write(srv.greeting())
    while True:
        ev = srv.next_event()
        write(srv.data_to_send())            # the engine's own answers, in order
        if ev is NEED_DATA:
            data = await read()
            srv.receive_data(data) if data else srv.receive_eof()
        elif isinstance(ev, Close):
            break
        elif isinstance(ev, StartTls):
            await upgrade(); srv.tls_started()
        else:                                # a decision event (DECISION_EVENTS)
            write(srv.send(decide(ev)))      # exactly one response per decision event

Feed bytes only after ``NEED_DATA`` (that keeps the input buffer bounded). The session sees
only ``Login`` (USER/PASS and SASL PLAIN/LOGIN arrive alike) and the TRANSACTION commands;
CAPA, USER, UTF8, STLS, the SASL challenges, syntax and state errors are the engine's.
Message bodies for RETR/TOP go out as ``MultiLine`` in CRLF form (``stuffing.to_crlf``);
the engine byte-stuffs them.
"""

from merpati.wire.pop3.events import (
    DECISION_EVENTS,
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
from merpati.wire.pop3.parser import MAX_LINES, MAX_MSGNUM
from merpati.wire.pop3.responses import Err, MultiLine, Ok, RespCode, Response, sanitise, to_bytes
from merpati.wire.pop3.server import Pop3Limits, Pop3ProtocolError, Pop3Server
from merpati.wire.pop3.stuffing import crlf_size, dot_stuff, to_crlf, top
from merpati.wire.pop3.tables import State

__all__ = [
    "DECISION_EVENTS",
    "MAX_LINES",
    "MAX_MSGNUM",
    "NEED_DATA",
    "PAUSED",
    "Close",
    "CloseReason",
    "Dele",
    "Err",
    "Event",
    "Listing",
    "Login",
    "MultiLine",
    "Noop",
    "Ok",
    "Pop3Limits",
    "Pop3ProtocolError",
    "Pop3Server",
    "Quit",
    "RespCode",
    "Response",
    "Retr",
    "Rset",
    "Sentinel",
    "StartTls",
    "Stat",
    "State",
    "Top",
    "UidListing",
    "crlf_size",
    "dot_stuff",
    "sanitise",
    "to_bytes",
    "to_crlf",
    "top",
]

"""Sans-IO IMAP server engine (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1 and extensions).

Modules
-------
* ``commands`` — the typed commands (frozen dataclasses); re-exports the two below.
* ``search_keys`` — the SEARCH key AST, SEARCH/SORT/THREAD commands.
* ``fetch_items`` — FETCH items, sections, macros and the FETCH command.
* ``seqset`` — ``SequenceSet`` (parse/format/resolve/iterate, ``*`` and ``$``).
* ``events`` — what ``ImapServer.next_event()`` returns; ``NEED_DATA`` / ``PAUSED``.
* ``states`` — ``State`` and ``ALLOWED[state] = {command classes}``.
* ``limits`` — ``ImapLimits`` (constructor parameter of the engine).
* ``server`` — ``ImapServer``, the engine (framing, limits, pauses).
* ``literals`` — ``LiteralFraming``, the engine's literal handling (limits, APPEND streaming).
* ``modes`` — the engine's input modes and pause kinds (internal).
* ``parser`` / ``grammar`` — tokens and the per-command grammar (internal).
* ``response`` — serialisers: tagged/untagged/continuation lines and IMAP values.
* ``mutf7`` — modified UTF-7 mailbox names (RFC 3501 §5.1.3).
* ``pattern`` — ``match_mailbox_pattern`` for LIST ``*``/``%`` in linear time.

Typical session loop (the net layer owns the socket)::

    eng = ImapServer(limits=ImapLimits(), literal_plus=True)
    write(b"* OK [CAPABILITY ...] ready\r\n")
    while True:
        ev = eng.next_event()
        write(eng.data_to_send())            # the engine's own "+ Ready" continuations
        if ev is NEED_DATA:
            data = await read()
            eng.receive_data(data) if data else eng.receive_eof()
        elif isinstance(ev, Command):         # check states.ALLOWED[state] first
            handle(ev.tag, ev.command)        # STARTTLS/COMPRESS/IDLE/AUTHENTICATE pause
                                              # the engine: answer, then call start_tls() /
                                              # start_compress() / start_idle() /
                                              # continue_auth(), or resume() to refuse
        elif isinstance(ev, AppendLiteral):   # check mailbox/quota, then
            eng.accept_literal()              # or write "tag NO [...]" + reject_literal()
        elif isinstance(ev, ProtocolError):
            write(eng.error_response(ev))     # tagged/untagged BAD or NO [TOOBIG]
            if ev.fatal: close()
        elif isinstance(ev, ConnectionClosed):
            close()
        # IdleDone, AuthResponse, AuthCancel, AppendChunk: see events.py

``PAUSED`` is returned while a pausing event waits for its session call (see the table
in ``events.py``). After a successful login call ``set_authenticated()`` (post-login
limits); after ``ENABLE UTF8=ACCEPT`` call ``enable_utf8()``.
"""

from merpati.wire.imap.commands import *  # noqa: F403
from merpati.wire.imap.commands import __all__ as _commands_all
from merpati.wire.imap.events import *  # noqa: F403
from merpati.wire.imap.events import __all__ as _events_all
from merpati.wire.imap.limits import ImapLimits
from merpati.wire.imap.mutf7 import MailboxNameError
from merpati.wire.imap.pattern import match_mailbox_pattern
from merpati.wire.imap.seqset import SequenceSet, SequenceSetError
from merpati.wire.imap.server import ImapServer, ImapUsageError
from merpati.wire.imap.states import ALLOWED, State

__all__ = [
    *_commands_all,
    *_events_all,
    "ALLOWED",
    "ImapLimits",
    "ImapServer",
    "ImapUsageError",
    "MailboxNameError",
    "match_mailbox_pattern",
    "SequenceSet",
    "SequenceSetError",
    "State",
]

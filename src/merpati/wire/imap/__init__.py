"""Sans-IO IMAP server engine (RFC 9051 IMAP4rev2, RFC 3501 IMAP4rev1 and extensions).

Modules
-------
* ``commands`` — the typed commands (frozen dataclasses), search-key AST, fetch items.
* ``seqset`` — ``SequenceSet`` (parse/format/resolve/iterate, ``*`` and ``$``).
* ``events`` — what ``ImapServer.next_event()`` returns; ``NEED_DATA`` / ``PAUSED``.
* ``states`` — ``State`` and ``ALLOWED[state] = {command classes}``.
* ``limits`` — ``ImapLimits`` (constructor parameter of the engine).
* ``server`` — ``ImapServer``, the engine.
* ``response`` — serialisers: tagged/untagged/continuation lines and IMAP values.
* ``mutf7`` — modified UTF-7 mailbox names (RFC 3501 §5.1.3).
* ``pattern`` — ``match_mailbox_pattern`` for LIST ``*``/``%`` in linear time.

Typical session loop (the net layer owns the socket)::

    eng = ImapServer(limits=ImapLimits(), literal_plus=True)
    write(b"* OK [CAPABILITY ...] ready\\r\\n")
    while True:
        ev = eng.next_event()
        write(eng.data_to_send())            # the engine's own "+ Ready" continuations
        if ev is NEED_DATA:
            data = await read()
            eng.receive_data(data) if data else eng.receive_eof()
        elif ev is PAUSED:
            ...                               # never happens if every pausing event
                                              # (see events.py) is answered at once
        elif isinstance(ev, Command):
            handle(ev.tag, ev.command)        # check states.ALLOWED first
        elif isinstance(ev, ProtocolError):
            write(eng.error_response(ev))     # tagged/untagged BAD or NO
            if ev.fatal: close()
        ...
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

"""IDLE (RFC 2177; RFC 9051 §6.3.13).

The handler answers ``+ idling`` (then any pending update); while the client idles the net
driver waits on both the socket and the change feed and writes ``idle_updates`` at once,
expunges included. ``DONE`` ends it with the tagged OK (``done``).
"""

from __future__ import annotations

from merpati.services.imap.session import Action, ImapSession, Reply
from merpati.wire.imap import commands as c


async def idle(s: ImapSession, tag: str, cmd: c.Idle) -> Reply:
    s.idle_tag = tag
    s.out.append(b"+ idling\r\n")
    s.out.append(await s.idle_sync())
    return Reply(action=Action.IDLE)


async def done(s: ImapSession, tag: str) -> bytes:
    """The client sent DONE: pending updates, then the tagged OK."""
    data = await s.idle_sync()
    s.idle_tag = None
    return data + s.tagged(tag, Reply(text="IDLE terminated"))

"""CAPABILITY, NOOP/CHECK, LOGOUT, ID, ENABLE, NAMESPACE, COMPRESS."""

from __future__ import annotations

from typing import Any

from merpati.services.imap.fmt import nstring, string
from merpati.services.imap.session import ENABLEABLE, Action, ImapBad, ImapNo, ImapSession, Reply
from merpati.wire.imap import commands as c
from merpati.wire.imap.states import State

SERVER_ID = (("name", "Merpati"), ("vendor", "Merpati"), ("support-url", None))


# RFC 9051 §6.1.1
async def capability(s: ImapSession, tag: str, cmd: c.Capability) -> Reply:
    s.out.append(s.capability_line())
    return Reply(text="CAPABILITY completed")


# RFC 9051 §6.1.2 (and CHECK, RFC 3501 §6.4.1: a NOOP for us; the sync runs after it)
async def noop(s: ImapSession, tag: str, cmd: Any) -> Reply:
    return Reply(text="NOOP completed" if isinstance(cmd, c.Noop) else "CHECK completed")


# RFC 9051 §6.1.3
async def logout(s: ImapSession, tag: str, cmd: c.Logout) -> Reply:
    s.out.append(b"* BYE Logging out\r\n")
    s.state = State.LOGOUT
    return Reply(text="LOGOUT completed", action=Action.LOGOUT)


# RFC 2971
async def id_(s: ImapSession, tag: str, cmd: c.Id) -> Reply:
    if cmd.params:
        s.client_id = {k[:30]: (v[:1024] if v is not None else None) for k, v in cmd.params[:30]}
    fields = b" ".join(string(k) + b" " + nstring(v) for k, v in SERVER_ID)
    s.out.append(b"* ID (" + fields + b")\r\n")
    return Reply(text="ID completed")


# RFC 5161; RFC 9051 §6.3.1
async def enable(s: ImapSession, tag: str, cmd: c.Enable) -> Reply:
    if s.selected is not None:
        raise ImapBad("ENABLE must come before SELECT")
    newly = []
    for cap in cmd.capabilities:
        name = cap.upper()
        if name == "UTF8=ONLY":
            continue
        if name not in ENABLEABLE:
            continue
        for implied in (("CONDSTORE", name) if name == "QRESYNC" else (name,)):
            if implied not in s.enabled:
                s.enabled.add(implied)
                newly.append(implied)
    if "CONDSTORE" in s.enabled:
        s.condstore = True
    names = " ".join("IMAP4rev2" if n == "IMAP4REV2" else n for n in newly if n in {x.upper() for x in cmd.capabilities})
    s.out.append(b"* ENABLED" + ((b" " + names.encode()) if names else b"") + b"\r\n")
    return Reply(text="ENABLE completed")


# RFC 2342; RFC 9051 §6.3.10
async def namespace(s: ImapSession, tag: str, cmd: c.Namespace) -> Reply:
    s.out.append(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
    return Reply(text="NAMESPACE completed")


# RFC 4978
async def compress(s: ImapSession, tag: str, cmd: c.Compress) -> Reply:
    if s.state is State.NOT_AUTHENTICATED:
        raise ImapNo("Authenticate first", "CLIENTBUG")
    if cmd.mechanism != "DEFLATE":
        raise ImapBad("Unknown compression mechanism")
    if s.compressed:
        raise ImapNo("Compression is already active", "COMPRESSIONACTIVE")
    s.compressed = True
    return Reply(text="DEFLATE active", action=Action.COMPRESS)

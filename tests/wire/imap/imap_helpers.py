"""Test helpers for the IMAP server engine: a scripted session and three-way feeding.

``Harness`` plays the session: it resolves every pause (AppendLiteral accepted, IDLE
started, AUTHENTICATE continued, STARTTLS accepted...), records events and the engine's
own output. ``three_ways`` runs one case whole, one byte at a time and with trailing
bytes that must stay untouched (STYLE.md practice 3).
"""

from __future__ import annotations

from typing import Any

from merpati.wire.imap import (
    NEED_DATA,
    PAUSED,
    AppendChunk,
    AppendLiteral,
    AuthResponse,
    Authenticate,
    Command,
    Compress,
    Idle,
    ImapLimits,
    ImapServer,
    StartTls,
)

TRAILER = b"TRAILING-BYTES"


class Harness:
    """A session that resolves pauses automatically and records the transcript.

    ``reject_append``: answer AppendLiteral with reject_literal(); ``refuse``: command
    classes whose pause is refused with resume().
    """

    def __init__(self, eng: ImapServer | None = None, *, reject_append: bool = False,
                 refuse: tuple[type, ...] = (), auth_rounds: int = 1, **kw: Any) -> None:
        self.eng = eng if eng is not None else ImapServer(**kw)
        self.reject_append = reject_append
        self.refuse = refuse
        self.auth_rounds = auth_rounds
        self.events: list[Any] = []
        self.out = bytearray()
        self._auth_left = 0

    def resolve(self, ev: Any) -> None:
        eng = self.eng
        if isinstance(ev, AppendLiteral):
            eng.reject_literal() if self.reject_append else eng.accept_literal()
        elif isinstance(ev, Command) and eng.paused:
            cmd = ev.command
            if isinstance(cmd, self.refuse):
                eng.resume()
            elif isinstance(cmd, StartTls):
                eng.start_tls()
            elif isinstance(cmd, Compress):
                eng.resume()
            elif isinstance(cmd, Idle):
                eng.start_idle()
            elif isinstance(cmd, Authenticate):
                self._auth_left = self.auth_rounds
                if self._auth_left:
                    eng.continue_auth()
                else:
                    eng.resume()
        elif isinstance(ev, AuthResponse):
            self._auth_left -= 1
            if self._auth_left > 0:
                eng.continue_auth()
            else:
                eng.resume()

    def pump(self) -> Any:
        while True:
            ev = self.eng.next_event()
            self.out += self.eng.data_to_send()
            if ev is NEED_DATA or ev is PAUSED:
                return ev
            self.events.append(ev)
            self.resolve(ev)
            self.out += self.eng.data_to_send()
            if self.eng.closed:
                return ev
            if type(ev).__name__ == "ConnectionClosed":
                return ev

    def feed(self, data: bytes, *, bytewise: bool = False) -> Any:
        if not bytewise:
            self.eng.receive_data(data)
            return self.pump()
        result = self.pump()
        for i in range(len(data)):
            self.eng.receive_data(data[i:i + 1])
            result = self.pump()
        return result

    def take(self) -> tuple[list[Any], bytes]:
        events, out = merge_chunks(self.events), bytes(self.out)
        self.events.clear()
        self.out.clear()
        return events, out


def merge_chunks(events: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for ev in events:
        if isinstance(ev, AppendChunk) and merged and isinstance(merged[-1], AppendChunk):
            merged[-1] = AppendChunk(merged[-1].data + ev.data)
        else:
            merged.append(ev)
    return merged


def harness(**kw: Any) -> Harness:
    kw.setdefault("authenticated", True)
    return Harness(**kw)


def three_ways(data: bytes, *, trailing: bool = True, **kw: Any) -> tuple[list[Any], bytes]:
    """Run ``data`` whole, byte by byte and followed by TRAILER; all must agree."""
    whole = harness(**kw)
    whole.feed(data)
    result = whole.take()
    single = harness(**kw)
    single.feed(data, bytewise=True)
    assert single.take() == result, "byte-at-a-time feeding differs"
    if trailing and not whole.eng.closed:
        tail = harness(**kw)
        tail.feed(data + TRAILER)
        assert tail.take() == result, "trailing bytes changed the result"
        assert tail.eng.buffered == TRAILER, "trailing bytes were consumed"
    return result


def one(data: bytes, **kw: Any) -> Any:
    """The single event ``data`` produces (checked three ways)."""
    events, _ = three_ways(data, **kw)
    assert len(events) == 1, events
    return events[0]


def command(data: bytes, **kw: Any) -> Any:
    ev = one(data, **kw)
    assert isinstance(ev, Command), ev
    return ev.command


def limits(**kw: Any) -> ImapLimits:
    return ImapLimits(**kw)

"""Test helpers for the SMTP server engine: a scripted session and three-way feeding.

``Harness`` plays the session: it answers every decision event (defaults below, or the
``answers`` mapping), records events and every byte written. ``three_ways`` runs one
case fed whole, one byte at a time, and with trailing bytes that must stay untouched
(h11's ``tr()``; STYLE.md practice 3).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from merpati.wire.smtp import (
    DECISION_EVENTS,
    NEED_DATA,
    PAUSED,
    AuthData,
    AuthStart,
    BareLineEndings,
    Close,
    DataChunk,
    DataEnd,
    DataError,
    DataStart,
    Hello,
    MailFrom,
    Quit,
    RcptTo,
    Reply,
    SmtpLimits,
    SmtpServer,
    StartTls,
)
from merpati.wire.smtp import (
    replies as R,
)

HOST = "mx.example.test"
TRAILER = b"TRAILING-BYTES"
Answer = Reply | Callable[[Any, SmtpServer], Reply]


def default_answer(event: Any, srv: SmtpServer) -> Reply:
    if isinstance(event, Hello):
        return srv.hello_reply()
    if isinstance(event, (MailFrom, RcptTo)):
        return R.OK
    if isinstance(event, DataStart):
        return R.BDAT_GO if event.bdat else R.DATA_GO
    if isinstance(event, DataEnd):
        if event.error is DataError.TOO_BIG:
            return R.TOO_BIG
        if event.error is DataError.BARE_LINE_ENDING:
            return R.BARE_LF
        return R.ok_queued("Q1")
    if isinstance(event, StartTls):
        return R.TLS_GO
    if isinstance(event, AuthStart):
        return R.auth_challenge("")
    if isinstance(event, AuthData):
        return R.AUTH_OK
    if isinstance(event, Quit):
        return R.BYE
    raise AssertionError(f"no default answer for {event!r}")


def make_server(**kw: Any) -> SmtpServer:
    kw.setdefault("hostname", HOST)
    return SmtpServer(**kw)


class Harness:
    """A session that answers decisions automatically and records the transcript."""

    def __init__(self, srv: SmtpServer | None = None, *, answers: Mapping[type, Answer] | None = None,
                 **kw: Any) -> None:
        self.srv = srv if srv is not None else make_server(**kw)
        self.answers = dict(answers or {})
        self.banner = self.srv.greeting()
        self.out = bytearray()
        self.events: list[Any] = []

    def answer(self, event: Any) -> Reply:
        choice = self.answers.get(type(event))
        if choice is None:
            return default_answer(event, self.srv)
        return choice if isinstance(choice, Reply) else choice(event, self.srv)

    def pump(self) -> Any:
        """Pull events until NEED_DATA, PAUSED (StartTls accepted) or Close."""
        while True:
            event = self.srv.next_event()
            self.out += self.srv.data_to_send()
            if event is NEED_DATA or event is PAUSED:
                return event
            self.events.append(event)
            if isinstance(event, Close):
                return event
            if isinstance(event, DECISION_EVENTS):
                self.out += self.srv.send(self.answer(event))

    def feed(self, data: bytes, *, bytewise: bool = False) -> Any:
        if not bytewise:
            self.srv.receive_data(data)
            return self.pump()
        result = self.pump()
        for i in range(len(data)):
            self.srv.receive_data(data[i : i + 1])
            result = self.pump()
        return result

    def eof(self) -> Any:
        self.srv.receive_eof()
        return self.pump()

    def take(self) -> tuple[list[Any], bytes]:
        """Events and output since the last take (DataChunks merged)."""
        events, out = merge_chunks(self.events), bytes(self.out)
        self.events.clear()
        self.out.clear()
        return events, out

    def replies(self) -> list[bytes]:
        return self.take()[1].split(b"\r\n")[:-1]


def merge_chunks(events: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for event in events:
        if isinstance(event, DataChunk) and merged and isinstance(merged[-1], DataChunk):
            merged[-1] = DataChunk(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def ehlo_harness(**kw: Any) -> Harness:
    h = Harness(**kw)
    h.feed(b"EHLO client.example\r\n")
    h.take()
    return h


def helo_harness(**kw: Any) -> Harness:
    h = Harness(**kw)
    h.feed(b"HELO client.example\r\n")
    h.take()
    return h


def in_data_harness(**kw: Any) -> Harness:
    """EHLO, MAIL, RCPT, DATA done: the next bytes are the body."""
    h = ehlo_harness(**kw)
    for line in (b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.net>\r\n", b"DATA\r\n"):
        h.feed(line)
    h.take()
    return h


def three_ways(prime: Callable[[], Harness], data: bytes, *, trailing: bool = True,
               eof: bool = False, chunks: bool = True) -> tuple[list[Any], bytes]:
    """Run ``data`` whole, byte by byte and (if ``trailing``) followed by TRAILER.

    All runs must give the same events (chunks merged) and output; in the trailing run
    the TRAILER must still sit unconsumed in the engine's buffer. Returns the whole run's
    (events, out). ``chunks=False`` compares without DataChunk events: for bodies that
    end in an error, how much was streamed before the error was seen depends on the
    feeding (the session discards it anyway).
    """

    def comparable(result: tuple[list[Any], bytes]) -> tuple[list[Any], bytes]:
        if chunks:
            return result
        return [e for e in result[0] if not isinstance(e, DataChunk)], result[1]

    whole = prime()
    whole.feed(data)
    if eof:
        whole.eof()
    result = whole.take()
    single = prime()
    single.feed(data, bytewise=True)
    if eof:
        single.eof()
    assert comparable(single.take()) == comparable(result), "byte-at-a-time feeding differs"
    if trailing and not eof:
        tail = prime()
        tail.feed(data + TRAILER)
        assert comparable(tail.take()) == comparable(result), "trailing bytes changed the result"
        assert tail.srv.buffered == TRAILER, "trailing bytes were consumed"
    return result


def limits(**kw: Any) -> SmtpLimits:
    return SmtpLimits(**kw)


__all__ = [
    "HOST",
    "TRAILER",
    "BareLineEndings",
    "Harness",
    "default_answer",
    "ehlo_harness",
    "helo_harness",
    "in_data_harness",
    "limits",
    "make_server",
    "merge_chunks",
    "three_ways",
]

from merpati.wire.smtp import DEFAULT_EXTENSIONS, Extension  # noqa: E402

DEFAULT_EXT_BINARY = DEFAULT_EXTENSIONS | {Extension.BINARYMIME}
__all__ += ["DEFAULT_EXT_BINARY"]

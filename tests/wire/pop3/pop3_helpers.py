"""Driving the POP3 engine in tests: whole, byte by byte, and with trailing bytes (h11's ``tr()``)."""

from __future__ import annotations

from collections.abc import Callable

from merpati.wire.pop3 import NEED_DATA, PAUSED, Close, Event, Login, Ok, Pop3Server, Response, StartTls

Answer = Callable[[Event], Response]


def ok_to_everything(event: Event) -> Response:
    return Ok()


def engine(**kw: object) -> Pop3Server:
    kw.setdefault("plaintext_auth", True)
    return Pop3Server(**kw)  # type: ignore[arg-type]


def converse(
    srv: Pop3Server, data: bytes, answer: Answer = ok_to_everything, *, step: int | None = None, eof: bool = False
) -> tuple[bytes, list[Event]]:
    """Feed ``data`` (in ``step``-byte pieces) only when the engine asks, answer every decision
    event with ``answer``; stop at NEED_DATA with no input left, at Close or at StartTls."""
    pieces = [data] if step is None else [data[i : i + step] for i in range(0, len(data), step)]
    it = iter(pieces)
    out = bytearray()
    events: list[Event] = []
    eof_sent = False
    while True:
        ev = srv.next_event()
        out += srv.data_to_send()
        if ev is NEED_DATA:
            piece = next(it, None)
            if piece is None:
                if eof and not eof_sent:
                    eof_sent = True
                    srv.receive_eof()
                    continue
                break
            if piece:
                srv.receive_data(piece)
            continue
        assert ev is not PAUSED, "engine paused although every decision was answered"
        events.append(ev)  # type: ignore[arg-type]
        if isinstance(ev, (Close, StartTls)):
            break
        out += srv.send(answer(ev))  # type: ignore[arg-type]
    return bytes(out), events


def three_ways(make: Callable[[], Pop3Server], data: bytes, answer: Answer = ok_to_everything, *, trailing: bytes = b"NO") -> tuple[bytes, list[Event]]:
    """The same conversation whole, one byte at a time and followed by an incomplete line
    (which must stay buffered, untouched); all three must agree. Returns the whole run's result."""
    whole = converse(make(), data, answer)
    single = converse(make(), data, answer, step=1)
    assert single == whole, "byte-at-a-time feeding changed the conversation"
    srv = make()
    with_tail = converse(srv, data + trailing, answer)
    assert with_tail == whole, "trailing bytes changed the conversation"
    if not srv.closed and not isinstance((whole[1] or [None])[-1], (Close, StartTls)):
        assert srv.buffered == trailing
    return whole


def logged_in(**kw: object) -> Pop3Server:
    srv = engine(**kw)
    out, events = converse(srv, b"USER a@b.test\r\nPASS pw\r\n")
    assert out == b"+OK\r\n+OK\r\n" and isinstance(events[0], Login)
    return srv


def lines(out: bytes) -> list[bytes]:
    return out.split(b"\r\n")[:-1]

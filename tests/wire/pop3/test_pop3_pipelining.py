"""RFC 2449 §6.6 PIPELINING: many commands in one write, answers in order."""

from __future__ import annotations

from pop3_helpers import converse, engine, three_ways

from merpati.wire.pop3 import Dele, Err, Listing, Login, MultiLine, Noop, Ok, Quit, Retr, Stat


def answer(ev: object) -> Ok | Err | MultiLine:
    if isinstance(ev, Retr):
        return MultiLine(f"message {ev.msg}", b"body %d\r\n" % ev.msg)
    if isinstance(ev, Listing):
        return MultiLine("2 messages", b"1 10\r\n2 20\r\n")
    if isinstance(ev, Dele) and ev.msg == 9:
        return Err("No such message.")
    return Ok(type(ev).__name__)


def test_whole_session_in_one_write() -> None:
    script = b"CAPA\r\nUSER a\r\nPASS b\r\nSTAT\r\nLIST\r\nRETR 1\r\nRETR 2\r\nDELE 9\r\nBOGUS\r\nDELE 1\r\nNOOP\r\nQUIT\r\n"
    out, events = three_ways(engine, script, answer)
    assert [type(e) for e in events] == [Login, Stat, Listing, Retr, Retr, Dele, Dele, Noop, Quit, type(events[-1])]
    text = out.decode()
    order = [
        "+OK Capability list follows", "+OK\r\n", "+OK Login", "+OK Stat", "+OK 2 messages", "+OK message 1",
        "body 1", "+OK message 2", "-ERR No such message.", "-ERR Unknown command.",
        "+OK Dele", "+OK Noop", "+OK Quit",
    ]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions), text


def test_answers_wait_for_the_session_in_order() -> None:
    srv = engine()
    converse(srv, b"USER a\r\nPASS b\r\n")
    srv.receive_data(b"RETR 1\r\nRETR 2\r\n")
    first = srv.next_event()
    assert first == Retr(1)
    assert srv.next_event().name == "PAUSED"  # type: ignore[union-attr]
    assert srv.send(Ok("one")) == b"+OK one\r\n"
    assert srv.next_event() == Retr(2)

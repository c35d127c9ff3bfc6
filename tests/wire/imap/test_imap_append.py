"""APPEND: the literal decision (AppendLiteral), continuations, MULTIAPPEND, streaming,
refusal before and after the continuation."""

from __future__ import annotations

import pytest
from imap_helpers import Harness, harness, limits, three_ways

from merpati.wire.imap import (
    PAUSED,
    Append,
    AppendChunk,
    AppendLiteral,
    AppendMessage,
    Command,
    ImapServer,
    ImapUsageError,
    Noop,
    ProtocolError,
)

CONT = b"+ Ready for literal data\r\n"


def test_append_sync_decision_then_continuation() -> None:
    eng = ImapServer(authenticated=True)
    eng.receive_data(b"a APPEND Drafts (\\Draft) {5}\r\n")
    ev = eng.next_event()
    assert ev == AppendLiteral("a", "Drafts", 0, 5, True, False)
    assert eng.data_to_send() == b""  # nothing before the session decided
    assert eng.next_event() is PAUSED
    eng.accept_literal()
    assert eng.data_to_send() == CONT
    eng.receive_data(b"hello\r\n")
    ev = eng.next_event()
    assert ev == Command("a", Append("Drafts", (AppendMessage(("\\Draft",), None, 5, b"hello"),)))


def test_append_rejected_before_continuation() -> None:
    events, out = three_ways(b"a APPEND Nope {5}\r\nb NOOP\r\n", reject_append=True)
    assert events == [AppendLiteral("a", "Nope", 0, 5, True), Command("b", Noop())]
    assert out == b""


def test_append_nonsync_rejected_skips_octets_and_rest() -> None:
    data = b"a APPEND Nope {5+}\r\nb NOO (\\Seen) {4+}\r\nc NO\r\nb NOOP\r\n"
    events, out = three_ways(data, reject_append=True)
    assert events == [AppendLiteral("a", "Nope", 0, 5, False), Command("b", Noop())]
    assert out == b""


def test_append_nonsync_rejected_then_sync_literal_ends_command() -> None:
    data = b"a APPEND Nope {5+}\r\nhello {4}\r\nb NOOP\r\n"
    events, out = three_ways(data, reject_append=True)
    assert events == [AppendLiteral("a", "Nope", 0, 5, False), Command("b", Noop())]
    assert out == b""


def test_multiappend_each_message_decided() -> None:
    data = b"a APPEND INBOX {2}\r\nm1 (\\Seen) {2+}\r\nm2 ~{2}\r\nm3\r\n"
    events, out = three_ways(data)
    assert events[:3] == [AppendLiteral("a", "INBOX", 0, 2, True), AppendLiteral("a", "INBOX", 1, 2, False),
                          AppendLiteral("a", "INBOX", 2, 2, True, True)]
    assert events[3].command.messages == (
        AppendMessage((), None, 2, b"m1"), AppendMessage(("\\Seen",), None, 2, b"m2"),
        AppendMessage((), None, 2, b"m3", binary=True))
    assert out == CONT * 2


def test_multiappend_second_message_rejected() -> None:
    h = Harness(authenticated=True)
    h.eng.receive_data(b"a APPEND INBOX {2}\r\n")
    assert isinstance(h.eng.next_event(), AppendLiteral)
    h.eng.accept_literal()
    h.eng.receive_data(b"m1 {3}\r\n")
    ev = h.eng.next_event()
    assert ev == AppendLiteral("a", "INBOX", 1, 3, True)
    h.eng.reject_literal()  # e.g. over quota with the first message
    h.eng.receive_data(b"b NOOP\r\n")
    assert h.eng.next_event() == Command("b", Noop())


def test_append_mailbox_as_literal() -> None:
    events, out = three_ways(b"a APPEND {6}\r\nSent/x {1}\r\nz\r\n")
    assert events[0] == AppendLiteral("a", "Sent/x", 0, 1, True)
    assert events[1].command.mailbox == "Sent/x"
    assert out == CONT * 2


def test_append_bad_mailbox_refused_before_decision() -> None:
    events, out = three_ways(b'a APPEND "&Jjo" {1}\r\nb NOOP\r\n')
    assert isinstance(events[0], ProtocolError) and events[0].tag == "a"
    assert events[1] == Command("b", Noop())
    assert out == b""


def test_append_too_many_messages() -> None:
    lim = limits(max_append_messages=2)
    events, _ = three_ways(b"a APPEND INBOX {1}\r\nx {1}\r\ny {1}\r\nb NOOP\r\n", limits=lim)
    assert isinstance(events[2], ProtocolError)
    assert events[-1] == Command("b", Noop())


def test_append_streaming_chunks() -> None:
    body = b"Subject: x\r\n\r\n" + b"y" * 1000 + b"\r\n"
    data = b"a APPEND INBOX {%d}\r\n" % len(body) + body + b" {3}\r\nabc\r\n"
    events, out = three_ways(data, stream_append=True)
    assert events[0] == AppendLiteral("a", "INBOX", 0, len(body), True)
    assert events[1] == AppendChunk(body)
    assert events[2] == AppendLiteral("a", "INBOX", 1, 3, True)
    assert events[3] == AppendChunk(b"abc")
    assert events[4].command.messages == (AppendMessage((), None, len(body), None),
                                          AppendMessage((), None, 3, None))


def test_append_streaming_bytewise_chunks_are_small() -> None:
    h = harness(stream_append=True)
    h.feed(b"a APPEND INBOX {4}\r\nabcd\r\n", bytewise=True)
    chunks = [e for e in h.events if isinstance(e, AppendChunk)]
    assert [c.data for c in chunks] == [b"a", b"b", b"c", b"d"]


def test_append_empty_message() -> None:
    events, _ = three_ways(b"a APPEND INBOX {0}\r\n\r\n", stream_append=True)
    assert events[-1].command.messages == (AppendMessage((), None, 0, None),)


def test_append_utf8_literal8() -> None:
    events, _ = three_ways(b"a APPEND INBOX UTF8 (~{4}\r\n\xe2\x82\xac!)\r\n")
    assert events[-1].command.messages == (AppendMessage((), None, 4, "\u20ac!".encode(), True, True),)


def test_literal_decision_methods_misuse() -> None:
    eng = ImapServer()
    for method in (eng.accept_literal, eng.reject_literal, eng.resume, eng.start_tls, eng.start_idle,
                   eng.continue_auth, eng.start_compress):
        with pytest.raises(ImapUsageError):
            method()

"""BDAT / CHUNKING (RFC 3030)."""

from __future__ import annotations

import pytest
from smtp_helpers import DEFAULT_EXT_BINARY, ehlo_harness, helo_harness, three_ways

from merpati.core.address import Address
from merpati.wire.smtp import (
    Close,
    DataChunk,
    DataEnd,
    DataStart,
    MailFrom,
    MailParams,
    Reset,
    SmtpLimits,
    State,
)
from merpati.wire.smtp import (
    replies as R,
)


def in_txn(**kw):
    h = ehlo_harness(**kw)
    h.feed(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
    h.take()
    return h


def test_three_chunks() -> None:
    data = b"BDAT 5\r\nhelloBDAT 3\r\n woBDAT 3 LAST\r\nrld"
    events, out = three_ways(in_txn, data)
    assert events == [DataStart(bdat=True), DataChunk(b"hello world"), DataEnd(None, 11)]
    assert out == (b"250 2.0.0 5 octets received\r\n250 2.0.0 3 octets received\r\n"
                   b"250 2.0.0 Ok: queued as Q1\r\n")


def test_bdat_zero_last_is_valid() -> None:
    events, out = three_ways(in_txn, b"BDAT 0 LAST\r\n")
    assert events == [DataStart(bdat=True), DataEnd(None, 0)]
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n"


def test_chunk_content_is_binary_and_never_commands() -> None:
    chunk = b"x\r\n.\r\nMAIL FROM:<evil@x>\r\n\x00\n.\n"
    events, out = three_ways(in_txn, b"BDAT %d LAST\r\n" % len(chunk) + chunk)
    assert events == [DataStart(bdat=True), DataChunk(chunk), DataEnd(None, len(chunk))]
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n"


def test_last_keyword_case_insensitive_and_next_transaction() -> None:
    h = in_txn()
    h.feed(b"BDAT 2 last\r\nhiMAIL FROM:<c@d.example>\r\n")
    events, out = h.take()
    assert events[-1] == MailFrom(Address("c", "d.example"), MailParams())
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n"


def test_data_after_bdat_is_refused() -> None:
    h = in_txn()
    h.feed(b"BDAT 3\r\nabc")
    h.take()
    h.feed(b"DATA\r\n")
    assert h.take() == ([], b"503 5.5.1 Error: DATA not allowed after BDAT\r\n")
    assert h.srv.state is State.BDAT


@pytest.mark.parametrize(
    ("prime", "reply"),
    [
        (ehlo_harness, b"503 5.5.1 Error: need MAIL command"),
        (helo_harness, b"503 5.5.1 Error: CHUNKING not negotiated"),
    ],
)
def test_refused_bdat_discards_its_octets(prime, reply: bytes) -> None:
    chunk = b"RSET\r\nQUIT\r\nxx"
    events, out = three_ways(prime, b"BDAT %d LAST\r\n" % len(chunk) + chunk, trailing=prime is ehlo_harness)
    assert events == []  # nothing in the chunk was executed
    assert out == reply + b"\r\n"


def test_bdat_without_rcpt() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    h.take()
    h.feed(b"BDAT 4\r\nNOOP")
    assert h.take() == ([], b"503 5.5.1 Error: need RCPT command\r\n")
    assert h.srv.state is State.MAIL


@pytest.mark.parametrize(
    "line",
    [b"BDAT", b"BDAT x", b"BDAT -1", b"BDAT 1 2", b"BDAT 1 LAST x", b"BDAT  1", b"BDAT 1 MORE",
     b"BDAT 123456789012345678901"],
)
def test_unparseable_size_closes(line: bytes) -> None:
    events, out = three_ways(in_txn, line + b"\r\n", trailing=False)
    assert isinstance(events[-1], Close) and events[-1].reason == "protocol-error"
    assert out == b"501 5.5.4 Syntax: BDAT size [LAST]\r\n"


def test_chunk_size_overflow_closes() -> None:
    events, out = three_ways(in_txn, b"BDAT 99999999999999999999 LAST\r\n", trailing=False)
    assert isinstance(events[-1], Close)
    assert out == b"552 5.3.4 Message size exceeds fixed limit\r\n"


def test_cumulative_size_over_limit_closes() -> None:
    h = in_txn(limits=SmtpLimits(message_size=10))
    h.feed(b"BDAT 6\r\n123456BDAT 6 LAST\r\n")
    events, out = h.take()
    assert isinstance(events[-1], Close)
    assert out == b"250 2.0.0 6 octets received\r\n552 5.3.4 Message size exceeds fixed limit\r\n"


def test_session_refuses_first_chunk() -> None:
    h = in_txn(answers={DataStart: R.TEMP_FAIL})
    h.feed(b"BDAT 3\r\nabcBDAT 3 LAST\r\ndef")
    events, out = h.take()
    assert events == [DataStart(bdat=True)]
    assert out == (b"451 4.3.0 Temporary failure, please try again later\r\n"
                   b"503 5.5.1 Error: need MAIL command\r\n")
    assert h.srv.state is State.READY and h.srv.buffered == b""


def test_rset_between_chunks() -> None:
    h = in_txn()
    h.feed(b"BDAT 3\r\nabcRSET\r\n")
    events, out = h.take()
    assert events[-1] == Reset()
    assert out.endswith(b"250 2.0.0 Ok\r\n") and h.srv.state is State.READY


def test_eof_inside_chunk() -> None:
    events, out = three_ways(in_txn, b"BDAT 10 LAST\r\nabc", eof=True)
    assert isinstance(events[-1], Close) and events[-1].reason == "eof-in-data"
    assert not any(isinstance(e, DataEnd) for e in events) and out == b""


def test_binarymime_with_bdat() -> None:
    h = ehlo_harness(extensions=DEFAULT_EXT_BINARY)
    h.feed(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n")
    h.take()
    h.feed(b"BDAT 3 LAST\r\n\x00\xff\n")
    assert h.take() == ([DataStart(bdat=True), DataChunk(b"\x00\xff\n"), DataEnd(None, 3)],
                        b"250 2.0.0 Ok: queued as Q1\r\n")

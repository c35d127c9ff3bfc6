"""The outbound client's sans-IO parts: reply parsing (whole, byte by byte, trailing data),
capabilities, xtext, and dot-stuffing (SECURITY-CASES SMTP-33) with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.queue.smtp_wire import (
    ReplyError,
    ReplyParser,
    dot_stuff,
    dot_unstuff,
    normalize_line_endings,
    orcpt_param,
    parse_ehlo,
    size_limit,
    xtext,
)

EHLO = b"250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-DSN\r\n250 SMTPUTF8\r\n"


def feed_all(chunks: list[bytes]) -> list:
    parser = ReplyParser()
    out = []
    for chunk in chunks:
        parser.feed(chunk)
        while (reply := parser.next_reply()) is not None:
            out.append(reply)
    return out


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_multiline_reply(how: str) -> None:
    chunks = [EHLO] if how == "whole" else [EHLO[i : i + 1] for i in range(len(EHLO))]
    (reply,) = feed_all(chunks)
    assert reply.code == 250 and reply.lines[0] == "mx.b.test"
    caps = parse_ehlo(reply)
    assert caps == {"PIPELINING": "", "SIZE": "1000", "DSN": "", "SMTPUTF8": ""}
    assert size_limit(caps) == 1000


def test_trailing_data_stays_for_the_next_reply() -> None:
    parser = ReplyParser()
    parser.feed(b"250 2.1.0 Ok\r\n550 5.1.1 <x@y>: User unknown\r\n354 go")
    first, second = parser.next_reply(), parser.next_reply()
    assert first.code == 250 and first.enhanced == "2.1.0"
    assert second.code == 550 and second.enhanced == "5.1.1" and second.is_permanent
    assert parser.next_reply() is None
    parser.feed(b" ahead\r\n")
    assert parser.next_reply().code == 354


@pytest.mark.parametrize(
    "garbage",
    [b"hello\r\n", b"25 ok\r\n", b"250x\r\n", b"\x00\xff\r\n", b"650 nope\r\n", b"250-a\r\n251 b\r\n", b"x" * 5000],
)
def test_garbage_is_an_error(garbage: bytes) -> None:
    with pytest.raises(ReplyError):
        feed_all([garbage])


def test_reply_without_text_and_bare_lf() -> None:
    (a, b) = feed_all([b"250\r\n221 bye\n"])
    assert a.code == 250 and a.lines == ("",) and b.code == 221


def test_enhanced_code_must_match_the_class() -> None:
    (r,) = feed_all([b"550 2.0.0 odd\r\n"])
    assert r.enhanced is None


def test_too_many_lines_is_an_error() -> None:
    with pytest.raises(ReplyError):
        feed_all([b"250-x\r\n" * 300])


def test_xtext_and_orcpt() -> None:
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert orcpt_param("rfc822;bob+tag@b.test") == "rfc822;bob+2Btag@b.test"
    assert orcpt_param("nonsense") is None


@pytest.mark.parametrize(
    ("body", "wire"),
    [
        (b"foo\n.\n", b"foo\r\n..\r\n"),  # Dovecot test-ostream-dot vectors
        (b".foo\n.\nfoo\n", b"..foo\r\n..\r\nfoo\r\n"),
        (b"a\r.\r\n", b"a\r\n..\r\n"),  # a dot after a bare CR (CVE-2026-33604)
        (b"a\n.\r\nb", b"a\r\n..\r\nb\r\n"),
        (b"x\r\n.\r\n", b"x\r\n..\r\n"),
        (b"no end", b"no end\r\n"),
        (b"", b""),
    ],
)
def test_dot_stuff_vectors(body: bytes, wire: bytes) -> None:
    assert dot_stuff(body) == wire


@settings(max_examples=300)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x y"]), max_size=40))
def test_dot_stuff_round_trip_and_no_early_end(parts: list[bytes]) -> None:
    body = b"".join(parts)
    wire = dot_stuff(body) + b".\r\n"
    # the only end of data is the final one, and no ambiguous variant survives
    assert (b"\r\n" + wire).find(b"\r\n.\r\n") == len(wire) - 3
    stuffed = dot_stuff(body)
    # no bare CR or LF at all, so none of the SMTP-01..03 variants can appear
    assert b"\r" not in stuffed.replace(b"\r\n", b"") and b"\n" not in stuffed.replace(b"\r\n", b"")
    assert dot_unstuff(stuffed) == normalize_line_endings(body)

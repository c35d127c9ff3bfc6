"""SECURITY-CASES POP-03: message-number abuse is refused by the parser, no crash, no wraparound."""

from __future__ import annotations

import pytest
from pop3_helpers import converse, logged_in, three_ways

from merpati.wire.pop3 import MAX_LINES, MAX_MSGNUM, Ok, Retr, Top


@pytest.mark.parametrize(
    "command, answer",
    [
        (b"RETR 0", b"-ERR Invalid message number."),
        (b"RETR -1", b"-ERR Invalid message number."),
        (b"RETR +1", b"-ERR Invalid message number."),
        (b"RETR 0x1", b"-ERR Invalid message number."),
        (b"RETR 1.0", b"-ERR Invalid message number."),
        (b"RETR \xd9\xa1", b"-ERR Invalid message number."),  # Arabic-Indic digit one
        (b"RETR 4294967297", b"-ERR Message number too large."),
        (b"RETR 2147483648", b"-ERR Message number too large."),
        (b"RETR " + b"9" * 400, b"-ERR Message number too large."),
        (b"RETR", b"-ERR Missing message number."),
        (b"DELE 1 2", b"-ERR Noise after message number."),
        (b"LIST 1x", b"-ERR Invalid message number."),
        (b"UIDL 1 x", b"-ERR Noise after message number."),
        (b"TOP 1 -1", b"-ERR Invalid number of lines."),
        (b"TOP 1", b"-ERR Invalid number of lines."),
        (b"TOP 1 2 3", b"-ERR Noise after message number."),
        (b"TOP 0 1", b"-ERR Invalid message number."),
        (b"STAT 1", b"-ERR Unexpected arguments."),
    ],
)
def test_message_number_abuse(command: bytes, answer: bytes) -> None:
    out, events = three_ways(logged_in, command + b"\r\n")
    assert out == answer + b"\r\n"
    assert events == []


def test_largest_message_number_passes_to_the_session() -> None:
    _, events = converse(logged_in(), b"RETR %d\r\n" % MAX_MSGNUM)
    assert events == [Retr(MAX_MSGNUM)]


def test_leading_zeros_are_fine() -> None:
    _, events = converse(logged_in(), b"RETR 0000000000000000000000007\r\n")
    assert events == [Retr(7)]


def test_huge_top_line_count_means_the_whole_message() -> None:
    _, events = converse(logged_in(), b"TOP 1 99999999999999\r\nTOP 1 " + b"9" * 300 + b"\r\n", lambda ev: Ok())
    assert events == [Top(1, 99999999999999), Top(1, MAX_LINES)]

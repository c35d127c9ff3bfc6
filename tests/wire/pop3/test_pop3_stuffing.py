"""CRLF form, exact sizes, byte-stuffing and TOP (RFC 1939 §3, §7), checked against slow references."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.wire.pop3 import MultiLine, crlf_size, dot_stuff, to_bytes, to_crlf, top

TEXTS = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b"From ", b"\x00", b"\xc3\xa9", b" "]), max_size=40).map(b"".join)


def ref_to_crlf(data: bytes) -> bytes:
    lines = re.split(rb"\r\n|\r|\n", data)
    if data and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines) if data else b""


def ref_stuff(body: bytes) -> bytes:
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def unstuff_multiline(wire: bytes) -> bytes:
    """A client's view: lines after the status line until ".", leading dot removed."""
    assert wire.endswith(b"\r\n.\r\n") or wire.endswith(b"\r\n.\r\n")
    status, _, rest = wire.partition(b"\r\n")
    body = rest[: -3]
    lines = body.split(b"\r\n")[:-1] if body else []
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


def test_examples() -> None:
    assert to_crlf(b"") == b""
    assert to_crlf(b"a\nb") == b"a\r\nb\r\n"
    assert to_crlf(b"a\rb\r\n") == b"a\r\nb\r\n"
    assert to_crlf(b"a\r\n\r\n") == b"a\r\n\r\n"
    assert to_crlf(b"a\n\r") == b"a\r\n\r\n"
    assert dot_stuff(b".a\r\n..b\r\nc.\r\n") == b"..a\r\n...b\r\nc.\r\n"
    assert crlf_size(b"a\n") == 3 and crlf_size(b"a") == 3 and crlf_size(b"") == 0


def test_clean_message_is_not_copied() -> None:
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert to_crlf(data) is data
    assert dot_stuff(data) is data


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_to_crlf_and_size_match_the_reference(data: bytes) -> None:
    assert to_crlf(data) == ref_to_crlf(data)
    assert crlf_size(data) == len(ref_to_crlf(data))


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_stuffing_round_trips_and_never_ends_early(data: bytes) -> None:
    body = to_crlf(data)
    stuffed = dot_stuff(body)
    assert stuffed == ref_stuff(body)
    wire = to_bytes(MultiLine("x", body))
    assert wire.count(b"\r\n.\r\n") == 1 or (body == b"" and wire == b"+OK x\r\n.\r\n")
    assert unstuff_multiline(wire) == body


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.integers(min_value=0, max_value=10))
def test_top_matches_the_reference(data: bytes, n: int) -> None:
    msg = to_crlf(data)
    lines = msg.split(b"\r\n")[:-1]
    if b"" in lines:
        blank = lines.index(b"")
        expected_lines = lines[: blank + 1 + n]
    else:
        expected_lines = lines
    expected = b"".join(line + b"\r\n" for line in expected_lines)
    assert top(msg, n) == expected


def test_top_of_message_without_body() -> None:
    assert top(b"Subject: x\r\n", 5) == b"Subject: x\r\n"
    assert top(b"\r\nbody\r\nmore\r\n", 1) == b"\r\nbody\r\n"

"""The speed-ups of the parser must give exactly what the plain code gave: each fast
path is compared here with the straightforward version it replaces."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.mime import MimeLimitError, MimeLimits, parse_message
from merpati.mime.headers import split_fields
from merpati.mime.preview import _collapse

WORDS = st.lists(
    st.one_of(st.text(max_size=12), st.sampled_from([" ", "\t", "\r\n", "\u2003", "\x1c", "  \n "])),
    max_size=400,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(WORDS, st.integers(0, 300))
def test_collapse_matches_split_join(text: str, chars: int) -> None:
    assert _collapse(text, chars) == " ".join(text.split())[:chars]


def test_collapse_long_inputs() -> None:
    for text in ("a " * 5000, " " * 3000 + "x" * 10, "word" * 1000, "a\u00a0b " * 900):
        for chars in (0, 1, 63, 200, 5000):
            assert _collapse(text, chars) == " ".join(text.split())[:chars]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600), st.text(max_size=40))
def test_to_json_matches_dumps(data: bytes, subject: str) -> None:
    message = b"Subject: " + subject.encode("utf-8", "replace") + b"\r\n\r\n" + data
    pm = parse_message(message, limits=MimeLimits())
    assert pm.to_json() == json.dumps(pm.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _reference_split_fields(block: bytes, limits: MimeLimits) -> list[list[str]]:
    """The original per-line bytes implementation of headers.split_fields."""
    fields: list[list[str]] = []
    name: bytes | None = None
    chunks: list[bytes] = []
    size = 0

    def field() -> list[str]:
        value = b"".join(chunks)
        return [name.decode("latin-1"), value.lstrip(b" \t").decode("latin-1")]  # type: ignore[union-attr]

    for line in block.split(b"\n"):
        if line[-1:] == b"\r":
            line = line[:-1]
        if line[:1] in (b" ", b"\t"):
            if name is not None:
                chunks.append(b" " + line[1:] if line[:1] == b"\t" else line)
                size += len(line) + 2
                if size > limits.max_header_field:
                    raise MimeLimitError("header field too long")
            continue
        if name is not None:
            fields.append(field())
            name = None
        colon = line.find(b":")
        if colon < 0:
            continue
        size = len(line) + 2
        if size > limits.max_header_field:
            raise MimeLimitError("header field too long")
        name = line[:colon].rstrip(b" \t")
        chunks = [line[colon + 1:]]
    if name is not None:
        fields.append(field())
    return fields


HEADER_BITS = st.sampled_from([b"Subject", b"From", b"X A", b":", b": ", b"  ", b"\t", b"\r", b"\n", b"\r\n",
                               b"\r\r\n", b"\n ", b"\r\n\t", b"\r\n ", b"value", b"\xff\x00", b"a" * 20])
SMALL_FIELD = MimeLimits(max_header_field=60)


@settings(max_examples=500, deadline=None)
@given(st.lists(HEADER_BITS, max_size=40).map(b"".join), st.sampled_from([MimeLimits(), SMALL_FIELD]))
def test_split_fields_matches_reference(block: bytes, limits: MimeLimits) -> None:
    try:
        expected: object = _reference_split_fields(block, limits)
    except MimeLimitError as err:
        expected = err.reason
    try:
        got: object = split_fields(block, limits)
    except MimeLimitError as err:
        got = err.reason
    assert got == expected


HEADER_NAMES = st.sampled_from(["Received", "received", "RECEIVED", "From", "To", "Subject", "X-A", "x-a", "Date"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(HEADER_NAMES, st.text(max_size=20)), max_size=30), HEADER_NAMES)
def test_header_index_matches_scan(fields: list[tuple[str, str]], asked: str) -> None:
    from merpati.mime import ParsedMessage

    pm = ParsedMessage(0, [[n, v] for n, v in fields], [{}], "")
    plain = [v for k, v in pm.headers if k.lower() == asked.lower()]
    assert pm.header_fields(asked) == plain
    assert pm.header_fields(asked) is not pm.header_fields(asked)  # callers may modify their copy
    assert pm.received_count == sum(1 for k, _ in pm.headers if k.lower() == "received")
    pm.headers = [["Received", "x"], *pm.headers]  # a new header list is indexed afresh
    assert pm.received_count == 1 + sum(1 for k, _ in fields if k.lower() == "received")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["Mon, 01 Jan 2024 12:00:00 +0000", "garbage", "=?utf-8?q?caf=C3=A9?=", ""]),
       st.sampled_from(["Subject", "DATE", "From"]))
def test_decoded_header_memo_matches_fresh_decode(value: str, name: str) -> None:
    from merpati.mime import ParsedMessage
    from merpati.mime.text import decode_words

    pm = ParsedMessage(0, [[name, value], ["Date", value]], [{}], "")
    fresh = ParsedMessage(0, [[name, value], ["Date", value]], [{}], "")
    assert pm.header(name) == decode_words(value) == pm.header(name)
    assert pm.date == fresh.date and pm.date == fresh.date
    pm.headers = [["Date", "Tue, 02 Jan 2024 00:00:00 +0000"], [name, "other"]]
    assert pm.header(name) == ("other" if name != "DATE" else "Tue, 02 Jan 2024 00:00:00 +0000")
    assert pm.date is not None and pm.date.day == 2

"""The speed-ups of the parser must give exactly what the plain code gave: each fast
path is compared here with the straightforward version it replaces."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from merpati.mime import MimeLimits, parse_message
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

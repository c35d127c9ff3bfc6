"""Property tests: nothing but MimeLimitError escapes, JSON round-trips, and
offsets/sections stay consistent for random bytes and random MIME trees."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mime_testutil import parse_imap

from merpati.mime import MimeLimitError, MimeLimits, ParsedMessage, parse_message, render_imap
from merpati.mime.address import _simple, _slow, parse_addresses

SMALL = MimeLimits(max_depth=8, max_parts=60, max_header_field=4096, max_header_total=16384)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def exercise(data: bytes, limits: MimeLimits = SMALL) -> None:
    try:
        pm = parse_message(data, limits=limits)
    except MimeLimitError:
        return
    s = pm.to_json()
    back = ParsedMessage.from_json(s)
    assert back == pm and back.to_json() == s
    assert pm.size == len(data)
    for p in pm.parts:
        assert 0 <= p["h"] <= p["b"] <= p["e"] <= len(data)
    for value in (back.envelope(), back.bodystructure(), back.bodystructure(False)):
        assert parse_imap(render_imap(value)) == value
    assert back.section(data, "") == data
    assert back.section(data, "HEADER") + back.section(data, "TEXT") == data
    for spec in ("1", "1.MIME", "2", "1.1", "2.HEADER", "2.TEXT", "1.HEADER.FIELDS (A B)",
                 "HEADER.FIELDS.NOT (SUBJECT)", "3.2.1"):
        out = back.section(data, spec)
        assert out is None or isinstance(out, bytes)
    for part in ("1", "2", "1.1"):
        out = back.binary(data, part)
        assert out is None or isinstance(out, bytes)
    assert isinstance(back.preview, str)
    for attr in ("subject", "from_", "to", "cc", "message_id", "date", "received_count"):
        getattr(back, attr)
    back.filenames()
    for f in ("from", "to", "cc", "bcc", "sender", "reply-to"):
        back.addresses(f)


@SETTINGS
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


ALPHABET = [b"--", b"\r\n", b"\n", b"\r", b":", b";", b"=", b'"', b"\\", b"(", b")", b"<", b">", b"@", b",",
            b" ", b"\t", b"\x00", b"\xff", b"=?utf-8?q?", b"?=", b"b", b"--b", b"--b--", b"Content-Type:",
            b"multipart/mixed; boundary=b", b"message/rfc822", b"text/plain", b"Subject:", b"From:",
            b"To:", b"name*0*=", b"utf-8''%E2", b"Content-Transfer-Encoding: base64", b"x"]


@SETTINGS
@given(st.lists(st.sampled_from(ALPHABET), max_size=200))
def test_token_soup(tokens: list[bytes]) -> None:
    exercise(b"".join(tokens))


header_value = st.text(st.characters(min_codepoint=1, max_codepoint=0x2FF), max_size=40).map(
    lambda s: s.replace("\r", " ").replace("\n", " "))


@st.composite
def mime_tree(draw, depth: int = 0) -> bytes:
    nl = draw(st.sampled_from([b"\r\n", b"\n"]))
    headers = [b"Subject: " + draw(header_value).encode("utf-8"),
               b"From: " + draw(header_value).encode("utf-8")]
    kind = draw(st.sampled_from(["text", "multipart", "message", "base64"] if depth < 4 else ["text"]))
    if kind == "multipart":
        bnd = draw(st.sampled_from([b"b", b"bb", b"b" * 3, b"=_x", b"b" + str(depth).encode()]))
        headers.append(b'Content-Type: multipart/' + draw(st.sampled_from([b"mixed", b"digest", b"alternative"]))
                       + b'; boundary="' + bnd + b'"')
        kids = draw(st.lists(mime_tree(depth + 1), max_size=4))
        close = draw(st.booleans())
        body = draw(st.binary(max_size=20)).replace(b"-", b"")
        for k in kids:
            body += nl + b"--" + bnd + draw(st.sampled_from([b"", b" ", b"\t"])) + nl + k
        if close:
            body += nl + b"--" + bnd + b"--" + nl + draw(st.binary(max_size=20))
    elif kind == "message":
        headers.append(b"Content-Type: message/rfc822")
        body = draw(mime_tree(depth + 1))
    elif kind == "base64":
        headers.append(b"Content-Transfer-Encoding: base64")
        body = draw(st.binary(max_size=60)).replace(b"-", b"")
    else:
        headers.append(b"Content-Type: text/plain; charset=" + draw(st.sampled_from([b"utf-8", b"bogus", b'"iso-8859-1"'])))
        body = draw(st.text(max_size=60)).encode("utf-8").replace(b"-", b"")
    headers = draw(st.permutations(headers))
    return nl.join(headers) + nl + nl + body


@SETTINGS
@given(mime_tree())
def test_structured_messages(data: bytes) -> None:
    exercise(data)
    exercise(data, MimeLimits())


@SETTINGS
@given(st.lists(st.tuples(header_value, st.from_regex(r"[a-z0-9.]{1,8}", fullmatch=True),
                          st.from_regex(r"[a-z0-9.-]{1,8}", fullmatch=True), st.booleans()), max_size=6))
def test_address_fast_path_agrees_with_full_parser(items) -> None:
    parts = []
    for name, local, host, quoted in items:
        name = name.replace('"', "").replace("\\", "")
        if quoted:
            parts.append(f'"{name}" <{local}@{host}>')
        else:
            parts.append(f"{name} <{local}@{host}>" if name.strip() else f"{local}@{host}")
    raw = ", ".join(parts)
    fast = _simple(raw, 100)
    if fast is not None:
        assert fast == parse_addresses(raw, 100)
        assert _slow(raw, 100) == fast

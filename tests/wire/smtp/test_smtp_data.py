"""DATA: end of data, dot-unstuffing, SMTP smuggling (SECURITY-CASES SMTP-01..05, 21, 22)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_helpers import DEFAULT_EXT_BINARY, ehlo_harness, in_data_harness, three_ways

from merpati.wire.smtp import (
    BareLineEndings,
    Close,
    DataChunk,
    DataEnd,
    DataError,
    DataStart,
    Extension,
    MailFrom,
    Reply,
    SmtpLimits,
    State,
)
from merpati.wire.smtp import (
    replies as R,
)
from merpati.wire.smtp.data import DotReader


def reference_decode(stream: bytes) -> tuple[bytes, int] | None:
    """Tiny reference: end only at CRLF.CRLF (DATA's CRLF counts); unstuff real lines."""
    s = b"\r\n" + stream
    index = s.find(b"\r\n.\r\n")
    if index < 0:
        return None
    body = s[2 : index + 2]
    lines = body.split(b"\r\n")
    content = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    return content, index + 3  # octets of ``stream`` consumed (``index`` counts the fake CRLF)


def has_bare(content: bytes) -> bool:
    crlf = content.count(b"\r\n")
    return content.count(b"\r") != crlf or content.count(b"\n") != crlf


def normalize(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def stuff(body: bytes) -> bytes:
    """Client side: CRLF lines, dot-stuffed, terminated."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    lines = body.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


def decode_in_pieces(stream: bytes, cuts: list[int], *, normalize_: bool = False,
                     max_size: int = 10**9) -> tuple[bytes, DotReader, bytes]:
    reader = DotReader(normalize=normalize_, max_size=max_size)
    buf = bytearray()
    out = bytearray()
    last = 0
    for cut in [*sorted(cuts), len(stream)]:
        buf += stream[last:cut]
        last = cut
        out += reader.feed(buf)
        assert len(buf) <= 2 or reader.done, "decoder buffered more than '.\\r'"
    return bytes(out), reader, bytes(buf)


# --- SMTP-01..04: the smuggling probe ------------------------------------------------------
PROBE_HEAD = b"From: sender@example.org\r\n\r\nbody line\r\n"
PROBE_TAIL = (b"mail FROM:<smuggled@x>\r\nrcpt TO:<victim@ours>\r\ndata\r\n"
              b"From: smuggled@x\r\n\r\nSMUGGLED\r\n.\r\n")
BARE_VARIANTS = [
    b"\n.\n", b"\n.\r\n",  # SMTP-01
    b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\r\n.\r\r\n", b"\r\n.\r\r\n",  # SMTP-02
    b"\r.\n", b"\n.\r", b"\r\n.\n",  # SMTP-03
]
NUL_VARIANTS = [b"\r\n\x00.\r\n", b"\r\n.\x00\r\n"]  # SMTP-04


@pytest.mark.parametrize("variant", BARE_VARIANTS)
def test_smuggling_variant_rejected_at_real_end(variant: bytes) -> None:
    probe = PROBE_HEAD + variant + PROBE_TAIL
    events, out = three_ways(in_data_harness, probe, chunks=False)
    assert events == [DataEnd(DataError.BARE_LINE_ENDING, events[0].size)]  # no chunk, one end
    assert out == b"550 5.5.2 Error: bare <CR> or <LF> received\r\n"  # one completion reply


@pytest.mark.parametrize("variant", BARE_VARIANTS + NUL_VARIANTS)
def test_smuggling_variant_normalize_policy(variant: bytes) -> None:
    probe = PROBE_HEAD + variant + PROBE_TAIL
    events, out = three_ways(lambda: in_data_harness(bare_line_endings=BareLineEndings.NORMALIZE), probe)
    expected = reference_decode(probe)
    assert expected is not None and expected[1] == len(probe)
    assert events == [DataChunk(normalize(expected[0])), DataEnd(None, len(normalize(expected[0])))]
    assert b"smuggled" in events[0].data  # the "second message" is body text of the first
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n"
    assert not any(isinstance(e, MailFrom) for e in events)


@pytest.mark.parametrize("variant", NUL_VARIANTS)
def test_nul_variants_are_content(variant: bytes) -> None:
    probe = PROBE_HEAD + variant + PROBE_TAIL
    events, out = three_ways(in_data_harness, probe)
    content = reference_decode(probe)[0]
    assert events == [DataChunk(content), DataEnd(None, len(content))]
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n"


@pytest.mark.parametrize(
    "stream",
    [b"", b".", b".\r", b"..\r\n", b"\r.", b"\r.\r\n", b"\r.\n", b"\r\n.\rx\n", b"\r\n..\r\n",
     b"\n.\r", b"\n..\r\n", b"foo.\r\n"],
)
def test_no_end_of_data_vectors_then_eof(stream: bytes) -> None:
    # SMTP-05: Dovecot's NO_EOT vectors; truncated → Close, never DataEnd, no reply
    events, out = three_ways(in_data_harness, stream, eof=True, chunks=False)
    assert not any(isinstance(e, DataEnd) for e in events)
    assert isinstance(events[-1], Close) and events[-1].reason == "eof-in-data"
    assert out == b""


@pytest.mark.parametrize(
    ("stream", "content"),
    [
        (b".\r\n", b""),
        (b"\r\n.\r\n", b"\r\n"),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"..a\r\n...\r\n.b\r\n.\r\n", b".a\r\n..\r\nb\r\n"),
        (b"a.\r\n.\r\n", b"a.\r\n"),
        (b"\r\r\n.\r\n", b"\r\r\n"),  # bare CR before a real CRLF.CRLF: end is real
        (b"\r.\r\n.\r\n", b"\r.\r\n"),  # Dovecot strict table
    ],
)
def test_end_and_unstuffing(stream: bytes, content: bytes) -> None:
    for cut in range(len(stream) + 1):
        out, reader, rest = decode_in_pieces(stream + b"NEXT", [cut], normalize_=True)
        assert reader.done and out == normalize(content) and rest == b"NEXT"
        out, reader, rest = decode_in_pieces(stream + b"NEXT", [cut])
        assert reader.done and rest == b"NEXT"
        if has_bare(content):
            assert reader.error is DataError.BARE_LINE_ENDING
        else:
            assert reader.error is None and out == content


def test_engine_data_transcript() -> None:
    events, out = three_ways(in_data_harness, b"Subject: t\r\n\r\n..dot\r\nlast\r\n.\r\n")
    assert events == [DataChunk(b"Subject: t\r\n\r\n.dot\r\nlast\r\n"), DataEnd(None, 26)]
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n"


def test_data_then_next_transaction_in_sync() -> None:
    h = in_data_harness()
    h.feed(b"x\r\n.\r\nMAIL FROM:<c@d.example>\r\n")
    events, out = h.take()
    assert events[-1] == MailFrom(events[-1].sender, events[-1].params)
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n250 2.0.0 Ok\r\n"


def test_data_too_big_keeps_reading_to_real_end() -> None:
    # SMTP-22: stop emitting, consume until CRLF.CRLF, then 552; commands stay in sync
    prime = lambda: in_data_harness(limits=SmtpLimits(message_size=100))  # noqa: E731
    body = b"x" * 60 + b"\r\n" + b"y" * 60 + b"\r\n.\r\n"
    events, out = three_ways(prime, body, chunks=False)
    assert isinstance(events[-1], DataEnd) and events[-1].error is DataError.TOO_BIG
    assert sum(len(e.data) for e in events if isinstance(e, DataChunk)) <= 100
    assert out == b"552 5.3.4 Message size exceeds fixed limit\r\n"
    h = prime()
    h.feed(body + b"NOOP\r\n")
    assert h.take()[1].endswith(b"250 2.0.0 Ok\r\n")


def test_long_lines_and_no_crlf_bounded_memory() -> None:
    # SMTP-21: 10 MB without CRLF streams out in chunks; the engine keeps ≤ 2 octets
    h = in_data_harness(limits=SmtpLimits(message_size=5 * 1024 * 1024))
    block = b"A" * (1024 * 1024)
    emitted = 0
    for _ in range(10):
        h.feed(block)
        assert len(h.srv.buffered) <= 2
        emitted += sum(len(e.data) for e in h.events if isinstance(e, DataChunk))
        h.events.clear()
    assert emitted <= 5 * 1024 * 1024
    h.feed(b"\r\n.\r\n")
    assert h.take()[0][-1] == DataEnd(DataError.TOO_BIG, 10 * 1024 * 1024 + 2)


def test_1001_octet_lines_pass_through() -> None:
    line = b"z" * 1001 + b"\r\n"
    events, _ = three_ways(in_data_harness, line * 3 + b".\r\n")
    assert events == [DataChunk(line * 3), DataEnd(None, len(line) * 3)]


def test_data_with_argument_and_binarymime() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    h.take()
    h.feed(b"DATA now\r\n")
    assert h.take() == ([], b"501 5.5.4 Syntax error: no arguments allowed\r\n")
    h = ehlo_harness(extensions=DEFAULT_EXT_BINARY)
    h.feed(b"MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n")
    h.take()
    h.feed(b"DATA\r\n")
    assert h.take() == ([], b"503 5.5.1 Error: BODY=BINARYMIME requires BDAT\r\n")


def test_data_refused_by_session_stays_in_transaction() -> None:
    h = ehlo_harness(answers={DataStart: R.NO_VALID_RECIPIENTS})
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    h.feed(b"DATA\r\n")
    assert h.take()[1].endswith(b"554 5.5.1 No valid recipients\r\n")
    assert h.srv.state is State.RCPT


def test_session_tempfail_at_end_of_data() -> None:
    h = in_data_harness(answers={DataEnd: R.TEMP_FAIL})
    h.feed(b"hi\r\n.\r\n")
    assert h.take()[1] == b"451 4.3.0 Temporary failure, please try again later\r\n"
    assert h.srv.state is State.READY and h.srv.mail_from is None


def test_normalize_policy_converts_bare_endings() -> None:
    events, _ = three_ways(lambda: in_data_harness(bare_line_endings=BareLineEndings.NORMALIZE),
                           b"a\nb\rc\r\n.\r\n")
    assert events == [DataChunk(b"a\r\nb\r\nc\r\n"), DataEnd(None, 9)]


# --- Hypothesis: the decoder against the reference --------------------------------------
_NOISE = st.binary(max_size=80) | st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"\x00", b"a", b"\r\n", b"\r\n.", b".\r\n", b"\r\n.\r\n"]),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                max_size=8), st.lists(st.integers(0, 400), max_size=6))
def test_roundtrip_stuffed_bodies(lines: list[bytes], cuts: list[int]) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    stream = stuff(body)
    cuts = [c for c in cuts if c <= len(stream)]
    out, reader, rest = decode_in_pieces(stream + b"MAIL", cuts)
    assert reader.done and reader.error is None
    assert out == body and rest == b"MAIL"


@settings(max_examples=400, deadline=None)
@given(_NOISE, st.lists(st.integers(0, 100), max_size=6), st.booleans())
def test_noise_matches_reference(stream: bytes, cuts: list[int], normalize_: bool) -> None:
    cuts = [c for c in cuts if c <= len(stream)]
    out, reader, rest = decode_in_pieces(stream, cuts, normalize_=normalize_)
    expected = reference_decode(stream)
    if expected is None:
        assert not reader.done  # never an end without a real CRLF.CRLF
        return
    content, consumed = expected
    assert reader.done and rest == stream[consumed:]
    if normalize_:
        assert reader.error is None and out == normalize(content)
    elif has_bare(content):
        assert reader.error is DataError.BARE_LINE_ENDING
    else:
        assert reader.error is None and out == content
        assert not has_bare(out)


@settings(max_examples=100, deadline=None)
@given(_NOISE)
def test_engine_noise_in_data_never_raises(stream: bytes) -> None:
    h = in_data_harness()
    h.feed(stream)
    h.eof()
    events, out = h.take()
    ends = [e for e in events if isinstance(e, DataEnd)]
    assert len(ends) == (reference_decode(stream) is not None)
    for line in out.split(b"\r\n")[:-1]:
        assert len(line) <= 510 and line[:3].isdigit()


def test_reply_type_is_used() -> None:
    assert isinstance(R.TOO_BIG, Reply) and Extension.BINARYMIME not in ehlo_harness().srv.extensions

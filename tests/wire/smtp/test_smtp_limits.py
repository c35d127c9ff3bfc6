"""Limits and hostile command lines (SMTP-06, 20, 23, 25, 32) and reply serialisation."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smtp_helpers import Harness, ehlo_harness, three_ways

from merpati.wire.smtp import (
    Close,
    Code,
    Enhanced,
    MailFrom,
    RcptTo,
    Reply,
    SmtpLimits,
    sanitise,
)
from merpati.wire.smtp import (
    replies as R,
)


@pytest.mark.parametrize("line", [b"NOOP\n", b"MAIL FROM:<a@b>\n", b"MAIL FROM:<a@b.example>\n"])
def test_smtp06_bare_lf_command_is_never_acted_on(line: bytes) -> None:
    events, out = three_ways(ehlo_harness, line)
    assert events == []
    assert out == b"500 5.5.2 Error: bare <CR> or <LF> in command line\r\n"


@pytest.mark.parametrize("line", [b"NOOP\rMAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<a\rb@x.example>\r\n",
                                  b"\n", b"RSET\r\r\n"])
def test_bare_cr_in_command_line(line: bytes) -> None:
    events, out = three_ways(ehlo_harness, line)
    assert events == []
    assert out == b"500 5.5.2 Error: bare <CR> or <LF> in command line\r\n"


def test_bare_lf_line_then_good_line() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\nMAIL FROM:<c@d.example>\r\n")
    events, out = h.take()
    assert [type(e) for e in events] == [MailFrom]
    assert events[0].sender.local_part == "c"
    assert out.startswith(b"500 5.5.2 ")


@pytest.mark.parametrize("line", [b"NO\x00OP\r\n", b"MAIL FROM:<a\x00@b.example>\r\n", b"\x00\r\n"])
def test_nul_in_command_line(line: bytes) -> None:
    events, out = three_ways(ehlo_harness, line)
    assert (events, out) == ([], b"500 5.5.2 Error: NUL character in command line\r\n")


def test_smtp20_long_lines() -> None:
    h = ehlo_harness()
    h.feed(b"NOOP " + b"A" * 600 + b"\r\n")  # 513+ octets but under max_line: fine
    assert h.take()[1] == b"250 2.0.0 Ok\r\n"
    events, out = three_ways(ehlo_harness, b"A" * 2049 + b"\r\n")
    assert (events, out) == ([], b"500 5.5.2 Error: line too long\r\n")
    events, out = three_ways(ehlo_harness, b"EHLO " + b"x" * 3000 + b"\r\n")
    assert (events, out) == ([], b"500 5.5.2 Error: line too long\r\n")


def test_long_line_exactly_at_limit() -> None:
    h = ehlo_harness(limits=SmtpLimits(max_line=512))
    h.feed(b"NOOP " + b"a" * (512 - 7) + b"\r\n")
    assert h.take()[1] == b"250 2.0.0 Ok\r\n"
    h.feed(b"NOOP " + b"a" * (512 - 6) + b"\r\n")
    assert h.take()[1] == b"500 5.5.2 Error: line too long\r\n"


def test_long_line_is_discarded_with_bounded_buffer() -> None:
    h = ehlo_harness()
    for _ in range(100):  # 10 MB without LF
        h.feed(b"B" * 100_000)
        assert len(h.srv.buffered) <= 100_000
    h.feed(b"\r\nNOOP\r\n")
    assert h.take()[1] == b"500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"


def test_smtp23_recipient_limit() -> None:
    h = ehlo_harness(limits=SmtpLimits(max_recipients=3))
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    for i in range(5):
        h.feed(b"RCPT TO:<r%d@d.example>\r\n" % i)
    events, out = h.take()
    assert [type(e) for e in events] == [MailFrom, RcptTo, RcptTo, RcptTo]
    assert out.split(b"\r\n")[-3:-1] == [b"452 4.5.3 Too many recipients"] * 2
    assert h.srv.recipient_count == 3
    h.feed(b"DATA\r\n")
    assert h.take()[1].startswith(b"354 ")  # accepted recipients are kept


def test_under_100_recipients_never_refused_by_default() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\n" + b"".join(b"RCPT TO:<r%d@d.example>\r\n" % i for i in range(99)))
    assert h.take()[1] == b"250 2.0.0 Ok\r\n" * 100


def test_rejected_recipients_do_not_count_towards_limit() -> None:
    h = ehlo_harness(limits=SmtpLimits(max_recipients=1), answers={RcptTo: R.REJECT_USER_UNKNOWN})
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@d.example>\r\nRCPT TO:<y@d.example>\r\n")
    assert h.replies()[1:] == [b"550 5.1.1 Recipient address rejected: User unknown"] * 2


def test_smtp25_error_limits() -> None:
    h = ehlo_harness()
    for i in range(25):
        h.feed(b"BOGUS\r\n")
        assert h.srv.error_delay_due() == (i + 1 >= 10)
        if h.srv.closed:
            break
    events, out = h.take()
    assert h.srv.error_count == 20 and i == 19
    assert out.endswith(b"500 5.5.2 Error: command not recognized\r\n421 4.7.0 Error: too many errors\r\n")
    assert out.count(b"500 5.5.2") == 20
    assert events == [Close("too-many-errors")]


def test_session_rejections_count_and_delivery_resets() -> None:
    h = ehlo_harness(limits=SmtpLimits(hard_error_limit=3), answers={RcptTo: R.REJECT_USER_UNKNOWN})
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<x@d.example>\r\nRCPT TO:<y@d.example>\r\n")
    assert h.srv.error_count == 2 and not h.srv.closed
    h.answers[RcptTo] = R.OK
    h.feed(b"RCPT TO:<z@d.example>\r\nDATA\r\n")
    h.feed(b"x\r\n.\r\n")
    assert h.srv.error_count == 0  # delivered: the error count starts again
    h.take()
    h.answers[RcptTo] = R.RELAY_DENIED
    h.feed(b"MAIL FROM:<a@b.example>\r\n" + b"RCPT TO:<x@d.example>\r\n" * 3)
    assert h.replies()[-2:] == [b"554 5.7.1 Relay access denied", b"421 4.7.0 Error: too many errors"]
    assert h.srv.closed


def test_smtp25_junk_commands_count_after_limit() -> None:
    h = ehlo_harness(limits=SmtpLimits(max_junk_commands=100))
    for _ in range(100):
        h.feed(b"NOOP\r\n")
    assert h.srv.error_count == 0
    for _ in range(50):
        h.feed(b"RSET\r\n")
        h.feed(b"VRFY x\r\n")
        if h.srv.closed:
            break
    assert h.srv.closed and h.take()[1].endswith(b"421 4.7.0 Error: too many errors\r\n")


def test_limits_validation() -> None:
    with pytest.raises(ValueError):
        SmtpLimits(max_line=100)
    with pytest.raises(ValueError):
        SmtpLimits(message_size=0)


# --- replies -----------------------------------------------------------------------------
def test_reply_serialisation() -> None:
    assert R.OK.to_bytes() == b"250 2.0.0 Ok\r\n"
    assert R.OK.to_bytes(enhanced=False) == b"250 Ok\r\n"
    assert Reply(250, "2.0.0", ["a", "b", "c"]).to_bytes() == b"250-2.0.0 a\r\n250-2.0.0 b\r\n250 2.0.0 c\r\n"
    assert Reply(250, None, ["host", "SIZE 10"]).to_bytes() == b"250-host\r\n250 SIZE 10\r\n"
    assert Reply(250).to_bytes() == b"250\r\n"
    assert R.ok_queued("4Xy") == Reply(Code.OK, Enhanced.OK, "Ok: queued as 4Xy")
    assert R.DATA_GO.to_bytes() == b"354 End data with <CR><LF>.<CR><LF>\r\n"
    assert R.BYE.to_bytes() == b"221 2.0.0 Bye\r\n"
    assert R.TOO_MANY_RCPTS.to_bytes() == b"452 4.5.3 Too many recipients\r\n"
    assert R.LOOP.to_bytes() == b"554 5.4.6 Too many hops\r\n"


def test_smtp32_reply_text_is_sanitised() -> None:
    hostile = "a\rb\nc\x00d\u00e9" + "x" * 600
    data = Reply(550, "5.1.1", [hostile, "<a\r\nb@x>"]).to_bytes()
    lines = data.split(b"\r\n")[:-1]
    assert len(lines) == 2
    for line in lines:
        assert len(line) + 2 <= 512
        assert all(0x20 <= b < 0x7F for b in line)
    assert lines[0].startswith(b"550-5.1.1 a?b?c?d?xxx")
    assert sanitise(b"\xff\x00ok") == b"??ok"


def test_reply_validation() -> None:
    with pytest.raises(ValueError):
        Reply(199)
    with pytest.raises(ValueError):
        Reply(250, "5.0.0")
    with pytest.raises(ValueError):
        Reply(550, "5.0")
    assert R.OK.is_success and R.DATA_GO.is_success and not R.TEMP_FAIL.is_success


def test_long_auth_challenge_is_not_cut_at_512() -> None:
    challenge = "A" * 4000
    assert R.auth_challenge(challenge).to_bytes() == b"334 " + challenge.encode() + b"\r\n"


def _reference_to_bytes(reply: Reply, enhanced: bool) -> bytes:
    """The original, obviously correct serialiser that the fast path must match."""
    code = str(reply.code).encode()
    limit = (12288 if reply.code == 334 else 512) - 2
    prefix = reply.enhanced.encode() + b" " if enhanced and reply.enhanced is not None else b""
    lines = reply.lines
    out = []
    for index, line in enumerate(lines):
        head = code + (b" " if index == len(lines) - 1 else b"-")
        body = prefix + sanitise(line)
        if not body and reply.code != 334:
            head = head.rstrip(b" ")
        out.append((head + body)[:limit] + b"\r\n")
    return b"".join(out)


REPLY_TEXT = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=520),
    st.text(max_size=30),
    st.integers(490, 512).map(lambda n: "x" * n),  # around the 512-octet cut
)


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from([214, 220, 250, 334, 354, 421, 550, Code.OK, Code.AUTH_CONTINUE]),
    enhanced_code=st.sampled_from([None, "0.0", "1.5", "10.200", "5.7.11"]),
    text=st.one_of(REPLY_TEXT, st.lists(REPLY_TEXT, max_size=4)),
    enhanced=st.booleans(),
)
def test_reply_fast_path_matches_reference(code: int, enhanced_code: str | None, text: object,
                                           enhanced: bool) -> None:
    full = None if enhanced_code is None else f"{str(code)[0]}.{enhanced_code}"
    if full is not None and code == 334:
        full = None
    if full is not None and not re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", full):
        with pytest.raises(ValueError):
            Reply(code, full, text)  # type: ignore[arg-type]
        return
    reply = Reply(code, full, text)  # type: ignore[arg-type]
    assert reply.to_bytes(enhanced=enhanced) == _reference_to_bytes(reply, enhanced)


@pytest.mark.parametrize("enhanced_code", [None, "2.0.0", "2.10.200"])
@pytest.mark.parametrize("enhanced", [True, False])
def test_reply_fast_path_cut_boundary(enhanced_code: str | None, enhanced: bool) -> None:
    for n in range(490, 515):
        for text in ("x" * n, ["a", "x" * n], ["x" * n, "b"]):
            reply = Reply(250, enhanced_code, text)
            assert reply.to_bytes(enhanced=enhanced) == _reference_to_bytes(reply, enhanced), n


def test_harness_baseline() -> None:
    assert Harness().banner == b"220 mx.example.test ESMTP Merpati\r\n"

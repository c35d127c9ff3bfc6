"""Hypothesis over the whole engine: random command streams, random chunking, random answers.

Properties: nothing raises; every reply line is well formed (code, ≤ 512 octets, printable
ASCII, CRLF); the event stream respects the SMTP transaction (no RcptTo without an accepted
MailFrom, no DataStart without an accepted RcptTo, DataChunk/DataEnd only inside a body);
once closed, the engine stays closed and silent.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_helpers import HOST, default_answer

from merpati.wire.smtp import (
    NEED_DATA,
    PAUSED,
    AuthAbort,
    AuthData,
    AuthStart,
    BareLineEndings,
    Close,
    DataChunk,
    DataEnd,
    DataStart,
    Hello,
    MailFrom,
    Quit,
    RcptTo,
    Reset,
    SmtpLimits,
    SmtpServer,
    StartTls,
    State,
    Vrfy,
)
from merpati.wire.smtp import (
    replies as R,
)

_REPLY_LINE = re.compile(rb"[2-5][0-9]{2}([ -][\x20-\x7e]*)?\Z")

LINES = st.sampled_from(
    [
        b"EHLO client.example", b"HELO client.example", b"EHLO", b"MAIL FROM:<a@b.example>",
        b"MAIL FROM:<>", b"MAIL FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8",
        b"MAIL FROM:<a@b.example> SIZE=999999999999", b"MAIL FROM: <a@b.example>",
        b"RCPT TO:<c@d.example>", b"RCPT TO:<x@y.example> NOTIFY=NEVER", b"RCPT TO:<>",
        b"RCPT TO:<Postmaster>", b"DATA", b"DATA x", b"BDAT 3", b"BDAT 2 LAST", b"BDAT 0 LAST",
        b"BDAT x", b"RSET", b"NOOP", b"QUIT", b"VRFY x", b"EXPN x", b"HELP", b"STARTTLS",
        b"AUTH PLAIN", b"AUTH PLAIN AGEAYg==", b"AUTH LOGIN", b"*", b"dGVzdA==", b"FOO", b".",
        b"..", b"body line", b"", b"\x00", b"\xff\xfe", b"MAIL FROM:<f\xc3\xb6@x.example>",
    ]
)
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
GOOD = LINES.map(lambda line: line + b"\r\n")
PIECE = st.one_of(GOOD, GOOD, GOOD, st.tuples(LINES, ENDINGS).map(b"".join), st.binary(max_size=12))
STREAM = st.lists(PIECE, max_size=40).map(b"".join)
TRANSACTION = st.tuples(
    st.sampled_from([b"MAIL FROM:<a@b.example>\r\n", b"MAIL FROM:<> BODY=8BITMIME\r\n"]),
    st.lists(st.sampled_from([b"RCPT TO:<c@d.example>\r\n", b"RCPT TO:<>\r\n"]), min_size=1, max_size=3),
    st.one_of(
        st.tuples(st.just(b"DATA\r\n"), st.lists(PIECE, max_size=4).map(b"".join),
                  st.sampled_from([b"\r\n.\r\n", b".\r\n", b"\n.\n", b""])).map(list),
        st.lists(st.sampled_from([b"BDAT 3\r\nabc", b"BDAT 2 LAST\r\nhi", b"BDAT 0 LAST\r\n"]),
                 min_size=1, max_size=3),
    ),
).map(lambda t: [t[0], *t[1], *t[2]])
# a client that mostly waits for replies: one piece per write, sometimes several
WRITES = st.lists(
    st.one_of(st.lists(PIECE, min_size=1, max_size=3).map(lambda p: [b"".join(p)]), TRANSACTION),
    max_size=12,
).map(lambda blocks: [write for block in blocks for write in block])


class Model:
    """What a correct session may observe."""

    def __init__(self) -> None:
        self.mail = False
        self.rcpts = 0
        self.in_body = False

    def clear(self) -> None:
        self.mail, self.rcpts, self.in_body = False, 0, False

    def observe(self, event: object) -> None:
        if isinstance(event, RcptTo):
            assert self.mail and not self.in_body
        elif isinstance(event, MailFrom):
            assert not self.mail
        elif isinstance(event, DataStart):
            assert self.rcpts >= 1 and not self.in_body
        elif isinstance(event, (DataChunk, DataEnd)):
            assert self.in_body
        elif isinstance(event, Reset):
            self.clear()
        elif isinstance(event, Hello):
            assert not self.mail, "Hello during a transaction must come after Reset"

    def answered(self, event: object, ok: bool) -> None:
        if isinstance(event, MailFrom) and ok:
            self.mail = True
        elif isinstance(event, RcptTo) and ok:
            self.rcpts += 1
        elif isinstance(event, DataStart):
            if ok:
                self.in_body = True
            elif event.bdat:
                self.clear()
        elif isinstance(event, DataEnd):
            self.clear()


def check_output(data: bytes) -> None:
    if not data:
        return
    assert data.endswith(b"\r\n")
    for line in data.split(b"\r\n")[:-1]:
        assert len(line) + 2 <= 512, line
        assert _REPLY_LINE.match(line), line


def run(pieces: list[bytes], answers: st.DataObject, **kw: object) -> None:
    srv = SmtpServer(hostname=HOST, tls_available=True, auth_mechanisms=("PLAIN", "LOGIN"),
                     auth_allowed=True, **kw)
    check_output(srv.greeting())
    model = Model()
    for piece in [*pieces, None]:
        if piece is None:
            srv.receive_eof()
        else:
            srv.receive_data(piece)
        for _ in range(10_000):
            event = srv.next_event()
            check_output(srv.data_to_send())
            if event is NEED_DATA or event is PAUSED:
                break
            model.observe(event)
            if isinstance(event, Close):
                assert srv.closed and srv.next_event() == event
                srv.receive_data(b"NOOP\r\n")
                assert srv.next_event() == event and srv.data_to_send() == b""
                return
            if isinstance(event, (DataChunk, Reset, Vrfy, AuthAbort)):
                continue
            accept = answers.draw(st.booleans())
            reply = default_answer(event, srv) if accept else answers.draw(
                st.sampled_from([R.TEMP_FAIL, R.REJECT_USER_UNKNOWN, R.AUTH_FAILED, R.TLS_UNAVAILABLE])
            )
            if isinstance(event, Quit):
                reply = R.BYE
            model.answered(event, reply.is_success)
            check_output(srv.send(reply))
            if isinstance(event, StartTls) and reply.is_success:
                assert srv.state is State.TLS
                srv.tls_started()
                model.clear()
        else:
            raise AssertionError("engine made no progress")
    assert srv.closed


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(STREAM, st.lists(st.integers(0, 400), max_size=8, unique=True), st.data())
def test_random_command_streams(stream: bytes, cuts: list[int], answers: st.DataObject) -> None:
    cuts = sorted(c for c in cuts if c <= len(stream))
    run([stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)], answers)


@_SETTINGS
@given(WRITES, st.booleans(), st.data())
def test_random_conversations(writes: list[bytes], ehlo: bool, answers: st.DataObject) -> None:
    run([b"EHLO x\r\n", *writes] if ehlo else writes, answers)


@_SETTINGS
@given(WRITES, st.data())
def test_random_conversations_tight_limits(writes: list[bytes], answers: st.DataObject) -> None:
    tight = SmtpLimits(max_line=512, max_auth_line=512, message_size=20, max_recipients=2,
                       hard_error_limit=5, max_junk_commands=3)
    run([b"EHLO x\r\n", *writes], answers, limits=tight, bare_line_endings=BareLineEndings.NORMALIZE)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_random_bytes(stream: bytes, answers: st.DataObject) -> None:
    run([b"EHLO x\r\n", stream], answers)


def test_answer_sets_are_known() -> None:
    assert {AuthStart, AuthData} and R.OK.is_success

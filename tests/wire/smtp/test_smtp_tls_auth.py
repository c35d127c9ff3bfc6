"""STARTTLS (RFC 3207; SMTP-10..13) and AUTH framing (RFC 4954; AUTH-03, AUTH-06)."""

from __future__ import annotations

import base64

import pytest
from smtp_helpers import Harness, ehlo_harness, helo_harness, three_ways

from merpati.wire.smtp import (
    PAUSED,
    AuthAbort,
    AuthData,
    AuthStart,
    Close,
    Hello,
    Reply,
    StartTls,
    State,
)
from merpati.wire.smtp import (
    replies as R,
)


def tls_harness(**kw):
    kw.setdefault("tls_available", True)
    return ehlo_harness(**kw)


def start_tls(h: Harness, command: bytes = b"STARTTLS\r\n") -> None:
    assert h.feed(command) is PAUSED
    events, out = h.take()
    assert events == [StartTls()] and out == b"220 2.0.0 Ready to start TLS\r\n"


def test_starttls_then_handshake_resets_everything() -> None:
    h = tls_harness()
    start_tls(h)
    assert h.srv.state is State.TLS
    h.feed(b"EHLO injected\r\n")  # plaintext after the 220: dropped
    assert h.take() == ([], b"")
    h.srv.tls_started()
    assert h.srv.tls_active and h.srv.state is State.NEED_HELO and h.srv.buffered == b""
    h.feed(b"MAIL FROM:<a@b.example>\r\n")  # SMTP-11: no EHLO after TLS
    assert h.take()[1] == b"503 5.5.1 Error: send HELO/EHLO first\r\n"
    h.feed(b"EHLO client\r\n")
    events, out = h.take()
    assert events == [Hello("client", True)]
    assert b"STARTTLS" not in out


@pytest.mark.parametrize("injected", [b"EHLO commandinjectiontester\r\n", b"RSET\r\n", b"NOOP\r\n"])
def test_smtp10_injection_in_same_write_is_refused(injected: bytes) -> None:
    h = tls_harness()
    h.feed(b"STARTTLS\r\n" + injected)
    events, out = h.take()
    assert out == b"554 5.5.0 Error: SMTP protocol synchronization\r\n"  # no 220, no 250
    assert events == [Close("sync-error")]


@pytest.mark.parametrize("injected", [b"EHLO commandinjectiontester\r\n", b"RSET\r\n", b"NOOP\r\n"])
def test_smtp10_injection_before_handshake_is_discarded(injected: bytes) -> None:
    srv = tls_harness().srv
    srv.receive_data(b"STARTTLS\r\n")
    assert srv.next_event() == StartTls()
    srv.receive_data(injected)  # arrives while the session decides
    assert srv.send(R.TLS_GO) == b"220 2.0.0 Ready to start TLS\r\n"
    srv.receive_data(injected)  # arrives before the handshake
    srv.tls_started()
    assert srv.next_event() is not PAUSED and srv.data_to_send() == b""  # no unsolicited 250
    srv.receive_data(b"FAKE x\r\n")
    srv.next_event()
    assert srv.data_to_send() == b"500 5.5.2 Error: command not recognized\r\n"


def test_smtp12_second_starttls() -> None:
    h = tls_harness()
    start_tls(h)
    h.srv.tls_started()
    h.feed(b"EHLO x\r\n")
    h.take()
    h.feed(b"STARTTLS\r\n")
    assert h.take() == ([], b"503 5.5.1 Error: TLS already active\r\n")


def test_starttls_not_available_or_misused() -> None:
    h = ehlo_harness()
    h.feed(b"STARTTLS\r\n")
    assert h.take()[1] == b"502 5.5.1 Error: STARTTLS not available\r\n"
    h = tls_harness()
    h.feed(b"STARTTLS now\r\n")
    assert h.take()[1] == b"501 5.5.4 Syntax error: no arguments allowed\r\n"
    h = helo_harness(tls_available=True)
    h.feed(b"STARTTLS\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: send EHLO first\r\n"


def test_starttls_refused_by_session_keeps_plaintext_state() -> None:
    h = tls_harness(answers={StartTls: R.TLS_UNAVAILABLE})
    h.feed(b"STARTTLS\r\n")
    assert h.take()[1] == b"454 4.7.0 TLS not available\r\n"
    assert h.srv.state is State.READY and not h.srv.tls_active


def test_auth_before_tls_is_forgotten() -> None:
    # AUTH-06 / RFC 3207 §4.2: authentication from before TLS is discarded
    h = tls_harness(auth_mechanisms=("PLAIN",), auth_allowed=True, answers={AuthStart: R.AUTH_OK})
    h.feed(b"AUTH PLAIN AGEAYg==\r\n")
    assert h.take() == ([AuthStart("PLAIN", b"\x00a\x00b")], b"235 2.7.0 Authentication successful\r\n")
    assert h.srv.authenticated
    start_tls(h)
    h.srv.tls_started()
    assert not h.srv.authenticated


def auth_harness(**kw):
    kw.setdefault("auth_mechanisms", ("PLAIN", "LOGIN"))
    kw.setdefault("auth_allowed", True)
    kw.setdefault("tls_active", True)
    return ehlo_harness(**kw)


def test_auth_plain_initial_response() -> None:
    ir = base64.b64encode(b"\x00user\x00pass")
    events, out = three_ways(auth_harness, b"AUTH plain " + ir + b"\r\n", trailing=False)
    assert events == [AuthStart("PLAIN", b"\x00user\x00pass")]
    assert out == b"334 \r\n"  # the default harness answers with an empty challenge


def test_auth_login_exchange() -> None:
    answers = {AuthStart: R.auth_challenge("VXNlcm5hbWU6"),
               AuthData: lambda ev, srv: R.auth_challenge("UGFzc3dvcmQ6") if ev.line == b"user" else R.AUTH_OK}
    h = auth_harness(answers=answers)
    h.feed(b"AUTH LOGIN\r\n")
    h.feed(b"dXNlcg==\r\n")
    h.feed(b"cGFzcw==\r\n")
    events, out = h.take()
    assert events == [AuthStart("LOGIN", None), AuthData(b"user"), AuthData(b"pass")]
    assert out == b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n"
    assert h.srv.authenticated and h.srv.state is State.READY
    h.feed(b"AUTH PLAIN\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: already authenticated\r\n"


def test_auth_empty_initial_response_and_empty_line() -> None:
    h = auth_harness()
    h.feed(b"AUTH PLAIN =\r\n")
    assert h.take()[0] == [AuthStart("PLAIN", b"")]
    h.feed(b"\r\n")
    assert h.take()[0] == [AuthData(b"")]


def test_auth_abort() -> None:
    h = auth_harness()
    h.feed(b"AUTH LOGIN\r\n")
    h.take()
    h.feed(b"*\r\n")
    assert h.take() == ([AuthAbort()], b"501 5.0.0 Authentication aborted\r\n")
    assert h.srv.state is State.READY


def test_auth_failure_reply_returns_to_ready() -> None:
    h = auth_harness(answers={AuthData: R.AUTH_FAILED})
    h.feed(b"AUTH PLAIN\r\n")
    h.feed(b"AGEAYg==\r\n")
    assert h.take()[1] == b"334 \r\n535 5.7.8 Authentication failed\r\n"
    assert h.srv.state is State.READY and not h.srv.authenticated


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"AUTH PLAIN !!!notbase64", b"501 5.5.2 Invalid base64 data"),  # AUTH-03
        (b"AUTH PLAIN AGE", b"501 5.5.2 Invalid base64 data"),
        (b"AUTH CRAM-MD5", b"504 5.5.4 Unrecognized authentication type"),
        (b"AUTH", b"501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
        (b"AUTH PLAIN a b", b"501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
        (b"AUTH PLAIN ", b"501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
    ],
)
def test_auth_command_errors(line: bytes, reply: bytes) -> None:
    events, out = three_ways(auth_harness, line + b"\r\n", trailing=False)
    assert (events, out) == ([], reply + b"\r\n")


def test_auth_bad_base64_response_aborts() -> None:
    h = auth_harness()
    h.feed(b"AUTH LOGIN\r\n")
    h.take()
    h.feed(b"@@@\r\n")
    assert h.take() == ([AuthAbort()], b"501 5.5.2 Invalid base64 data\r\n")


def test_auth_line_limit() -> None:
    h = auth_harness()
    big = base64.b64encode(b"x" * 6000)  # 8000 octets: over max_line, under max_auth_line
    h.feed(b"AUTH PLAIN " + big + b"\r\n")
    assert h.take()[0] == [AuthStart("PLAIN", b"x" * 6000)]
    h.srv.send  # noqa: B018 (harness answered 334)
    h.feed(b"A" * 9000 + b"\r\n")
    assert h.take() == ([AuthAbort()], b"500 5.5.6 Authentication exchange line is too long\r\n")
    h.feed(b"AUTH PLAIN " + b"A" * 9000 + b"\r\n")
    assert h.take() == ([], b"500 5.5.2 Error: line too long\r\n")


def test_auth_1000_aborts_no_state_leak() -> None:
    h = auth_harness(limits=None)
    for _ in range(1000):
        h.feed(b"AUTH LOGIN\r\n")
        h.feed(b"*\r\n")
        if h.srv.closed:
            break
    # every abort is an error: the hard limit ends the flood
    assert h.srv.closed and h.srv.error_count == 20


def test_auth_policy_refusals() -> None:
    h = ehlo_harness(auth_mechanisms=("PLAIN",), auth_allowed=False)  # plaintext, not allowed
    h.feed(b"AUTH PLAIN\r\n")
    assert h.take()[1] == b"538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    h = ehlo_harness(auth_mechanisms=("PLAIN",), auth_allowed=False, tls_active=True)
    h.feed(b"AUTH PLAIN\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: authentication not enabled\r\n"
    h = helo_harness(auth_mechanisms=("PLAIN",), auth_allowed=True)
    h.feed(b"AUTH PLAIN\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: send EHLO first\r\n"
    h = Harness(auth_mechanisms=("PLAIN",), auth_allowed=True)
    h.feed(b"AUTH PLAIN\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: send EHLO first\r\n"


def test_auth_requires_tls_when_configured() -> None:
    h = ehlo_harness(auth_mechanisms=("PLAIN",), auth_allowed=True, tls_available=True, require_tls=True)
    h.feed(b"AUTH PLAIN\r\n")  # SMTP-13
    assert h.take()[1] == b"530 5.7.0 Must issue a STARTTLS command first\r\n"


def test_auth_reply_with_235_sets_authenticated() -> None:
    h = auth_harness(answers={AuthStart: R.AUTH_OK})
    h.feed(b"AUTH PLAIN AGEAYg==\r\n")
    assert h.srv.authenticated
    assert isinstance(R.AUTH_OK, Reply)


def test_auth_then_disconnect() -> None:
    h = auth_harness()
    h.feed(b"AUTH LOGIN\r\n")
    h.take()
    event = h.eof()  # AUTH-03: "AUTH LOGIN then disconnect"
    assert event == Close("eof") and h.srv.closed


def test_tls_started_requires_accepted_starttls() -> None:
    h = tls_harness(answers={StartTls: R.TLS_UNAVAILABLE})
    h.feed(b"STARTTLS\r\n")
    with pytest.raises(Exception, match="without an accepted STARTTLS"):
        h.srv.tls_started()

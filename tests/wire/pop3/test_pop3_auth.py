"""AUTH (RFC 5034) and the refusal of plaintext logins on non-secure connections (POP-02, AUTH-03, AUTH-06)."""

from __future__ import annotations

import base64

import pytest
from pop3_helpers import converse, engine, lines, three_ways

from merpati.wire.pop3 import Close, CloseReason, Err, Login, Ok, RespCode, State


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_auth_plain_with_initial_response() -> None:
    out, events = three_ways(engine, b"AUTH PLAIN " + b64(b"\0ann@a.test\0secret") + b"\r\n", lambda ev: Ok("in"))
    assert events == [Login("ann@a.test", "secret", "PLAIN")]
    assert out == b"+OK in\r\n"


def test_auth_plain_with_authzid_reports_it() -> None:
    _, events = converse(engine(), b"AUTH PLAIN " + b64(b"boss@a.test\0ann@a.test\0secret") + b"\r\n")
    assert events == [Login("ann@a.test", "secret", "PLAIN", "boss@a.test")]


def test_auth_plain_without_initial_response_gets_an_empty_challenge() -> None:
    out, events = three_ways(engine, b"AUTH PLAIN\r\n" + b64(b"\0ann@a.test\0secret") + b"\r\n")
    assert out == b"+ \r\n+OK\r\n"
    assert events == [Login("ann@a.test", "secret", "PLAIN")]


def test_auth_plain_empty_initial_response_is_equals_sign() -> None:
    out, events = converse(engine(), b"AUTH PLAIN =\r\n")
    assert out == b"-ERR Invalid SASL response: PLAIN needs exactly authzid NUL authcid NUL password.\r\n"


def test_auth_login_two_challenges() -> None:
    script = b"auth login\r\n" + b64(b"ann@a.test") + b"\r\n" + b64(b"secret") + b"\r\n"
    out, events = three_ways(engine, script)
    assert lines(out) == [b"+ " + b64(b"Username:"), b"+ " + b64(b"Password:"), b"+OK"]
    assert events == [Login("ann@a.test", "secret", "LOGIN")]


def test_auth_login_with_initial_username() -> None:
    out, events = converse(engine(), b"AUTH LOGIN " + b64(b"ann@a.test") + b"\r\n" + b64(b"pw") + b"\r\n")
    assert lines(out) == [b"+ " + b64(b"Password:"), b"+OK"]
    assert events == [Login("ann@a.test", "pw", "LOGIN")]


def test_bare_auth_lists_mechanisms() -> None:
    out, _ = converse(engine(), b"AUTH\r\n")
    assert lines(out) == [b"+OK Supported SASL mechanisms", b"PLAIN", b"LOGIN", b"."]


def test_auth_cancelled_with_star() -> None:
    srv = engine()
    out, events = converse(srv, b"AUTH LOGIN\r\n*\r\nCAPA\r\n")
    assert lines(out)[:2] == [b"+ " + b64(b"Username:"), b"-ERR Authentication cancelled."]
    assert lines(out)[2] == b"+OK Capability list follows"  # back to commands
    assert events == [] and srv.state is State.AUTHORIZATION


@pytest.mark.parametrize(
    "script",
    [
        b"AUTH PLAIN !!!notbase64\r\n",
        b"AUTH PLAIN " + b64(b"no nuls at all") + b"\r\n",
        b"AUTH PLAIN\r\n!!!\r\n",
        b"AUTH CRAM-MD5\r\n",
        b"AUTH PLAIN " + b64(b"\0a\0\xff\xfe") + b"\r\n",
    ],
)
def test_malformed_sasl_is_refused_without_a_login(script: bytes) -> None:
    out, events = converse(engine(), script)
    assert events == [] and lines(out)[-1].startswith(b"-ERR")


def test_initial_response_over_8192_octets_is_refused_and_memory_bounded() -> None:
    srv = engine()
    out, events = converse(srv, b"AUTH PLAIN " + b"A" * 20000 + b"\r\nCAPA\r\n")
    assert lines(out)[0] == b"-ERR Line too long."
    assert events == [] and len(srv.buffered) == 0


def test_thousand_aborted_auths_only_cost_bad_commands() -> None:
    srv = engine()
    out, events = converse(srv, b"AUTH LOGIN\r\n*\r\n" * 1000)
    assert events == [Close(CloseReason.TOO_MANY_ERRORS)]  # the third abort closes (POP-07)
    assert lines(out)[-1] == b"-ERR Too many invalid commands."


def test_auth_login_then_eof_closes_cleanly() -> None:
    _, events = converse(engine(), b"AUTH LOGIN\r\n", eof=True)
    assert events == [Close(CloseReason.EOF)]


@pytest.mark.parametrize("script", [b"USER a@b\r\n", b"PASS x\r\n", b"AUTH PLAIN " + b64(b"\0a\0b") + b"\r\n", b"AUTH\r\n"])
def test_plaintext_login_refused_on_insecure_connection(script: bytes) -> None:
    out, events = converse(engine(plaintext_auth=False, tls_available=True), script)
    assert out == b"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
    assert events == []


def test_insecure_capa_does_not_advertise_user_or_sasl() -> None:
    out, _ = converse(engine(plaintext_auth=False, tls_available=True), b"CAPA\r\n")
    caps = lines(out)
    assert b"STLS" in caps and b"USER" not in caps and not any(c.startswith(b"SASL") for c in caps)


def test_too_many_failed_logins_close_the_connection() -> None:
    srv = engine()
    script = b"USER a\r\nPASS x\r\n" * 5
    out, events = converse(srv, script, lambda ev: Err("Authentication failed.", RespCode.AUTH))
    assert [type(e).__name__ for e in events] == ["Login", "Login", "Login", "Close"]
    assert events[-1] == Close(CloseReason.TOO_MANY_AUTH_FAILURES)


def test_pipelined_guesses_wait_for_each_answer() -> None:
    """AUTH-01: the engine never reads the next guess before the previous one was answered."""
    srv = engine()
    srv.receive_data(b"USER a\r\nPASS one\r\nUSER a\r\nPASS two\r\n")
    first = srv.next_event()
    assert first == Login("a", "one", "USER")
    assert srv.next_event().name == "PAUSED"  # type: ignore[union-attr]
    srv.send(Err("no", RespCode.AUTH))
    assert srv.next_event() == Login("a", "two", "USER")

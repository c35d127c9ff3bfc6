"""Line limits and error limits (SECURITY-CASES POP-04, POP-07)."""

from __future__ import annotations

from pop3_helpers import converse, engine, lines, logged_in

from merpati.wire.pop3 import Close, CloseReason, Noop, Pop3Limits, Stat


def test_command_over_512_octets_is_refused_and_the_session_goes_on() -> None:
    srv = logged_in()
    out, events = converse(srv, b"NOOP " + b"x" * 600 + b"\r\nSTAT\r\n")
    assert lines(out)[0] == b"-ERR Line too long."
    assert events == [Stat()]


def test_ten_megabytes_without_crlf_stay_bounded() -> None:
    srv = logged_in()
    chunk = b"A" * 65536
    for _ in range(160):
        srv.receive_data(chunk)
        assert srv.next_event().name == "NEED_DATA"  # type: ignore[union-attr]
        assert len(srv.buffered) <= 65536 + 512
    out, events = converse(srv, b"\r\nNOOP\r\n")
    assert lines(out)[0] == b"-ERR Line too long." and events == [Noop()]


def test_third_bad_command_before_login_closes() -> None:
    srv = engine()
    out, events = converse(srv, b"XYZZY\r\nFOO\r\nBAR\r\nBAZ\r\n")
    assert lines(out) == [b"-ERR Unknown command.", b"-ERR Unknown command.", b"-ERR Too many invalid commands."]
    assert events == [Close(CloseReason.TOO_MANY_ERRORS)]
    assert srv.closed


def test_bad_commands_after_login_allow_more() -> None:
    srv = logged_in()
    out, events = converse(srv, b"XYZZY\r\n" * 19 + b"NOOP\r\n")
    assert events == [Noop()]
    out, events = converse(srv, b"XYZZY\r\n")
    assert events == [Close(CloseReason.TOO_MANY_ERRORS)]


def test_nul_and_control_characters_are_bad_commands() -> None:
    out, events = converse(logged_in(), b"NO\x00OP\r\nST\rAT\r\n")
    assert lines(out) == [b"-ERR Invalid characters in command."] * 2 and events == []


def test_limits_are_parameters() -> None:
    srv = engine(limits=Pop3Limits(max_line=10, max_bad_prelogin=1))
    out, events = converse(srv, b"CAPA 12345678\r\n")
    assert lines(out) == [b"-ERR Too many invalid commands."]

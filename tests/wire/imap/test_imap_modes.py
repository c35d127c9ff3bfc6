"""IDLE, AUTHENTICATE, COMPRESS pauses and modes."""

from __future__ import annotations

from imap_helpers import Harness, three_ways

from merpati.wire.imap import (
    NEED_DATA,
    PAUSED,
    AuthCancel,
    Authenticate,
    AuthResponse,
    Command,
    Compress,
    Idle,
    IdleDone,
    ImapLimits,
    ImapServer,
    Noop,
    ProtocolError,
)


def test_idle_done() -> None:
    events, _ = three_ways(b"a IDLE\r\nDONE\r\nb NOOP\r\n")
    assert events == [Command("a", Idle()), IdleDone("a"), Command("b", Noop())]


def test_idle_done_case_insensitive() -> None:
    events, _ = three_ways(b"a IDLE\r\ndone\r\n")
    assert events[-1] == IdleDone("a")


def test_idle_other_line_ends_idle_with_bad() -> None:
    events, _ = three_ways(b"a IDLE\r\nb NOOP\r\nc NOOP\r\n")
    assert events == [Command("a", Idle()), ProtocolError("a", "Expected DONE"), Command("c", Noop())]


def test_idle_refused_reads_commands() -> None:
    events, _ = three_ways(b"a IDLE\r\nb NOOP\r\n", refuse=(Idle,))
    assert events == [Command("a", Idle()), Command("b", Noop())]


def test_idle_pauses_until_started() -> None:
    eng = ImapServer(authenticated=True)
    eng.receive_data(b"a IDLE\r\nDONE\r\n")
    assert eng.next_event() == Command("a", Idle())
    assert eng.next_event() is PAUSED
    eng.start_idle()
    assert eng.next_event() == IdleDone("a")
    assert eng.next_event() is NEED_DATA


def test_idle_long_line() -> None:
    events, _ = three_ways(b"a IDLE\r\n" + b"x" * 70000 + b"\r\nb NOOP\r\n")
    assert events == [Command("a", Idle()), ProtocolError("a", "Expected DONE"), Command("b", Noop())]


def test_authenticate_exchange() -> None:
    data = b"a AUTHENTICATE PLAIN\r\nAHUAcA==\r\nb NOOP\r\n"
    events, _ = three_ways(data, authenticated=False)
    assert events == [Command("a", Authenticate("PLAIN")), AuthResponse("a", b"\0u\0p"), Command("b", Noop())]


def test_authenticate_two_rounds_and_empty_line() -> None:
    data = b"a AUTHENTICATE LOGIN\r\ndQ==\r\n\r\nb NOOP\r\n"
    events, _ = three_ways(data, authenticated=False, auth_rounds=2)
    assert events == [Command("a", Authenticate("LOGIN")), AuthResponse("a", b"u"), AuthResponse("a", b""),
                      Command("b", Noop())]


def test_authenticate_cancel() -> None:
    events, _ = three_ways(b"a AUTHENTICATE PLAIN\r\n*\r\nb NOOP\r\n", authenticated=False)
    assert events == [Command("a", Authenticate("PLAIN")), AuthCancel("a"), Command("b", Noop())]


def test_authenticate_bad_base64() -> None:
    events, _ = three_ways(b"a AUTHENTICATE PLAIN\r\n!!!notbase64\r\nb NOOP\r\n", authenticated=False)
    assert events[1] == ProtocolError("a", "Invalid base64 in SASL response")
    assert events[2] == Command("b", Noop())


def test_authenticate_response_too_long() -> None:
    data = b"a AUTHENTICATE PLAIN\r\n" + b"A" * 9000 + b"\r\nb NOOP\r\n"
    events, _ = three_ways(data, authenticated=False)
    assert events[1] == ProtocolError("a", "SASL response too long")
    assert events[2] == Command("b", Noop())


def test_authenticate_sasl_ir_finished_at_once() -> None:
    events, _ = three_ways(b"a AUTHENTICATE PLAIN AHUAcA==\r\nb NOOP\r\n", authenticated=False, auth_rounds=0)
    assert events == [Command("a", Authenticate("PLAIN", b"\0u\0p")), Command("b", Noop())]


def test_authenticate_lines_not_parsed_as_commands() -> None:
    eng = ImapServer()
    eng.receive_data(b"a AUTHENTICATE PLAIN\r\nYiBOT09Q\r\n")
    assert isinstance(eng.next_event(), Command)
    assert eng.next_event() is PAUSED
    eng.continue_auth()
    assert eng.next_event() == AuthResponse("a", b"b NOOP")
    assert eng.next_event() is PAUSED


def test_compress_returns_buffered_bytes() -> None:
    eng = ImapServer(authenticated=True)
    eng.receive_data(b"a COMPRESS DEFLATE\r\n\x78\x9c")
    assert eng.next_event() == Command("a", Compress("DEFLATE"))
    assert eng.next_event() is PAUSED
    assert eng.start_compress() == b"\x78\x9c"
    assert eng.next_event() is NEED_DATA
    eng.receive_data(b"b NOOP\r\n")
    assert eng.next_event() == Command("b", Noop())


def test_compress_refused() -> None:
    events, _ = three_ways(b"a COMPRESS DEFLATE\r\nb NOOP\r\n")
    assert events == [Command("a", Compress("DEFLATE")), Command("b", Noop())]


def test_stray_empty_lines_ignored() -> None:
    events, _ = three_ways(b"\r\n\r\na NOOP\r\n")
    assert events == [Command("a", Noop())]


def test_limits_validation() -> None:
    import pytest
    with pytest.raises(ValueError):
        ImapLimits(max_line=10)
    with pytest.raises(ValueError):
        ImapLimits(max_depth=0)


def test_harness_smoke() -> None:
    h = Harness()
    h.feed(b"a NOOP\r\n")
    assert h.take()[0] == [Command("a", Noop())]

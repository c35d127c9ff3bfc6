"""Hostile input from SECURITY-CASES.md (IMAP-01 … IMAP-11) at the wire level."""

from __future__ import annotations

import tracemalloc

import pytest
from imap_helpers import Harness, harness, limits, one, three_ways

from merpati.wire.imap import (
    NEED_DATA,
    PAUSED,
    Command,
    ConnectionClosed,
    ImapLimits,
    ImapServer,
    Login,
    Noop,
    ProtocolError,
    StartTls,
)

CONT = b"+ Ready for literal data\r\n"


# -- IMAP-01: STARTTLS injection (CVE-2011-0411) ------------------------------------------
def test_imap01_starttls_discards_pipelined_plaintext() -> None:
    eng = ImapServer()
    eng.receive_data(b"A STARTTLS\r\nXYZQW NOOP\r\n")
    ev = eng.next_event()
    assert ev == Command("A", StartTls())
    assert eng.next_event() is PAUSED  # nothing behind STARTTLS is looked at
    assert eng.next_event() is PAUSED
    eng.start_tls()
    assert eng.buffered == b""
    assert eng.next_event() is NEED_DATA
    eng.receive_data(b"C NOOP\r\n")
    assert eng.next_event() == Command("C", Noop())
    assert eng.next_event() is NEED_DATA


def test_imap01_injection_split_across_reads() -> None:
    eng = ImapServer()
    eng.receive_data(b"A STARTTLS\r\nXYZ")
    assert eng.next_event() == Command("A", StartTls())
    eng.receive_data(b"QW NOOP\r\n")  # arrives before the session acted
    assert eng.next_event() is PAUSED
    eng.start_tls()
    assert eng.next_event() is NEED_DATA


def test_imap01_starttls_refused_keeps_reading() -> None:
    eng = ImapServer()
    eng.receive_data(b"A STARTTLS\r\nB NOOP\r\n")
    assert eng.next_event() == Command("A", StartTls())
    eng.resume()
    assert eng.next_event() == Command("B", Noop())


def test_imap01_starttls_mid_command_state_is_reset() -> None:
    eng = ImapServer()
    eng.receive_data(b"A STARTTLS\r\nB LOGIN {5}\r\n")
    assert eng.next_event() == Command("A", StartTls())
    eng.start_tls()
    assert not eng.in_command
    eng.receive_data(b"C LOGIN u p\r\n")
    assert eng.next_event() == Command("C", Login("u", "p"))
    assert eng.data_to_send() == b""


# -- IMAP-03: paren bombs -------------------------------------------------------------------
def test_imap03_paren_bomb_prelogin() -> None:
    data = b"a NOOP " + b"(" * 4000 + b")" * 4000 + b"\r\n"
    events, _ = three_ways(data, authenticated=False)
    assert len(events) == 1 and isinstance(events[0], ProtocolError)
    assert events[0].tag == "a"


def test_imap03_nested_list_prelogin_depth_one() -> None:
    ev = one(b'a ID (("x" "y"))\r\n', authenticated=False)
    assert isinstance(ev, ProtocolError)
    ev = one(b'a ID ("x" "y")\r\n', authenticated=False)
    assert isinstance(ev, Command)


@pytest.mark.parametrize("authenticated", [False, True])
def test_imap03_only_open_parens_without_lf_is_bounded(authenticated: bool) -> None:
    eng = ImapServer(authenticated=authenticated)
    lim = eng.limits.max_line if authenticated else eng.limits.max_line_prelogin
    tracemalloc.start()
    try:
        for _ in range(200):
            eng.receive_data(b"(" * 4096)
            while (ev := eng.next_event()) is not NEED_DATA:
                assert isinstance(ev, ProtocolError)
            assert len(eng.buffered) <= lim + 4096
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * lim + 65536


def test_imap03_deep_search_nesting_post_login() -> None:
    depth = 100
    ev = one(b"a SEARCH " + b"(" * depth + b"ALL" + b")" * depth + b"\r\n")
    assert isinstance(ev, ProtocolError)
    ev = one(b"a SEARCH " + b"NOT " * 100 + b"ALL\r\n")
    assert isinstance(ev, ProtocolError)
    ev = one(b"a SEARCH " + b"(" * 10 + b"ALL" + b")" * 10 + b"\r\n")
    assert isinstance(ev, Command)


def test_imap03_search_key_count_limited() -> None:
    ev = one(b"a SEARCH" + b" ALL" * 2000 + b"\r\n")
    assert isinstance(ev, ProtocolError) and "search keys" in ev.text


# -- IMAP-04: long lines --------------------------------------------------------------------
def test_imap04_prelogin_line_limit() -> None:
    line = b"a LOGIN " + b"x" * 8200 + b" y\r\n"
    events, _ = three_ways(line + b"b NOOP\r\n", authenticated=False)
    assert isinstance(events[0], ProtocolError) and events[0].tag == "a"
    assert events[1] == Command("b", Noop())


def test_imap04_prelogin_exactly_at_limit_is_fine() -> None:
    lim = ImapLimits().max_line_prelogin
    line = b"a LOGIN u " + b"x" * (lim - len(b"a LOGIN u ") - 2) + b"\r\n"
    assert len(line) == lim
    ev = one(line, authenticated=False)
    assert isinstance(ev, Command)
    ev = one(line[:-2] + b"x\r\n", authenticated=False)
    assert isinstance(ev, ProtocolError)


def test_imap04_postlogin_line_limit() -> None:
    line = b"a SEARCH TEXT " + b"x" * 65537 + b"\r\n"
    events, _ = three_ways(line + b"b NOOP\r\n")
    assert isinstance(events[0], ProtocolError) and events[1] == Command("b", Noop())
    assert one(b"a SEARCH TEXT " + b"x" * 60000 + b"\r\n").command is not None


def test_imap04_switch_limits_after_login() -> None:
    eng = ImapServer()
    line = b"a SEARCH TEXT " + b"x" * 20000 + b"\r\n"
    eng.receive_data(line)
    assert isinstance(eng.next_event(), ProtocolError)
    eng.set_authenticated()
    eng.receive_data(line)
    assert isinstance(eng.next_event(), Command)


def test_imap04_huge_line_without_lf_memory_bounded() -> None:
    eng = ImapServer()
    tracemalloc.start()
    try:
        for _ in range(1000):  # 16 MB
            eng.receive_data(b"x" * 16384)
            while (ev := eng.next_event()) is not NEED_DATA:
                assert isinstance(ev, ProtocolError)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    eng.receive_data(b"\r\nb NOOP\r\n")
    assert eng.next_event() == Command("b", Noop())


def test_imap04_command_total_limited_across_literals() -> None:
    lim = limits(max_command=4096, max_literal=4096)
    data = b"a LOGIN {3000}\r\n" + b"u" * 3000 + b" {3000}\r\n"
    events, out = three_ways(data, limits=lim)
    assert isinstance(events[-1], ProtocolError)
    assert out.count(b"+ ") == 1


# -- IMAP-05: huge synchronising literals -------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"a LOGIN {4294967296}\r\n",
    b"a LOGIN {99999999999999999999999999999999999999999999999999999}\r\n",
    b"a LOGIN {8193}\r\n",
])
def test_imap05_prelogin_literal_too_big(data: bytes) -> None:
    events, out = three_ways(data + b"b NOOP\r\n", authenticated=False)
    assert isinstance(events[0], ProtocolError) and events[0].tag == "a" and not events[0].fatal
    assert events[1] == Command("b", Noop())
    assert out == b""  # no continuation


def test_imap05_append_literal_over_message_size() -> None:
    lim = limits(message_size=1000)
    for data in (b"a APPEND INBOX {1001}\r\n", b"a APPEND INBOX {99999999999999999999}\r\n"):
        events, out = three_ways(data + b"b NOOP\r\n", limits=lim)
        assert events[0] == ProtocolError("a", "Message too large", "NO", "TOOBIG")
        assert events[1] == Command("b", Noop())
        assert out == b""


def test_imap05_no_allocation_for_huge_digit_string() -> None:
    eng = ImapServer(authenticated=True)
    tracemalloc.start()
    try:
        eng.receive_data(b"a APPEND INBOX {" + b"9" * 5000 + b"}\r\n")
        ev = eng.next_event()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(ev, ProtocolError)
    assert peak < 200_000


def test_imap05_literal_at_limit_gets_continuation() -> None:
    data = b"a LOGIN {8192}\r\n" + b"u" * 8192 + b" p\r\n"
    events, out = three_ways(data, authenticated=False, limits=limits(max_command_prelogin=20000))
    assert out == CONT
    assert events == [Command("a", Login("u" * 8192, "p"))]


# -- IMAP-06: LITERAL- --------------------------------------------------------------------------
def test_imap06_literal_minus_4097_refused() -> None:
    data = b"A1 APPEND INBOX {4097+}\r\n" + b"x" * 4097 + b"\r\n"
    events, out = three_ways(data, literal_plus=False)
    assert events == [ProtocolError("A1", "Non-synchronizing literal size too large", "BAD", None, True)]
    assert out == b""


def test_imap06_literal_minus_4096_accepted() -> None:
    msg = b"x" * 4094 + b"\r\n"
    data = b"A1 APPEND INBOX {4096+}\r\n" + msg + b"\r\n"
    events, out = three_ways(data, literal_plus=False)
    assert events[-1].command.messages[0].data == msg
    assert out == b""


def test_imap06_literal_plus_bounded_by_limits() -> None:
    lim = limits(message_size=10_000, max_literal=2000)
    msg = b"y" * 9000
    events, _ = three_ways(b"a APPEND INBOX {9000+}\r\n" + msg + b"\r\n", limits=lim)
    assert events[-1].command.messages[0].data == msg
    events, _ = three_ways(b"a APPEND INBOX {10001+}\r\n" + b"z" * 10, limits=lim)
    assert events == [ProtocolError("a", "Message too large", "NO", "TOOBIG", True)]
    events, _ = three_ways(b"a LOGIN {2001+}\r\n" + b"z" * 10, limits=lim)
    assert events[0].fatal


def test_fatal_error_closes_engine() -> None:
    eng = ImapServer(literal_plus=False, authenticated=True)
    eng.receive_data(b"A1 APPEND INBOX {4097+}\r\nb NOOP\r\n")
    assert eng.next_event().fatal
    assert eng.closed
    eng.receive_data(b"c NOOP\r\n")
    assert eng.next_event() is NEED_DATA


# -- IMAP-07: NUL -------------------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b'a LOGIN "us\x00er" "pw"\r\n',
    b"a LOGIN us\x00er pw\r\n",
    b'a SELECT "IN\x00BOX"\r\n',
    b"a LOGIN {5}\r\nus\x00er pw\r\n",
    b"a CREATE {3+}\r\na\x00b\r\n",
    b"a SEARCH TEXT {2}\r\n\x00\x00\r\n",
])
def test_imap07_nul_refused(data: bytes) -> None:
    events, _ = three_ways(data + b"b NOOP\r\n", authenticated=False)
    assert isinstance(events[0], ProtocolError) and events[0].tag == "a" and "NUL" in events[0].text
    assert events[-1] == Command("b", Noop())


def test_imap07_nul_in_append_message_refused_but_not_in_literal8() -> None:
    events, _ = three_ways(b"a APPEND INBOX {3}\r\na\x00b\r\nb NOOP\r\n")
    assert isinstance(events[1], ProtocolError) and "NUL" in events[1].text
    assert events[2] == Command("b", Noop())
    events, _ = three_ways(b"a APPEND INBOX ~{3}\r\na\x00b\r\n")
    assert events[-1].command.messages[0].data == b"a\x00b"


def test_imap07_nul_in_literal8_outside_append_refused() -> None:
    ev = one(b"a LOGIN ~{3}\r\n")
    assert isinstance(ev, ProtocolError)


# -- IMAP-10: malformed modified UTF-7 ----------------------------------------------------------
@pytest.mark.parametrize("name", [b'"&"', b'"&Jjo!"', b'"&AGE-&AGE-"', b'"&U,BTFw-&ZeVnLIqe-"', b'"&AGE"',
                                  b'"\xc3\xa4"', b'"&2D3eAA"', b'"&2D0-"', b'"&AAA-"'])
def test_imap10_bad_mutf7_is_bad(name: bytes) -> None:
    for cmd in (b"CREATE", b"SELECT", b"DELETE"):
        ev = one(b"a " + cmd + b" " + name + b"\r\n")
        assert isinstance(ev, ProtocolError) and ev.status == "BAD", (cmd, name)


def test_utf8_accept_mode_names() -> None:
    h = harness(utf8=True)
    h.feed('a CREATE "Entwürfe&Co"\r\n'.encode())
    events, _ = h.take()
    assert events[0].command.mailbox == "Entwürfe&Co"
    h.feed(b'a CREATE "\xff"\r\n')
    assert isinstance(h.take()[0][0], ProtocolError)
    eng = ImapServer(authenticated=True)
    eng.enable_utf8()
    eng.receive_data(b'a SELECT "\xe6\x97\xa5"\r\n')
    assert eng.next_event().command.mailbox == "\u65e5"


# -- IMAP-11: sequence sets ---------------------------------------------------------------------
@pytest.mark.parametrize("data", [
    b"a FETCH 0 FLAGS", b"a FETCH 4294967296 FLAGS", b"a UID FETCH 1:99999999999 FLAGS",
    b"a FETCH 01 FLAGS", b"a FETCH 1:0 FLAGS", b"a FETCH 1,,2 FLAGS", b"a FETCH 1: FLAGS",
    b"a FETCH :1 FLAGS", b"a FETCH 1:2:3 FLAGS", b"a FETCH $1 FLAGS", b"a FETCH , FLAGS",
])
def test_imap11_bad_sequence_sets(data: bytes) -> None:
    ev = one(data + b"\r\n")
    assert isinstance(ev, ProtocolError) and ev.status == "BAD"


def test_imap11_reversed_range_is_fine() -> None:
    ev = one(b"a FETCH *:1 FLAGS\r\n")
    assert list(ev.command.sequence.iterate(3)) == [1, 2, 3]
    assert one(b"a FETCH 4294967295 FLAGS\r\n").command.sequence.ranges == ((4294967295, 4294967295),)


def test_imap11_huge_sequence_set_limited() -> None:
    ev = one(b"a SEARCH " + b"1," * 50_000 + b"1\r\n", limits=limits(max_line=200_000))
    assert isinstance(ev, ProtocolError) and "sequence set" in ev.text
    ev = one(b"a SEARCH " + b"1," * 10_000 + b"1\r\n")
    assert isinstance(ev, Command)
    assert list(ev.command.key.keys[0].set.iterate(5)) == [1]


def test_eof_mid_command() -> None:
    h = Harness()
    h.feed(b"a LOGIN {5}\r\nab")
    h.eng.receive_eof()
    h.pump()
    assert h.take()[0][-1] == ConnectionClosed(True)
    h = Harness()
    h.eng.receive_eof()
    h.pump()
    assert h.take()[0] == [ConnectionClosed(False)]


def test_append_before_login_bounded_by_prelogin_literal_limit() -> None:
    events, out = three_ways(b"a APPEND INBOX {8193}\r\nb NOOP\r\n", authenticated=False)
    assert events[0] == ProtocolError("a", "Message too large", "NO", "TOOBIG")
    assert events[1] == Command("b", Noop())
    assert out == b""

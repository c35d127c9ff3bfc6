"""STLS (RFC 2595 §4) and SECURITY-CASES POP-01: nothing pipelined in plaintext runs inside TLS."""

from __future__ import annotations

import pytest
from pop3_helpers import converse, engine, lines

from merpati.wire.pop3 import NEED_DATA, PAUSED, Login, Pop3ProtocolError, StartTls, State


def test_stls_then_injected_capa_is_discarded() -> None:
    srv = engine(tls_available=True, plaintext_auth=False)
    out, events = converse(srv, b"STLS\r\nCAPA\r\n")
    assert out == b"+OK Begin TLS negotiation now.\r\n"
    assert events == [StartTls()]
    assert srv.next_event() is PAUSED and srv.state is State.TLS_PENDING
    srv.receive_data(b"USER injected\r\n")  # still plaintext: dropped
    srv.tls_started()
    assert srv.buffered == b""
    assert srv.next_event() is NEED_DATA
    assert srv.data_to_send() == b""  # no unsolicited CAPA listing inside TLS


def test_stls_byte_by_byte_with_injection() -> None:
    srv = engine(tls_available=True)
    out, events = converse(srv, b"STLS\r\nUSER x\r\nPASS y\r\n", step=1)
    assert events == [StartTls()] and out == b"+OK Begin TLS negotiation now.\r\n"
    srv.tls_started()
    assert srv.buffered == b""


def test_state_learned_before_tls_is_forgotten() -> None:
    srv = engine(tls_available=True, plaintext_auth=True)
    converse(srv, b"UTF8\r\nUSER before@tls\r\nSTLS\r\n")
    srv.tls_started()
    assert not srv.utf8 and srv.tls_active and srv.plaintext_auth
    out, events = converse(srv, b"PASS pw\r\n")
    assert out == b"-ERR No user name given.\r\n" and events == []


def test_login_allowed_after_tls() -> None:
    srv = engine(tls_available=True, plaintext_auth=False)
    converse(srv, b"STLS\r\n")
    srv.tls_started()
    out, events = converse(srv, b"USER a\r\nPASS b\r\n")
    assert events == [Login("a", "b", "USER")]


def test_stls_refused_when_unavailable_or_active() -> None:
    out, _ = converse(engine(tls_available=False), b"STLS\r\n")
    assert out == b"-ERR TLS is not available.\r\n"
    out, _ = converse(engine(tls_available=True, tls_active=True), b"STLS\r\n")
    assert out == b"-ERR TLS is already active.\r\n"
    srv = engine(tls_available=True)
    converse(srv, b"STLS\r\n")
    srv.tls_started()
    out, _ = converse(srv, b"STLS\r\nCAPA\r\n")
    assert lines(out)[0] == b"-ERR TLS is already active." and b"STLS" not in lines(out)


def test_tls_started_without_stls_is_a_contract_error() -> None:
    with pytest.raises(Pop3ProtocolError):
        engine().tls_started()

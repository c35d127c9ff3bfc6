"""Every POP3 command through the engine (RFC 1939 §4-§7, RFC 2449 CAPA, RFC 6856 UTF8)."""

from __future__ import annotations

import pytest
from pop3_helpers import converse, engine, lines, logged_in, three_ways

from merpati.wire.pop3 import (
    Close,
    CloseReason,
    Dele,
    Err,
    Listing,
    Login,
    MultiLine,
    Noop,
    Ok,
    Pop3ProtocolError,
    Pop3Server,
    Quit,
    RespCode,
    Retr,
    Rset,
    Stat,
    State,
    Top,
    UidListing,
)


def test_greeting() -> None:
    assert Pop3Server().greeting() == b"+OK Merpati POP3 server ready.\r\n"


def test_user_pass_gives_one_login_event_with_the_password_verbatim() -> None:
    out, events = three_ways(engine, b"USER ann@a.test\r\nPASS two words \r\n")
    assert out == b"+OK\r\n+OK\r\n"
    assert events == [Login("ann@a.test", "two words ", "USER")]
    assert "two words" not in repr(events[0])  # never logged


def test_login_refused_stays_in_authorization_and_forgets_the_user() -> None:
    srv = engine()
    out, events = converse(srv, b"USER a@b\r\nPASS x\r\nPASS y\r\n", lambda ev: Err("Authentication failed.", RespCode.AUTH))
    assert out == b"+OK\r\n-ERR [AUTH] Authentication failed.\r\n-ERR No user name given.\r\n"
    assert srv.state is State.AUTHORIZATION and not srv.logged_in


def test_login_accepted_enters_transaction() -> None:
    srv = logged_in()
    assert srv.state is State.TRANSACTION and srv.logged_in


@pytest.mark.parametrize(
    "command, event",
    [
        (b"STAT", Stat()),
        (b"LIST", Listing(None)),
        (b"LIST 3", Listing(3)),
        (b"UIDL", UidListing(None)),
        (b"UIDL 2", UidListing(2)),
        (b"RETR 1", Retr(1)),
        (b"TOP 1 0", Top(1, 0)),
        (b"TOP 2 10", Top(2, 10)),
        (b"DELE 1", Dele(1)),
        (b"RSET", Rset()),
        (b"NOOP", Noop()),
        (b"stat", Stat()),
        (b"rEtR 7", Retr(7)),
        (b"RETR  7 ", Retr(7)),
    ],
)
def test_transaction_commands_become_decision_events(command: bytes, event: object) -> None:
    out, events = three_ways(logged_in, command + b"\r\n", lambda ev: Ok("fine"))
    assert events == [event]
    assert out == b"+OK fine\r\n"


def test_multiline_answers_are_stuffed_and_terminated() -> None:
    srv = logged_in()
    out, _ = converse(srv, b"RETR 1\r\n", lambda ev: MultiLine("3 octets", b".\r\n"))
    assert out == b"+OK 3 octets\r\n..\r\n.\r\n"


def test_transaction_commands_refused_before_login() -> None:
    out, events = converse(engine(), b"STAT\r\n")
    assert out == b"-ERR Unknown command.\r\n" and events == []


def test_authorization_commands_refused_after_login() -> None:
    srv = logged_in()
    out, events = converse(srv, b"USER x\r\nSTLS\r\nUTF8\r\n")
    assert lines(out) == [b"-ERR Command not valid in this state."] * 3 and events == []


def test_quit_before_login_closes_without_a_session_decision() -> None:
    srv = engine()
    out, events = three_ways(engine, b"QUIT\r\n")
    assert out == b"+OK Logging out.\r\n"
    assert events == [Close(CloseReason.QUIT)]
    converse(srv, b"QUIT\r\n")
    assert srv.closed


def test_quit_in_transaction_is_the_update_decision() -> None:
    srv = logged_in()
    ev = None

    def answer(event: object) -> Ok:
        nonlocal ev
        ev = event
        assert srv.state is State.UPDATE
        return Ok("bye")

    out, events = converse(srv, b"QUIT\r\nSTAT\r\n", answer)
    assert ev == Quit() and out == b"+OK bye\r\n"
    assert events == [Quit(), Close(CloseReason.QUIT)]  # STAT after QUIT is never read
    assert srv.closed


def test_capa_lists_every_capability_before_login() -> None:
    out, _ = converse(engine(tls_available=True), b"CAPA\r\n")
    assert lines(out) == [
        b"+OK Capability list follows", b"CAPA", b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE",
        b"PIPELINING", b"EXPIRE NEVER", b"USER", b"SASL PLAIN LOGIN", b"STLS", b"UTF8 USER",
        b"IMPLEMENTATION Merpati", b".",
    ]


def test_capa_after_login_drops_login_capabilities_and_shows_login_delay() -> None:
    srv = logged_in(tls_available=True, login_delay=60)
    out, events = converse(srv, b"CAPA\r\n")
    caps = lines(out)[1:-1]
    assert b"LOGIN-DELAY 60" in caps and b"TOP" in caps and b"UIDL" in caps
    assert not {b"USER", b"STLS", b"SASL PLAIN LOGIN"} & set(caps)
    assert events == []


def test_capa_over_tls_has_no_stls() -> None:
    out, _ = converse(engine(tls_available=True, tls_active=True, plaintext_auth=False), b"CAPA\r\n")
    caps = lines(out)
    assert b"STLS" not in caps and b"USER" in caps


def test_utf8_command() -> None:
    srv = engine()
    out, _ = converse(srv, b"UTF8\r\nUSER j\xc3\xb6rg@b.test\r\nPASS p\xc3\xa4ss\r\n")
    assert srv.utf8
    assert lines(out)[0] == b"+OK UTF8 enabled."


def test_utf8_mode_lets_utf8_text_through_responses() -> None:
    srv = engine()
    converse(srv, b"UTF8\r\nUSER a\r\nPASS b\r\n", lambda ev: Err("Kein Zugriff für dich"))
    srv2 = engine()
    out2, _ = converse(srv2, b"USER a\r\nPASS b\r\n", lambda ev: Err("Kein Zugriff für dich"))
    assert lines(out2)[-1] == b"-ERR Kein Zugriff f?r dich"
    srv3 = engine()
    out3, _ = converse(srv3, b"UTF8\r\nUSER a\r\nPASS b\r\n", lambda ev: Err("Kein Zugriff für dich"))
    assert lines(out3)[-1] == "-ERR Kein Zugriff für dich".encode()


def test_user_with_invalid_utf8_is_refused() -> None:
    out, events = converse(engine(), b"USER \xff\xfe\r\n")
    assert out == b"-ERR [AUTH] Invalid user name.\r\n" and events == []


def test_response_text_is_sanitised() -> None:
    srv = logged_in()
    out, _ = converse(srv, b"NOOP\r\n", lambda ev: Ok("a\r\nb\x00c" + "x" * 2000))
    assert out.count(b"\r\n") == 1 and b"\x00" not in out and len(out) <= 512


def test_send_without_pending_event_is_a_contract_error() -> None:
    with pytest.raises(Pop3ProtocolError):
        Pop3Server().send(Ok())


def test_multiline_cannot_answer_a_login() -> None:
    srv = engine()
    srv.receive_data(b"USER a\r\nPASS b\r\n")
    assert isinstance(srv.next_event(), Login)
    with pytest.raises(Pop3ProtocolError):
        srv.send(MultiLine("x", b""))


def test_eof_after_complete_commands_runs_them_then_closes() -> None:
    srv = logged_in()
    out, events = converse(srv, b"NOOP\r\nDELE 1\r\nNOOP", eof=True)
    assert events == [Noop(), Dele(1), Close(CloseReason.EOF)]
    assert out == b"+OK\r\n+OK\r\n"


def test_bare_lf_lines_are_accepted() -> None:
    out, events = converse(logged_in(), b"STAT\nNOOP\r\n")
    assert events == [Stat(), Noop()]

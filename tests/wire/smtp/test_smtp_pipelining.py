"""RFC 2920 pipelining rules and exact transcripts (SECURITY-CASES SMTP-07, SMTP-08)."""

from __future__ import annotations

import pytest
from smtp_helpers import Harness, ehlo_harness, helo_harness, in_data_harness

from merpati.core.address import Address
from merpati.wire.smtp import Close, DataChunk, DataEnd, DataStart, MailFrom, MailParams, Quit, RcptTo

SYNC = b"554 5.5.0 Error: SMTP protocol synchronization\r\n"


def test_smtp07_pipelining_after_end_of_data() -> None:
    # smtpsmug "pipelining": end of data followed in the same write by a whole transaction
    h = in_data_harness()
    h.feed(b"legit\r\n.\r\nMAIL FROM:<smuggled@x>\r\nRCPT TO:<victim@ours>\r\nDATA\r\n"
           b"From: smuggled@x\r\n\r\nSMUGGLED\r\n.\r\n")
    events, out = h.take()
    assert out == (b"250 2.0.0 Ok: queued as Q1\r\n"  # the legit message
                   b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"  # MAIL, RCPT (pipelinable)
                   + SYNC)  # DATA followed by buffered bytes: never a second data phase
    assert [type(e) for e in events] == [DataChunk, DataEnd, MailFrom, RcptTo, Close]
    assert events[-1].reason == "sync-error"
    assert h.srv.closed


def test_smtp07_ehlo_and_mail_in_one_write_after_helo() -> None:
    h = helo_harness()
    h.feed(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n")
    events, out = h.take()
    assert out == SYNC
    assert [type(e) for e in events] == [Close]


def test_no_pipelining_before_ehlo() -> None:
    h = Harness()
    h.feed(b"EHLO x\r\nMAIL FROM:<a@b.example>\r\n")
    assert h.take() == ([Close("sync-error")], SYNC)


def test_no_pipelining_after_helo_even_for_mail_rcpt() -> None:
    h = helo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n")
    assert h.take()[1] == SYNC


def test_no_pipelining_after_helo_end_of_data() -> None:
    h = helo_harness()
    for line in (b"MAIL FROM:<a@b.example>\r\n", b"RCPT TO:<c@d.example>\r\n", b"DATA\r\n"):
        h.feed(line)
    h.take()
    h.feed(b"x\r\n.\r\nQUIT\r\n")
    events, out = h.take()
    assert out == b"250 2.0.0 Ok: queued as Q1\r\n" + SYNC
    assert isinstance(events[-1], Close)


def test_helo_session_one_command_at_a_time_works() -> None:
    h = helo_harness()
    for line in (b"MAIL FROM:<a@b.example>\r\n", b"RCPT TO:<c@d.example>\r\n", b"DATA\r\n",
                 b"hi\r\n.\r\n", b"QUIT\r\n"):
        h.feed(line)
    assert h.take()[1] == (b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
                           b"250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n")


def test_smtp08_bad_pipelined_data_exact_transcript() -> None:
    # Dovecot "Bad pipelined DATA": the RCPT fails, both DATA are refused, FROP! is a command
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<senderp@example.com>\r\nRCPT TO:<<recipient1@example.com>\r\n"
           b"DATA\r\nFROP!\r\nDATA\r\nFROP!\r\n.\r\nQUIT\r\n")
    events, out = h.take()
    assert out == (
        b"250 2.0.0 Ok\r\n"
        b"501 5.1.3 Bad recipient address syntax\r\n"
        b"503 5.5.1 Error: need RCPT command\r\n"
        b"500 5.5.2 Error: command not recognized\r\n"
        b"503 5.5.1 Error: need RCPT command\r\n"
        b"500 5.5.2 Error: command not recognized\r\n"
        b"500 5.5.2 Error: command not recognized\r\n"
        b"221 2.0.0 Bye\r\n"
    )
    assert events == [MailFrom(Address("senderp", "example.com"), MailParams()), Quit(), Close("quit")]
    assert not any(isinstance(e, DataStart) for e in events)


def test_normal_pipelined_transaction() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRCPT TO:<e@d.example>\r\nDATA\r\n")
    h.feed(b"body\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\nQUIT\r\n")
    assert h.take()[1] == (b"250 2.0.0 Ok\r\n" * 3 + b"354 End data with <CR><LF>.<CR><LF>\r\n"
                           b"250 2.0.0 Ok: queued as Q1\r\n" + b"250 2.0.0 Ok\r\n" * 3 + b"221 2.0.0 Bye\r\n")


@pytest.mark.parametrize("command", [b"EHLO x", b"HELO x", b"NOOP", b"VRFY x", b"EXPN x", b"QUIT"])
def test_last_in_group_commands(command: bytes) -> None:
    h = ehlo_harness()
    h.feed(command + b"\r\nRSET\r\n")
    events, out = h.take()
    assert out == SYNC and events == [Close("sync-error")]


def test_data_must_be_last_in_group() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nbody\r\n.\r\n")
    events, out = h.take()
    assert out == b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n" + SYNC
    assert not any(isinstance(e, DataStart) for e in events)


def test_bytes_arriving_while_paused_are_not_a_violation_for_pipelinable() -> None:
    srv = ehlo_harness().srv
    srv.receive_data(b"MAIL FROM:<a@b.example>\r\n")
    assert isinstance(srv.next_event(), MailFrom)
    srv.receive_data(b"RCPT TO:<c@d.example>\r\n")
    srv.send(srv.hello_reply().__class__(250, "2.0.0", "Ok"))
    assert isinstance(srv.next_event(), RcptTo)


def test_replies_stay_in_command_order() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example>\r\nFOO\r\nRCPT TO:<>\r\nRCPT TO:<c@d.example>\r\nRSET\r\n")
    assert h.replies() == [b"250 2.0.0 Ok", b"500 5.5.2 Error: command not recognized",
                           b"501 5.1.3 Bad recipient address syntax", b"250 2.0.0 Ok", b"250 2.0.0 Ok"]

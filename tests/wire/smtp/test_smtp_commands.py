"""Command-level behaviour of the SMTP engine: greeting, EHLO/HELO, MAIL, RCPT, misc verbs."""

from __future__ import annotations

import pytest
from smtp_helpers import HOST, Harness, ehlo_harness, helo_harness, make_server, three_ways

from merpati.core.address import Address
from merpati.wire.smtp import (
    NEED_DATA,
    PAUSED,
    Close,
    Extension,
    Hello,
    MailFrom,
    MailParams,
    RcptParams,
    RcptTo,
    Reply,
    Reset,
    SmtpProtocolError,
    SmtpServer,
    State,
    Vrfy,
)
from merpati.wire.smtp import (
    replies as R,
)

UTF8_REFUSED = b"553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter"


def ehlo_mail(**kw) -> Harness:
    h = ehlo_harness(**kw)
    h.feed(b"MAIL FROM:<a@example.org>\r\n")
    h.take()
    return h


def test_greeting_and_banner() -> None:
    srv = make_server()
    assert srv.greeting() == b"220 mx.example.test ESMTP Merpati\r\n"
    assert make_server(banner="ready").greeting() == b"220 mx.example.test ready\r\n"
    assert srv.next_event() is NEED_DATA
    assert srv.state is State.NEED_HELO


def test_ehlo_reply_lists_extensions() -> None:
    h = Harness(tls_available=True, auth_mechanisms=("PLAIN", "login"), auth_allowed=True)
    events, out = three_ways(lambda: Harness(tls_available=True, auth_mechanisms=("PLAIN", "login"),
                                             auth_allowed=True), b"EHLO client.example\r\n", trailing=False)
    assert events == [Hello("client.example", True)]
    assert out == (
        b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n"
        b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n"
        b"250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
    )
    assert h.srv.hello_reply() == Reply(250, None, HOST)  # nothing pending yet: plain


def test_ehlo_extension_selection_and_no_tls_no_auth() -> None:
    h = Harness(extensions=[Extension.SIZE], tls_available=True, tls_active=True,
                auth_mechanisms=("PLAIN",), auth_allowed=False)
    h.feed(b"EHLO c\r\n")
    assert h.take()[1] == b"250-mx.example.test\r\n250 SIZE 52428800\r\n"
    h.feed(b"NOOP\r\n")
    assert h.take()[1] == b"250 Ok\r\n"  # no ENHANCEDSTATUSCODES configured → no enhanced codes


def test_helo_is_single_line_and_no_pipelining() -> None:
    events, out = three_ways(Harness, b"HELO client.example\r\n", trailing=False)
    assert events == [Hello("client.example", False)]
    assert out == b"250 mx.example.test\r\n"
    h = helo_harness()
    assert not h.srv.pipelining and not h.srv.extended


@pytest.mark.parametrize("line", [b"EHLO\r\n", b"EHLO \r\n", b"HELO\r\n", b"HELO   \r\n"])
def test_hello_needs_argument(line: bytes) -> None:
    events, out = three_ways(Harness, line, trailing=False)  # no PIPELINING before EHLO
    assert events == []
    assert out == b"501 5.5.4 Syntax: EHLO hostname\r\n"


def test_hello_name_is_sanitised() -> None:
    h = Harness()
    h.feed(b"EHLO a<>()\\\";@\x01\xff\r\n")  # SMTP-31 (a)
    assert h.events == [Hello('a<>()\\";@??', True)]


def test_hello_rejected_by_session_keeps_state() -> None:
    h = Harness(answers={Hello: Reply(550, "5.7.1", "go away")})
    h.feed(b"EHLO bad\r\n")
    assert h.take()[1] == b"550 5.7.1 go away\r\n"
    assert h.srv.state is State.NEED_HELO
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert h.take()[1] == b"503 5.5.1 Error: send HELO/EHLO first\r\n"


def test_ehlo_during_transaction_resets_first() -> None:
    h = ehlo_mail()
    h.feed(b"EHLO again\r\n")
    assert h.take()[0] == [Reset(), Hello("again", True)]
    assert h.srv.state is State.READY and h.srv.mail_from is None


def test_mail_rcpt_events() -> None:
    events, out = three_ways(ehlo_harness, b"MAIL FROM:<Alice@Example.ORG>\r\n")
    assert events == [MailFrom(Address("Alice", "example.org"), MailParams())]
    assert out == b"250 2.0.0 Ok\r\n"
    events, out = three_ways(ehlo_mail, b"RCPT TO:<bob@example.net>\r\n")
    assert events == [RcptTo(Address("bob", "example.net"), RcptParams())]


def test_null_sender_and_postmaster() -> None:
    events, _ = three_ways(ehlo_harness, b"MAIL FROM:<>\r\n")
    assert events == [MailFrom(None, MailParams())]
    events, _ = three_ways(ehlo_mail, b"RCPT TO:<postMaster>\r\n")
    assert events == [RcptTo(Address("Postmaster", ""), RcptParams())]


def test_verbs_are_case_insensitive() -> None:
    events, _ = three_ways(ehlo_harness, b"mail from:<a@b.example>\r\n")
    assert events == [MailFrom(Address("a", "b.example"), MailParams())]


def test_source_route_stripped() -> None:
    events, _ = three_ways(ehlo_harness, b"MAIL FROM:<@a.example,@b.example:user@d.example>\r\n")
    assert events == [MailFrom(Address("user", "d.example"), MailParams())]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        # SMTP-18 (Dovecot's broken paths); policy: strict, no space after the colon
        (b"MAIL FROM: <hendrik@example.com>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:hendrik@example.com", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM: BODY=7BIT", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<u\"ser>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<u\"ser@domain.tld>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:/@)$@)BLAARGH!@#$$", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:</@)$@)BLAARGH!@#$$>", b"501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<a@b.example>x", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL TO:<a@b.example>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<a@b@c.example>", b"501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<alice@example.org)<bob@example.org>>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
        (b"MAIL FROM:<alice@example.org)<bob@example.org>", b"501 5.1.7 Bad sender address syntax"),
        (b"MAIL FROM:<a\\b@x.example>", b"501 5.5.4 Syntax: MAIL FROM:<address>"),
    ],
)
def test_mail_syntax_errors(line: bytes, reply: bytes) -> None:
    events, out = three_ways(ehlo_harness, line + b"\r\n")
    assert events == []
    assert out == reply + b"\r\n"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"RCPT TO: <harrie@example.com>", b"501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO:harrie@example.com", b"501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO:", b"501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO: NOTIFY=NEVER", b"501 5.5.4 Syntax: RCPT TO:<address>"),
        (b"RCPT TO:<>", b"501 5.1.3 Bad recipient address syntax"),
        (b"RCPT TO:<<recipient1@example.com>", b"501 5.1.3 Bad recipient address syntax"),
        (b'RCPT TO:<"nobody@third-party.example">', b"501 5.1.3 Bad recipient address syntax"),
        (b"RCPT TO:<nobody@third-party.example@our.example>", b"501 5.1.3 Bad recipient address syntax"),
    ],
)
def test_rcpt_syntax_errors(line: bytes, reply: bytes) -> None:
    events, out = three_ways(ehlo_mail, line + b"\r\n")
    assert events == []
    assert out == reply + b"\r\n"


@pytest.mark.parametrize(
    ("line", "recipient"),
    [
        # SMTP-16: these parse; the session's relay check sees the final mailbox
        (b"RCPT TO:<nobody%third-party.example@our.example>", Address("nobody%third-party.example", "our.example")),
        (b'RCPT TO:<"nobody@third-party.example"@our.example>', Address('"nobody@third-party.example"', "our.example")),
        (b"RCPT TO:<@our.example:nobody@third-party.example>", Address("nobody", "third-party.example")),
        (b"RCPT TO:<third-party.example!nobody@our.example>", Address("third-party.example!nobody", "our.example")),
        (b'RCPT TO:<""@our.example>', Address('""', "our.example")),  # SMTP-19
    ],
)
def test_rcpt_relay_forms_parse_to_final_mailbox(line: bytes, recipient: Address) -> None:
    events, _ = three_ways(ehlo_mail, line + b"\r\n")
    assert events == [RcptTo(recipient, RcptParams())]


def test_mail_params() -> None:
    line = b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8bitmime RET=hdrs ENVID=QQ+2B+3Dx SMTPUTF8\r\n"
    events, _ = three_ways(ehlo_harness, line)
    assert events == [MailFrom(Address("a", "b.example"),
                               MailParams(size=1000, body="8BITMIME", smtputf8=True, ret="HDRS", envid="QQ+=x"))]


def test_rcpt_params() -> None:
    line = b"RCPT TO:<b@c.example> NOTIFY=success,DELAY ORCPT=rfc822;b+40c.example\r\n"
    events, _ = three_ways(ehlo_mail, line)
    assert events == [RcptTo(Address("b", "c.example"),
                             RcptParams(notify=("SUCCESS", "DELAY"), orcpt="rfc822;b@c.example"))]


@pytest.mark.parametrize(
    "params",
    [
        b"FOO=bar",
        b"SIZE",
        b"SIZE=abc",
        b"SIZE=-1",
        b"SIZE=123456789012345678901",
        b"SIZE=1 SIZE=2",
        b"BODY=9BIT",
        b"BODY=BINARYMIME",  # not advertised by default
        b"SMTPUTF8=yes",
        b"RET=ALL",
        b"ENVID=a+zz",
        b"ENVID=a+0D+0A",
        b"ENVID=" + b"x" * 101,
        b"AUTH=<>",  # AUTH not offered
        b"=x",
        b"SI\xffZE=1",
    ],
)
def test_bad_mail_params(params: bytes) -> None:
    events, out = three_ways(ehlo_harness, b"MAIL FROM:<a@b.example> " + params + b"\r\n")
    assert events == []
    assert out[:10] == b"555 5.5.4 "


@pytest.mark.parametrize("params", [b"NOTIFY=NEVER,SUCCESS", b"NOTIFY=", b"NOTIFY=BOGUS", b"ORCPT=rfc822",
                                    b"ORCPT=;a@b", b"ORCPT=rfc822;", b"X-FOO"])
def test_bad_rcpt_params(params: bytes) -> None:
    events, out = three_ways(ehlo_mail, b"RCPT TO:<b@c.example> " + params + b"\r\n")
    assert events == []
    assert out[:10] == b"555 5.5.4 "


def test_params_need_ehlo() -> None:
    h = helo_harness()
    h.feed(b"MAIL FROM:<a@b.example> SIZE=10\r\n")
    assert h.take() == ([], b"555 5.5.4 Unsupported parameter\r\n")


def test_dsn_params_need_dsn_extension() -> None:
    h = ehlo_harness(extensions=[Extension.PIPELINING, Extension.ENHANCEDSTATUSCODES])
    h.feed(b"MAIL FROM:<a@b.example> RET=FULL\r\n")
    assert h.take()[1] == b"555 5.5.4 Unsupported parameter\r\n"


def test_mail_auth_param_when_offered() -> None:
    h = ehlo_harness(auth_mechanisms=("PLAIN",), auth_allowed=True)
    h.feed(b"MAIL FROM:<a@b.example> AUTH=a+2Bb@c.example\r\n")
    assert h.take()[0] == [MailFrom(Address("a", "b.example"), MailParams(auth="a+b@c.example"))]


def test_size_over_limit_refused_at_mail() -> None:
    h = ehlo_harness()
    h.feed(b"MAIL FROM:<a@b.example> SIZE=999999999999\r\n")  # SMTP-22
    assert h.take() == ([], b"552 5.3.4 Message size exceeds fixed limit\r\n")
    h.feed(b"MAIL FROM:<a@b.example> SIZE=52428800\r\n")
    assert h.take()[1] == b"250 2.0.0 Ok\r\n"


@pytest.mark.parametrize(
    ("path", "reply"),
    [
        (b"<f\xc3\xb6\xc3\xa4@\xc3\xb6\xc3\xa4.example>", UTF8_REFUSED),
        (b"<a@\xc3>", UTF8_REFUSED),
    ],
)
def test_utf8_without_smtputf8(path: bytes, reply: bytes) -> None:
    events, out = three_ways(ehlo_harness, b"MAIL FROM:" + path + b"\r\n")  # SMTP-30 (a)
    assert (events, out) == ([], reply + b"\r\n")


def test_utf8_with_smtputf8() -> None:
    line = b"MAIL FROM:<f\xc3\xb6\xc3\xa4@\xc3\xb6\xc3\xa4.example> SMTPUTF8\r\n"
    events, _ = three_ways(ehlo_harness, line)  # SMTP-30 (b)
    assert events == [MailFrom(Address("föä", "öä.example"), MailParams(smtputf8=True))]
    h = ehlo_harness()
    h.feed(line)
    h.feed(b"RCPT TO:<j\xc3\xb6@\xc3\xb6\xc3\xa4.example>\r\n")
    assert h.take()[0][-1] == RcptTo(Address("jö", "öä.example"), RcptParams())


@pytest.mark.parametrize("path", [b"<a@\xc3>", b"<\xff\xfe@x.example>", b"<a@x\xc2\x85.example>"])
def test_invalid_utf8_with_smtputf8(path: bytes) -> None:
    events, out = three_ways(ehlo_harness, b"MAIL FROM:" + path + b" SMTPUTF8\r\n")  # SMTP-30 (c)
    assert (events, out) == ([], b"501 5.1.7 Bad sender address syntax\r\n")


def test_utf8_recipient_needs_smtputf8_mail() -> None:
    h = ehlo_mail()
    h.feed(b"RCPT TO:<j\xc3\xb6@x.example>\r\n")
    assert h.take()[1].startswith(b"553 5.6.7 ")


@pytest.mark.parametrize(
    ("prime", "line", "reply"),
    [
        # SMTP-24
        (Harness, b"MAIL FROM:<a@b.example>", b"503 5.5.1 Error: send HELO/EHLO first"),
        (ehlo_harness, b"RCPT TO:<a@b.example>", b"503 5.5.1 Error: need MAIL command"),
        (ehlo_harness, b"DATA", b"503 5.5.1 Error: need MAIL command"),
        (ehlo_mail, b"DATA", b"503 5.5.1 Error: need RCPT command"),
        (ehlo_mail, b"MAIL FROM:<a@b.example>", b"503 5.5.1 Error: nested MAIL command"),
        (Harness, b"STARTTLS", b"503 5.5.1 Error: send EHLO first"),
        (ehlo_mail, b"AUTH PLAIN", b"503 5.5.1 Error: MAIL transaction in progress"),
    ],
)
def test_sequence_errors(prime, line: bytes, reply: bytes) -> None:
    events, out = three_ways(prime, line + b"\r\n", trailing=prime is not Harness)
    assert (events, out) == ([], reply + b"\r\n")


def test_unknown_command() -> None:
    events, out = three_ways(ehlo_harness, b"FROP!\r\n")
    assert (events, out) == ([], b"500 5.5.2 Error: command not recognized\r\n")
    events, out = three_ways(ehlo_harness, b"\r\n")
    assert (events, out) == ([], b"500 5.5.2 Error: command not recognized\r\n")


def test_rset_noop_help_vrfy_expn() -> None:
    h = ehlo_mail()
    h.feed(b"RSET\r\n")
    assert h.take() == ([Reset()], b"250 2.0.0 Ok\r\n")
    assert h.srv.state is State.READY and h.srv.mail_from is None
    for line, reply in [
        (b"NOOP\r\n", b"250 2.0.0 Ok\r\n"),
        (b"NOOP with junk \x01\r\n", b"250 2.0.0 Ok\r\n"),  # SMTP-19
        (b"HELP\r\n", b"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH\r\n"),
        (b"VRFY root\r\n", b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"),
        (b"VRFY\r\n", b"501 5.5.4 Syntax: VRFY address\r\n"),
        (b"EXPN staff\r\n", b"502 5.5.1 EXPN not available\r\n"),
        (b"RSET x\r\n", b"501 5.5.4 Syntax error: no arguments allowed\r\n"),
    ]:
        h.feed(line)
        assert h.take()[1] == reply, line


def test_vrfy_event_is_informative_and_sanitised() -> None:
    h = ehlo_harness()
    h.feed(b"VRFY <a\xffb>\r\n")
    assert h.take()[0] == [Vrfy("<a?b>")]


def test_rset_before_helo_stays_need_helo() -> None:
    h = Harness()
    h.feed(b"RSET\r\n")
    assert h.take() == ([Reset()], b"250 2.0.0 Ok\r\n")
    assert h.srv.state is State.NEED_HELO


def test_quit() -> None:
    h = ehlo_harness()
    h.feed(b"QUIT\r\n")
    events, out = h.take()
    assert out == b"221 2.0.0 Bye\r\n"
    assert h.srv.closed and isinstance(events[-1], Close) and events[-1].reason == "quit"
    h.srv.receive_data(b"NOOP\r\n")  # ignored after close
    assert isinstance(h.srv.next_event(), Close)


def test_quit_with_argument_is_refused() -> None:
    h = ehlo_harness()
    h.feed(b"QUIT now\r\n")
    assert h.take() == ([], b"501 5.5.4 Syntax error: no arguments allowed\r\n")


def test_session_reply_rejections_keep_state() -> None:
    h = ehlo_harness(answers={MailFrom: R.SENDER_REJECTED})
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert h.take()[1] == b"550 5.7.1 Sender address rejected\r\n"
    assert h.srv.state is State.READY
    h = ehlo_mail(answers={RcptTo: R.REJECT_USER_UNKNOWN})
    h.feed(b"RCPT TO:<x@y.example>\r\nDATA\r\n")
    assert h.take()[1] == (b"550 5.1.1 Recipient address rejected: User unknown\r\n"
                           b"503 5.5.1 Error: need RCPT command\r\n")


def test_paused_until_send_and_api_misuse() -> None:
    srv = SmtpServer(hostname=HOST)
    srv.greeting()
    srv.receive_data(b"EHLO x\r\n")
    assert isinstance(srv.next_event(), Hello)
    assert srv.next_event() is PAUSED
    srv.receive_data(b"MAIL FROM:<a@b.example>\r\n")
    assert srv.next_event() is PAUSED
    srv.send(srv.hello_reply())
    assert isinstance(srv.next_event(), MailFrom)
    srv.send(R.OK)
    with pytest.raises(SmtpProtocolError):
        srv.send(R.OK)
    with pytest.raises(SmtpProtocolError):
        srv.tls_started()


def test_receive_empty_bytes_is_not_eof() -> None:
    h = ehlo_harness()
    h.srv.receive_data(b"")
    assert h.pump() is NEED_DATA and not h.srv.closed


def test_eof_closes_without_reply() -> None:
    h = ehlo_harness()
    h.feed(b"NOO")
    event = h.eof()
    assert isinstance(event, Close) and event.reason == "eof"
    assert h.take()[1] == b""


def test_commands_before_eof_are_still_processed() -> None:
    h = ehlo_harness()
    h.srv.receive_data(b"QUIT\r\n")
    h.srv.receive_eof()
    h.pump()
    assert h.take()[1] == b"221 2.0.0 Bye\r\n"


def test_pregreet_talk_is_refused() -> None:
    srv = SmtpServer(hostname=HOST)  # SMTP-09: client talks before the banner
    srv.receive_data(b"EHLO early\r\n")
    srv.greeting()
    event = srv.next_event()
    assert isinstance(event, Close) and event.reason == "pregreet"
    assert srv.data_to_send() == b"554 5.5.0 Error: SMTP protocol synchronization\r\n"


def test_require_tls_refuses_mail_before_starttls() -> None:
    h = ehlo_harness(require_tls=True, tls_available=True)  # SMTP-13
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    assert h.take()[1] == b"530 5.7.0 Must issue a STARTTLS command first\r\n"


def test_session_421_closes() -> None:
    h = ehlo_harness(answers={MailFrom: R.SERVICE_UNAVAILABLE})
    h.feed(b"MAIL FROM:<a@b.example>\r\n")
    events, out = h.take()
    assert out == b"421 4.3.0 Service not available, closing channel\r\n"
    assert events[-1] == Close("service-closing") and h.srv.closed

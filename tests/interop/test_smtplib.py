"""Python's smtplib (a client nobody here wrote) against a real `merpati serve` over loopback.

Every delivery is checked through `merpati export`: the bytes sent come back byte-exact after
the three prepended trace fields (Return-Path, Delivered-To, Received).
"""

from __future__ import annotations

import smtplib
import socket
import ssl

import pytest

from support.messages import assert_delivered, make_message, token

pytestmark = pytest.mark.interop

SIZE_LIMIT = 200_000
MERPATI_OPTIONS = {"message_size": SIZE_LIMIT}
SENDER = "someone@elsewhere.test"


def unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(merpati) -> smtplib.SMTP:
    client = smtplib.SMTP(merpati.host, merpati.port, local_hostname="client.test", timeout=15)
    return client


def test_banner_and_ehlo_extensions(merpati):
    with connect(merpati) as client:
        code, _ = client.ehlo()
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "dsn", "starttls"):
            assert client.has_extn(ext), f"EHLO does not advertise {ext.upper()}: {client.esmtp_features}"
        assert client.esmtp_features["size"].strip() == str(SIZE_LIMIT)
    assert merpati.banner.startswith(f"220 {merpati.hostname} ".encode()), merpati.banner
    assert b"ESMTP Merpati" in merpati.banner


def test_plain_delivery_byte_exact(merpati):
    rcpt = merpati.new_user("plain")
    msg = make_message(sender=SENDER, to=rcpt, subject="plain")
    with connect(merpati) as client:
        refused = client.sendmail(SENDER, [rcpt], msg)
        assert refused == {}
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
    assert "with ESMTP " in parts.received, parts.received
    assert merpati.hostname in parts.received


def test_mbox_export_is_byte_exact_too(merpati):
    rcpt = merpati.new_user("mbox")
    body = b"From the start of a line\r\n>From already quoted\r\n>>From twice\r\nFrom\r\nend\r\n"
    msgs = [make_message(sender=SENDER, to=rcpt, subject=f"mbox {i}", body=body) for i in range(3)]
    with connect(merpati) as client:
        for msg in msgs:
            assert client.sendmail(SENDER, [rcpt], msg) == {}
    maildir = merpati.export(rcpt)
    mbox = merpati.export_mbox(rcpt)
    assert mbox == maildir
    for stored, msg in zip(mbox, msgs):
        assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_starttls_delivery(merpati):
    rcpt = merpati.new_user("tls")
    msg = make_message(sender=SENDER, to=rcpt, subject="over TLS")
    with connect(merpati) as client:
        client.ehlo()
        code, _ = client.starttls(context=unverified_context())
        assert code == 220
        assert isinstance(client.sock, ssl.SSLSocket)
        client.ehlo()
        assert not client.has_extn("starttls"), "STARTTLS must not be offered again inside TLS"
        assert client.sendmail(SENDER, [rcpt], msg) == {}
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)
    assert "with ESMTPS " in parts.received, f"RFC 3848: TLS sessions are ESMTPS: {parts.received}"


def test_smtputf8_message(merpati):
    rcpt = merpati.new_user("utf8")
    sender = "jörg.müller@elsewhere.test"
    tok = token()
    msg = (
        f"From: Jörg Müller <{sender}>\r\n"
        f"To: <{rcpt}>\r\n"
        "Subject: Grüße aus Köln — 東京\r\n"
        f"Message-ID: <{tok}@client.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"Schöne Grüße, {tok}. 日本語のテキスト.\r\n"
    ).encode("utf-8")
    with connect(merpati) as client:
        client.ehlo()
        assert client.sendmail(sender, [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    [stored] = merpati.export(rcpt)
    parts = assert_delivered(stored, msg, sender=sender, recipients=rcpt)
    assert "UTF8SMTP" in parts.received, f"RFC 6531: SMTPUTF8 sessions are UTF8SMTP(S): {parts.received}"


def test_8bitmime_body(merpati):
    rcpt = merpati.new_user("eightbit")
    body = b"Latin-1 bytes: caf\xe9, na\xefve, \xa9 2025\r\nAll 128..255: " + bytes(range(128, 256)) + b"\r\n"
    msg = make_message(
        sender=SENDER,
        to=rcpt,
        body=body,
        extra_headers=b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n",
    )
    with connect(merpati) as client:
        client.ehlo()
        assert client.sendmail(SENDER, [rcpt], msg, mail_options=["BODY=8BITMIME"]) == {}
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_multiple_recipients_alias_catchall_and_subaddress(merpati):
    a = merpati.new_user("multi-a")
    b = merpati.new_user("multi-b")
    c = merpati.new_user("multi-c")
    team = a.replace("multi-a", "team")  # a fresh alias local part on merpati.test
    merpati.add_alias(team, b, c)
    catch_domain = merpati.new_domain("catch")
    catcher = merpati.new_user("catcher", domain=catch_domain)
    merpati.add_alias(f"@{catch_domain}", catcher)
    local, domain = a.split("@")
    tagged = f"{local}+news@{domain}"
    anything = f"nobody-{token()}@{catch_domain}"

    msg = make_message(sender=SENDER, to=a, subject="fan-out")
    with connect(merpati) as client:
        assert client.sendmail(SENDER, [a, team, anything, tagged], msg) == {}

    # a: direct + subaddress. Whether the two land as one copy or two is the server's choice
    # (Postfix delivers one per distinct recipient address); each copy must be exact.
    copies_a = merpati.export(a)
    assert 1 <= len(copies_a) <= 2, f"{len(copies_a)} copies for {a}"
    for stored in copies_a:
        assert_delivered(stored, msg, sender=SENDER, recipients={a, tagged})
    for user in (b, c):
        [stored] = merpati.export(user)
        assert_delivered(stored, msg, sender=SENDER, recipients={user, team})
    [stored] = merpati.export(catcher)
    assert_delivered(stored, msg, sender=SENDER, recipients={catcher, anything})


def test_subaddress_alone(merpati):
    user = merpati.new_user("tagged")
    local, domain = user.split("@")
    rcpt = f"{local}+some.tag@{domain}"
    msg = make_message(sender=SENDER, to=rcpt)
    with connect(merpati) as client:
        assert client.sendmail(SENDER, [rcpt], msg) == {}
    [stored] = merpati.export(user)
    assert_delivered(stored, msg, sender=SENDER, recipients={user, rcpt})


def test_unknown_local_user_550(merpati):
    known = merpati.new_user("known")
    unknown = f"no-such-user-{token()}@merpati.test"
    with connect(merpati) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        code, text = client.rcpt(unknown)
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
        # the transaction survives one bad recipient
        assert client.rcpt(known)[0] == 250
        msg = make_message(sender=SENDER, to=known)
        assert client.data(msg)[0] == 250
    [stored] = merpati.export(known)
    assert_delivered(stored, msg, sender=SENDER, recipients=known)


def test_unknown_user_sendmail_raises(merpati):
    with connect(merpati) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as err:
            client.sendmail(SENDER, [f"ghost-{token()}@merpati.test"], make_message(sender=SENDER, to="x@y.test"))
    [(code, text)] = err.value.recipients.values()
    assert code == 550 and text.startswith(b"5.1.1")


@pytest.mark.parametrize("rcpt", ["victim@elsewhere.test", "user@merpati.test.elsewhere.test", "postmaster@example.com"])
def test_relay_denied_554(merpati, rcpt):
    with connect(merpati) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250
        code, text = client.rcpt(rcpt)
        assert code == 554 and text.startswith(b"5.7.1"), (code, text)


def test_size_limit_at_mail_from(merpati):
    with connect(merpati) as client:
        client.ehlo()
        code, text = client.mail(SENDER, [f"SIZE={SIZE_LIMIT + 1}"])
        assert code == 552 and text.startswith(b"5.3.4"), (code, text)
        # a declared size within the limit is fine
        client.rset()
        assert client.mail(SENDER, [f"SIZE={SIZE_LIMIT // 2}"])[0] == 250


def test_size_limit_after_data(merpati):
    rcpt = merpati.new_user("big")
    big = make_message(sender=SENDER, to=rcpt, body=(b"x" * 998 + b"\r\n") * (SIZE_LIMIT // 1000 + 10))
    assert len(big) > SIZE_LIMIT
    with connect(merpati) as client:
        client.ehlo()
        assert client.mail(SENDER)[0] == 250  # no SIZE= declared
        assert client.rcpt(rcpt)[0] == 250
        code, text = client.data(big)
        assert code == 552, (code, text)
        # the session is still usable afterwards and nothing was stored
        ok = make_message(sender=SENDER, to=rcpt, subject="small one")
        assert client.sendmail(SENDER, [rcpt], ok) == {}
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, ok, sender=SENDER, recipients=rcpt)


def test_rset_noop_vrfy_help(merpati):
    rcpt = merpati.new_user("misc")
    with connect(merpati) as client:
        client.ehlo()
        assert client.noop()[0] == 250
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(rcpt)[0] == 250
        assert client.rset()[0] == 250
        # after RSET the transaction is gone: RCPT without MAIL is a sequence error
        assert client.rcpt(rcpt)[0] == 503
        code, text = client.verify(rcpt)
        assert code == 252, (code, text)
        code, text = client.verify(f"ghost-{token()}@merpati.test")
        assert code == 252, "VRFY must not reveal which users exist"
        code, text = client.docmd("HELP")
        assert code == 214, (code, text)
        assert client.noop()[0] == 250
    assert merpati.export(rcpt) == []


def test_pipelined_transaction(merpati):
    """smtplib does not pipeline; send one pipelined group by hand (RFC 2920)."""
    rcpt = merpati.new_user("pipe")
    msg = make_message(sender=SENDER, to=rcpt)
    with RawSession(merpati) as s:
        s.ehlo()
        s.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
        assert s.reply()[0] == 250
        assert s.reply()[0] == 250
        assert s.reply()[0] == 354
        s.send(dot_stuff(msg) + b".\r\n")
        assert s.reply()[0] == 250
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


# ---- BDAT / CHUNKING (RFC 3030) over a raw socket: smtplib has no BDAT ---------------------------


class RawSession:
    def __init__(self, merpati) -> None:
        self.sock = socket.create_connection((merpati.host, merpati.port), timeout=15)
        self.buf = b""
        code, _ = self.reply()
        assert code == 220

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.send(b"QUIT\r\n")
            self.reply()
        except OSError:
            pass
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, list[bytes]]:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"connection closed; got {lines!r} {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), lines

    def ehlo(self) -> list[bytes]:
        self.send(b"EHLO client.test\r\n")
        code, lines = self.reply()
        assert code == 250, lines
        return lines

    def command(self, line: str) -> tuple[int, list[bytes]]:
        self.send(line.encode() + b"\r\n")
        return self.reply()


def dot_stuff(msg: bytes) -> bytes:
    out = b"\r\n".join((b"." + line if line.startswith(b".") else line) for line in msg.split(b"\r\n"))
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def test_bdat_single_chunk_last(merpati):
    rcpt = merpati.new_user("bdat1")
    # BDAT carries bytes as they are: no dot-stuffing, and a CRLF.CRLF inside ends nothing.
    msg = make_message(sender=SENDER, to=rcpt, body=b"line one\r\n.\r\n.leading dot kept\r\nlast\r\n")
    with RawSession(merpati) as s:
        assert any(b"CHUNKING" in line for line in s.ehlo())
        assert s.command(f"MAIL FROM:<{SENDER}> BODY=8BITMIME")[0] == 250
        assert s.command(f"RCPT TO:<{rcpt}>")[0] == 250
        s.send(f"BDAT {len(msg)} LAST\r\n".encode() + msg)
        code, lines = s.reply()
        assert code == 250, lines
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_bdat_multi_chunk(merpati):
    rcpt = merpati.new_user("bdatn")
    msg = make_message(sender=SENDER, to=rcpt, body=b"".join(b"chunky line %d\r\n" % i for i in range(400)))
    # split at awkward places, including inside a CRLF
    cuts = [0, 7, 8, 1000, len(msg) // 2 + 1, len(msg) - 3, len(msg)]
    chunks = [msg[a:b] for a, b in zip(cuts, cuts[1:])]
    with RawSession(merpati) as s:
        s.ehlo()
        assert s.command(f"MAIL FROM:<{SENDER}>")[0] == 250
        assert s.command(f"RCPT TO:<{rcpt}>")[0] == 250
        for chunk in chunks[:-1]:
            s.send(f"BDAT {len(chunk)}\r\n".encode() + chunk)
            code, lines = s.reply()
            assert code == 250, lines
        s.send(f"BDAT {len(chunks[-1])} LAST\r\n".encode() + chunks[-1])
        code, lines = s.reply()
        assert code == 250, lines
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_bdat_pipelined_with_zero_last(merpati):
    rcpt = merpati.new_user("bdat0")
    msg = make_message(sender=SENDER, to=rcpt)
    half = len(msg) // 2
    with RawSession(merpati) as s:
        s.ehlo()
        s.send(
            f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{rcpt}>\r\n".encode()
            + f"BDAT {half}\r\n".encode() + msg[:half]
            + f"BDAT {len(msg) - half}\r\n".encode() + msg[half:]
            + b"BDAT 0 LAST\r\n"
        )
        codes = [s.reply()[0] for _ in range(5)]
        assert codes == [250, 250, 250, 250, 250], codes
    [stored] = merpati.export(rcpt)
    assert_delivered(stored, msg, sender=SENDER, recipients=rcpt)


def test_two_transactions_one_session(merpati):
    r1 = merpati.new_user("seq1")
    r2 = merpati.new_user("seq2")
    m1 = make_message(sender=SENDER, to=r1)
    m2 = make_message(sender="mailer-daemon@elsewhere.test", to=r2, subject="bounce")
    with connect(merpati) as client:
        assert client.sendmail(SENDER, [r1], m1) == {}
        assert client.sendmail("", [r2], m2) == {}  # null reverse-path (a bounce) is accepted
    [s1] = merpati.export(r1)
    assert_delivered(s1, m1, sender=SENDER, recipients=r1)
    [s2] = merpati.export(r2)
    assert_delivered(s2, m2, sender="", recipients=r2)

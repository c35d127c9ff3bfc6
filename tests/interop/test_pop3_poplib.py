"""Python's poplib against `merpati serve`: every command, plain, after STLS and over pop3s,
and AUTH (RFC 5034) PLAIN with an initial response (SASL-IR) and LOGIN."""

from __future__ import annotations

import base64
import poplib
import smtplib
import ssl

import pytest

from support.merpati_server import PASSWORD

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("pop3", "pop3s")}


def tls() -> ssl.SSLContext:
    return ssl._create_unverified_context()  # the test server's certificate is self-signed


def deliver(merpati, rcpt: str, bodies: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for i, body in enumerate(bodies):
            smtp.sendmail("p@elsewhere.test", [rcpt], b"Subject: poplib %d\r\n\r\n" % i + body)


def connect(merpati, mode: str) -> poplib.POP3:  # type: ignore[no-untyped-def]
    if mode == "pop3s":
        return poplib.POP3_SSL(merpati.host, merpati.ports["pop3s"], context=tls(), timeout=30)
    client = poplib.POP3(merpati.host, merpati.ports["pop3"], timeout=30)
    if mode == "stls":
        assert client.stls(tls()).startswith(b"+OK")
    return client


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_every_command(merpati, mode: str) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user(f"poplib-{mode}")
    bodies = [b"first line\r\n.dotted\r\n", b"one\r\ntwo\r\nthree\r\n", b"third\r\n"]
    deliver(merpati, user, bodies)
    stored = merpati.export(user)
    p = connect(merpati, mode)
    assert p.getwelcome().startswith(b"+OK")
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "SASL", "PIPELINING", "RESP-CODES", "AUTH-RESP-CODE", "EXPIRE", "UTF8", "IMPLEMENTATION"):
        assert cap in caps, cap
    assert caps["SASL"] == ["PLAIN", "LOGIN"] and caps["EXPIRE"] == ["NEVER"]
    assert ("STLS" in caps) is (mode == "plain")
    assert p.utf8().startswith(b"+OK")
    assert p.user(user).startswith(b"+OK")
    assert p.pass_(PASSWORD).startswith(b"+OK")
    assert p.stat() == (3, sum(len(m) for m in stored))
    resp, listing, _ = p.list()
    assert listing == [b"%d %d" % (i, len(m)) for i, m in enumerate(stored, 1)]
    assert p.list(2) == b"+OK 2 %d" % len(stored[1])
    resp, uids, _ = p.uidl()
    assert len(set(u.split()[1] for u in uids)) == 3
    assert p.uidl(1) == b"+OK " + uids[0]
    for i, message in enumerate(stored, 1):
        resp, lines, octets = p.retr(i)
        assert b"\r\n".join(lines) + b"\r\n" == message
        assert resp == b"+OK %d octets" % len(message)
    resp, lines, _ = p.top(2, 1)
    assert lines[-2:] == [b"", b"one"]
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="already deleted"):
        p.retr(1)
    assert p.stat()[0] == 2
    assert p.rset().startswith(b"+OK")
    assert p.stat()[0] == 3
    assert p.dele(3).startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match="No such message"):
        p.retr(4)
    assert p.quit().startswith(b"+OK")
    assert merpati.export(user) == stored[:2]


def test_apop_is_refused(merpati) -> None:  # type: ignore[no-untyped-def]
    p = connect(merpati, "plain")
    with pytest.raises(poplib.error_proto):
        p.apop("x@merpati.test", "secret")  # no timestamp in the greeting
    p.close()


def test_wrong_password_gets_the_auth_response_code(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("poplib-wrong")
    p = connect(merpati, "plain")
    p.user(user)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Authentication failed"):
        p.pass_("not the password")
    p.user(user)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_auth_plain_with_initial_response(merpati, mode: str) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("poplib-sasl")
    deliver(merpati, user, [b"x\r\n"])
    p = connect(merpati, mode)
    ir = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode()).decode()
    assert p._shortcmd("AUTH PLAIN " + ir).startswith(b"+OK")  # poplib has no AUTH method
    assert p.stat()[0] == 1
    p.quit()


def test_auth_login_exchange(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("poplib-login")
    p = connect(merpati, "stls")
    assert p._shortcmd("AUTH LOGIN") == b"+ " + base64.b64encode(b"Username:")
    assert p._shortcmd(base64.b64encode(user.encode()).decode()) == b"+ " + base64.b64encode(b"Password:")
    assert p._shortcmd(base64.b64encode(PASSWORD.encode()).decode()).startswith(b"+OK")
    assert p.stat() == (0, 0)
    p.quit()

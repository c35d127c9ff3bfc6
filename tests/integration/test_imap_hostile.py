"""SECURITY-CASES.md IMAP section against a real `merpati serve` over real sockets (IMAP-01 to
IMAP-11; IMAP-12 and the notification rules are in tests/services/imap). No timing assertions:
timeouts are configured short and we only check that the server acts."""

from __future__ import annotations

import socket
import ssl

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {
    "listeners": ("imap", "imaps"),
    "message_size": 100_000,
    "extra_config": "[imap]\nprelogin_timeout = 2\nidle_timeout = 3\n",
}


class Conn:
    def __init__(self, merpati, *, port: str = "imap") -> None:
        self.sock = socket.create_connection((merpati.host, merpati.ports[port]), timeout=15)
        self.f = self.sock.makefile("rb")
        self.greeting = self.f.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.f.readline()

    def until(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            ln = self.f.readline()
            assert ln, out
            out.append(ln)
            if ln.startswith(tag + b" "):
                return out

    def closed(self) -> bool:
        try:
            rest = self.sock.recv(65536)
            while rest:
                rest = self.sock.recv(65536)
            return True
        except (ConnectionResetError, TimeoutError, OSError):
            return True

    def close(self) -> None:
        self.sock.close()


def login(merpati, user: str) -> Conn:
    c = Conn(merpati)
    c.send(b'a LOGIN "' + user.encode() + b'" "' + PASSWORD.encode() + b'"\r\n')
    assert c.until(b"a")[-1].startswith(b"a OK")
    return c


def test_imap01_starttls_injection_is_discarded(merpati) -> None:
    c = Conn(merpati)
    c.send(b"A STARTTLS\r\nXYZQW NOOP\r\n")
    assert c.line().startswith(b"A OK")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_socket(c.sock, server_hostname="mx.merpati.test")
    tls.settimeout(1.0)
    try:
        data = tls.recv(4096)
    except (TimeoutError, socket.timeout):
        data = b""
    assert b"XYZQW" not in data
    tls.settimeout(15)
    tls.sendall(b"C NOOP\r\n")
    reply = tls.recv(4096)
    assert reply.startswith(b"C OK") and b"XYZQW" not in reply
    tls.sendall(b"D STARTTLS\r\n")
    assert tls.recv(4096).startswith(b"D BAD")
    tls.close()


def test_imap03_paren_bomb_before_login(merpati) -> None:
    c = Conn(merpati)
    c.send(b"a NOOP " + b"(" * 4000 + b")" * 4000 + b"\r\n")
    assert c.line().startswith(b"a BAD")
    c.send(b"b NOOP\r\n")
    assert c.line() == b"b OK NOOP completed\r\n"
    c.close()


def test_imap04_line_limits(merpati) -> None:
    user = merpati.new_user("hostile-lines")
    c = Conn(merpati)
    c.send(b"a NOOP " + b"x" * 8200 + b"\r\n")
    assert c.line().startswith(b"a BAD")
    c.close()
    c = login(merpati, user)
    c.send(b"b NOOP " + b"x" * 65_540 + b"\r\n")
    assert c.line().startswith(b"b BAD")
    c.send(b"c NOOP\r\n")
    assert c.line() == b"c OK NOOP completed\r\n"
    c.close()


def test_imap05_huge_literals_get_no_continuation(merpati) -> None:
    user = merpati.new_user("hostile-lit")
    c = Conn(merpati)
    c.send(b"a LOGIN {4294967296}\r\n")
    ln = c.line()
    assert ln.startswith(b"a BAD") and not ln.startswith(b"+"), ln
    c.close()
    c = login(merpati, user)
    c.send(b"b APPEND INBOX {99999999999999999999}\r\n")
    ln = c.line()
    assert not ln.startswith(b"+") and (b"b NO" in ln or b"b BAD" in ln), ln
    c.send(b"d APPEND INBOX {100001}\r\n")
    ln = c.line()
    assert ln.startswith(b"d NO [TOOBIG]"), ln
    c.send(b"e APPEND Nowhere {10}\r\n")
    ln = c.line()
    assert ln.startswith(b"e NO [TRYCREATE]"), ln
    c.send(b"f NOOP\r\n")
    assert c.line() == b"f OK NOOP completed\r\n"
    c.close()


def test_imap07_nul_in_strings(merpati) -> None:
    c = Conn(merpati)
    c.send(b'a LOGIN "us\x00er" "pw"\r\n')
    assert c.line().startswith(b"a BAD")
    c.close()


def test_imap08_three_bad_commands_before_login_disconnect(merpati) -> None:
    c = Conn(merpati)
    for tag in (b"a", b"b", b"c"):
        c.send(tag + b" FROB\r\n")
    lines = [c.line() for _ in range(4)]
    assert lines[-1].startswith(b"* BYE"), lines
    assert c.closed()


def test_imap08_prelogin_and_idle_timeouts(merpati) -> None:
    c = Conn(merpati)
    assert c.line().startswith(b"* BYE")  # prelogin_timeout = 2 s
    assert c.closed()
    user = merpati.new_user("hostile-idle")
    c = login(merpati, user)
    c.send(b"s SELECT INBOX\r\n")
    c.until(b"s")
    c.send(b"i IDLE\r\n")
    assert c.line().startswith(b"+ ")
    assert c.line().startswith(b"* BYE")  # idle_timeout = 3 s, also in IDLE
    assert c.closed()


def test_imap09_pathological_list_pattern(merpati) -> None:
    user = merpati.new_user("hostile-list")
    c = login(merpati, user)
    for i in range(20):
        c.send(b"c%d CREATE " % i + b"/".join([b"a%d" % j for j in range(i % 6 + 1)]) + b"x%d\r\n" % i)
        c.until(b"c%d" % i)
    c.send(b'l LIST "" "*%*%*%*%*%*%*%*%*%*%*%*%*%x"\r\n')
    out = c.until(b"l")
    assert out[-1].startswith(b"l OK")
    c.close()


def test_imap10_malformed_modified_utf7(merpati) -> None:
    user = merpati.new_user("hostile-utf7")
    c = login(merpati, user)
    for i, name in enumerate((b'"&"', b'"&Jjo!"', b'"&AGE-&AGE-"', b'"&AGE-"')):
        c.send(b"m%d CREATE %s\r\n" % (i, name))
        ln = c.until(b"m%d" % i)[-1]
        assert ln.startswith(b"m%d BAD" % i) or ln.startswith(b"m%d NO" % i), ln
    c.send(b"s SELECT \"&AGE-&AGE-\"\r\n")
    assert c.until(b"s")[-1][:5] in (b"s BAD", b"s NO ")
    c.send(b"z NOOP\r\n")
    assert c.line() == b"z OK NOOP completed\r\n"
    c.close()


def test_imap11_sequence_set_edges(merpati) -> None:
    user = merpati.new_user("hostile-seq")
    c = login(merpati, user)
    c.send(b"a APPEND INBOX {20+}\r\nSubject: x\r\n\r\nbody\r\n\r\n")
    assert c.until(b"a")[-1].startswith(b"a OK")
    c.send(b"s SELECT INBOX\r\n")
    c.until(b"s")
    for tag, cmd in ((b"f1", b"FETCH 0 FLAGS"), (b"f2", b"FETCH 4294967296 FLAGS"),
                     (b"f3", b"UID FETCH 1:99999999999 FLAGS"), (b"f4", b"FETCH 2 FLAGS")):
        c.send(tag + b" " + cmd + b"\r\n")
        assert c.until(tag)[-1].startswith(tag + b" BAD"), cmd
    c.send(b"f5 FETCH *:1 FLAGS\r\n")
    out = c.until(b"f5")
    assert out[0].startswith(b"* 1 FETCH") and out[-1].startswith(b"f5 OK")
    c.send(b"f6 UID FETCH 1:4294967295 (UID)\r\n")
    out = c.until(b"f6")
    assert out == [b"* 1 FETCH (UID 1)\r\n", b"f6 OK FETCH completed\r\n"]
    c.send(b"x SEARCH " + b",".join([b"1"] * 100_000) + b"\r\n")
    ln = c.until(b"x")[-1]
    assert ln.startswith(b"x BAD") or ln.startswith(b"x OK"), ln
    c.send(b"z NOOP\r\n")
    assert c.line() == b"z OK NOOP completed\r\n"
    c.close()


def test_cross_user_names(merpati) -> None:
    bob = merpati.new_user("hostile-bob")
    eve = merpati.new_user("hostile-eve")
    b = login(merpati, bob)
    b.send(b"c CREATE Secret\r\n")
    b.until(b"c")
    b.close()
    c = login(merpati, eve)
    for i, name in enumerate((b'"../' + bob.encode() + b'/Secret"', b'"#shared/Secret"', b'"~' + bob.encode() + b'/Secret"',
                              b"Secret", b'"/Secret"', b'"Other Users/Secret"')):
        c.send(b"s%d SELECT %s\r\n" % (i, name))
        ln = c.until(b"s%d" % i)[-1]
        assert ln.startswith(b"s%d NO" % i) or ln.startswith(b"s%d BAD" % i), ln
        c.send(b"t%d STATUS %s (MESSAGES)\r\n" % (i, name))
        out = c.until(b"t%d" % i)
        assert not out[-1].startswith(b"t%d OK" % i), out
    for i, pat in enumerate((b'"*"', b'"%"', b'"../*"', b'"#*"', b'"~*"')):
        c.send(b'l%d LIST "" %s\r\n' % (i, pat))
        out = b"".join(c.until(b"l%d" % i))
        assert b"Secret" not in out and b"hostile-bob" not in out, out
    c.close()

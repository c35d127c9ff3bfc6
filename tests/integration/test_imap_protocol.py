"""Protocol details no stock Python client exercises, over raw sockets: COMPRESS=DEFLATE,
LITERAL+, ENABLE/UTF8=ACCEPT, pipelining, AUTHENTICATE with SASL-IR and continuation."""

from __future__ import annotations

import base64
import socket
import zlib

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("imap",)}


class Raw:
    def __init__(self, merpati) -> None:
        self.sock = socket.create_connection((merpati.host, merpati.ports["imap"]), timeout=15)
        self.buf = b""
        self.inflate = None
        self.deflate = None
        assert self.line().startswith(b"* OK [CAPABILITY ")

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _more(self) -> None:
        data = self.sock.recv(65536)
        assert data, "connection closed"
        self.buf += self.inflate.decompress(data) if self.inflate is not None else data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln + b"\r\n"

    def until(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            out.append(self.line())
            if out[-1].startswith(tag + b" "):
                return out


def test_compress_deflate(merpati) -> None:
    user = merpati.new_user("compress")
    c = Raw(merpati)
    c.send(b"z COMPRESS DEFLATE\r\n")
    assert c.line().startswith(b"z NO")  # not before authentication
    c.send(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), PASSWORD.encode()))
    assert b"COMPRESS=DEFLATE" in c.until(b"a")[-1]
    c.send(b"b COMPRESS DEFLATE\r\n")
    assert c.line() == b"b OK DEFLATE active\r\n"
    c.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    c.inflate = zlib.decompressobj(-15)
    c.send(b"c APPEND INBOX {28+}\r\nSubject: zipped\r\n\r\nzipped!\r\n\r\n")
    assert c.until(b"c")[-1].startswith(b"c OK [APPENDUID")
    c.send(b"d SELECT INBOX\r\ne FETCH 1 BODY.PEEK[TEXT]\r\nf CAPABILITY\r\n")
    c.until(b"d")
    out = b"".join(c.until(b"e"))
    assert b"zipped!\r\n" in out
    caps = b"".join(c.until(b"f"))
    assert b"COMPRESS=DEFLATE" not in caps
    c.send(b"g COMPRESS DEFLATE\r\n")
    assert c.line().startswith(b"g NO [COMPRESSIONACTIVE]")
    c.send(b"h LOGOUT\r\n")
    assert c.until(b"h")[-1].startswith(b"h OK")


def test_pipelining_literal_plus_and_sasl_ir(merpati) -> None:
    user = merpati.new_user("pipe")
    c = Raw(merpati)
    ir = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    c.send(b"a AUTHENTICATE PLAIN " + ir + b"\r\nb SELECT INBOX\r\nc APPEND INBOX {5+}\r\nhello\r\nd NOOP\r\n")
    assert c.until(b"a")[-1].startswith(b"a OK [CAPABILITY")
    assert c.until(b"b")[-1].startswith(b"b OK [READ-WRITE]")
    out = c.until(b"c")
    assert out == [b"* 1 EXISTS\r\n", b"* 1 RECENT\r\n", out[-1]] and out[-1].startswith(b"c OK [APPENDUID")
    assert c.until(b"d") == [b"d OK NOOP completed\r\n"]
    c.send(b"e AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith(b"e BAD")  # already authenticated: not in this state


def test_authenticate_with_continuation_and_cancel(merpati) -> None:
    user = merpati.new_user("sasl")
    c = Raw(merpati)
    c.send(b"a AUTHENTICATE PLAIN\r\n")
    assert c.line() == b"+ \r\n"
    c.send(b"*\r\n")
    assert c.line().startswith(b"a BAD")
    c.send(b"b AUTHENTICATE LOGIN\r\n")
    assert c.line() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    c.send(base64.b64encode(user.encode()) + b"\r\n")
    assert c.line() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    c.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert c.line().startswith(b"b OK [CAPABILITY")


def test_enable_utf8_accept(merpati) -> None:
    user = merpati.new_user("utf8")
    c = Raw(merpati)
    c.send(b'a LOGIN "%s" "%s"\r\n' % (user.encode(), PASSWORD.encode()))
    c.until(b"a")
    c.send(b"b ENABLE UTF8=ACCEPT CONDSTORE\r\n")
    out = c.until(b"b")
    assert out[0] == b"* ENABLED UTF8=ACCEPT CONDSTORE\r\n"
    c.send('c CREATE "Entwürfe"\r\n'.encode())
    assert c.until(b"c")[-1].startswith(b"c OK")
    c.send(b'd LIST "" "Entw*"\r\n')
    assert c.until(b"d")[0] == '* LIST (\\HasNoChildren) "/" "Entwürfe"\r\n'.encode()
    c.send('e SELECT "Entwürfe"\r\n'.encode())
    out = c.until(b"e")
    assert any(b"HIGHESTMODSEQ" in x for x in out) and out[-1].startswith(b"e OK")

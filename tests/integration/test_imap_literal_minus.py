"""[imap] literal_plus = false through `merpati serve`: LITERAL- advertised, {n+} over 4096 refused."""

from __future__ import annotations

import socket
import time

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("imap",), "extra_config": "[imap]\nliteral_plus = false\n"}


def connect(merpati):  # type: ignore[no-untyped-def]
    for _ in range(100):  # the IMAP listener comes up just after the SMTP banner
        try:
            sock = socket.create_connection((merpati.host, merpati.ports["imap"]), timeout=30)
            break
        except OSError:
            time.sleep(0.05)
    f = sock.makefile("rb")
    return sock, f


def test_literal_minus_is_advertised_and_enforced(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("lminus")
    sock, f = connect(merpati)
    greeting = f.readline()
    assert b"LITERAL-" in greeting and b"LITERAL+" not in greeting
    small = PASSWORD.encode()
    sock.sendall(b"a LOGIN %s {%d+}\r\n%s\r\n" % (user.encode(), len(small), small))
    line = f.readline()
    while line.startswith(b"*"):
        line = f.readline()
    assert line.startswith(b"a OK"), line
    sock.sendall(b"b CAPABILITY\r\n")
    caps = f.readline()
    assert b"LITERAL-" in caps and b"LITERAL+" not in caps
    assert f.readline().startswith(b"b OK")
    sock.sendall(b"c APPEND INBOX {5000+}\r\n")  # over 4096: refused without reading the literal
    answer = f.readline()
    assert answer.startswith((b"c BAD", b"c NO", b"* BYE")), answer
    sock.close()

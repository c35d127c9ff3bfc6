"""POP3 hostile input against a real `merpati serve` (SECURITY-CASES POP-01..07, AUTH-01/03),
plus pipelining, byte-stuffing and the SMTP → POP3 → store path, over loopback sockets.

One server per module (``merpati`` fixture); every test has its own users. Clients connect
from their own loopback source address where the authenticator's per-IP memory matters.
"""

from __future__ import annotations

import base64
import re
import shutil
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path

from support.merpati_server import PASSWORD
from support.net import worker_address

MERPATI_OPTIONS = {"listeners": ("pop3", "pop3s")}


class Raw:
    """A line-oriented POP3 client over a plain socket (upgradable with STLS)."""

    def __init__(self, server, *, source: str | None = None, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
        self.sock = socket.create_connection(
            (server.host, server.ports["pop3"]), timeout=timeout, source_address=(source, 0) if source else None
        )
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def cmd(self, text: bytes) -> bytes:
        self.send(text + b"\r\n")
        return self.line()

    def multiline(self) -> list[bytes]:
        out = []
        while (line := self.line()) != b".":
            out.append(line)
        return out

    def login(self, user: str) -> None:
        assert self.cmd(b"USER " + user.encode()) == b"+OK"
        answer = self.cmd(b"PASS " + PASSWORD.encode())
        assert answer.startswith(b"+OK"), answer

    def at_eof(self) -> bool:
        self.sock.settimeout(10)
        rest = b""
        while chunk := self.sock.recv(65536):
            rest += chunk
        self.buf += rest
        return True

    def close(self) -> None:
        self.sock.close()


def deliver(merpati, rcpt: str, *bodies: bytes) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for i, body in enumerate(bodies):
            msg = b"From: s@elsewhere.test\r\nTo: %s\r\nSubject: pop3 test %d\r\n\r\n" % (rcpt.encode(), i) + body
            smtp.sendmail("s@elsewhere.test", [rcpt], msg)


def subjects(messages: list[bytes]) -> list[str]:
    return [re.search(rb"Subject: ([^\r\n]*)", m).group(1).decode() for m in messages]  # type: ignore[union-attr]


def test_stls_injection_runs_nothing_inside_tls(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-01: STLS and CAPA in one write; no CAPA listing appears inside TLS."""
    c = Raw(merpati)
    c.send(b"STLS\r\nCAPA\r\n")
    assert c.line() == b"+OK Begin TLS negotiation now."
    assert c.buf == b""
    ctx = ssl._create_unverified_context()
    c.sock = ctx.wrap_socket(c.sock, server_hostname="mx.merpati.test")
    c.sock.settimeout(1.0)
    try:
        unsolicited = c.sock.recv(65536)
    except (TimeoutError, socket.timeout):
        unsolicited = b""
    assert unsolicited == b""
    c.sock.settimeout(20)
    assert c.cmd(b"USER user@merpati.test") == b"+OK"
    c.close()


def test_message_number_abuse(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-03 over the wire: no crash, no wraparound, the session goes on."""
    user = merpati.new_user("msgnum")
    deliver(merpati, user, b"one\r\n")
    c = Raw(merpati)
    c.login(user)
    cases = {
        b"RETR 0": b"-ERR Invalid message number.",
        b"RETR -1": b"-ERR Invalid message number.",
        b"RETR 4294967297": b"-ERR Message number too large.",
        b"RETR 4294967296": b"-ERR Message number too large.",
        b"DELE 1 2": b"-ERR Noise after message number.",
        b"LIST 1x": b"-ERR Invalid message number.",
        b"TOP 1 -1": b"-ERR Invalid number of lines.",
        b"RETR 2": b"-ERR No such message.",
        b"DELE 99999": b"-ERR No such message.",
    }
    for command, answer in cases.items():
        assert c.cmd(command) == answer, command
    assert c.cmd(b"TOP 1 99999999999999").startswith(b"+OK")
    body = c.multiline()
    assert body[-1] == b"one"
    assert c.cmd(b"STAT").startswith(b"+OK 1 ")
    assert c.cmd(b"QUIT").startswith(b"+OK")
    assert len(merpati.export(user)) == 1


def test_overlong_lines_are_bounded(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-04: a 600-octet command and 10 MB without CRLF: -ERR, and the session goes on."""
    user = merpati.new_user("longline")
    c = Raw(merpati)
    c.login(user)
    assert c.cmd(b"NOOP " + b"x" * 600) == b"-ERR Line too long."
    chunk = b"A" * (1 << 20)
    for _ in range(10):
        c.send(chunk)
    assert c.cmd(b"") == b"-ERR Line too long."
    assert c.cmd(b"NOOP") == b"+OK"
    c.close()


def test_three_bad_commands_before_login_disconnect(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-07."""
    c = Raw(merpati)
    c.send(b"FOO\r\nBAR\r\nBAZ\r\nQUX\r\n")
    assert [c.line() for _ in range(3)] == [b"-ERR Unknown command.", b"-ERR Unknown command.", b"-ERR Too many invalid commands."]
    assert c.at_eof() and c.buf == b""
    c.close()


def test_two_sessions_on_one_maildrop(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-05: the second login is refused while the first holds the lock; each DELE 1 + QUIT
    deletes exactly the message it saw, once."""
    user = merpati.new_user("twosessions")
    deliver(merpati, user, b"a\r\n", b"b\r\n", b"c\r\n")
    results: dict[str, bytes] = {}
    clients = [Raw(merpati), Raw(merpati)]
    barrier = threading.Barrier(2)

    def attempt(name: str, c: Raw) -> None:
        assert c.cmd(b"USER " + user.encode()) == b"+OK"
        barrier.wait()
        results[name] = c.cmd(b"PASS " + PASSWORD.encode())

    threads = [threading.Thread(target=attempt, args=(str(i), c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    answers = sorted(results.values(), key=lambda a: a.startswith(b"+OK"))
    assert answers[0] == b"-ERR [IN-USE] Mailbox is locked by another POP3 session."
    assert answers[1].startswith(b"+OK")
    winner = clients[[r.startswith(b"+OK") for r in (results["0"], results["1"])].index(True)]
    loser = clients[1] if winner is clients[0] else clients[0]
    assert winner.cmd(b"DELE 1") == b"+OK Message 1 deleted."
    assert loser.cmd(b"USER " + user.encode()) == b"+OK"
    assert loser.cmd(b"PASS " + PASSWORD.encode()).startswith(b"-ERR [IN-USE]")
    assert winner.cmd(b"QUIT").startswith(b"+OK Logging out, 1 messages deleted")
    loser.login(user)
    assert loser.cmd(b"DELE 1") == b"+OK Message 1 deleted."
    assert loser.cmd(b"QUIT").startswith(b"+OK Logging out, 1 messages deleted")
    assert subjects(merpati.export(user)) == ["pop3 test 2"]


def test_dropped_connection_deletes_nothing(merpati) -> None:  # type: ignore[no-untyped-def]
    """POP-06 (first half): DELE everything, then drop TCP without QUIT."""
    user = merpati.new_user("dropped")
    deliver(merpati, user, b"a\r\n", b"b\r\n")
    c = Raw(merpati)
    c.login(user)
    c.send(b"DELE 1\r\nDELE 2\r\n")
    assert [c.line(), c.line()] == [b"+OK Message 1 deleted.", b"+OK Message 2 deleted."]
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    c.close()
    for _ in range(100):  # the server notices the reset and releases the lock
        d = Raw(merpati)
        assert d.cmd(b"USER " + user.encode()) == b"+OK"
        answer = d.cmd(b"PASS " + PASSWORD.encode())
        if answer.startswith(b"+OK"):
            break
        d.close()
        time.sleep(0.05)
    assert d.cmd(b"STAT").startswith(b"+OK 2 ")
    d.cmd(b"QUIT")
    assert len(merpati.export(user)) == 2


def test_brute_force_failures_are_answered_after_growing_delays(merpati) -> None:  # type: ignore[no-untyped-def]
    """AUTH-01 through POP3: the server log shows each failure's delay doubling (no timing assertion)."""
    user = merpati.new_user("brute")
    source = worker_address(77)
    c = Raw(merpati, source=source)
    for guess in (b"guess1", b"guess2", b"guess3"):
        assert c.cmd(b"USER " + user.encode()) == b"+OK"
        assert c.cmd(b"PASS " + guess) == b"-ERR [AUTH] Authentication failed."
    assert c.at_eof()  # three failures on one connection end it
    c.close()
    delays = []
    for _ in range(50):
        delays = [float(d) for d in re.findall(rf"auth failed user='{re.escape(user)}' ip={re.escape(source)} delay=([0-9.]+)s", merpati.log_tail(500))]
        if len(delays) == 3:
            break
        time.sleep(0.1)
    assert delays == sorted(delays) and delays[0] > 0 and delays[2] >= 4 * delays[0], delays
    c = Raw(merpati, source=source)
    c.login(user)  # the right password still works (and clears the penalty)
    c.close()


def test_malformed_sasl_is_refused_cleanly(merpati) -> None:  # type: ignore[no-untyped-def]
    """AUTH-03: bad base64, PLAIN without NULs, an over-long initial response, abort, then a good login."""
    user = merpati.new_user("sasl")
    c = Raw(merpati)
    assert c.cmd(b"AUTH PLAIN !!!notbase64").startswith(b"-ERR Invalid SASL response")
    assert c.cmd(b"AUTH PLAIN " + base64.b64encode(b"no nuls")).startswith(b"-ERR Invalid SASL response")
    c = Raw(merpati)
    assert c.cmd(b"AUTH PLAIN " + b"QUFB" * 3000) == b"-ERR Line too long."
    assert c.cmd(b"AUTH LOGIN") == b"+ " + base64.b64encode(b"Username:")
    assert c.cmd(b"*") == b"-ERR Authentication cancelled."
    ir = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode())
    assert c.cmd(b"AUTH PLAIN " + ir).startswith(b"+OK Logged in")
    c.close()


def test_whole_session_pipelined_in_one_write(merpati) -> None:  # type: ignore[no-untyped-def]
    """RFC 2449 PIPELINING: every answer, in order, for a session sent in one write."""
    user = merpati.new_user("pipeline")
    deliver(merpati, user, b"first\r\n", b"second\r\n")
    c = Raw(merpati)
    c.send(
        b"CAPA\r\nUSER " + user.encode() + b"\r\nPASS " + PASSWORD.encode() + b"\r\nSTAT\r\nLIST\r\nUIDL\r\n"
        b"RETR 1\r\nTOP 2 0\r\nDELE 2\r\nRSET\r\nDELE 1\r\nNOOP\r\nQUIT\r\n"
    )
    assert c.line() == b"+OK Capability list follows"
    assert b"PIPELINING" in c.multiline()
    assert c.line() == b"+OK"
    assert c.line().startswith(b"+OK Logged in, 2 messages")
    assert c.line().startswith(b"+OK 2 ")
    assert c.line() == b"+OK 2 messages" and len(c.multiline()) == 2
    assert c.line() == b"+OK Unique-ID listing follows" and len(c.multiline()) == 2
    assert c.line().endswith(b" octets") and c.multiline()[-1] == b"first"
    assert c.line() == b"+OK Top of message follows" and c.multiline()[-1] == b""
    assert c.line() == b"+OK Message 2 deleted."
    assert c.line() == b"+OK 2 messages."
    assert c.line() == b"+OK Message 1 deleted."
    assert c.line() == b"+OK"
    assert c.line() == b"+OK Logging out, 1 messages deleted, 1 left."
    assert subjects(merpati.export(user)) == ["pop3 test 1"]


def test_byte_stuffing_round_trip(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("stuffing")
    deliver(merpati, user, b".\r\n..\r\n.leading dot\r\nend\r\n")
    [stored] = merpati.export(user)
    c = Raw(merpati)
    c.login(user)
    assert c.cmd(b"RETR 1") == b"+OK %d octets" % len(stored)
    raw = c.multiline()
    assert b".." in raw and b"..." in raw and b"..leading dot" in raw
    unstuffed = b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in raw)
    assert unstuffed == stored
    c.cmd(b"QUIT")


def test_smtp_delivery_pop3_deletion_and_the_store_agree(merpati) -> None:  # type: ignore[no-untyped-def]
    """Delivered over SMTP, deleted over POP3, checked in the store (export). The same with an
    IMAP session alongside: test_pop3_imap.py."""
    user = merpati.new_user("consistency")
    deliver(merpati, user, b"a\r\n", b"b\r\n", b"c\r\n", b"d\r\n")
    c = Raw(merpati)
    c.login(user)
    c.cmd(b"DELE 2")
    c.cmd(b"DELE 4")
    deliver(merpati, user, b"e\r\n")  # arrives during the session: not listed, not removed
    assert c.cmd(b"STAT").startswith(b"+OK 2 ")
    assert c.cmd(b"QUIT").startswith(b"+OK Logging out, 2 messages deleted")
    assert subjects(merpati.export(user)) == ["pop3 test 0", "pop3 test 2", "pop3 test 0"]
    c = Raw(merpati)
    c.login(user)
    assert c.cmd(b"STAT").startswith(b"+OK 3 ")
    c.cmd(b"QUIT")


def maildir_flags(merpati, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = Path(tempfile.mkdtemp(prefix="flags-", dir=merpati.root))
    shutil.rmtree(out)
    try:
        merpati.cli("export", user, str(out), "--format", "maildir")
        return sorted(p.name.rsplit(":2,", 1)[1] for p in (out / "cur").iterdir())
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_retr_does_not_mark_seen_by_default(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("seen")
    deliver(merpati, user, b"a\r\n")
    c = Raw(merpati)
    c.login(user)
    assert c.cmd(b"RETR 1").startswith(b"+OK")
    c.multiline()
    assert c.cmd(b"QUIT").startswith(b"+OK")
    assert "S" not in maildir_flags(merpati, user)[0]

"""IMAP and POP3 interleaved on one account (one store): what POP3 removes at QUIT disappears for
an IMAP session with INBOX selected (as EXPUNGE), what IMAP expunges during a POP3 session
cannot be retrieved there, POP3 RETR leaves \\Seen alone, and UIDL matches IMAP's UIDs."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("imap", "pop3")}


def deliver(merpati, rcpt: str, count: int) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for i in range(count):
            smtp.sendmail("m@elsewhere.test", [rcpt], b"Subject: mixed %d\r\n\r\nbody %d\r\n" % (i, i))


class Pop:
    def __init__(self, merpati, user: str) -> None:  # type: ignore[no-untyped-def]
        self.sock = socket.create_connection((merpati.host, merpati.ports["pop3"]), timeout=30)
        self.f = self.sock.makefile("rb")
        assert self.f.readline().startswith(b"+OK")
        assert self.cmd(b"USER " + user.encode()) == b"+OK"
        assert self.cmd(b"PASS " + PASSWORD.encode()).startswith(b"+OK")

    def cmd(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.f.readline().rstrip(b"\r\n")

    def multi(self, line: bytes) -> list[bytes]:
        first = self.cmd(line)
        assert first.startswith(b"+OK"), first
        out = []
        while (got := self.f.readline().rstrip(b"\r\n")) != b".":
            out.append(got)
        return out

    def close(self) -> None:
        self.f.close()
        self.sock.close()


def imap_session(merpati, user: str) -> imaplib.IMAP4:  # type: ignore[no-untyped-def]
    imap = imaplib.IMAP4(merpati.host, merpati.ports["imap"], timeout=30)
    imap.login(user, PASSWORD)
    return imap


def uids(imap: imaplib.IMAP4) -> list[int]:
    typ, data = imap.uid("SEARCH", "ALL")
    assert typ == "OK"
    return [int(x) for x in data[0].split()]


def test_pop3_quit_expunges_for_a_selected_imap_session(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("mixed")
    deliver(merpati, user, 4)
    imap = imap_session(merpati, user)
    typ, data = imap.select("INBOX")
    assert data == [b"4"]
    before = uids(imap)
    pop = Pop(merpati, user)
    uidl = [line.split()[1] for line in pop.multi(b"UIDL")]
    assert [int(u[:8], 16) for u in uidl] == before  # UIDL carries IMAP's UID
    pop.cmd(b"DELE 1")
    pop.cmd(b"DELE 3")
    assert uids(imap) == before  # DELE only marks
    assert pop.cmd(b"QUIT").startswith(b"+OK Logging out, 2 messages deleted")
    pop.close()
    typ, _ = imap.noop()
    assert typ == "OK"
    _, expunged = imap.response("EXPUNGE")
    assert sorted(int(x) for x in expunged if x) in ([1, 2], [1, 3])  # sequence numbers, in either report order
    assert uids(imap) == [before[1], before[3]]
    imap.logout()


def test_imap_expunge_during_a_pop3_session(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("mixed2")
    deliver(merpati, user, 3)
    pop = Pop(merpati, user)
    uidl = pop.multi(b"UIDL")  # reads no message
    imap = imap_session(merpati, user)  # the POP3 lock does not keep IMAP out
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()
    assert pop.cmd(b"RETR 1") == b"-ERR Message 1 was removed by another client."
    assert pop.multi(b"UIDL") == uidl  # numbers stay fixed for the session
    assert len(pop.multi(b"LIST")) == 3
    assert pop.multi(b"RETR 2")[-1] == b"body 1"
    pop.cmd(b"DELE 1")
    pop.cmd(b"DELE 3")
    assert pop.cmd(b"QUIT") == b"+OK Logging out, 1 messages deleted, 1 left."
    pop.close()
    imap.noop()
    typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = [re.search(rb"Subject: ([^\r\n]*)", part[1]).group(1) for part in data if isinstance(part, tuple)]  # type: ignore[union-attr]
    assert subjects == [b"mixed 1"]
    imap.logout()


def test_message_already_read_ahead_is_served_as_listed(merpati) -> None:  # type: ignore[no-untyped-def]
    """A session that already holds a message's bytes (LIST read them to size them) still
    serves it after another client expunged it: the snapshot the client was shown."""
    user = merpati.new_user("mixed4")
    deliver(merpati, user, 2)
    pop = Pop(merpati, user)
    pop.multi(b"LIST")
    imap = imap_session(merpati, user)
    imap.select("INBOX")
    imap.store("1", "+FLAGS", "\\Deleted")
    imap.expunge()
    assert pop.multi(b"RETR 1")[-1] == b"body 0"
    pop.cmd(b"DELE 1")
    assert pop.cmd(b"QUIT") == b"+OK Logging out, 0 messages deleted, 1 left."
    pop.close()
    imap.logout()


def test_pop3_retrieval_leaves_imap_flags_alone(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("mixed3")
    deliver(merpati, user, 2)
    pop = Pop(merpati, user)
    pop.multi(b"RETR 1")
    pop.multi(b"TOP 2 0")
    assert pop.cmd(b"QUIT").startswith(b"+OK")
    pop.close()
    imap = imap_session(merpati, user)
    imap.select("INBOX", readonly=True)
    typ, data = imap.fetch("1:2", "(FLAGS)")
    assert typ == "OK" and all(b"\\Seen" not in d for d in data), data
    imap.logout()

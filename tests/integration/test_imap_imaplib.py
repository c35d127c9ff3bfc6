"""Python's imaplib against a real `merpati serve` (imap + imaps listeners) through every
command family: login forms, mailboxes, FETCH, STORE, EXPUNGE, APPEND/COPY/MOVE, IDLE."""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
import time

import pytest

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def deliver(merpati, rcpt: str, subject: str = "hello", body: str = "hello body\r\n", extra: str = "") -> None:
    msg = f"From: Ann <ann@x.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}\r\n{body}"
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg.encode())


def connect(merpati) -> imaplib.IMAP4:
    return imaplib.IMAP4(merpati.host, merpati.ports["imap"], timeout=30)


def logged_in(merpati, user: str) -> imaplib.IMAP4:
    m = connect(merpati)
    typ, _ = m.login(user, PASSWORD)
    assert typ == "OK"
    return m


def test_capabilities_and_login_forms(merpati) -> None:
    user = merpati.new_user("caps")
    m = connect(merpati)
    assert "IMAP4REV1" in m.capabilities and "STARTTLS" in m.capabilities
    assert "AUTH=PLAIN" in m.capabilities  # loopback counts as secure
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(user, "wrong password")
    assert m.login(user, PASSWORD)[0] == "OK"
    assert "IDLE" in m.capabilities or "IDLE" in str(m.capability())
    assert m.logout()[0] == "BYE"

    m = connect(merpati)
    m.starttls(ssl_context=tls_context())
    assert m.login(user, PASSWORD)[0] == "OK"
    m.logout()

    m = imaplib.IMAP4_SSL(merpati.host, merpati.ports["imaps"], ssl_context=tls_context(), timeout=30)
    assert "STARTTLS" not in m.capabilities
    typ, _ = m.authenticate("PLAIN", lambda _: f"\0{user}\0{PASSWORD}".encode())
    assert typ == "OK"
    m.logout()


def test_unknown_user_gets_the_same_failure(merpati) -> None:
    m = connect(merpati)
    with pytest.raises(imaplib.IMAP4.error) as exc:
        m.login("nobody-here@merpati.test", "whatever")
    assert "Authentication failed." in str(exc.value)
    m.logout()


def test_mailbox_family(merpati) -> None:
    user = merpati.new_user("mbox")
    m = logged_in(merpati, user)
    assert m.create("Work/Projects")[0] == "OK"
    typ, data = m.list('""', "*")
    names = [d.decode() for d in data]
    assert any(n.endswith('"Work"') and "\\HasChildren" in n for n in names), names
    assert any(n.endswith('"Work/Projects"') for n in names), names
    assert any("\\Sent" in n for n in names)
    typ, data = m.list('""', "%")
    assert not any("Projects" in d.decode() for d in data)
    typ, data = m.create("Work")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    assert m.rename("Work", "Job")[0] == "OK"
    typ, data = m.list("Job/", "*")
    assert [d.decode() for d in data] == ['(\\HasNoChildren) "/" "Job/Projects"']
    assert m.subscribe("Job/Projects")[0] == "OK"
    typ, data = m.lsub('""', "*")
    assert any(b"Job/Projects" in d for d in data)
    assert m.unsubscribe("Job/Projects")[0] == "OK"
    typ, data = m.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK" and re.search(rb"MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0", data[0]), data
    assert m.delete("Job/Projects")[0] == "OK"
    typ, data = m.select("Nope")
    assert typ == "NO" and b"[NONEXISTENT]" in data[0]
    assert m.create('"Caf&AOk-"')[0] == "OK"
    typ, data = m.list('""', "Caf*")
    assert data == [b'(\\HasNoChildren) "/" "Caf&AOk-"']
    typ, data = m.namespace()
    assert data == [b'(("" "/")) NIL NIL']
    m.logout()


def test_select_fetch_store_expunge(merpati) -> None:
    user = merpati.new_user("fetch")
    for i in range(4):
        deliver(merpati, user, subject=f"message {i}", body=f"body number {i}\r\n")
    m = logged_in(merpati, user)
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"4"])
    typ, data = m.fetch("1:*", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    assert len(data) == 4 and all(b"UID" in d and b"RFC822.SIZE" in d for d in data)
    typ, data = m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] ENVELOPE BODYSTRUCTURE)")
    assert data[0][1] == b"Subject: message 1\r\n\r\n"
    assert data[1][1] == b"body number 1\r\n"
    assert b'ENVELOPE (NIL "message 1"' in data[2] and b'BODYSTRUCTURE ("text" "plain"' in data[2]
    typ, data = m.fetch("2", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    typ, data = m.fetch("2", "(BODY[TEXT])")
    assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    typ, data = m.fetch("3", "(BODY.PEEK[]<0.10>)")
    assert data[0][0].endswith(b"BODY[]<0> {10}") and len(data[0][1]) == 10
    typ, data = m.store("1:2", "+FLAGS", "(\\Deleted $Label1)")
    assert typ == "OK" and all(b"\\Deleted" in d and b"$Label1" in d for d in data)
    typ, data = m.uid("STORE", "3", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK" and data == [None]
    typ, data = m.expunge()
    assert data == [b"1", b"1"]
    typ, data = m.search(None, "FLAGGED")
    assert data == [b"1"]
    typ, data = m.fetch("1:*", "(UID)")
    assert [re.search(rb"UID (\d+)", d).group(1) for d in data] == [b"3", b"4"]
    assert m.store("2", "+FLAGS", "\\Deleted")[0] == "OK"
    typ, data = m.uid("EXPUNGE", "1:3")
    assert typ == "OK"
    typ, data = m.select("INBOX", readonly=True)
    assert data == [b"2"]
    typ, data = m.store("1", "+FLAGS", "\\Seen")
    assert typ == "NO"
    assert m.close()[0] == "OK"
    m.logout()


def test_append_copy_move_uidplus(merpati) -> None:
    user = merpati.new_user("copy")
    m = logged_in(merpati, user)
    raw = b"From: me@x.test\r\nSubject: appended\r\n\r\nappended body\r\n"
    typ, data = m.append("Drafts", "(\\Draft)", imaplib.Time2Internaldate(time.time()), raw)
    assert typ == "OK" and re.search(rb"APPENDUID \d+ 1", data[0]), data
    typ, data = m.append("NoSuchBox", None, None, raw)
    assert typ == "NO" and b"TRYCREATE" in data[0]
    m.select("Drafts")
    typ, data = m.fetch("1", "(FLAGS BODY.PEEK[])")
    assert data[0][1] == raw and b"\\Draft" in data[0][0]
    typ, data = m.copy("1", "INBOX")
    assert typ == "OK" and re.search(rb"COPYUID \d+ 1 1", data[-1] if data[-1] else b""), (typ, data, m.untagged_responses)
    typ, data = m._simple_command("MOVE", "1", "Archive")
    assert typ == "OK"
    assert m.response("EXPUNGE")[1] == [b"1"]
    typ, data = m.select("Archive")
    assert data == [b"1"]
    typ, data = m.select("INBOX")
    assert data == [b"1"]
    m.logout()


def test_idle_sees_new_mail_at_once(merpati) -> None:
    user = merpati.new_user("idle")
    m = logged_in(merpati, user)
    m.select("INBOX")
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    assert m.readline().startswith(b"+ ")
    deliver(merpati, user, subject="while idling")
    m.sock.settimeout(20)
    line = m.readline()
    assert line == b"* 1 EXISTS\r\n", line
    assert m.readline() == b"* 1 RECENT\r\n"
    m.send(b"DONE\r\n")
    assert m.readline() == tag + b" OK IDLE terminated\r\n"
    m.logout()


def test_two_sessions_see_each_others_changes(merpati) -> None:
    user = merpati.new_user("two")
    deliver(merpati, user, subject="one")
    deliver(merpati, user, subject="two")
    a = logged_in(merpati, user)
    b = logged_in(merpati, user)
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "\\Flagged")
    a.store("2", "+FLAGS", "\\Deleted")
    a.expunge()
    typ, data = b.noop()
    assert b.response("FETCH")[1] == [b"1 (UID 1 FLAGS (\\Flagged))"]
    assert b.response("EXPUNGE")[1] == [b"2"]
    deliver(merpati, user, subject="three")
    deadline = time.monotonic() + 20  # the MX may be another process: its event crosses over
    while time.monotonic() < deadline:
        b.noop()
        exists = b.response("EXISTS")[1]
        if exists != [None]:
            break
        time.sleep(0.05)
    assert exists[-1] == b"2"
    a.logout()
    b.logout()


def test_search_sort_thread(merpati) -> None:
    user = merpati.new_user("search")
    deliver(merpati, user, subject="apple pie", body="recipe with cinnamon\r\n")
    deliver(merpati, user, subject="Re: apple pie", body="looks great\r\n")
    deliver(merpati, user, subject="banana", body="CINNAMON is nice\r\n")
    m = logged_in(merpati, user)
    m.select("INBOX")
    assert m.search(None, "BODY", "cinnamon")[1] == [b"1 3"]
    assert m.search(None, "SUBJECT", "apple")[1] == [b"1 2"]
    assert m.search(None, "OR", "SUBJECT", "banana", "TEXT", "great")[1] == [b"2 3"]
    assert m.search(None, "NOT", "SUBJECT", "apple", "LARGER", "10")[1] == [b"3"]
    assert m.uid("SEARCH", "UID", "2:*")[1] == [b"2 3"]
    typ, data = m.sort("(SUBJECT)", "UTF-8", "ALL")
    assert data == [b"1 2 3"]
    typ, data = m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
    assert data == [b"(1 2)(3)"]
    m.logout()


def test_line_too_long_before_login_is_refused(merpati) -> None:
    with socket.create_connection((merpati.host, merpati.ports["imap"]), timeout=20) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"* OK")
        s.sendall(b"a NOOP " + b"x" * 9000 + b"\r\n")
        assert f.readline().startswith(b"a BAD")
        s.sendall(b"b NOOP\r\n")
        assert f.readline() == b"b OK NOOP completed\r\n"

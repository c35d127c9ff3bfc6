"""IMAPClient (a client nobody here wrote) against a real `merpati serve`, over real sockets,
through every command family it drives: LOGIN and AUTHENTICATE PLAIN, STARTTLS and implicit
TLS, CAPABILITY, ID, NAMESPACE, ENABLE; LIST/CREATE/RENAME/DELETE/SUBSCRIBE/STATUS and
SPECIAL-USE; SELECT/EXAMINE/UNSELECT/CLOSE; SEARCH (non-ASCII criteria with CHARSET UTF-8);
FETCH of every item a mail client asks for; STORE (set/add/remove, silent); COPY, MOVE,
EXPUNGE, UID EXPUNGE; APPEND and MULTIAPPEND; IDLE while mail arrives over SMTP and while a
second session changes flags or expunges; CONDSTORE and QRESYNC; QUOTA; SORT and THREAD.

Every test has its own user (``merpati.new_user``), so they share one server per module.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
import threading
import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, IMAPClientError, LoginError

from support.merpati_server import PASSWORD

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}

SENDER = "ann@x.test"

MULTIPART = (
    b"From: Ann Example <ann@x.test>\r\n"
    b"To: Bob <bob@merpati.test>, carol@merpati.test\r\n"
    b"Cc: Dan <dan@y.test>\r\n"
    b"Subject: quarterly report\r\n"
    b"Date: Tue, 05 Mar 2024 10:11:12 +0100\r\n"
    b"Message-ID: <report-1@x.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe from the report\r\n"
    b"--b1\r\n"
    b'Content-Type: application/octet-stream; name="data.bin"\r\n'
    b'Content-Disposition: attachment; filename="data.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--b1--\r\n"
)


def plain_message(subject: str, body: str = "hello\r\n", *, to: str = "bob@merpati.test", extra: str = "") -> bytes:
    return (
        f"From: Ann Example <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Mon, 04 Mar 2024 09:00:00 +0000\r\n{extra}\r\n{body}"
    ).encode("utf-8")


def deliver(merpati, rcpt: str, message: bytes | str, *, subject: str | None = None) -> None:
    """One message over SMTP to ``rcpt`` (8BITMIME, so UTF-8 bodies pass as they are)."""
    if isinstance(message, str):
        message = plain_message(subject or "no subject", message, to=rcpt)
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.ehlo()
        s.sendmail(SENDER, [rcpt], message, mail_options=["BODY=8BITMIME"])


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(merpati, *, tls: bool = False) -> IMAPClient:
    if tls:
        return IMAPClient(merpati.host, port=merpati.ports["imaps"], ssl=True, ssl_context=unverified(), timeout=30)
    return IMAPClient(merpati.host, port=merpati.ports["imap"], ssl=False, timeout=30)


def client(merpati, user: str, *, tls: bool = False) -> IMAPClient:
    c = connect(merpati, tls=tls)
    c.login(user, PASSWORD)
    return c


# ---- connection, authentication, server information ---------------------------------------


def test_capabilities_login_forms_and_server_info(merpati) -> None:
    user = merpati.new_user("ic-login")
    c = connect(merpati)
    assert b"IMAP ready" in c.welcome
    pre = set(c.capabilities())
    assert {b"IMAP4REV1", b"IMAP4REV2", b"STARTTLS", b"AUTH=PLAIN", b"SASL-IR", b"ID", b"IDLE"} <= pre, pre
    assert b"MOVE" not in pre  # post-login capabilities are not advertised before login
    c.login(user, PASSWORD)
    post = set(c.capabilities())
    for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"ENABLE", b"CONDSTORE", b"QRESYNC", b"SORT",
                b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT", b"QUOTA", b"SPECIAL-USE", b"UNSELECT",
                b"LITERAL+", b"MULTIAPPEND", b"ESEARCH", b"CHILDREN", b"LIST-EXTENDED"):
        assert cap in post, (cap, post)
    assert b"STARTTLS" not in post and b"AUTH=PLAIN" not in post
    assert c.namespace().personal == (("", "/"),)
    assert c.namespace().other is None and c.namespace().shared is None
    [server_id] = c.id_({"name": "IMAPClient", "version": "test"})
    fields = dict(zip(server_id[::2], server_id[1::2]))
    assert fields[b"name"] == b"Merpati", server_id
    text, untagged = c.noop()
    assert untagged == [] and b"NOOP" in text
    assert c.logout()  # the BYE text

    # AUTHENTICATE PLAIN (SASL-IR), and with an authorisation identity equal to the user
    c = connect(merpati)
    c.plain_login(user, PASSWORD)
    assert c.list_folders()
    c.logout()
    c = connect(merpati)
    c.plain_login(user, PASSWORD, authorization_identity=user)
    c.logout()


def test_wrong_password_and_unknown_user_fail_alike(merpati) -> None:
    user = merpati.new_user("ic-bad")
    errors = []
    for name, password in ((user, "nope"), (f"nobody-{user}", PASSWORD)):
        c = connect(merpati)
        with pytest.raises(LoginError) as info:
            c.login(name, password)
        errors.append(str(info.value))
        c.logout()
    assert errors[0] == errors[1], errors  # the same generic failure for both
    c = connect(merpati)
    with pytest.raises(IMAPClientError):
        c.plain_login(user, "nope")
    c.shutdown()


def test_starttls_then_login(merpati) -> None:
    user = merpati.new_user("ic-starttls")
    c = connect(merpati)
    c.starttls(unverified())
    assert isinstance(c.socket(), ssl.SSLSocket)
    assert b"STARTTLS" not in c.capabilities()  # never offered again inside TLS
    c.login(user, PASSWORD)
    assert c.select_folder("INBOX")[b"EXISTS"] == 0
    with pytest.raises(IMAPClientError):
        c.starttls(unverified())  # IMAPClient refuses itself; the session stays usable
    assert c.noop()
    c.logout()


def test_implicit_tls(merpati) -> None:
    user = merpati.new_user("ic-imaps")
    deliver(merpati, user, "over imaps\r\n", subject="tls")
    c = client(merpati, user, tls=True)
    assert isinstance(c.socket(), ssl.SSLSocket)
    c.select_folder("INBOX")
    [uid] = c.search()
    assert c.fetch([uid], ["BODY.PEEK[TEXT]"])[uid][b"BODY[TEXT]"] == b"over imaps\r\n"
    c.logout()


# ---- mailboxes ------------------------------------------------------------------------------


def test_folders_special_use_subscriptions_status(merpati) -> None:
    user = merpati.new_user("ic-folders")
    c = client(merpati, user, tls=True)
    names = {name: flags for flags, _, name in c.list_folders()}
    assert set(names) >= {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}, names
    for flag, name in ((b"\\Sent", "Sent"), (b"\\Drafts", "Drafts"), (b"\\Trash", "Trash"),
                       (b"\\Junk", "Junk"), (b"\\Archive", "Archive")):
        assert c.find_special_folder(flag) == name
    delimiter = c.list_folders()[0][1]
    assert delimiter == b"/"

    c.create_folder("Projects/2024")
    folders = {name: flags for flags, _, name in c.list_folders()}
    assert b"\\HasChildren" in folders["Projects"], folders
    assert b"\\HasNoChildren" in folders["Projects/2024"], folders
    assert [n for _, _, n in c.list_folders("Projects/", "%")] == ["Projects/2024"]
    with pytest.raises(IMAPClientError, match="ALREADYEXISTS"):
        c.create_folder("Projects/2024")
    assert c.folder_exists("Projects/2024") and not c.folder_exists("Nope")

    # RENAME keeps the messages; subscriptions are separate from existence
    c.append("Projects/2024", plain_message("kept across rename"))
    c.rename_folder("Projects/2024", "Projects/2025")
    assert not c.folder_exists("Projects/2024")
    assert c.folder_status("Projects/2025", [b"MESSAGES"])[b"MESSAGES"] == 1
    with pytest.raises(IMAPClientError, match="NONEXISTENT"):
        c.rename_folder("Nope", "Other")
    c.subscribe_folder("Projects/2025")
    assert "Projects/2025" in [n for _, _, n in c.list_sub_folders()]
    c.unsubscribe_folder("Projects/2025")
    assert "Projects/2025" not in [n for _, _, n in c.list_sub_folders()]
    c.delete_folder("Projects/2025")
    assert not c.folder_exists("Projects/2025")
    with pytest.raises(IMAPClientError, match="NONEXISTENT"):
        c.delete_folder("Projects/2025")

    # renaming INBOX moves its messages into the new folder and leaves an empty INBOX
    c.append("INBOX", plain_message("was in inbox"))
    c.rename_folder("INBOX", "Old Inbox")
    assert c.folder_status("Old Inbox", [b"MESSAGES"])[b"MESSAGES"] == 1
    assert c.folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"] == 0

    # non-ASCII names travel as modified UTF-7 and come back as the same text
    c.create_folder("Ünïcödé & Co/日本")
    listed = [n for _, _, n in c.list_folders()]
    assert "Ünïcödé & Co/日本" in listed and "Ünïcödé & Co" in listed, listed
    c.append("Ünïcödé & Co/日本", plain_message("non-ascii folder"))
    c.select_folder("Ünïcödé & Co/日本")
    assert c.search() == [1]
    c.close_folder()

    status = c.folder_status("Old Inbox", [b"MESSAGES", b"UIDNEXT", b"UNSEEN", b"UIDVALIDITY", b"RECENT", b"SIZE"])
    assert status[b"MESSAGES"] == 1 and status[b"UIDNEXT"] == 2 and status[b"UNSEEN"] == 1
    assert status[b"SIZE"] == len(plain_message("was in inbox"))
    assert status[b"UIDVALIDITY"] > 0
    c.logout()


# ---- selecting ------------------------------------------------------------------------------


def test_select_examine_unselect_close(merpati) -> None:
    user = merpati.new_user("ic-select")
    for i in range(3):
        deliver(merpati, user, f"body {i}\r\n", subject=f"select {i}")
    c = client(merpati, user)
    info = c.select_folder("INBOX", readonly=True)  # EXAMINE
    assert info[b"EXISTS"] == 3 and info[b"UIDNEXT"] == 4 and b"READ-ONLY" in info, info
    assert set(info[b"FLAGS"]) >= {b"\\Seen", b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Draft"}
    # BODY[] without PEEK in a read-only mailbox does not set \Seen
    c.fetch([1], ["BODY[]"])
    assert b"\\Seen" not in c.get_flags([1])[1]
    with pytest.raises(IMAPClientError):
        c.add_flags([1], [b"\\Flagged"])
    c.unselect_folder()

    info = c.select_folder("INBOX")
    assert info[b"READ-WRITE"] and info[b"EXISTS"] == 3
    assert b"\\*" in info[b"PERMANENTFLAGS"] and info[b"UIDVALIDITY"] > 0
    # BODY[] without PEEK sets \Seen and says so
    data = c.fetch([2], ["BODY[]"])
    assert data[2][b"BODY[]"].endswith(b"body 1\r\n")
    assert b"\\Seen" in c.get_flags([2])[2]
    # UNSELECT keeps \Deleted messages, CLOSE expunges them silently
    c.add_flags([1], [b"\\Deleted"])
    c.unselect_folder()
    assert c.select_folder("INBOX")[b"EXISTS"] == 3
    c.close_folder()
    assert c.select_folder("INBOX")[b"EXISTS"] == 2
    # SELECT of a missing mailbox fails and leaves nothing selected
    with pytest.raises(IMAPClientError):
        c.select_folder("Missing")
    with pytest.raises(IMAPClientError):
        c.search()
    c.logout()


# ---- SEARCH ---------------------------------------------------------------------------------


def test_search_criteria(merpati) -> None:
    user = merpati.new_user("ic-search")
    deliver(merpati, user, plain_message("Grüße aus Köln", "nichts besonderes\r\n", to=user,
                                         extra="Content-Type: text/plain; charset=utf-8\r\n"))
    deliver(merpati, user, plain_message("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_encoded?=", "ascii body\r\n", to=user))
    deliver(merpati, user, MULTIPART)
    deliver(merpati, user, plain_message("big one", "x" * 5000 + "\r\n", to=user,
                                         extra="X-Tracking: needle-42\r\n"))
    c = client(merpati, user)
    c.select_folder("INBOX")
    assert c.search() == [1, 2, 3, 4]
    assert c.search(["SUBJECT", "Grüße"], charset="UTF-8") == [1, 2]  # raw UTF-8 and RFC 2047
    assert c.search(["SUBJECT", "gRüßE"], charset="UTF-8") == [1, 2]  # ASCII letters match in any case
    assert c.search(["BODY", "Schöne Grüße"], charset="UTF-8") == [3]  # decoded quoted-printable part
    assert c.search(["TEXT", "köln"], charset="UTF-8") == [1]
    assert c.search(["FROM", "ann@x.test"]) == [1, 2, 3, 4]
    assert c.search(["TO", "carol"]) == [3]
    assert c.search(["CC", "Dan"]) == [3]
    assert c.search(["HEADER", "X-Tracking", "needle-42"]) == [4]
    assert c.search(["HEADER", "Message-ID", "<report-1@x.test>"]) == [3]
    assert c.search(["LARGER", 4000]) == [4]
    assert c.search(["SMALLER", 4000]) == [1, 2, 3]
    assert c.search(["OR", "SUBJECT", "big", "SUBJECT", "quarterly"]) == [3, 4]
    assert c.search(["NOT", "SUBJECT", "Grüße"], charset="UTF-8") == [3, 4]
    assert c.search(["SENTBEFORE", dt.date(2024, 3, 5)]) == [1, 2, 4]
    assert c.search(["SENTON", dt.date(2024, 3, 5)]) == [3]
    assert c.search(["SINCE", dt.date.today() - dt.timedelta(days=2)]) == [1, 2, 3, 4]
    assert c.search(["BEFORE", dt.date(2000, 1, 1)]) == []
    c.add_flags([2], [b"\\Flagged", b"$Label1"])
    c.add_flags([3], [b"\\Seen"])
    assert c.search(["FLAGGED"]) == [2]
    assert c.search(["KEYWORD", "$Label1"]) == [2]
    assert c.search(["UNKEYWORD", "$Label1"]) == [1, 3, 4]
    assert c.search(["UNSEEN"]) == [1, 2, 4]
    assert c.search(["SEEN", "NOT", "FLAGGED"]) == [3]
    assert c.search(["UID", "2:3"]) == [2, 3]
    assert c.search(["UID", "3:*"]) == [3, 4]
    assert c.search(["ALL", ["OR", "FLAGGED", "SEEN"]]) == [2, 3]
    # sequence numbers (use_uid off) after an expunge differ from UIDs
    c.delete_messages([1])
    c.expunge()
    c.use_uid = False
    assert c.search(["ALL"]) == [1, 2, 3]
    assert c.search(["1:2"]) == [1, 2]
    c.use_uid = True
    assert c.search(["1:2"]) == [2, 3]  # the same set as sequence numbers, answered as UIDs
    # an unknown charset is refused with BADCHARSET
    with pytest.raises(IMAPClientError, match="BADCHARSET"):
        c.search([b"SUBJECT", b"x"], charset="X-NO-SUCH")  # bytes: IMAPClient sends them as they are
    c.logout()


# ---- FETCH ----------------------------------------------------------------------------------


def test_fetch_items(merpati) -> None:
    user = merpati.new_user("ic-fetch")
    c = client(merpati, user)
    when = dt.datetime(2024, 3, 5, 10, 11, 12, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    appended = c.append("INBOX", MULTIPART, flags=[b"\\Answered", b"work"], msg_time=when)
    assert b"APPENDUID" in appended
    plain = plain_message("just text", "line one\r\nline two\r\n")
    c.append("INBOX", plain)
    c.select_folder("INBOX")
    data = c.fetch([1, 2], ["FLAGS", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "RFC822.SIZE", "INTERNALDATE",
                            "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]"])
    m = data[1]
    assert m[b"BODY[]"] == MULTIPART  # byte-exact, APPEND adds nothing
    assert m[b"RFC822.SIZE"] == len(MULTIPART)
    assert set(m[b"FLAGS"]) == {b"\\Answered", b"work", b"\\Recent"}  # \\Recent: this session is the first to see it
    assert m[b"INTERNALDATE"].utctimetuple()[:6] == (2024, 3, 5, 9, 11, 12)
    assert m[b"SEQ"] == 1
    assert m[b"BODY[HEADER.FIELDS (SUBJECT FROM)]"] == (
        b"From: Ann Example <ann@x.test>\r\nSubject: quarterly report\r\n\r\n")

    env = m[b"ENVELOPE"]
    assert env.subject == b"quarterly report"
    assert env.message_id == b"<report-1@x.test>"
    assert env.date.utctimetuple()[:6] == (2024, 3, 5, 9, 11, 12)
    assert [(a.name, a.mailbox, a.host) for a in env.from_] == [(b"Ann Example", b"ann", b"x.test")]
    assert [(a.name, a.mailbox, a.host) for a in env.sender] == [(b"Ann Example", b"ann", b"x.test")]
    assert [(a.mailbox, a.host) for a in env.to] == [(b"bob", b"merpati.test"), (b"carol", b"merpati.test")]
    assert [(a.name, a.mailbox) for a in env.cc] == [(b"Dan", b"dan")]
    assert env.bcc is None and env.in_reply_to is None

    bs = m[b"BODYSTRUCTURE"]
    assert bs.is_multipart
    parts, subtype = bs[0], bs[1]
    assert subtype == b"mixed" and len(parts) == 2
    text, attachment = parts
    assert (text[0], text[1]) == (b"text", b"plain") and text[2] == (b"charset", b"utf-8")
    assert text[5] == b"quoted-printable"
    assert (attachment[0], attachment[1], attachment[5]) == (b"application", b"octet-stream", b"base64")
    assert attachment[6] == len(b"AAECAwQFBgcICQ==")  # the CRLF before a boundary belongs to it

    p = data[2]
    assert p[b"BODY[]"] == plain and p[b"RFC822.SIZE"] == len(plain)
    assert not p[b"BODYSTRUCTURE"].is_multipart
    assert p[b"BODYSTRUCTURE"][:2] == (b"text", b"plain") and p[b"BODYSTRUCTURE"][7] == 2  # lines
    assert p[b"FLAGS"] == (b"\\Recent",)

    # sections, partials, MIME headers, decoded BINARY, RFC822.* forms (not BINARY[2]: its NUL
    # octets come as a literal8, which imaplib cannot read)
    sec = c.fetch([1], ["BODY.PEEK[1]", "BODY.PEEK[2]", "BODY.PEEK[2.MIME]", "BODY.PEEK[TEXT]<0.10>",
                        "BODY.PEEK[HEADER.FIELDS.NOT (TO CC DATE MESSAGE-ID MIME-VERSION CONTENT-TYPE)]",
                        "BINARY.PEEK[1]", "BINARY.SIZE[2]", "RFC822.HEADER"])[1]
    assert sec[b"BODY[1]"] == b"Sch=C3=B6ne Gr=C3=BC=C3=9Fe from the report"
    assert sec[b"BODY[2]"] == b"AAECAwQFBgcICQ=="
    assert sec[b"BODY[2.MIME]"].startswith(b"Content-Type: application/octet-stream")
    assert sec[b"BODY[2.MIME]"].endswith(b"\r\n\r\n")
    assert sec[b"BODY[TEXT]<0>"] == b"preamble\r\n"
    assert sec[b"BODY[HEADER.FIELDS.NOT (TO CC DATE MESSAGE-ID MIME-VERSION CONTENT-TYPE)]"] == (
        b"From: Ann Example <ann@x.test>\r\nSubject: quarterly report\r\n\r\n")
    assert sec[b"BINARY[1]"] == "Schöne Grüße from the report".encode()  # decoded quoted-printable
    assert sec[b"BINARY.SIZE[2]"] == 10
    assert sec[b"RFC822.HEADER"] == MULTIPART[: MULTIPART.index(b"\r\n\r\n") + 4]
    assert b"\\Seen" not in c.get_flags([1])[1]  # every item above was a PEEK
    assert c.fetch([2], ["RFC822.TEXT"])[2][b"RFC822.TEXT"] == b"line one\r\nline two\r\n"
    assert b"\\Seen" in c.get_flags([2])[2]  # RFC822.TEXT sets \Seen like BODY[TEXT]

    # MODSEQ (CONDSTORE turned on by the FETCH itself), SAVEDATE, PREVIEW
    ext = c.fetch([1, 2], ["MODSEQ", "SAVEDATE", "PREVIEW"])
    assert all(isinstance(ext[u][b"MODSEQ"][0], int) and ext[u][b"MODSEQ"][0] > 0 for u in (1, 2)), ext
    assert ext[2][b"PREVIEW"].startswith(b"line one"), ext
    assert b"SAVEDATE" in ext[1]

    # a FETCH of a UID that does not exist returns nothing, not an error
    assert c.fetch([99], ["FLAGS"]) == {}
    # sequence numbers and UIDs
    c.use_uid = False
    assert c.fetch([1, 2], ["UID"]) == {1: {b"UID": 1, b"SEQ": 1}, 2: {b"UID": 2, b"SEQ": 2}}
    c.logout()


# ---- STORE, COPY, MOVE, EXPUNGE -------------------------------------------------------------


def test_flags_copy_move_expunge(merpati) -> None:
    user = merpati.new_user("ic-msgs")
    for i in range(6):
        deliver(merpati, user, f"body {i}\r\n", subject=f"subject {i}")
    c = client(merpati, user)
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 6 and info[b"UIDNEXT"] == 7

    # STORE: add, remove, replace, silent; new keywords join FLAGS (\\* allows them)
    def flags(uid: int) -> set[bytes]:
        return set(c.get_flags([uid])[uid]) - {b"\\Recent"}

    assert set(c.add_flags([1], [b"\\Flagged", b"custom"])[1]) - {b"\\Recent"} == {b"\\Flagged", b"custom"}
    assert set(c.remove_flags([1], [b"custom"])[1]) - {b"\\Recent"} == {b"\\Flagged"}
    assert set(c.set_flags([2], [b"\\Seen", b"$Forwarded"])[2]) - {b"\\Recent"} == {b"\\Seen", b"$Forwarded"}
    assert c.add_flags([3], [b"\\Answered"], silent=True) is None
    assert flags(3) == {b"\\Answered"}
    assert c.set_flags([3], [b"\\Answered", b"\\Answered"], silent=True) is None and flags(3) == {b"\\Answered"}
    reselect = c.select_folder("INBOX")
    assert b"$Forwarded" in reselect[b"FLAGS"] and b"\\*" in reselect[b"PERMANENTFLAGS"]
    assert c.search(["UNSEEN"]) == [1, 3, 4, 5, 6]

    # COPY with COPYUID (imaplib files response codes under their name); the copy keeps flags
    c._imap.untagged_responses.pop("COPYUID", None)
    c.copy([1, 2], "Archive")
    [copyuid] = c._imap.untagged_responses.pop("COPYUID")
    assert copyuid.split()[1:] == [b"1:2", b"1:2"], copyuid
    # MOVE with COPYUID in an untagged OK; the source loses the messages
    c.move([3], "Trash")
    assert c.search() == [1, 2, 4, 5, 6]
    with pytest.raises(IMAPClientError, match="TRYCREATE"):
        c.copy([1], "No Such Folder")

    # EXPUNGE reports each removal by its sequence number at that moment: UIDs 1 and 4 are
    # numbers 1 and 3, and once 1 is gone UID 4 is number 2
    c.delete_messages([1, 4])
    message, responses = c.expunge()
    assert [r for r in responses if r[1] == b"EXPUNGE"] == [(1, b"EXPUNGE"), (2, b"EXPUNGE")], responses
    assert c.search() == [2, 5, 6]

    # UID EXPUNGE removes only the given \Deleted messages
    c.delete_messages([5, 6])
    c.uid_expunge([5])
    assert c.search() == [2, 6]
    c.expunge([6])  # IMAPClient's other spelling of UID EXPUNGE
    assert c.search() == [2]

    c.select_folder("Archive")
    assert c.search() == [1, 2]
    assert flags(1) == {b"\\Flagged"} and flags(2) == {b"\\Seen", b"$Forwarded"}
    c.select_folder("Trash")
    [moved] = c.search()
    assert c.fetch([moved], ["BODY.PEEK[TEXT]"])[moved][b"BODY[TEXT]"] == b"body 2\r\n"
    assert flags(moved) == {b"\\Answered"}
    c.logout()


def test_append_and_multiappend(merpati) -> None:
    user = merpati.new_user("ic-append")
    c = client(merpati, user)
    answer = c.append("Drafts", plain_message("draft"), flags=[b"\\Draft", b"\\Seen"])
    assert b"APPENDUID" in answer
    c.select_folder("Drafts", readonly=True)
    assert c.search(["DRAFT"]) == [1]
    c.close_folder()
    with pytest.raises(IMAPClientError, match="TRYCREATE"):
        c.append("Nowhere", plain_message("lost"))
    # 8-bit and large messages pass as literals byte-exact
    big = plain_message("big", "ü" * 300_000 + "\r\n", extra="Content-Type: text/plain; charset=utf-8\r\n")
    c.append("INBOX", big)
    batch = [plain_message(f"multi {i}") for i in range(3)]
    answer = c.multiappend("INBOX", [
        {"msg": batch[0], "flags": [b"\\Flagged"]},
        {"msg": batch[1], "flags": []},
        {"msg": batch[2], "date": dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)},
    ])
    assert b"APPENDUID" in repr(answer).encode() and b"2:4" in repr(answer).encode(), answer
    c.select_folder("INBOX")
    assert c.search() == [1, 2, 3, 4]
    bodies = c.fetch([1, 2, 3, 4], ["BODY.PEEK[]", "FLAGS", "INTERNALDATE"])
    assert bodies[1][b"BODY[]"] == big
    assert [bodies[u][b"BODY[]"] for u in (2, 3, 4)] == batch
    assert b"\\Flagged" in bodies[2][b"FLAGS"]
    assert bodies[4][b"INTERNALDATE"].utctimetuple()[:6] == (2020, 1, 2, 3, 4, 5)
    c.logout()


def test_multiappend_of_plain_messages(merpati) -> None:
    """IMAPClient's plainest MULTIAPPEND: a list of messages without flags or dates. IMAPClient
    writes two spaces between consecutive literals (``{n+}\\r\\n<msg1>  {m+}\\r\\n<msg2>``);
    Dovecot accepts that, so a server that wants this client's MULTIAPPEND must too."""
    user = merpati.new_user("ic-multiappend")
    c = client(merpati, user)
    batch = [plain_message(f"plain multi {i}") for i in range(3)]
    answer = c.multiappend("INBOX", batch)
    assert b"APPENDUID" in repr(answer).encode(), answer
    c.select_folder("INBOX")
    assert [m[b"BODY[]"] for m in c.fetch([1, 2, 3], ["BODY.PEEK[]"]).values()] == batch
    c.logout()


# ---- IDLE -----------------------------------------------------------------------------------


def idle_until(c: IMAPClient, want, timeout: float = 20.0) -> list:
    """idle_check until one of the responses satisfies ``want``; everything seen is returned."""
    deadline = time.monotonic() + timeout
    seen: list = []
    while time.monotonic() < deadline:
        seen += c.idle_check(timeout=1)
        if any(want(r) for r in seen):
            break
    return seen


def test_idle_sees_smtp_delivery_flags_and_expunge(merpati) -> None:
    user = merpati.new_user("ic-idle")
    c = client(merpati, user)
    c.select_folder("INBOX")
    c.idle()
    # mail delivered over SMTP from another thread while the client idles
    sender = threading.Thread(target=deliver, args=(merpati, user, "pushed\r\n"), kwargs={"subject": "pushed"})
    sender.start()
    seen = idle_until(c, lambda r: r == (1, b"EXISTS"))
    sender.join()
    c.idle_done()
    assert (1, b"EXISTS") in seen, seen

    other = client(merpati, user)
    other.select_folder("INBOX")
    c.idle()
    other.add_flags([1], [b"\\Flagged"])
    seen = idle_until(c, lambda r: len(r) > 2 and r[1] == b"FETCH")
    c.idle_done()
    assert any(r[1] == b"FETCH" and b"\\Flagged" in repr(r[2]).encode() for r in seen if len(r) > 2), seen

    deliver(merpati, user, "second\r\n", subject="second")
    c.idle()
    other.delete_messages([1])
    other.expunge()
    seen = idle_until(c, lambda r: r[1:] == (b"EXPUNGE",) or r[1] == b"EXPUNGE")
    done = c.idle_done()
    assert any(r[1] == b"EXPUNGE" for r in seen + list(done[1])), (seen, done)
    assert c.search() == [2]
    other.logout()
    c.logout()


# ---- CONDSTORE, QRESYNC, SORT, THREAD, QUOTA ----------------------------------------


def test_condstore_and_qresync(merpati) -> None:
    user = merpati.new_user("ic-condstore")
    for subject in ("one", "two", "three", "four"):
        deliver(merpati, user, f"{subject}\r\n", subject=subject)
    c = client(merpati, user)
    assert c.enable("CONDSTORE") == [b"CONDSTORE"]
    assert c.enable("NO-SUCH-EXTENSION") == []
    info = c.select_folder("INBOX")
    modseq = info[b"HIGHESTMODSEQ"]
    assert modseq > 0
    assert c.folder_status("INBOX", [b"HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] == modseq
    c.add_flags([2], [b"\\Seen"])
    changed = c.fetch([1, 2, 3, 4], ["FLAGS"], modifiers=[f"CHANGEDSINCE {modseq}"])
    assert list(changed) == [2] and changed[2][b"MODSEQ"][0] > modseq
    found = c.search(["MODSEQ", modseq + 1])
    assert list(found) == [2] and found.modseq == changed[2][b"MODSEQ"][0]
    assert c.select_folder("INBOX")[b"HIGHESTMODSEQ"] == changed[2][b"MODSEQ"][0]
    c.logout()

    c = client(merpati, user)
    assert c.enable("QRESYNC") == [b"QRESYNC"]
    c.select_folder("INBOX")
    c.delete_messages([1, 3])
    _, responses = c.expunge()
    assert responses == [(b"VANISHED", b"1,3")], responses  # QRESYNC: VANISHED instead of EXPUNGE
    assert c.search() == [2, 4]
    c.logout()


def test_sort_and_thread(merpati) -> None:
    user = merpati.new_user("ic-ext")
    deliver(merpati, user, plain_message("banana", to=user, extra="Message-ID: <b@x.test>\r\n"))
    deliver(merpati, user, plain_message("apple", to=user, extra="Message-ID: <a@x.test>\r\n"))
    deliver(merpati, user, plain_message("Re: apple", to=user,
                                         extra="Message-ID: <a2@x.test>\r\nIn-Reply-To: <a@x.test>\r\n"))
    deliver(merpati, user, plain_message("Äpfel", "ü\r\n", to=user,
                                         extra="Content-Type: text/plain; charset=utf-8\r\n"))
    c = client(merpati, user)
    c.select_folder("INBOX")
    assert c.sort(["SUBJECT"]) == [2, 3, 4, 1]  # base subjects; Ä folds beside A (i;unicode-casemap, as Dovecot)
    assert c.sort(["REVERSE", "ARRIVAL"]) == [4, 3, 2, 1]
    assert c.sort(["SIZE"], ["SUBJECT", "apple"]) in ([2, 3], [3, 2])
    assert c.sort(["SUBJECT"], ["SUBJECT", "Äpfel"], charset="UTF-8") == [4]
    assert c.thread("ORDEREDSUBJECT") == ((1,), (2, 3), (4,))
    assert c.thread("REFERENCES") == ((1,), (2, 3), (4,))
    assert c.thread("REFERENCES", ["SUBJECT", "apple"]) == ((2, 3),)
    c.logout()


def set_quota(merpati, user: str, **limits: int) -> None:
    """Quota limits straight into the server's store (there is no CLI for them yet); the
    running server reads them from the database at each check."""
    import asyncio

    from merpati.storage import open_store

    async def run() -> None:
        store = await open_store(f"sqlite:///{merpati.db_path}")
        try:
            account = await store.get_account(user)
            await store.set_quota(account.id, **limits)
        finally:
            await store.close()

    asyncio.run(run())


def test_quota(merpati) -> None:
    user = merpati.new_user("ic-quota")
    c = client(merpati, user)
    roots, quotas = c.get_quota_root("INBOX")
    assert roots.mailbox == "INBOX" and roots.quota_roots == [] and quotas == []  # no limit: no root
    message = plain_message("quota", "x" * 3000 + "\r\n")
    c.append("INBOX", message)
    c.append("Archive", message)
    set_quota(merpati, user, bytes=10 * 1024, messages=3)
    roots, quotas = c.get_quota_root("Archive")
    assert roots.mailbox == "Archive" and roots.quota_roots == [""], roots
    usage = {q.resource: (q.usage, q.limit) for q in quotas}
    assert usage == {"STORAGE": (-(-2 * len(message) // 1024), 10), "MESSAGE": (2, 3)}, usage
    assert {q.resource for q in c._get_quota("")} == {"STORAGE", "MESSAGE"}
    c.append("INBOX", message)  # the third message fits both limits
    with pytest.raises(IMAPClientError, match="OVERQUOTA"):
        c.append("INBOX", plain_message("one too many"))
    with pytest.raises((smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError)) as refused:
        deliver(merpati, user, "over quota\r\n", subject="over quota")  # enforced on delivery too
    assert "4.2.2" in str(refused.value), refused.value  # 452 4.2.2 mailbox full (RFC 3463): retry later
    c.select_folder("INBOX")
    with pytest.raises(IMAPClientError, match="OVERQUOTA"):
        c.copy([1], "Drafts")
    c.delete_messages([1])
    c.expunge()
    c.append("INBOX", plain_message("fits again"))
    assert {q.resource: q.usage for q in c.get_quota()}["MESSAGE"] == 3
    c.logout()


def test_unsupported_capability_is_refused_by_the_client(merpati) -> None:
    """IMAPClient checks the capability list: an extension Merpati does not announce stays off."""
    user = merpati.new_user("ic-caps")
    c = client(merpati, user)
    with pytest.raises(CapabilityError):
        c.getacl("INBOX")  # ACL is not offered
    c.logout()

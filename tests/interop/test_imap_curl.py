"""curl's IMAP client (`curl imap://` and `imaps://`) against a real `merpati serve`.

curl maps URLs to IMAP commands (RFC 5092 URLs, curl's manual "IMAP"):
``imap://h/`` LIST; ``imap://h/BOX;UID=n`` SELECT + UID FETCH n BODY[]; ``;SECTION=`` a part;
``;MAILINDEX=n`` a sequence number; ``imap://h/BOX?criteria`` SEARCH; ``-T file`` APPEND;
``-X 'COMMAND'`` any command, its untagged responses printed. ``-v`` shows the exchange, which
the tests read to check which authentication curl used. (curl 7.88 has no ``AUTH=+LOGIN``: it
uses the LOGIN command only when the server offers no SASL mechanism it knows; imaplib and
IMAPClient cover LOGIN.)
"""

from __future__ import annotations

import smtplib

import pytest

from support.merpati_server import PASSWORD

from .clients import describe, run_client

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}


def deliver(merpati, rcpt: str, subject: str, body: str, extra: str = "") -> bytes:
    msg = f"From: ann@x.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n{extra}\r\n{body}".encode()
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg)
    return msg


def curl(merpati, user: str, url_path: str, *extra: str, scheme: str = "imap", password: str = PASSWORD):
    port = merpati.ports["imaps" if scheme == "imaps" else "imap"]
    args = ["--silent", "--show-error", "--noproxy", "*", "--max-time", "60",
            "-u", f"{user}:{password}", f"{scheme}://{merpati.host}:{port}/{url_path}", *extra]
    return run_client("curl", args)


def ok(proc) -> bytes:
    assert proc.returncode == 0, describe(proc)
    return proc.stdout


def sent_commands(proc) -> list[bytes]:
    """The commands curl wrote, from its -v trace (lines "> A001 ..."), tags dropped."""
    return [line[2:].split(b" ", 1)[1] for line in proc.stderr.splitlines() if line.startswith(b"> ") and b" " in line[2:]]


def test_list_fetch_by_uid_section_and_index(merpati) -> None:
    user = merpati.new_user("curl-imap")
    deliver(merpati, user, "first", "the first body\r\n")
    mime = (
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="zz"\r\n'
    )
    deliver(merpati, user, "second", "--zz\r\nContent-Type: text/plain\r\n\r\npart one\r\n"
            "--zz\r\nContent-Type: text/plain\r\n\r\npart two\r\n--zz--\r\n", extra=mime)

    listing = ok(curl(merpati, user, ""))
    lines = listing.splitlines()
    assert lines[0] == b'* LIST (\\HasNoChildren) "/" "INBOX"', listing
    for name, flag in ((b"Sent", b"\\Sent"), (b"Drafts", b"\\Drafts"), (b"Trash", b"\\Trash")):
        assert any(flag in line and name in line for line in lines), listing

    body = ok(curl(merpati, user, "INBOX;UID=1"))
    assert body.startswith(b"Return-Path: <ann@x.test>\r\n") and b"Subject: first\r\n" in body
    assert body.endswith(b"\r\n\r\nthe first body\r\n")
    assert ok(curl(merpati, user, "INBOX;UID=2;SECTION=2")) == b"part two"
    assert ok(curl(merpati, user, "INBOX;UID=2;SECTION=HEADER.FIELDS%20(SUBJECT)")) == b"Subject: second\r\n\r\n"
    assert ok(curl(merpati, user, "INBOX;MAILINDEX=2;SECTION=1")) == b"part one"
    # the UIDVALIDITY in the URL must match the mailbox's, else curl refuses (CURLE_REMOTE_FILE_NOT_FOUND)
    proc = curl(merpati, user, "INBOX;UIDVALIDITY=1;UID=1")
    assert proc.returncode != 0, describe(proc)
    # a UID that does not exist: curl gets no message data and reports an error
    proc = curl(merpati, user, "INBOX;UID=99")
    assert proc.returncode != 0 and proc.stdout == b"", describe(proc)
    # curl reads with BODY[] (no PEEK), which sets \Seen
    flags = ok(curl(merpati, user, "INBOX", "-X", "UID FETCH 1:2 FLAGS"))
    assert flags.splitlines() == [b"* 1 FETCH (UID 1 FLAGS (\\Seen))", b"* 2 FETCH (UID 2 FLAGS (\\Seen))"], flags


def test_search_examine_status_and_custom_requests(merpati) -> None:
    user = merpati.new_user("curl-custom")
    deliver(merpati, user, "first", "alpha\r\n")
    deliver(merpati, user, "second", "beta\r\n")
    deliver(merpati, user, "third", "alpha again\r\n")
    assert ok(curl(merpati, user, "INBOX?SUBJECT%20first")).strip() == b"* SEARCH 1"
    assert ok(curl(merpati, user, "INBOX?BODY%20alpha")).strip() == b"* SEARCH 1 3"
    assert ok(curl(merpati, user, "INBOX?UID%202:*")).strip() == b"* SEARCH 2 3"

    examine = ok(curl(merpati, user, "", "-X", "EXAMINE INBOX"))
    assert b"* 3 EXISTS" in examine and b"[UIDNEXT 4]" in examine and b"[UIDVALIDITY " in examine, examine
    status = ok(curl(merpati, user, "", "-X", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"))
    assert status.strip() == b'* STATUS "INBOX" (MESSAGES 3 UNSEEN 3 UIDNEXT 4)', status

    # with a mailbox in the URL curl SELECTs it first, then sends the custom command
    proc = curl(merpati, user, "INBOX", "-v", "-X", "UID STORE 2 +FLAGS (\\Flagged)")
    assert b"* 2 FETCH (" in ok(proc) and b"\\Flagged" in proc.stdout, describe(proc)
    assert b"SELECT INBOX" in sent_commands(proc), sent_commands(proc)
    flags = ok(curl(merpati, user, "INBOX", "-X", "UID FETCH 1 FLAGS"))
    assert flags.strip() == b"* 1 FETCH (UID 1 FLAGS ())", flags
    flags = ok(curl(merpati, user, "INBOX", "-X", "UID FETCH 2 FLAGS"))
    assert b"\\Flagged" in flags, flags
    assert b"* SEARCH 2" in ok(curl(merpati, user, "INBOX", "-X", "SEARCH FLAGGED"))
    ok(curl(merpati, user, "", "-X", "CREATE Reports"))
    listed = ok(curl(merpati, user, "", "-X", 'LIST "" Rep*'))
    assert listed.strip() == b'* LIST (\\HasNoChildren) "/" "Reports"', listed
    # a command the server refuses makes curl fail (it reports the NO/BAD)
    proc = curl(merpati, user, "", "-X", "DELETE NoSuchBox")
    assert proc.returncode != 0, describe(proc)


def test_append_upload(merpati, tmp_path) -> None:
    user = merpati.new_user("curl-append")
    message = b"From: me@x.test\r\nSubject: uploaded\r\n\r\nup body\r\nwith a second line\r\n"
    (tmp_path / "up.eml").write_bytes(message)
    proc = curl(merpati, user, "Drafts", "-v", "-T", str(tmp_path / "up.eml"))
    ok(proc)
    assert any(cmd.startswith(b"APPEND Drafts") for cmd in sent_commands(proc)), sent_commands(proc)
    assert ok(curl(merpati, user, "Drafts;UID=1")) == message  # APPEND keeps the bytes exactly
    # appending to a mailbox that does not exist fails (NO [TRYCREATE])
    proc = curl(merpati, user, "Nowhere", "-T", str(tmp_path / "up.eml"))
    assert proc.returncode != 0, describe(proc)
    assert merpati.export(user, "Drafts") == [message]


@pytest.mark.parametrize(
    "options, expected",
    [
        (("--login-options", "AUTH=PLAIN"), b"AUTHENTICATE PLAIN"),
        (("--login-options", "AUTH=PLAIN", "--sasl-ir"), b"AUTHENTICATE PLAIN "),
        (("--login-options", "AUTH=LOGIN"), b"AUTHENTICATE LOGIN"),
        (("--login-options", "AUTH=*"), b"AUTHENTICATE PLAIN"),
    ],
    ids=["auth-plain", "auth-plain-sasl-ir", "auth-login", "any"],
)
def test_login_options(merpati, options, expected) -> None:
    user = merpati.new_user("curl-login")
    deliver(merpati, user, "login", "logged in\r\n")
    proc = curl(merpati, user, "INBOX;UID=1", "-v", *options)
    assert ok(proc).endswith(b"logged in\r\n"), describe(proc)
    commands = sent_commands(proc)
    assert any(cmd.startswith(expected) for cmd in commands), commands


def test_starttls_and_imaps(merpati) -> None:
    user = merpati.new_user("curl-tls")
    deliver(merpati, user, "secret", "tls body\r\n")
    proc = curl(merpati, user, "INBOX;UID=1", "-v", "--ssl-reqd", "--insecure")
    assert ok(proc).endswith(b"tls body\r\n")
    commands = sent_commands(proc)
    assert commands[:1] == [b"CAPABILITY"] and b"STARTTLS" in commands, commands
    proc = curl(merpati, user, "INBOX;UID=1", "--insecure", scheme="imaps")
    assert ok(proc).endswith(b"tls body\r\n")
    listing = ok(curl(merpati, user, "", "--insecure", "--login-options", "AUTH=LOGIN", scheme="imaps"))
    assert b"INBOX" in listing
    # without --insecure curl checks the self-signed certificate and refuses it
    proc = curl(merpati, user, "INBOX;UID=1", scheme="imaps")
    assert proc.returncode != 0 and proc.stdout == b"", describe(proc)


def test_wrong_password_fails(merpati) -> None:
    user = merpati.new_user("curl-bad")
    for options in ((), ("--login-options", "AUTH=LOGIN"), ("--sasl-ir",)):
        proc = curl(merpati, user, "", *options, password="wrong")
        assert proc.returncode == 67, describe(proc)  # CURLE_LOGIN_DENIED
        assert proc.stdout == b""

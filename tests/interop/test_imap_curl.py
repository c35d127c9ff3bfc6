"""curl's IMAP client (`curl imap://` and `imaps://`) against a real `merpati serve`."""

from __future__ import annotations

import smtplib

import pytest

from support.merpati_server import PASSWORD

from .clients import describe, run_client

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}


def deliver(merpati, rcpt: str, subject: str, body: str) -> None:
    msg = f"From: ann@x.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg.encode())


def curl(merpati, user: str, url_path: str, *extra: str, scheme: str = "imap"):
    port = merpati.ports["imaps" if scheme == "imaps" else "imap"]
    args = ["--silent", "--show-error", "--noproxy", "*", "--max-time", "60",
            "-u", f"{user}:{PASSWORD}", f"{scheme}://{merpati.host}:{port}/{url_path}", *extra]
    return run_client("curl", args)


def test_curl_lists_fetches_searches_and_appends(merpati, tmp_path) -> None:
    user = merpati.new_user("curl-imap")
    deliver(merpati, user, "first", "the first body\r\n")
    deliver(merpati, user, "second", "the second body\r\n")
    proc = curl(merpati, user, "")
    assert proc.returncode == 0, describe(proc)
    assert b'"INBOX"' in proc.stdout and b"\\Sent" in proc.stdout, describe(proc)
    proc = curl(merpati, user, "INBOX;UID=2")
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.endswith(b"the second body\r\n") and b"Subject: second" in proc.stdout
    proc = curl(merpati, user, "INBOX?SUBJECT%20first")
    assert proc.returncode == 0 and proc.stdout.strip() == b"* SEARCH 1", describe(proc)
    (tmp_path / "up.eml").write_bytes(b"From: me@x.test\r\nSubject: uploaded\r\n\r\nup body\r\n")
    proc = curl(merpati, user, "Drafts", "-T", str(tmp_path / "up.eml"))
    assert proc.returncode == 0, describe(proc)
    proc = curl(merpati, user, "Drafts;UID=1")
    assert proc.stdout == b"From: me@x.test\r\nSubject: uploaded\r\n\r\nup body\r\n", describe(proc)
    proc = curl(merpati, user, "INBOX", "-X", "STATUS INBOX (MESSAGES UNSEEN)")
    assert b"MESSAGES 2" in proc.stdout, describe(proc)


def test_curl_over_starttls_and_imaps(merpati) -> None:
    user = merpati.new_user("curl-tls")
    deliver(merpati, user, "secret", "tls body\r\n")
    proc = curl(merpati, user, "INBOX;UID=1", "--ssl-reqd", "-k")
    assert proc.returncode == 0 and proc.stdout.endswith(b"tls body\r\n"), describe(proc)
    proc = curl(merpati, user, "INBOX;UID=1", "-k", scheme="imaps")
    assert proc.returncode == 0 and proc.stdout.endswith(b"tls body\r\n"), describe(proc)


def test_curl_wrong_password_fails(merpati) -> None:
    user = merpati.new_user("curl-bad")
    args = ["--silent", "--show-error", "--noproxy", "*", "--max-time", "60",
            "-u", f"{user}:wrong", f"imap://{merpati.host}:{merpati.ports['imap']}/"]
    proc = run_client("curl", args)
    assert proc.returncode != 0, describe(proc)

"""mbsync (Debian isync) synchronising a Merpati mailbox with a local Maildir both ways:
new messages, flag changes and deletions on either side; a second run changes nothing."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
from pathlib import Path

import pytest

from support.merpati_server import PASSWORD

from .clients import describe, run_client

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}


def deliver(merpati, rcpt: str, subject: str) -> None:
    msg = f"From: ann@x.test\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n"
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg.encode())


def write_config(tmp: Path, merpati, user: str) -> Path:
    maildir = tmp / "mail"
    maildir.mkdir()
    cfg = tmp / "mbsyncrc"
    cfg.write_text(
        "IMAPAccount merpati\n"
        f"Host {merpati.host}\nPort {merpati.ports['imaps']}\n"
        f"User {user}\nPass \"{PASSWORD}\"\n"
        "SSLType IMAPS\n"
        f"CertificateFile {merpati.cert}\n"  # a directly matched peer certificate is trusted
        "\n"
        "IMAPStore remote\nAccount merpati\n\n"
        f"MaildirStore local\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX Archive\n"
        "Create Both\nExpunge Both\nSync All\n"
        f"SyncState {tmp}/state/\n"
    )
    (tmp / "state").mkdir()
    return cfg


def mbsync(cfg: Path):
    proc = run_client("mbsync", ["-c", str(cfg), "-a", "-V"], package="isync")
    assert proc.returncode == 0, describe(proc)
    return proc


def local_files(tmp: Path, box: str = "INBOX") -> dict[str, str]:
    """{subject: maildir flags} of the local Maildir."""
    out = {}
    for sub in ("cur", "new"):
        d = tmp / "mail" / box / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            subject = [ln for ln in p.read_bytes().splitlines() if ln.startswith(b"Subject: ")]
            flags = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
            out[subject[0][9:].decode() if subject else p.name] = flags
    return out


def remote(merpati, user: str, box: str = "INBOX") -> dict[str, set[str]]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL(merpati.host, merpati.ports["imaps"], ssl_context=ctx, timeout=30)
    m.login(user, PASSWORD)
    m.select(box)
    typ, data = m.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = {}
    for item in data:
        if isinstance(item, tuple):
            flags = imaplib.ParseFlags(item[0])
            subject = item[1].decode().strip().removeprefix("Subject: ")
            out[subject] = {f.decode() for f in flags}
    m.logout()
    return out


def test_mbsync_both_ways(merpati, tmp_path) -> None:
    user = merpati.new_user("mbsync")
    for s in ("alpha", "beta", "gamma"):
        deliver(merpati, user, s)
    cfg = write_config(tmp_path, merpati, user)
    mbsync(cfg)
    assert set(local_files(tmp_path)) == {"alpha", "beta", "gamma"}

    # local side: a new message, a flag, a deletion
    new_dir = tmp_path / "mail" / "INBOX" / "new"
    (new_dir / "1700000000.local1.host").write_bytes(b"From: me@x.test\r\nSubject: local\r\n\r\nlocal body\r\n")
    cur = tmp_path / "mail" / "INBOX" / "cur"
    files = {p: p.read_bytes() for d in (cur, new_dir) for p in d.iterdir()}
    for p, data in files.items():
        if b"Subject: alpha" in data:
            p.rename(cur / (p.name.split(":2,")[0] + ":2,F"))
        if b"Subject: beta" in data:
            p.rename(cur / (p.name.split(":2,")[0] + ":2,T"))  # trashed: expunged on sync
    mbsync(cfg)
    server = remote(merpati, user)
    assert set(server) == {"alpha", "gamma", "local"}, server
    assert "\\Flagged" in server["alpha"]

    # server side: a new message, a flag, a deletion
    deliver(merpati, user, "delta")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    m = imaplib.IMAP4_SSL(merpati.host, merpati.ports["imaps"], ssl_context=ctx, timeout=30)
    m.login(user, PASSWORD)
    m.select("INBOX")
    typ, data = m.search(None, "SUBJECT", "gamma")
    m.store(data[0].decode(), "+FLAGS", "\\Seen")
    typ, data = m.search(None, "SUBJECT", "local")
    m.store(data[0].decode(), "+FLAGS", "\\Deleted")
    m.expunge()
    m.logout()
    mbsync(cfg)
    local = local_files(tmp_path)
    assert set(local) == {"alpha", "gamma", "delta"}, local
    assert "S" in local["gamma"] and "F" in local["alpha"]

    # a second run changes nothing on either side
    before_local, before_remote = local_files(tmp_path), remote(merpati, user)
    state = {p.name: p.read_bytes() for p in (tmp_path / "state").iterdir()}
    proc = mbsync(cfg)
    assert local_files(tmp_path) == before_local and remote(merpati, user) == before_remote
    after = {p.name: p.read_bytes() for p in (tmp_path / "state").iterdir()}
    assert {k: v.split(b"\n", 3)[-1] for k, v in after.items()} == {k: v.split(b"\n", 3)[-1] for k, v in state.items()}

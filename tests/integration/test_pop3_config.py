"""[pop3] settings through `merpati serve`: idle_timeout (POP-07) and retr_marks_seen."""

from __future__ import annotations

import shutil
import smtplib
import socket
import tempfile
import time
from pathlib import Path

from support.merpati_server import PASSWORD

MERPATI_OPTIONS = {"listeners": ("pop3",), "extra_config": "[pop3]\nidle_timeout = 2\nretr_marks_seen = true\n"}


def deliver(merpati, rcpt: str, count: int) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for i in range(count):
            smtp.sendmail("s@elsewhere.test", [rcpt], b"Subject: seen %d\r\n\r\nbody\r\n" % i)


def session(merpati, user: str):  # type: ignore[no-untyped-def]
    """Log in, waiting while a previous (dropped) session still holds the maildrop lock."""
    for _ in range(100):
        sock = socket.create_connection((merpati.host, merpati.ports["pop3"]), timeout=30)
        f = sock.makefile("rb")
        assert f.readline().startswith(b"+OK")
        sock.sendall(b"USER %s\r\nPASS %s\r\n" % (user.encode(), PASSWORD.encode()))
        assert f.readline() == b"+OK\r\n"
        answer = f.readline()
        if answer.startswith(b"+OK"):
            return sock, f
        assert answer.startswith(b"-ERR [IN-USE]"), answer
        f.close()
        sock.close()
        time.sleep(0.05)
    raise AssertionError("the maildrop lock was never released")


def flags(merpati, user: str) -> list[str]:  # type: ignore[no-untyped-def]
    out = Path(tempfile.mkdtemp(prefix="flags-", dir=merpati.root))
    shutil.rmtree(out)
    try:
        merpati.cli("export", user, str(out), "--format", "maildir")
        names = sorted((p.name for p in (out / "cur").iterdir()), key=lambda n: int(n.split(".")[1]))
        return [n.rsplit(":2,", 1)[1] for n in names]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def test_idle_session_is_closed_and_removes_nothing(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("idle")
    deliver(merpati, user, 1)
    sock, f = session(merpati, user)
    sock.sendall(b"DELE 1\r\n")
    assert f.readline() == b"+OK Message 1 deleted.\r\n"
    assert f.readline() == b"-ERR Disconnected for inactivity.\r\n"  # after idle_timeout
    assert f.readline() == b""
    assert len(merpati.export(user)) == 1


def test_retr_marks_seen_when_configured_at_quit_only(merpati) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("seen")
    deliver(merpati, user, 3)
    sock, f = session(merpati, user)
    sock.sendall(b"RETR 1\r\nTOP 2 0\r\n")
    for _ in range(2):
        assert f.readline().startswith(b"+OK")
        while f.readline() != b".\r\n":
            pass
    f.close()
    sock.close()  # dropped: no flag changes
    assert ["S" in fl for fl in flags(merpati, user)] == [False, False, False]
    sock, f = session(merpati, user)
    sock.sendall(b"RETR 1\r\nTOP 2 0\r\nRETR 3\r\nDELE 3\r\nQUIT\r\n")
    for _ in range(3):
        assert f.readline().startswith(b"+OK")
        while f.readline() != b".\r\n":
            pass
    assert f.readline().startswith(b"+OK")
    assert f.readline().startswith(b"+OK Logging out, 1 messages deleted")
    assert ["S" in fl for fl in flags(merpati, user)] == [True, False]

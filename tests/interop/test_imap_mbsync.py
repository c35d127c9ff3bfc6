"""mbsync (Debian isync, a client nobody here wrote) synchronising a Merpati account with a
local Maildir both ways, over plain IMAP and over STARTTLS with the server's own certificate.

One scenario per transport (plain, STARTTLS, implicit TLS), step by step, each step one mbsync run checked three ways:
mbsync's own counters, the Maildir on disk, and the server state read with imaplib.

1. mail delivered over SMTP is pulled into the Maildir (and every mailbox gets a folder);
2. flags set on the server (imaplib STORE) reach the Maildir file names;
3. flags set in the Maildir (file rename) reach the server;
4. a message expunged on the server disappears from the Maildir (Expunge Both);
5. messages deleted from the Maildir (file removed, or marked T) are expunged on the server;
6. messages put into the Maildir, one in a new folder, are uploaded (APPEND, CREATE);
7. a second run changes nothing, on either side.

mbsync prints its counters ("C: 1/1  B: 7/7  F: +0/0 *0/0 #0/0  N: +3/3 *0/0 #0/0") only to a
terminal, so it runs on a pseudo-terminal here. F is the far side (the server), N the near side
(the Maildir); + counts new messages, * flag updates, # messages copied to a Trash store (none
here). A deletion travels as a flag update: the \\Deleted flag (T in a Maildir name) is set on
the other side, then Expunge Both removes the message there.
"""

from __future__ import annotations

import imaplib
import os
import pty
import re
import select
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from support.merpati_server import PASSWORD
from support.tools import require_tool

from .clients import clean_env

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("imap", "imaps")}

MAILBOXES = ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash")
COUNTERS = re.compile(
    rb"C: (\d+)/(\d+)\s+B: (\d+)/(\d+)\s+F: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)\s+N: \+(\d+)/(\d+) \*(\d+)/(\d+) #(\d+)/(\d+)"
)
MAILDIR_FLAGS = {"D": "\\Draft", "F": "\\Flagged", "R": "\\Answered", "S": "\\Seen", "T": "\\Deleted"}


# ---- running mbsync ----------------------------------------------------------------------------


class Mbsync:
    def __init__(self, merpati, user: str, root: Path, *, transport: str) -> None:
        """``transport``: "plain" (SSLType None), "starttls" or "imaps" (implicit TLS); with TLS
        the server's own certificate is the only trusted one."""
        self.exe = require_tool("mbsync", "isync")
        self.root = root
        self.maildir = root / "mail"
        self.maildir.mkdir(parents=True)
        self.rc = root / "mbsyncrc"
        trust = f"CertificateFile {merpati.cert}\nSystemCertificates no\n"
        ssl_lines = {"plain": "SSLType None\n", "starttls": "SSLType STARTTLS\n" + trust,
                     "imaps": "SSLType IMAPS\n" + trust}[transport]
        port = merpati.ports["imaps" if transport == "imaps" else "imap"]
        self.rc.write_text(
            "IMAPAccount merpati\n"
            f"Host {merpati.host}\n"
            f"Port {port}\n"
            f"User {user}\n"
            f'Pass "{PASSWORD}"\n'
            f"{ssl_lines}"
            "Timeout 30\n"
            "\n"
            "IMAPStore merpati-far\n"
            "Account merpati\n"
            "\n"
            "MaildirStore local-near\n"
            f"Path {self.maildir}/\n"
            f"Inbox {self.maildir}/INBOX\n"
            "SubFolders Verbatim\n"
            "\n"
            "Channel merpati\n"
            "Far :merpati-far:\n"
            "Near :local-near:\n"
            "Patterns *\n"
            "Create Both\n"
            "Expunge Both\n"
            "Sync All\n"
            "SyncState *\n"
        )
        self.runs: list[str] = []

    def run(self, timeout: float = 120) -> dict[str, int]:
        """One `mbsync -V -a` on a pseudo-terminal; returns its final counters, fails with its
        whole output if it exits non-zero or prints no counters."""
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [self.exe, "-V", "-c", str(self.rc), "-a"], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
            env=dict(clean_env(), HOME=str(self.root)), cwd=self.root,
        )
        os.close(slave)
        chunks: list[bytes] = []
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"mbsync did not finish within {timeout}s\n{self._text(chunks)}")
                ready, _, _ = select.select([master], [], [], min(left, 1.0))
                if ready:
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the child closed the terminal
                        data = b""
                    if not data:
                        break
                    chunks.append(data)
                elif proc.poll() is not None:
                    break
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(master)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        output = self._text(chunks)
        self.runs.append(output)
        assert code == 0, f"mbsync exited {code}\n{output}"
        found = COUNTERS.findall(b"".join(chunks))
        assert found, f"no mbsync counters in its output\n{output}"
        n = [int(x) for x in found[-1]]
        counters = {
            "channels": n[1], "boxes": n[3],
            "far_new": n[5], "far_flags": n[7], "far_deleted": n[9],
            "near_new": n[11], "near_flags": n[13], "near_deleted": n[15],
        }
        assert n[0] == n[1] and n[2] == n[3], f"mbsync did not finish every box: {counters}\n{output}"
        # done counts equal totals for every kind
        assert (n[4], n[6], n[8], n[10], n[12], n[14]) == (n[5], n[7], n[9], n[11], n[13], n[15]), output
        return counters

    @staticmethod
    def _text(chunks: list[bytes]) -> str:
        return b"".join(chunks).decode("utf-8", "replace").replace("\r", "\n")

    def describe(self) -> str:
        return "\n==== mbsync run ====\n".join(self.runs[-2:])[-6000:]

    # -- the Maildir ---------------------------------------------------------------------------

    def folder(self, name: str) -> Path:
        return self.maildir / name

    def messages(self, name: str = "INBOX") -> dict[Path, bytes]:
        box = self.folder(name)
        return {p: p.read_bytes() for sub in ("new", "cur") for p in sorted((box / sub).iterdir())}

    def snapshot(self) -> dict[str, tuple]:
        """Every Maildir folder: the names of its message files (names carry the flags) and
        mbsync's sync state for it (UID pairs and flags as last synchronised)."""
        out = {}
        for cur in sorted(self.maildir.rglob("cur")):
            box = cur.parent
            names = sorted(p.name for sub in ("new", "cur") for p in (box / sub).iterdir())
            state = (box / ".mbsyncstate").read_bytes() if (box / ".mbsyncstate").exists() else None
            out[str(box.relative_to(self.maildir))] = (tuple(names), state)
        return out

    def file_with(self, needle: bytes, name: str = "INBOX") -> Path:
        [path] = [p for p, data in self.messages(name).items() if needle in data]
        return path


def maildir_flags(path: Path) -> set[str]:
    """Flags from a Maildir file name (``...:2,FRS``): IMAP names."""
    if ":2," not in path.name:
        return set()
    return {MAILDIR_FLAGS[ch] for ch in path.name.split(":2,", 1)[1] if ch in MAILDIR_FLAGS}


def lf(data: bytes) -> bytes:
    """A message as mbsync keeps it in a Maildir: LF line ends, without the X-TUID header that
    mbsync adds to every message it propagates, either way (its own tracking id)."""
    return re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data.replace(b"\r\n", b"\n"), count=1)


# ---- the server side -----------------------------------------------------------------------------


def deliver(merpati, rcpt: str, subject: str, body: str) -> None:
    msg = f"From: Ann <ann@x.test>\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\n{body}".encode()
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as s:
        s.sendmail("ann@x.test", [rcpt], msg)


def imap(merpati, user: str) -> imaplib.IMAP4:
    m = imaplib.IMAP4(merpati.host, merpati.ports["imap"], timeout=30)
    m.login(user, PASSWORD)
    return m


FETCH_LINE = re.compile(rb"\d+ \(UID (\d+) FLAGS \(([^)]*)\) BODY\[\] \{\d+\}")


def server_state(merpati, user: str) -> dict[str, dict]:
    """Every mailbox: UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and {uid: (flags, body)}."""
    m = imap(merpati, user)
    try:
        typ, listing = m.list()
        assert typ == "OK", listing
        names = [re.search(rb'"/" "?([^"]*)"?$', line).group(1).decode() for line in listing]
        state = {}
        for name in names:
            typ, data = m.status(f'"{name}"', "(MESSAGES UIDVALIDITY UIDNEXT HIGHESTMODSEQ)")
            assert typ == "OK", data
            status = dict(re.findall(rb"([A-Z]+) (\d+)", data[0].split(b"(", 1)[1]))
            messages = {}
            if int(status[b"MESSAGES"]):
                typ, _ = m.select(f'"{name}"', readonly=True)
                assert typ == "OK"
                typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
                assert typ == "OK", data
                for item in data:
                    if isinstance(item, tuple):
                        uid, flags = FETCH_LINE.search(item[0]).groups()
                        messages[int(uid)] = (frozenset(flags.decode().split()) - {"\\Recent"}, item[1])
                m.close()
            state[name] = {
                "uidvalidity": int(status[b"UIDVALIDITY"]), "uidnext": int(status[b"UIDNEXT"]),
                "highestmodseq": int(status[b"HIGHESTMODSEQ"]), "messages": messages,
            }
        return state
    finally:
        m.logout()


def uid_of(state: dict, needle: bytes, name: str = "INBOX") -> int:
    [uid] = [uid for uid, (_, body) in state[name]["messages"].items() if needle in body]
    return uid


# ---- the scenario ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["plain", "starttls", "imaps"])
def test_two_way_sync(merpati, tmp_path, transport) -> None:
    user = merpati.new_user(f"mbsync-{transport}")
    sync = Mbsync(merpati, user, tmp_path, transport=transport)
    for i in range(1, 5):
        deliver(merpati, user, f"message {i}", f"body number {i}\r\n")

    # 1. initial sync: four messages pulled, a folder per mailbox
    counters = sync.run()
    assert counters["near_new"] == 4 and counters["far_new"] == 0, (counters, sync.describe())
    assert counters["boxes"] == len(MAILBOXES)
    for name in MAILBOXES:
        assert (sync.folder(name) / "cur").is_dir(), (name, sync.describe())
    state = server_state(merpati, user)
    local = sync.messages()
    pulled, stored = sorted(lf(b) for b in local.values()), sorted(lf(b) for _, b in state["INBOX"]["messages"].values())
    assert pulled == stored, "\n\n".join(repr(x) for x in pulled + stored)
    for path in local:
        assert maildir_flags(path) == set()

    # 2. flags changed on the server reach the Maildir
    m = imap(merpati, user)
    m.select("INBOX")
    uid1 = uid_of(state, b"body number 1")
    typ, data = m.uid("STORE", str(uid1), "+FLAGS", "(\\Flagged \\Answered)")
    assert typ == "OK", data
    m.logout()
    counters = sync.run()
    assert counters["near_flags"] == 1 and counters["far_flags"] == 0, (counters, sync.describe())
    assert maildir_flags(sync.file_with(b"body number 1")) == {"\\Flagged", "\\Answered"}, sync.describe()

    # 3. flags changed in the Maildir reach the server
    path = sync.file_with(b"body number 2")
    seen = path.parent.parent / "cur" / (path.name.split(":2,")[0] + ":2,S")
    path.rename(seen)
    counters = sync.run()
    assert counters["far_flags"] == 1 and counters["near_flags"] == 0, (counters, sync.describe())
    state = server_state(merpati, user)
    flags2, _ = state["INBOX"]["messages"][uid_of(state, b"body number 2")]
    assert flags2 == {"\\Seen"}, (flags2, sync.describe())

    # 4. a message expunged on the server disappears from the Maildir
    m = imap(merpati, user)
    m.select("INBOX")
    m.uid("STORE", str(uid_of(state, b"body number 3")), "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    assert typ == "OK" and data != [None], data
    m.logout()
    counters = sync.run()
    assert counters["near_flags"] == 1 and counters["far_flags"] == 0, (counters, sync.describe())
    assert not [p for p, b in sync.messages().items() if b"body number 3" in b], sync.describe()

    # 5. messages deleted in the Maildir are expunged on the server: one file removed, one
    #    marked trashed (T), as mail clients on a Maildir do
    sync.file_with(b"body number 1").unlink()
    path = sync.file_with(b"body number 4")
    path.rename(path.parent.parent / "cur" / (path.name.split(":2,")[0] + ":2,T"))
    counters = sync.run()
    assert counters["far_flags"] == 2 and counters["near_flags"] == 0, (counters, sync.describe())
    state = server_state(merpati, user)
    bodies = [body for _, body in state["INBOX"]["messages"].values()]
    assert len(bodies) == 1 and bodies[0].endswith(b"body number 2\r\n"), (bodies, sync.describe())
    assert [lf(b) for b in sync.messages().values()] == [lf(bodies[0])], sync.describe()

    # 6. messages written into the Maildir, one in a folder the server does not have, are uploaded
    new_inbox = b"From: me@near.test\nSubject: written locally\n\nlocal body\nsecond line\n"
    (sync.folder("INBOX") / "new" / "1700000000.local1.nearhost").write_bytes(new_inbox)
    project = sync.folder("Projects")
    for sub in ("cur", "new", "tmp"):
        (project / sub).mkdir(parents=True)
    new_project = b"From: me@near.test\nSubject: project note\n\nproject body\n"
    (project / "cur" / "1700000001.local2.nearhost:2,F").write_bytes(new_project)
    counters = sync.run()
    assert counters["far_new"] == 2 and counters["near_new"] == 0, (counters, sync.describe())
    state = server_state(merpati, user)
    assert "Projects" in state, (sorted(state), sync.describe())
    inbox = {body: flags for flags, body in state["INBOX"]["messages"].values()}
    uploaded = [body for body in inbox if b"written locally" in body]
    assert len(uploaded) == 1 and lf(uploaded[0]) == new_inbox, (list(inbox), sync.describe())
    assert b"\n" not in uploaded[0].replace(b"\r\n", b"")  # CRLF on the server
    [(flags, body)] = state["Projects"]["messages"].values()
    assert lf(body) == new_project and flags == {"\\Flagged"}, (flags, body)

    # 7. a second run changes nothing on either side
    before_local, before_server = sync.snapshot(), server_state(merpati, user)
    counters = sync.run()
    assert all(counters[k] == 0 for k in counters if k.startswith(("far_", "near_"))), (counters, sync.describe())
    assert sync.snapshot() == before_local, sync.describe()
    assert server_state(merpati, user) == before_server, sync.describe()


def test_untrusted_certificate_is_refused(merpati, tmp_path) -> None:
    """STARTTLS without the server's certificate in CertificateFile (and no system CAs): mbsync
    refuses the self-signed certificate and sends no password."""
    user = merpati.new_user("mbsync-untrusted")
    sync = Mbsync(merpati, user, tmp_path, transport="starttls")
    other = tmp_path / "other-cert.pem"
    from support.merpati_server import write_self_signed

    write_self_signed(other, tmp_path / "other-key.pem", "other.test")
    sync.rc.write_text(sync.rc.read_text().replace(f"CertificateFile {merpati.cert}", f"CertificateFile {other}"))
    with pytest.raises(AssertionError, match="mbsync exited"):
        sync.run()
    assert "certificate" in sync.runs[-1].lower(), sync.runs[-1]

"""fetchmail (Debian) retrieving from `merpati serve` over POP3 with STLS into an MDA that
writes one file per message: with ``keep`` + UIDL (run twice: nothing fetched twice), and with
deletion (run twice: the second run finds nothing), and over pop3s."""

from __future__ import annotations

import smtplib
import stat
import subprocess
from pathlib import Path

import pytest

from support.merpati_server import PASSWORD

from support.tools import require_tool

from .clients import clean_env, describe

pytestmark = pytest.mark.interop
MERPATI_OPTIONS = {"listeners": ("pop3", "pop3s")}


def deliver(merpati, rcpt: str, tags: list[str]) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP(merpati.host, merpati.port, timeout=30) as smtp:
        for tag in tags:
            msg = f"From: f@elsewhere.test\r\nTo: {rcpt}\r\nSubject: fetch {tag}\r\n\r\nbody {tag}\r\n.dot\r\n"
            smtp.sendmail("f@elsewhere.test", [rcpt], msg.encode())


class Fetch:
    def __init__(self, merpati, tmp: Path, user: str, *, keep: bool, implicit_tls: bool = False) -> None:  # type: ignore[no-untyped-def]
        self.home = tmp / "fetchmail-home"
        self.out = tmp / "delivered"
        self.home.mkdir()
        self.out.mkdir()
        mda = tmp / "mda.sh"
        mda.write_text(f'#!/bin/sh\nf=$(mktemp "{self.out}/msg.XXXXXX") && cat > "$f"\n')
        mda.chmod(0o755)
        port = merpati.ports["pop3s" if implicit_tls else "pop3"]
        tls = "ssl no sslcertck" if implicit_tls else "sslproto 'TLS1.2+' no sslcertck"
        self.rc = tmp / "fetchmailrc"
        self.rc.write_text(
            f'set no syslog\nset idfile "{self.home}/fetchids"\n'
            f"poll {merpati.host} with proto POP3 service {port} uidl auth password\n"
            f'  user "{user}" there with password "{PASSWORD}"\n'
            f"  options {'keep' if keep else 'no keep'} no rewrite {tls}\n"
            f'  mda "{mda}"\n'
        )
        self.rc.chmod(stat.S_IRUSR | stat.S_IWUSR)

    def run(self) -> list[bytes]:
        """One fetchmail run; the messages the MDA wrote in this run."""
        before = set(self.out.iterdir())
        env = {"FETCHMAILHOME": str(self.home), "HOME": str(self.home)}
        proc = subprocess.run(
            [require_tool("fetchmail"), "-f", str(self.rc), "--nodetach", "-v", "--pidfile", str(self.home / "pid")],
            capture_output=True, env={**clean_env(), **env}, timeout=120,
        )
        assert proc.returncode in (0, 1), describe(proc)  # 1: no mail
        self.log = proc.stdout + proc.stderr
        return [p.read_bytes() for p in sorted(set(self.out.iterdir()) - before)]


def subjects(files: list[bytes]) -> list[str]:
    found = []
    for data in files:
        for line in data.splitlines():
            if line.startswith(b"Subject: "):
                found.append(line[9:].decode().strip())
                break
    return sorted(found)


def test_keep_with_uidl_fetches_nothing_twice(merpati, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("fetchkeep")
    deliver(merpati, user, ["a", "b"])
    fetch = Fetch(merpati, tmp_path, user, keep=True)
    first = fetch.run()
    assert b"> STLS" in fetch.log and b"UIDL" in fetch.log  # it upgraded, and tracks UIDs
    assert subjects(first) == ["fetch a", "fetch b"]
    for data, stored in zip(sorted(first, key=lambda d: d.count(b"fetch b")), merpati.export(user)):
        # fetchmail adds its own Received: field near the top; from ours on, the message is intact
        # (unstuffed, line ends as the MDA gets them)
        ours = stored.replace(b"\r\n", b"\n")
        assert ours[ours.index(b"Received: from [") :] in data.replace(b"\r\n", b"\n")
    assert fetch.run() == []  # nothing fetched twice
    deliver(merpati, user, ["c"])
    assert subjects(fetch.run()) == ["fetch c"]
    assert len(merpati.export(user)) == 3  # kept on the server


def test_deletion_then_nothing_left(merpati, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("fetchdel")
    deliver(merpati, user, ["x", "y", "z"])
    fetch = Fetch(merpati, tmp_path, user, keep=False)
    assert subjects(fetch.run()) == ["fetch x", "fetch y", "fetch z"]
    assert merpati.export(user) == []
    assert fetch.run() == []


def test_over_implicit_tls(merpati, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user = merpati.new_user("fetchssl")
    deliver(merpati, user, ["s"])
    fetch = Fetch(merpati, tmp_path, user, keep=False, implicit_tls=True)
    assert subjects(fetch.run()) == ["fetch s"]
    assert merpati.export(user) == []

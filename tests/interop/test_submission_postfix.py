"""Interop with Postfix (../shared/reference/postfix.sh): Merpati's queue delivers to a Postfix
MX found in DNS, and Postfix, relaying c.test, delivers to Merpati's MX."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from support.dns_server import DnsServer
from support.merpati_server import PASSWORD, MerpatiServer
from support.net import free_port

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
MERPATI_IP, POSTFIX_IP = "127.0.0.10", "127.0.0.11"


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory):
    subprocess.run([str(REF / "install.sh")], check=True, capture_output=True)
    zone = {
        "perflab.test": {"MX": [(10, "mx.perflab.test")]},
        "mx.perflab.test": {"A": [POSTFIX_IP]},
        "c.test": {"MX": [(10, "mx.c.test")], "TXT": [f"v=spf1 ip4:{MERPATI_IP} ip4:{POSTFIX_IP} -all"]},
        "mx.c.test": {"A": [MERPATI_IP]},
    }
    dns = DnsServer(zone, host="127.0.0.1", port=free_port("127.0.0.1")).start()
    merpati = MerpatiServer(
        tmp_path_factory.mktemp("merpati"), host=MERPATI_IP, hostname="mx.c.test", listeners=("submission",),
        dns=dns.nameserver, extra_config=f'[queue]\nbind_address = "{MERPATI_IP}"\n',
    )
    merpati.add_domain("c.test")
    merpati.add_user("alice@c.test")
    merpati.add_user("bob@c.test")
    folder = tempfile.mkdtemp(prefix="ref-postfix-")
    try:
        merpati.start()
        subprocess.run(
            [str(REF / "postfix.sh"), "start", folder, "--listen", f"{POSTFIX_IP}:25", "--domain", "perflab.test",
             "--users", "3", "--relay-domain", "c.test", "--relay-to", f"{MERPATI_IP}:{merpati.port}", "--clean"],
            check=True, capture_output=True, timeout=120,
        )
        yield merpati, folder
    finally:
        subprocess.run([str(REF / "postfix.sh"), "stop", folder], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        merpati.stop()
        dns.stop()


def postfix_count(folder: str, user: str) -> int:
    out = subprocess.run([str(REF / "postfix.sh"), "count", folder, user], capture_output=True, text=True)
    return int(out.stdout.strip() or 0)


def test_merpati_delivers_to_postfix(peers) -> None:
    merpati, folder = peers
    with smtplib.SMTP(merpati.host, merpati.ports["submission"], timeout=30) as s:
        s.login("alice@c.test", PASSWORD)
        s.sendmail("alice@c.test", ["user1@perflab.test"],
                   "From: alice@c.test\r\nTo: user1@perflab.test\r\nSubject: to-postfix\r\n\r\nhi\r\n")
    deadline = time.monotonic() + 60
    while postfix_count(folder, "user1") < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert postfix_count(folder, "user1") == 1, merpati.log_tail()
    files = list(Path(folder, "mail", "user1", "Maildir", "new").iterdir())
    data = files[0].read_bytes()
    assert b"Subject: to-postfix" in data
    assert b"[127.0.0.10]" in data  # from our bind address


def test_merpati_bounce_from_postfix_reaches_the_sender(peers) -> None:
    merpati, _ = peers
    with smtplib.SMTP(merpati.host, merpati.ports["submission"], timeout=30) as s:
        s.login("alice@c.test", PASSWORD)
        s.sendmail("alice@c.test", ["nosuchuser@perflab.test"],
                   "From: alice@c.test\r\nTo: nosuchuser@perflab.test\r\nSubject: to-nobody\r\n\r\nhi\r\n")
    deadline = time.monotonic() + 60
    found: list[bytes] = []
    while not found and time.monotonic() < deadline:
        found = [m for m in merpati.export("alice@c.test") if b"multipart/report" in m and b"to-nobody" in m]
        time.sleep(0.5)
    assert found and b"Status: 5.1.1" in found[0]


def test_postfix_relays_to_merpati(peers) -> None:
    merpati, _ = peers
    with smtplib.SMTP(POSTFIX_IP, 25, timeout=30) as s:
        s.sendmail("user2@perflab.test", ["bob@c.test"],
                   "From: user2@perflab.test\r\nTo: bob@c.test\r\nSubject: from-postfix\r\n\r\nhello\r\n")
    deadline = time.monotonic() + 60
    got: list[bytes] = []
    while not got and time.monotonic() < deadline:
        got = [m for m in merpati.export("bob@c.test") if b"Subject: from-postfix" in m]
        time.sleep(0.5)
    assert got, merpati.log_tail()
    assert b"Received: from mx.perflab.test" in got[0]

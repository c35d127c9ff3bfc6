"""ClamAV integration against a real clamd (Debian's) started privately by this module.

The official signature databases cannot be downloaded here, so the test writes its own tiny
database: one body signature (``.ndb``) for the EICAR test string. clamd gets its own config,
database, pid and log files under a temporary folder, a loopback TCP port and a Unix socket.
clamd parses mail itself, so EICAR inside a base64 MIME attachment is found.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import smtplib
import subprocess
import time
from pathlib import Path

import pytest

from merpati.delivery.checks.clamav import ClamavCheck
from support.merpati_server import MerpatiServer
from support.messages import make_message, split_trace
from support.net import free_port, worker_address

pytestmark = pytest.mark.interop

CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Merpati.Test.EICAR"
SENDER = "someone@elsewhere.test"


class Clamd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port("127.0.0.1")
        self.socket = str(root / "clamd.sock")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        db = self.root / "db"
        db.mkdir(parents=True, exist_ok=True)
        (db / "merpati-test.ndb").write_text(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
        conf = self.root / "clamd.conf"
        lines = [
            "Foreground yes", f"DatabaseDirectory {db}", f"TCPSocket {self.port}", "TCPAddr 127.0.0.1",
            f"LocalSocket {self.socket}", f"PidFile {self.root / 'clamd.pid'}", f"LogFile {self.root / 'clamd.log'}",
            f"TemporaryDirectory {self.root}", "StreamMaxLength 10M", "SelfCheck 0",
        ]
        if os.geteuid() == 0:
            lines.append("User root")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([CLAMD, "-c", str(conf)], stdout=open(self.root / "stdout.log", "wb"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clamd exited {self.proc.returncode}: {self.log_tail()}")
            if self.ping():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"clamd did not answer within {timeout}s: {self.log_tail()}")

    def ping(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")
        except OSError:
            return False

    def log_tail(self) -> str:
        out = []
        for name in ("stdout.log", "clamd.log"):
            try:
                out.append((self.root / name).read_text(errors="replace")[-2000:])
            except OSError:
                pass
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="session")
def clamd(tmp_path_factory):
    daemon = Clamd(tmp_path_factory.mktemp("clamd"))
    daemon.start()
    yield daemon
    daemon.stop()


def with_attachment(rcpt: str, payload: bytes) -> bytes:
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    body = (b"--XYZ\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n--XYZ\r\n"
            b"Content-Type: application/octet-stream; name=\"tool.com\"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"tool.com\"\r\n\r\n" + encoded + b"--XYZ--\r\n")
    return make_message(sender=SENDER, to=rcpt, subject="a tool", body=body,
                        extra_headers=b'Content-Type: multipart/mixed; boundary="XYZ"\r\n')


@pytest.fixture(scope="module")
def server(tmp_path_factory, clamd):
    s = MerpatiServer(tmp_path_factory.mktemp("mx-clamd"), host=worker_address(2),
                      extra_config=f'[checks]\n[checks.clamav]\naddress = "127.0.0.1:{clamd.port}"\ntimeout = 20\n')
    s.add_domain("merpati.test")
    s.start()
    yield s
    s.stop()


def smtp(server) -> smtplib.SMTP:
    return smtplib.SMTP(server.host, server.port, local_hostname="client.elsewhere.test", timeout=30)


def test_eicar_in_a_base64_attachment_is_rejected_naming_the_signature(server) -> None:
    rcpt = server.new_user("virus")
    msg = with_attachment(rcpt, EICAR)
    assert EICAR not in msg
    with smtp(server) as c:
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail(SENDER, [rcpt], msg)
    assert err.value.smtp_code == 554 and b"5.7.1" in err.value.smtp_error
    assert SIGNATURE.encode() in err.value.smtp_error
    assert server.export(rcpt) == [] and server.export(rcpt, mailbox="Junk") == []


def test_a_clean_attachment_is_delivered(server) -> None:
    rcpt = server.new_user("clean")
    msg = with_attachment(rcpt, b"just some harmless bytes\r\n" * 50)
    with smtp(server) as c:
        assert c.sendmail(SENDER, [rcpt], msg) == {}
    [stored] = server.export(rcpt)
    assert split_trace(stored).original == msg


def test_the_unix_socket_and_a_plain_eicar_file(clamd) -> None:
    async def go() -> None:
        check = ClamavCheck(clamd.socket, timeout=20)
        found = await check.scan(EICAR)
        assert found is not None and found.startswith(SIGNATURE)
        assert await check.scan(b"From: a@b.test\r\n\r\nnothing here\r\n") is None

    asyncio.run(go())


def test_clamd_down_tempfails(tmp_path) -> None:
    dead = f"127.0.0.1:{free_port('127.0.0.1')}"
    s = MerpatiServer(tmp_path, host=worker_address(5),
                      extra_config=f'[checks]\n[checks.clamav]\naddress = "{dead}"\ntimeout = 3\n')
    s.add_domain("merpati.test")
    s.start()
    try:
        rcpt = s.new_user("down")
        with smtp(s) as c:
            with pytest.raises(smtplib.SMTPDataError) as err:
                c.sendmail(SENDER, [rcpt], make_message(sender=SENDER, to=rcpt))
        assert err.value.smtp_code == 451 and b"4.7.1" in err.value.smtp_error
        assert s.export(rcpt) == []
    finally:
        s.stop()

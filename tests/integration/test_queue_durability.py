"""kill -9 and the queue: every submission that got its 250 survives a SIGKILL of the server
and is delivered after the restart (SECURITY-CASES STORE-01/STORE-03 for the outbound side)."""

from __future__ import annotations

import asyncio
import smtplib
import sys
import threading
import time
from pathlib import Path

from support.dns_server import DnsServer
from support.merpati_server import PASSWORD, MerpatiServer
from support.net import free_port, wait_for_banner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "queue"))

from queue_support import SinkServer  # noqa: E402

A_IP, SINK_IP = "127.0.0.4", "127.0.0.6"
COUNT = 30


class ThreadSink:
    """The loopback sink of the queue tests, on port 25 of SINK_IP, in a thread of its own."""

    def __init__(self, host: str = SINK_IP) -> None:
        self.sink = SinkServer(host, 25)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> SinkServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sink.start(), self._loop).result(10)
        return self.sink

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sink.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_acknowledged_submissions_survive_kill_9(tmp_path: Path) -> None:
    zone = {"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [SINK_IP]}}
    with DnsServer(zone, host="127.0.0.1", port=free_port("127.0.0.1")) as dns:
        server = MerpatiServer(
            tmp_path / "a", host=A_IP, hostname="mx.a.test", listeners=("submission",), dns=dns.nameserver,
            extra_config=f'[queue]\nbind_address = "{A_IP}"\nretry_schedule = ["1s"]\nconnect_timeout = 2.0\n',
        )
        server.add_domain("a.test")
        server.add_user("alice@a.test")
        server.start()
        try:
            # start() waits for the MX banner; the submission listener comes up just after it
            wait_for_banner(A_IP, server.ports["submission"], timeout=30, alive=lambda: server.running)
            with smtplib.SMTP(A_IP, server.ports["submission"], timeout=30) as s:
                s.login("alice@a.test", PASSWORD)  # loopback counts as secure in this harness
                for i in range(COUNT):
                    body = f"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: durable-{i}\r\n\r\nx\r\n"
                    s.sendmail("alice@a.test", ["bob@b.test"], body)  # raises unless 250
            server.kill()  # no sink yet: everything is still queued
            listing = server.cli("queue", "list").stdout
            assert sum(1 for line in listing.splitlines() if "<alice@a.test>" in line) == COUNT, listing
            with ThreadSink() as sink:
                server.start()
                deadline = time.monotonic() + 60
                while len(sink.received) < COUNT and time.monotonic() < deadline:
                    time.sleep(0.2)
                subjects = sorted(
                    r.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for r in sink.received
                )
            assert subjects == sorted(f"durable-{i}" for i in range(COUNT)), server.log_tail()
            assert all(r.peer == A_IP for r in sink.received)  # [queue] bind_address
            deadline = time.monotonic() + 10
            while "the queue is empty" not in server.cli("queue", "list").stdout and time.monotonic() < deadline:
                time.sleep(0.3)
            assert "the queue is empty" in server.cli("queue", "list").stdout
        finally:
            server.stop()

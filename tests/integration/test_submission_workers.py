"""Submission in every SMTP process: with ``[smtp] workers = 3`` the submission port is bound by
the main process and both workers (SO_REUSEPORT); each queues what it accepts and delivers it
through its own runner. Every message reaches the remote exactly once."""

from __future__ import annotations

import smtplib
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.dns_server import DnsServer
from support.merpati_server import PASSWORD, MerpatiServer
from support.net import free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_queue_durability import ThreadSink  # noqa: E402

A_IP, SINK_IP = "127.0.0.14", "127.0.0.16"  # not shared with other tests (xdist runs them side by side)
CONNECTIONS, PER_CONNECTION = 12, 3


def wait_for_log(server: MerpatiServer, needles: list[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log_path.read_text(errors="replace")
        if all(n in text for n in needles):
            return
        time.sleep(0.1)
    raise AssertionError(f"not in the server log: {needles}\n{server.log_tail()}")


def submit(port: int, n: int) -> None:
    with smtplib.SMTP(A_IP, port, timeout=30) as s:  # a new connection: the kernel picks the process
        s.login("alice@a.test", PASSWORD)  # loopback counts as secure in this harness
        for i in range(PER_CONNECTION):
            body = f"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: w-{n}-{i}\r\n\r\nx\r\n"
            s.sendmail("alice@a.test", ["bob@b.test"], body)  # raises unless 250


def test_submission_is_served_by_every_smtp_process_and_delivered_once(tmp_path: Path) -> None:
    zone = {"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [SINK_IP]}}
    with DnsServer(zone, host="127.0.0.1", port=free_port("127.0.0.1")) as dns, ThreadSink(SINK_IP) as sink:
        server = MerpatiServer(
            tmp_path / "a", host=A_IP, hostname="mx.a.test", listeners=("submission",), dns=dns.nameserver,
            extra_smtp={"workers": 3},
            extra_config=f'[queue]\nbind_address = "{A_IP}"\nretry_schedule = ["1s"]\nconnect_timeout = 2.0\n',
        )
        server.add_domain("a.test")
        server.add_user("alice@a.test")
        server.start()
        try:
            wait_for_log(server, ["serving (smtp worker 1)", "serving (smtp worker 2)"])
            port = server.ports["submission"]
            with ThreadPoolExecutor(CONNECTIONS) as pool:
                list(pool.map(lambda n: submit(port, n), range(CONNECTIONS)))
            total = CONNECTIONS * PER_CONNECTION
            deadline = time.monotonic() + 60
            while len(sink.received) < total and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # a duplicate would arrive now
            subjects = sorted(r.data.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for r in sink.received)
            assert subjects == sorted(f"w-{n}-{i}" for n in range(CONNECTIONS) for i in range(PER_CONNECTION)), server.log_tail()
            # The queue id ends in the accepting process's pid salt (3 hex digits) and a counter.
            ids = {r.data.split(b"ESMTPA id ", 1)[1].split(None, 1)[0].rstrip(b";").decode() for r in sink.received}
            assert all(len(i) > 8 for i in ids), ids
            assert len(ids) == total
            assert len({i[-7:-4] for i in ids}) >= 2, "every submission was served by one process"
            deadline = time.monotonic() + 10
            while "the queue is empty" not in server.cli("queue", "list").stdout and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "the queue is empty" in server.cli("queue", "list").stdout
        finally:
            server.stop()

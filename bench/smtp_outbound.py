#!/usr/bin/env python3
"""Outbound benchmark: submit → queue → remote MX, Merpati beside Postfix relaying, same run.

    .venv/bin/python bench/smtp_outbound.py                         # 2,000 x 5 KB, 1 recipient, 10 conns
    .venv/bin/python bench/smtp_outbound.py --messages 1000 --recipients 3
    .venv/bin/python bench/smtp_outbound.py --merpati-only

The remote is Postfix's ``smtp-sink`` on 127.0.0.8:25 (it accepts and discards). The same
load generator (an asyncio SMTP client in this file: --connections sessions, each reusing its
connection for its share of --messages, --recipients RCPTs per message at relay.perflab.test)
feeds both:

* **Merpati** on 127.0.0.7: submission with AUTH PLAIN (loopback counts as secure), DKIM
  signing with an RSA-2048 key of the sender's domain, the durable queue, an MX lookup of
  relay.perflab.test at a loopback DNS server, delivery to port 25 of the sink from
  127.0.0.7 (``[queue] bind_address``);
* **Postfix** on 127.0.0.9 (``../shared/reference/postfix.sh``, stock settings) relaying
  relay.perflab.test to the sink.

The clock starts just before the first submission and stops when the sink has accepted every
message: the sending server's queue is empty (Merpati: no queue item left in its SQLite file;
Postfix: ``postfix.sh queue`` reaches 0). Messages per second are printed for both, and their
ratio, with each server's CPU time over the run (user+system of its process tree, reaped
children included; on a shared, loaded machine compare these rather than wall time alone);
then DKIM signatures per second (RSA-2048 and Ed25519, ``cryptography``). ``--profile FILE``
runs Merpati's main process under cProfile (the SMTP worker processes, which serve submission
too, are not profiled).
Needs root (Postfix, port 25). Everything started here is stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference"
sys.path.insert(0, str(REPO / "tests"))

import support.merpati_server as merpati_server  # noqa: E402
from support.dns_server import DnsServer  # noqa: E402
from support.merpati_server import PASSWORD, MerpatiServer  # noqa: E402
from support.net import free_port  # noqa: E402

MERPATI_HOST, POSTFIX_HOST, SINK_HOST = "127.0.0.7", "127.0.0.9", "127.0.0.8"
RELAY_DOMAIN = "relay.perflab.test"
USER = "bench@merpati.test"


def body(size: int, n: int, sender: str) -> bytes:
    head = f"From: {sender}\r\nTo: rcpt@{RELAY_DOMAIN}\r\nSubject: bench {n}\r\nMessage-ID: <b{n}.{time.time_ns()}@bench>\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    filler = line * max(1, (size - len(head)) // len(line))
    return head.encode() + filler


async def reply(reader: asyncio.StreamReader) -> int:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def session(host: str, port: int, count: int, offset: int, recipients: int, size: int, auth: bool) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    sent = 0
    try:
        assert await reply(reader) == 220
        writer.write(b"EHLO loadgen.test\r\n")
        assert await reply(reader) == 250
        if auth:
            token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
            writer.write(f"AUTH PLAIN {token}\r\n".encode())
            assert await reply(reader) == 235
        sender = USER if auth else "bench@perflab.test"
        for n in range(offset, offset + count):
            rcpts = "".join(f"RCPT TO:<r{n % 50}x{j}@{RELAY_DOMAIN}>\r\n" for j in range(recipients))
            writer.write(f"MAIL FROM:<{sender}>\r\n{rcpts}DATA\r\n".encode())
            codes = [await reply(reader) for _ in range(2 + recipients)]
            if codes[-1] != 354:
                raise RuntimeError(f"refused: {codes}")
            writer.write(body(size, n, sender).replace(b"\r\n.", b"\r\n..") + b".\r\n")
            if await reply(reader) != 250:
                raise RuntimeError("message refused")
            sent += 1
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()
    return sent


async def load(host: str, port: int, messages: int, connections: int, recipients: int, size: int, auth: bool) -> int:
    share = [messages // connections + (1 if i < messages % connections else 0) for i in range(connections)]
    offsets = [sum(share[:i]) for i in range(connections)]
    done = await asyncio.gather(*(session(host, port, c, o, recipients, size, auth) for c, o in zip(share, offsets) if c))
    return sum(done)


def merpati_pending(db: Path) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT count(*) FROM queue_items").fetchone()[0]
    finally:
        con.close()


def wait_for_port(host: str, port: int) -> None:
    import socket

    def up() -> bool:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return True
        except OSError:
            return False

    if not wait_until(up, 30):
        raise SystemExit(f"nothing listens on {host}:{port}")


def wait_until(done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return False


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds of a process and its live descendants, with their reaped children
    (Linux /proc: utime, stime, cutime, cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15]) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                todo.extend(int(k) for k in kids)
        except (OSError, ValueError, IndexError):
            continue
    return total


def run_merpati(root: Path, dns: DnsServer, args: argparse.Namespace) -> float:
    server = MerpatiServer(
        root / "merpati", host=MERPATI_HOST, hostname="mx.merpati.test", listeners=("submission",),
        dns=dns.nameserver,
        extra_config=(
            f'[queue]\nbind_address = "{MERPATI_HOST}"\nconcurrency = {args.concurrency}\n'
            "[submission]\nmax_messages_per_hour = 0\nmax_recipients = 1000\n"
        ),
    )
    server.add_domain("merpati.test")
    server.add_user(USER)
    server.cli("dkim", "generate", "merpati.test", "--selector", "bench")
    if args.profile:  # the main process (submission, queue runner) under cProfile
        merpati_server.merpati_command = lambda: [sys.executable, "-m", "cProfile", "-o", args.profile,
                                                  "-m", "merpati.cli.main"]
    server.start()
    try:
        wait_for_port(MERPATI_HOST, server.ports["submission"])
        assert server.proc is not None
        cpu0 = tree_cpu(server.proc.pid)
        start = time.perf_counter()
        sent = asyncio.run(load(MERPATI_HOST, server.ports["submission"], args.messages, args.connections,
                                args.recipients, args.size, auth=True))
        submitted = time.perf_counter()
        if not wait_until(lambda: merpati_pending(server.db_path) == 0, args.timeout):
            raise SystemExit("merpati: the queue did not empty in time\n" + server.log_tail())
        elapsed = time.perf_counter() - start
        cpu = tree_cpu(server.proc.pid) - cpu0
        print(f"merpati: {sent} messages submitted in {submitted - start:.2f}s, all at the sink after {elapsed:.2f}s; "
              f"server CPU {cpu:.2f}s ({cpu / max(1, sent) * 1000:.2f} ms/message)")
        return sent / elapsed
    finally:
        server.stop()


def run_postfix(root: Path, args: argparse.Namespace) -> float:
    folder = root / "postfix"
    folder.mkdir()
    port = free_port(POSTFIX_HOST)
    started = subprocess.run([str(REF / "postfix.sh"), "start", str(folder), "--listen", f"{POSTFIX_HOST}:{port}",
                              "--domain", "perflab.test", "--relay-domain", RELAY_DOMAIN, "--relay-to", f"{SINK_HOST}:25",
                              "--clean"], check=True, capture_output=True, text=True)
    master = int(started.stdout.split("pid=", 1)[1].split()[0])
    try:
        def queued() -> int:
            out = subprocess.run([str(REF / "postfix.sh"), "queue", str(folder)], capture_output=True, text=True)
            return int(out.stdout.strip() or 0)

        cpu0 = tree_cpu(master)
        start = time.perf_counter()
        sent = asyncio.run(load(POSTFIX_HOST, port, args.messages, args.connections, args.recipients, args.size, auth=False))
        submitted = time.perf_counter()
        if not wait_until(lambda: queued() == 0, args.timeout):
            raise SystemExit("postfix: the queue did not empty in time")
        elapsed = time.perf_counter() - start
        cpu = tree_cpu(master) - cpu0
        print(f"postfix: {sent} messages submitted in {submitted - start:.2f}s, all at the sink after {elapsed:.2f}s; "
              f"server CPU {cpu:.2f}s ({cpu / max(1, sent) * 1000:.2f} ms/message)")
        return sent / elapsed
    finally:
        subprocess.run([str(REF / "postfix.sh"), "stop", str(folder)], capture_output=True)


def dkim_rates(size: int) -> dict[str, float]:
    from merpati.mailauth import DkimSigner, generate_key

    message = body(size, 0, USER)
    rates = {}
    for algorithm in ("rsa", "ed25519"):
        pem, _ = generate_key(algorithm)
        signer = DkimSigner("merpati.test", "bench", pem)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            signer.sign(message)
            n += 1
        rates[algorithm] = n / (time.perf_counter() - start)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20, help="Merpati [queue] concurrency")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--merpati-only", action="store_true")
    parser.add_argument("--postfix-only", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="cProfile Merpati's main process into FILE (pstats)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: port 25 and Postfix", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    root.chmod(0o755)
    pidfile = root / "sink.pid"
    subprocess.run([str(REF / "smtp-sink.sh"), "start", str(pidfile), f"{SINK_HOST}:25"], check=True, capture_output=True)
    zone = {RELAY_DOMAIN: {"MX": [(10, "sink.perflab.test")]}, "sink.perflab.test": {"A": [SINK_HOST]}}
    try:
        with DnsServer(zone, host="127.0.0.1", port=free_port("127.0.0.1")) as dns:
            print(f"{args.messages} messages x {args.recipients} recipient(s), {args.size} bytes, "
                  f"{args.connections} connections; sink: smtp-sink {SINK_HOST}:25")
            merpati = postfix = None
            if not args.postfix_only:
                merpati = run_merpati(root, dns, args)
            if not args.merpati_only:
                postfix = run_postfix(root, args)
        if merpati:
            print(f"merpati: {merpati:8.1f} msg/s")
        if postfix:
            print(f"postfix: {postfix:8.1f} msg/s")
        if merpati and postfix:
            print(f"ratio merpati/postfix: {merpati / postfix:.2f}x")
        rates = dkim_rates(args.size)
        print(f"DKIM signatures/s: rsa-2048 {rates['rsa']:.0f}, ed25519 {rates['ed25519']:.0f}")
    finally:
        subprocess.run([str(REF / "smtp-sink.sh"), "stop", str(pidfile)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

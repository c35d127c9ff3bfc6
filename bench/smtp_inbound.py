#!/usr/bin/env python3
"""Inbound SMTP benchmark: Merpati beside a reference Postfix, same load, same run.

    .venv/bin/python bench/smtp_inbound.py                      # defaults: 10 conns, 5,000 x 5 KB
    .venv/bin/python bench/smtp_inbound.py --messages 2000 --connections 10 --size 5000
    .venv/bin/python bench/smtp_inbound.py --merpati-only

Throughput: smtp-source (Postfix's load generator) sends --messages messages of --size bytes
over --connections parallel sessions, one message per connection (-d reuses connections when
--reuse is given). The clock starts just before smtp-source starts and stops when the last
message is durably in a mailbox: for Merpati the store's message count (read-only SQLite
query; a 250 is only sent after the commit, so this is reached when smtp-source ends), for
Postfix `postfix.sh count` over its Maildirs (Postfix answers 250 once the message is in its
queue and delivers to the Maildir afterwards).

Latency: a separate pass after the throughput pass, with our own asyncio raw-socket client:
--latency-messages messages over --connections concurrent sessions, one message per session
(connect, EHLO, MAIL, RCPT, DATA, the message body), then the clock runs from writing the final
".\\r\\n" to reading the reply to it (250). Reported as p50 / p99 over all messages.

Everything listens on loopback only: Merpati on 127.0.0.2, Postfix on 127.0.0.3, ports chosen
by the kernel. Postfix needs root (its daemons switch users); the reference scripts live in
../shared/reference relative to the repository. Everything started here is stopped on exit,
Ctrl-C included. A side that does not reach the expected count within --timeout is reported
as a failure (exit status 1); nothing waits forever.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference"
sys.path.insert(0, str(REPO / "tests"))

from support.merpati_server import MerpatiServer  # noqa: E402
from support.net import free_port  # noqa: E402

MERPATI_HOST = "127.0.0.2"
POSTFIX_HOST = "127.0.0.3"
SENDER = "bench@loadgen.test"
MERPATI_DOMAIN = "merpati.test"
POSTFIX_DOMAIN = "perflab.test"


@dataclass
class Result:
    name: str
    expected: int
    delivered: int = 0
    seconds: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    latency_errors: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.delivered >= self.expected

    @property
    def rate(self) -> float | None:
        return self.expected / self.seconds if self.seconds else None

    def pct(self, p: float) -> float | None:
        if not self.latencies_ms:
            return None
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def find_smtp_source() -> str:
    for candidate in (shutil.which("smtp-source"), "/usr/sbin/smtp-source"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("smtp-source not found (Debian package postfix): run `make test-deps` as root")


# ---- the load ----------------------------------------------------------------------------------


def run_smtp_source(args, host: str, port: int, rcpt: str, count_fn, result: Result) -> None:
    cmd = [
        find_smtp_source(), "-s", str(args.connections), "-m", str(args.messages), "-l", str(args.size),
        "-f", SENDER, "-t", rcpt, "-M", "loadgen.test",
        *(["-d"] if args.reuse else []),
        f"{host}:{port}",
    ]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_no_proxy_env())
    try:
        out, _ = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        result.error = f"smtp-source did not finish within {args.timeout}s"
        result.delivered = count_fn()
        return
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        result.error = f"smtp-source exited {proc.returncode}: {out.decode(errors='replace')[-800:]}"
    deadline = start + args.timeout
    while True:
        n = count_fn()
        if n >= args.messages:
            result.seconds = time.monotonic() - start
            result.delivered = n
            return
        if time.monotonic() > deadline:
            result.delivered = n
            result.error = (result.error or "") + f" only {n} of {args.messages} delivered after {args.timeout}s"
            return
        time.sleep(0.02)


async def one_latency_session(host: str, port: int, rcpt: str, body: bytes, timeout: float) -> float:
    async def reply(reader) -> bytes:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                return line

    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        async def step(cmd: bytes | None, want: bytes) -> None:
            if cmd is not None:
                writer.write(cmd)
            line = await asyncio.wait_for(reply(reader), timeout)
            if not line.startswith(want):
                raise RuntimeError(f"{cmd!r} -> {line!r}")

        await step(None, b"220")
        await step(b"EHLO latency.test\r\n", b"250")
        await step(f"MAIL FROM:<{SENDER}>\r\n".encode(), b"250")
        await step(f"RCPT TO:<{rcpt}>\r\n".encode(), b"250")
        await step(b"DATA\r\n", b"354")
        writer.write(body)
        await writer.drain()
        t0 = time.perf_counter()
        writer.write(b".\r\n")
        await step(None, b"250")
        elapsed = (time.perf_counter() - t0) * 1000
        writer.write(b"QUIT\r\n")
        await writer.drain()
        return elapsed
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def latency_pass(host: str, port: int, rcpt: str, n: int, concurrency: int, size: int, timeout: float, result: Result) -> None:
    line = b"X" * 78 + b"\r\n"
    head = f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: latency\r\n\r\n".encode()
    body = head + line * max(1, size // len(line))
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            try:
                result.latencies_ms.append(await one_latency_session(host, port, rcpt, body, timeout))
            except (OSError, RuntimeError, ConnectionError, asyncio.TimeoutError):
                result.latency_errors += 1

    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout * 4 + n)


# ---- the servers -------------------------------------------------------------------------------


def bench_merpati(args, root: Path) -> Result:
    result = Result("merpati", args.messages)
    server = MerpatiServer(
        root / "merpati", host=MERPATI_HOST, hostname="mx.merpati.test",
        extra_smtp={"max_connections_per_ip": max(50, args.connections * 2),
                    **({"workers": args.workers} if args.workers else {})},
        extra_config="" if args.checks else "[checks]\nenabled = false\n",
    )
    try:
        server.add_domain(MERPATI_DOMAIN)
        rcpt = server.add_user(f"user1@{MERPATI_DOMAIN}")
        server.start()
        print(f"merpati: listening on {server.host}:{server.port} (data {server.data_dir}, log {server.log_path})", flush=True)
        run_smtp_source(args, server.host, server.port, rcpt, server.message_count, result)
        if args.latency_messages:
            asyncio.run(latency_pass(server.host, server.port, rcpt, args.latency_messages, args.connections, args.size, 60, result))
    except Exception as exc:  # report, then stop the server below
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        code = server.stop()
        if code not in (0, None):
            print(f"merpati: exited {code} on SIGTERM; log tail:\n{server.log_tail(20)}", file=sys.stderr)
    return result


def postfix_sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REF / "postfix.sh"), *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"postfix.sh {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
    return proc


def bench_postfix(args, root: Path) -> Result:
    result = Result("postfix", args.messages)
    if os.geteuid() != 0:
        result.error = "the reference Postfix needs root (or use --merpati-only)"
        return result
    if not (REF / "postfix.sh").exists():
        result.error = f"{REF}/postfix.sh not found (shared/ must sit beside the checkout)"
        return result
    pdir = root / "postfix"
    port = free_port(POSTFIX_HOST)
    started = False
    try:
        out = postfix_sh("start", str(pdir), "--listen", f"{POSTFIX_HOST}:{port}", "--domain", POSTFIX_DOMAIN,
                         "--users", "10", "--clean")
        started = True
        print(out.stdout.strip(), flush=True)

        def count() -> int:
            return int(postfix_sh("count", str(pdir)).stdout.strip() or 0)

        run_smtp_source(args, POSTFIX_HOST, port, f"user1@{POSTFIX_DOMAIN}", count, result)
        if args.latency_messages:
            asyncio.run(latency_pass(POSTFIX_HOST, port, f"user2@{POSTFIX_DOMAIN}", args.latency_messages,
                                     args.connections, args.size, 60, result))
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if started or (pdir / "queue").exists():
            stop = postfix_sh("stop", str(pdir), check=False)
            if stop.returncode != 0:
                print(f"postfix: stop failed: {stop.stderr}", file=sys.stderr)
    return result


# ---- report ------------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def report(args, results: list[Result]) -> None:
    print()
    print(f"SMTP inbound: {args.messages} messages x {args.size} B, {args.connections} connections, "
          f"{'connections reused (-d)' if args.reuse else 'one message per connection'}; "
          f"latency pass: {args.latency_messages} messages, {args.connections} concurrent sessions")
    print(f"{'server':<9} {'delivered':>12} {'seconds':>8} {'msgs/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lat.err':>7}  status")
    for r in results:
        status = "ok" if r.ok else f"FAILED: {r.error or 'short count'}"
        print(f"{r.name:<9} {f'{r.delivered}/{r.expected}':>12} {fmt(r.seconds, '.2f'):>8} {fmt(r.rate):>9} "
              f"{fmt(r.pct(50), '.2f'):>8} {fmt(r.pct(99), '.2f'):>8} {r.latency_errors:>7}  {status}")
    by = {r.name: r for r in results}
    if "merpati" in by and "postfix" in by:
        m, p = by["merpati"], by["postfix"]
        print(f"ratio merpati/postfix: throughput {ratio(m.rate, p.rate)} (higher is better), "
              f"p50 latency {ratio(m.pct(50), p.pct(50))}, p99 latency {ratio(m.pct(99), p.pct(99))} (lower is better)")


def _no_proxy_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=5000, help="messages to send (default 5000)")
    ap.add_argument("--connections", type=int, default=10, help="parallel SMTP sessions (default 10)")
    ap.add_argument("--size", type=int, default=5000, help="payload bytes per message (default 5000)")
    ap.add_argument("--reuse", action="store_true", help="several messages per connection (smtp-source -d)")
    ap.add_argument("--latency-messages", type=int, default=500, help="messages in the latency pass (0: skip it)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a side counts as failed (default 600)")
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--merpati-only", action="store_true")
    side.add_argument("--postfix-only", action="store_true")
    ap.add_argument("--workers", type=int, default=0, help="Merpati's [smtp] workers (default: its own default, one per core)")
    ap.add_argument("--no-checks", dest="checks", action="store_false", help="Merpati with [checks] enabled = false (default: the shipped checks)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores)")
    args = ap.parse_args(argv)

    # SIGTERM behaves like Ctrl-C, so the finally blocks stop what was started. SIGINT is set
    # explicitly: a shell starts background jobs with SIGINT ignored.
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-bench-"))
    root.chmod(0o755)  # the Postfix daemons (other users) must reach the instance folder
    results: list[Result] = []
    try:
        if not args.merpati_only:
            results.append(bench_postfix(args, root))
        if not args.postfix_only:
            results.append(bench_merpati(args, root))
    except KeyboardInterrupt:
        print("\ninterrupted; everything started has been stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(args, results)
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""POP3 retrieval benchmark: Merpati beside a reference Dovecot, same corpus, same load, same run.

    .venv/bin/python bench/pop3_load.py                          # 10 clients, 50 users x 100 messages, 20 s each
    .venv/bin/python bench/pop3_load.py --clients 10 --users 50 --duration 30 --tuned
    .venv/bin/python bench/pop3_load.py --merpati-only           # no root needed

Load: --clients concurrent clients (our own asyncio raw-socket client on uvloop when installed,
in --client-procs processes); each runs sessions back to back: connect, USER/PASS, STAT, LIST, RETR of every
message (one command at a time, waiting for each answer, as poplib does), QUIT. Client k
serves users k, k+N, k+2N, ... in turn, so no two sessions ever share a maildrop (Merpati
answers [IN-USE] to a second session, as RFC 1939 wants). Nothing is deleted, so every
session retrieves all --messages messages.

Corpus: ../shared/reference/gen_mbox.py --maildir-root (user k gets seed 1000+k), the exact
files `dovecot.sh --maildir-fill` writes for Dovecot; Merpati's users user1..N@merpati.test
get the same Maildirs through the admin import (byte for byte: LF line endings, which both
servers turn into CRLF on the fly). Password "pass" everywhere.

Each server first gets one untimed warm-up session per user (Dovecot builds its indexes,
Merpati fills its auth cache and its size cache), then the timed pass runs for --duration
seconds; msgs/s = messages retrieved in the timed pass / its wall time. The ratio
merpati/dovecot is what counts (see ../shared/reference/README.md on run-to-run spread).

Everything listens on loopback only: Merpati on 127.0.0.2, Dovecot on 127.0.0.3, kernel-chosen
ports. Dovecot needs root. Everything started here is stopped on exit, Ctrl-C included.
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference"
sys.path.insert(0, str(REPO / "tests"))

from support.merpati_server import MerpatiServer  # noqa: E402
from support.net import free_port  # noqa: E402

MERPATI_HOST = "127.0.0.2"
DOVECOT_HOST = "127.0.0.3"
DOMAIN = "merpati.test"
PASSWORD = "pass"
TERMINATOR = b"\r\n.\r\n"


@dataclass
class Result:
    name: str
    messages: int = 0
    sessions: int = 0
    octets: int = 0
    seconds: float | None = None
    errors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def rate(self) -> float | None:
        return self.messages / self.seconds if self.seconds else None


# ---- the load generator ---------------------------------------------------------------------


async def one_session(host: str, port: int, user: str, counts: list[int]) -> None:
    """USER/PASS, STAT, LIST, RETR 1..n, QUIT; adds (messages, octets) to ``counts``."""
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
    try:
        async def line(cmd: bytes) -> bytes:
            writer.write(cmd + b"\r\n")
            answer = await reader.readline()
            if not answer.startswith(b"+OK"):
                raise RuntimeError(f"{cmd.split()[0].decode()}: {answer!r}")
            return answer

        if not (await reader.readline()).startswith(b"+OK"):
            raise RuntimeError("no greeting")
        await line(b"USER " + user.encode())
        await line(b"PASS " + PASSWORD.encode())
        count = int((await line(b"STAT")).split()[1])
        writer.write(b"LIST\r\n")
        listing = await reader.readuntil(TERMINATOR)
        if not listing.startswith(b"+OK"):
            raise RuntimeError(f"LIST: {listing[:80]!r}")
        for i in range(1, count + 1):
            writer.write(b"RETR %d\r\n" % i)
            data = await reader.readuntil(TERMINATOR)
            if not data.startswith(b"+OK"):
                raise RuntimeError(f"RETR {i}: {data[:80]!r}")
            counts[0] += 1
            counts[1] += len(data)
        await line(b"QUIT")
    finally:
        writer.close()


async def client_loop(host: str, port: int, users: list[str], deadline: float | None, counts: list[int], errors: list[str]) -> None:
    """Sessions for ``users`` in turn: once each (deadline None) or until the deadline."""
    i = 0
    while True:
        if deadline is None and i >= len(users):
            return
        if deadline is not None and time.monotonic() >= deadline:
            return
        try:
            await one_session(host, port, users[i % len(users)], counts)
            counts[2] += 1
        except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
            errors.append(f"{users[i % len(users)]}: {type(exc).__name__}: {exc}")
            if len(errors) > 50:
                raise
            await asyncio.sleep(0.05)
        i += 1


def run_clients(host: str, port: int, groups: list[list[str]], duration: float | None) -> tuple[int, int, int, float, list[str]]:
    """Run one asyncio client per group of users; (messages, octets, sessions, seconds, errors)."""

    async def main() -> tuple[int, int, int, float, list[str]]:
        counts = [0, 0, 0]
        errors: list[str] = []
        start = time.monotonic()
        deadline = start + duration if duration is not None else None
        await asyncio.gather(*(client_loop(host, port, g, deadline, counts, errors) for g in groups))
        return counts[0], counts[1], counts[2], time.monotonic() - start, errors

    try:  # the lighter client loop leaves more of the shared CPU to the servers (both alike)
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    return asyncio.run(main())


def load(host: str, port: int, names: list[str], args: argparse.Namespace, duration: float | None, result: Result) -> None:
    groups = [names[k :: args.clients] for k in range(args.clients)]
    procs = max(1, min(args.client_procs, args.clients))
    shares = [groups[p::procs] for p in range(procs)]
    if procs == 1:
        outcomes = [run_clients(host, port, shares[0], duration)]
    else:
        with ProcessPoolExecutor(procs) as pool:
            outcomes = list(pool.map(run_clients, [host] * procs, [port] * procs, shares, [duration] * procs))
    result.messages = sum(o[0] for o in outcomes)
    result.octets = sum(o[1] for o in outcomes)
    result.sessions = sum(o[2] for o in outcomes)
    result.seconds = max(o[3] for o in outcomes)
    result.errors = [e for o in outcomes for e in o[4]]


def measure(name: str, host: str, port: int, names: list[str], args: argparse.Namespace) -> Result:
    warm = Result(name)
    load(host, port, names, args, None, warm)  # one untimed session per user
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.errors[:3]}")
    print(f"{name}: warm-up {warm.sessions} sessions, {warm.messages} messages in {warm.seconds:.1f} s", flush=True)
    result = Result(name)
    load(host, port, names, args, args.duration, result)
    return result


# ---- the servers ------------------------------------------------------------------------------


def gen_corpus(args: argparse.Namespace, root: Path) -> Path:
    out = root / "corpus"
    subprocess.run(
        [sys.executable, str(REF / "gen_mbox.py"), "--maildir-root", str(out), "--users", str(args.users),
         "--count", str(args.messages), "--seed-base", "1000"],
        check=True, capture_output=True, timeout=600,
    )
    return out


async def fill_merpati(server: MerpatiServer, corpus: Path, users: int) -> None:
    from merpati.admin.service import AdminService
    from merpati.storage import open_store

    store = await open_store(f"sqlite:///{server.db_path}")
    try:
        admin = AdminService(store)
        await admin.add_domain(DOMAIN)
        for k in range(1, users + 1):
            address = f"user{k}@{DOMAIN}"
            await admin.add_user(address, PASSWORD)
            await admin.import_mail(address, corpus / f"user{k}" / "Maildir")
    finally:
        await store.close()


def bench_merpati(args: argparse.Namespace, root: Path) -> Result:
    result = Result("merpati")
    server = MerpatiServer(
        root / "merpati", host=MERPATI_HOST, listeners=("pop3",),
        extra_config=f"[pop3]\nmax_connections_per_ip = {max(100, args.clients * 4)}\n",
    )
    try:
        corpus = gen_corpus(args, root)
        asyncio.run(fill_merpati(server, corpus, args.users))
        server.start()
        port = server.ports["pop3"]
        print(f"merpati: pop3 on {server.host}:{port} (data {server.data_dir}, log {server.log_path})", flush=True)
        names = [f"user{k}@{DOMAIN}" for k in range(1, args.users + 1)]
        result = measure("merpati", server.host, port, names, args)
    except Exception as exc:  # report, then stop the server below
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        code = server.stop()
        if code not in (0, None):
            print(f"merpati: exited {code} on SIGTERM; log tail:\n{server.log_tail(20)}", file=sys.stderr)
    return result


def dovecot_sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REF / "dovecot.sh"), *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise RuntimeError(f"dovecot.sh {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
    return proc


def bench_dovecot(args: argparse.Namespace, root: Path) -> Result:
    result = Result("dovecot")
    if os.geteuid() != 0:
        result.error = "the reference Dovecot needs root (or use --merpati-only)"
        return result
    ddir = root / "dovecot"
    started = False
    try:
        pop3_port, imap_port = free_port(DOVECOT_HOST), free_port(DOVECOT_HOST)
        extra = ["--tuned"] if args.tuned else []
        out = dovecot_sh("start", str(ddir), "--listen", DOVECOT_HOST, "--imap-port", str(imap_port),
                         "--pop3-port", str(pop3_port), "--users", str(args.users),
                         "--maildir-fill", str(args.messages), "--clean", *extra)
        started = True
        print(out.stdout.strip().splitlines()[0], flush=True)
        names = [f"user{k}" for k in range(1, args.users + 1)]
        result = measure("dovecot", DOVECOT_HOST, pop3_port, names, args)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if started or (ddir / "etc").exists():
            stop = dovecot_sh("stop", str(ddir), check=False)
            if stop.returncode != 0:
                print(f"dovecot: stop failed: {stop.stderr}", file=sys.stderr)
    return result


# ---- report ----------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: list[Result]) -> None:
    print()
    print(f"POP3 retrieval: {args.clients} clients ({args.client_procs} client process(es)), {args.users} users x "
          f"{args.messages} messages, sessions of USER/PASS, STAT, LIST, RETR all, QUIT; {args.duration:.0f} s timed"
          f"{'; Dovecot --tuned' if args.tuned else '; Dovecot default mode'}")
    print(f"{'server':<9} {'sessions':>9} {'messages':>9} {'MiB':>8} {'seconds':>8} {'msgs/s':>9} {'errors':>7}  status")
    for r in results:
        status = "ok" if r.error is None and not r.errors else f"FAILED: {r.error or r.errors[:2]}"
        rate = "-" if r.rate is None else f"{r.rate:.0f}"
        secs = "-" if r.seconds is None else f"{r.seconds:.1f}"
        print(f"{r.name:<9} {r.sessions:>9} {r.messages:>9} {r.octets / 2**20:>8.1f} {secs:>8} {rate:>9} {len(r.errors):>7}  {status}")
    by = {r.name: r for r in results}
    if "merpati" in by and "dovecot" in by and by["merpati"].rate and by["dovecot"].rate:
        print(f"ratio merpati/dovecot: {by['merpati'].rate / by['dovecot'].rate:.2f}x messages retrieved per second "
              "(higher is better; target >= 1.0x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=10, help="concurrent POP3 clients (default 10)")
    ap.add_argument("--client-procs", type=int, default=1, help="processes the clients run in (default 1)")
    ap.add_argument("--users", type=int, default=50, help="users (each with --messages messages; default 50)")
    ap.add_argument("--messages", type=int, default=100, help="messages per user (default 100)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the timed pass per server (default 20)")
    ap.add_argument("--tuned", action="store_true", help="Dovecot's high-performance mode (dovecot.sh --tuned)")
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--merpati-only", action="store_true")
    side.add_argument("--dovecot-only", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores)")
    args = ap.parse_args(argv)
    if args.users < args.clients:
        ap.error("--users must be at least --clients (no two sessions share a maildrop)")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-pop3-bench-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes must reach the instance folder
    results: list[Result] = []
    try:
        if not args.merpati_only:
            results.append(bench_dovecot(args, root))
        if not args.dovecot_only:
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
    return 0 if results and all(r.error is None and not r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""IMAP load benchmark: Merpati beside a reference Dovecot, the same workload in the same run.

    .venv/bin/python bench/imap_load.py                        # 10 clients, 100 users, 30 s each
    .venv/bin/python bench/imap_load.py --clients 20 --users 50 --seconds 60 --fill 50
    .venv/bin/python bench/imap_load.py --no-logout            # long sessions: commands, not logins
    .venv/bin/python bench/imap_load.py --merpati-only         # no root needed
    .venv/bin/python bench/imap_load.py --idle 5000            # = bench/imap_idle.py --connections 5000

The load generator is our own small asyncio IMAP client on raw sockets (one command in flight
per connection, no pipelining, synchronising literals). --clients connections run at once; each
loops over sessions shaped like imaptest's default mix:

    LOGIN (a random user of --users)  SELECT INBOX
    LIST "" "*"                                        50%
    STATUS INBOX (MESSAGES UNSEEN UIDNEXT)             50%
    FETCH 1:* (UID FLAGS)                              fetch-flags
    FETCH a:b (UID RFC822.SIZE INTERNALDATE ENVELOPE)  fetch-envelope, up to 10 messages
    FETCH n BODY.PEEK[]                                fetch-body, one random message
    STORE a:b +FLAGS/-FLAGS (\\Seen or \\Flagged)        50%, up to 5 messages
    SEARCH (UNSEEN | FLAGGED | FROM "x" | SUBJECT "x" | LARGER n)  50%
    STORE n +FLAGS.SILENT (\\Deleted)                   delete, while INBOX holds > --target messages
    EXPUNGE
    APPEND INBOX {n}  (a message of the 1,000-message corpus below)
    (--rounds rounds of the above), LOGOUT, and a new connection for the next session
    (--no-logout: one session per client)

Every completed command counts as one operation (LOGIN, SELECT and LOGOUT included); the
figures are operations per second over --seconds, per command and overall, plus latency p50
and p99 per command, and the CPU time the server's processes used in the window (from /proc:
the process and its descendants, reaped children included) per operation, a figure that
other load on the machine disturbs less than the rates. Before the clock starts every user logs in once (both servers then run
warm: Merpati's authentication cache and Dovecot's processes).

Mail: the INBOXes start with --fill messages of ../shared/reference/gen_mbox.py's per-user
corpus (user k: seed 1000+k, as `dovecot.sh start --maildir-fill`); Merpati gets the very same
bytes (LF line ends made CRLF, as Dovecot serves them) by MULTIAPPEND before the clock starts.
APPENDs take messages of `gen_mbox.py corpus.mbox --count 1000 --seed 42`.

Servers: Dovecot (`dovecot.sh start DIR --listen 127.0.0.3 --tuned`, needs root) first, then
Merpati (`merpati serve` with its own data folder on 127.0.0.2, SQLite, one process for IMAP).
Ports are chosen by the kernel; everything stays on loopback. Everything started here is
stopped on exit, Ctrl-C and SIGTERM included. No assertion on any figure: it prints them and
the ratio Merpati/Dovecot (target: at least 0.5x overall).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REF = REPO.parent / "shared" / "reference"
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))

from support.merpati_server import MerpatiServer  # noqa: E402
from support.net import free_port  # noqa: E402

MERPATI_HOST = "127.0.0.2"
DOVECOT_HOST = "127.0.0.3"
MERPATI_DOMAIN = "merpati.test"
PASSWORD = "pass-for-the-bench"
DOVECOT_PASSWORD = "pass"
COMMANDS = ("LOGIN", "SELECT", "LIST", "STATUS", "FETCH-FLAGS", "FETCH-ENVELOPE", "FETCH-BODY", "STORE",
            "SEARCH", "DELETE", "EXPUNGE", "APPEND", "LOGOUT")


# ---- a tiny IMAP client -------------------------------------------------------------------------


class ImapNo(Exception):
    """A NO or BAD to a command."""


_LITERAL_END = re.compile(rb"\{(\d+)\+?\}\r\n$")
_EXISTS = re.compile(rb"^\* (\d+) EXISTS\r\n")
_EXPUNGE = re.compile(rb"^\* (\d+) EXPUNGE\r\n")


class Client:
    """One connection; ``command`` sends a line (and a synchronising literal) and reads to the
    tagged reply. It follows EXISTS and EXPUNGE so ``exists`` is the INBOX size it may use."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader, self.writer, self.timeout = reader, writer, timeout
        self.n = 0
        self.exists = 0

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float) -> "Client":
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        c = cls(reader, writer, timeout)
        greeting = await asyncio.wait_for(reader.readline(), timeout)
        if not greeting.startswith(b"* OK"):
            c.close()
            raise ConnectionError(f"greeting {greeting[:80]!r}")
        return c

    async def _line(self) -> bytes:
        """One response line with any literals inside it (their bytes kept, not parsed)."""
        line = await self.reader.readline()
        if not line.endswith(b"\n"):
            raise ConnectionError("connection closed")
        while (m := _LITERAL_END.search(line)) is not None:
            line += await self.reader.readexactly(int(m.group(1)))
            more = await self.reader.readline()
            if not more.endswith(b"\n"):
                raise ConnectionError("connection closed in a literal")
            line += more
        return line

    async def command(self, text: bytes, literal: bytes | None = None) -> list[bytes]:
        return await asyncio.wait_for(self._command(text, literal), self.timeout)

    async def _command(self, text: bytes, literal: bytes | None) -> list[bytes]:
        self.n += 1
        tag = b"a%d" % self.n
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            line = await self._line()
            if not line.startswith(b"+"):
                raise ImapNo(line[:200])
            self.writer.write(literal + b"\r\n")
        untagged: list[bytes] = []
        while True:
            line = await self._line()
            if line.startswith(b"* "):
                if (m := _EXISTS.match(line)) is not None:
                    self.exists = int(m.group(1))
                elif _EXPUNGE.match(line) is not None:
                    self.exists -= 1
                untagged.append(line)
            elif line.startswith(tag + b" "):
                if line[len(tag) + 1:len(tag) + 3] != b"OK":
                    raise ImapNo(line[:200])
                return untagged
            # continuation requests and other tags: ignored

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


# ---- the workload -------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    host: str
    port: int
    users: list[str]
    password: str


@dataclass
class Stats:
    ops: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lat: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    sessions: int = 0
    seconds: float = 0.0
    cpu_s: float | None = None  # CPU time of the server's processes during the measured window
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    def rate(self, name: str | None = None) -> float:
        n = self.total if name is None else self.ops.get(name, 0)
        return n / self.seconds if self.seconds else 0.0

    def pct(self, name: str, p: float) -> float | None:
        xs = sorted(self.lat.get(name, ()))
        if not xs:
            return None
        return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]

    def note_error(self, name: str, exc: BaseException) -> None:
        self.errors[name] += 1
        if len(self.first_errors) < 8:
            self.first_errors.append(f"{name}: {type(exc).__name__}: {exc}"[:240])


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) used so far by process ``root`` and its descendants, the
    children they have already reaped included (cutime/cstime), from /proc."""
    parent: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ... (field 3 onwards)
        pid = int(entry.name)
        parent[pid] = int(fields[1])
        times[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total = 0
    for pid in times:
        p, hops = pid, 0
        while p not in (0, 1, root) and hops < 64:
            p, hops = parent.get(p, 0), hops + 1
        if p == root:
            total += times[pid]
    return total / os.sysconf("SC_CLK_TCK")


class Workload:
    def __init__(self, args, target: Target, corpus: list[bytes], stats: Stats, server_pid: int | None = None) -> None:
        self.args, self.t, self.corpus, self.stats = args, target, corpus, stats
        self.server_pid = server_pid
        self.deadline = 0.0

    def counting(self) -> bool:
        return time.monotonic() < self.deadline

    async def op(self, c: Client, name: str, text: bytes, literal: bytes | None = None) -> list[bytes] | None:
        """Run one command and count it if it completed inside the measured window."""
        t0 = time.perf_counter()
        try:
            out = await c.command(text, literal)
        except ImapNo as exc:
            if self.counting():
                self.stats.note_error(name, exc)
            return None
        if self.counting():
            self.stats.ops[name] += 1
            self.stats.lat[name].append((time.perf_counter() - t0) * 1000)
        return out

    async def session(self, rng: random.Random, *, long: bool) -> None:
        a = self.args
        c = await Client.connect(self.t.host, self.t.port, a.timeout)
        try:
            user = rng.choice(self.t.users)
            if await self.op(c, "LOGIN", b'LOGIN "%s" "%s"' % (user.encode(), self.t.password.encode())) is None:
                return
            if await self.op(c, "SELECT", b"SELECT INBOX") is None:
                return
            rounds = 0
            while True:
                await self.round(c, rng)
                rounds += 1
                if (not long and rounds >= self.args.rounds) or not self.counting():
                    break
            if self.counting():
                await self.op(c, "LOGOUT", b"LOGOUT")
            self.stats.sessions += 1
        finally:
            c.close()

    async def round(self, c: Client, rng: random.Random) -> None:
        a = self.args
        if rng.random() < 0.5:
            await self.op(c, "LIST", b'LIST "" "*"')
        if rng.random() < 0.5:
            await self.op(c, "STATUS", b"STATUS INBOX (MESSAGES UNSEEN UIDNEXT)")
        if c.exists:
            await self.op(c, "FETCH-FLAGS", b"FETCH 1:* (UID FLAGS)")
        if c.exists:
            lo = rng.randint(1, c.exists)
            hi = min(c.exists, lo + rng.randint(0, 9))
            await self.op(c, "FETCH-ENVELOPE", b"FETCH %d:%d (UID RFC822.SIZE INTERNALDATE ENVELOPE)" % (lo, hi))
        if c.exists:
            await self.op(c, "FETCH-BODY", b"FETCH %d BODY.PEEK[]" % rng.randint(1, c.exists))
        if c.exists and rng.random() < 0.5:
            lo = rng.randint(1, c.exists)
            hi = min(c.exists, lo + rng.randint(0, 4))
            flag = rng.choice((b"\\Seen", b"\\Flagged", b"$Label1"))
            sign = b"+" if rng.random() < 0.7 else b"-"
            await self.op(c, "STORE", b"STORE %d:%d %sFLAGS (%s)" % (lo, hi, sign, flag))
        if rng.random() < 0.5:
            keys = (b"UNSEEN", b"FLAGGED", b"LARGER 20000") if a.no_text_search else \
                (b"UNSEEN", b"FLAGGED", b'FROM "smith"', b'SUBJECT "report"', b"LARGER 20000")
            key = rng.choice(keys)
            await self.op(c, "SEARCH", b"SEARCH " + key)
        if c.exists > a.target:
            await self.op(c, "DELETE", b"STORE %d +FLAGS.SILENT (\\Deleted)" % rng.randint(1, c.exists))
        await self.op(c, "EXPUNGE", b"EXPUNGE")
        await self.op(c, "APPEND", b"APPEND INBOX", rng.choice(self.corpus))

    async def client_loop(self, index: int) -> None:
        rng = random.Random(self.args.seed * 1000 + index)
        while self.counting():
            try:
                await self.session(rng, long=self.args.no_logout)
            except (OSError, ConnectionError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                if self.counting():
                    self.stats.note_error("connection", exc)
                    await asyncio.sleep(0.05)

    async def run(self) -> None:
        await prime_logins(self.t, self.args)
        t0 = time.monotonic()
        self.deadline = t0 + self.args.seconds
        cpu0 = tree_cpu(self.server_pid) if self.server_pid else None
        loop = asyncio.get_running_loop()
        cpu_at_deadline: list[float] = []
        if cpu0 is not None:
            loop.call_at(loop.time() + self.args.seconds, lambda: cpu_at_deadline.append(tree_cpu(self.server_pid)))
        await asyncio.gather(*(self.client_loop(i) for i in range(self.args.clients)))
        self.stats.seconds = self.args.seconds
        if cpu0 is not None and cpu_at_deadline:
            self.stats.cpu_s = cpu_at_deadline[0] - cpu0


async def prime_logins(t: Target, args) -> None:
    """Every user logs in once before the clock starts (auth caches warm, processes forked)."""
    todo = list(t.users)

    async def worker() -> None:
        while todo:
            user = todo.pop()
            c = await Client.connect(t.host, t.port, args.timeout)
            try:
                await c.command(b'LOGIN "%s" "%s"' % (user.encode(), t.password.encode()))
                await c.command(b"LOGOUT")
            finally:
                c.close()

    await asyncio.gather(*(worker() for _ in range(min(args.clients, len(todo)) or 1)))


async def fill_by_append(t: Target, fill_root: Path, dovecot_names: list[str], args) -> int:
    """MULTIAPPEND each user's generated Maildir (CRLF, in file-name order) into its INBOX."""
    pairs = list(zip(t.users, dovecot_names))
    total = 0

    async def worker() -> None:
        nonlocal total
        while pairs:
            user, name = pairs.pop()
            files = sorted(p for sub in ("cur", "new") for p in (fill_root / name / "Maildir" / sub).iterdir())
            if not files:
                continue
            c = await Client.connect(t.host, t.port, args.timeout * 4)
            c.timeout = args.timeout * 4
            try:
                await c.command(b'LOGIN "%s" "%s"' % (user.encode(), t.password.encode()))
                for start in range(0, len(files), 50):
                    chunk = [to_crlf(p.read_bytes()) for p in files[start:start + 50]]
                    await multiappend(c, chunk)
                    total += len(chunk)
                await c.command(b"LOGOUT")
            finally:
                c.close()

    await asyncio.gather(*(worker() for _ in range(4)))
    return total


async def multiappend(c: Client, messages: list[bytes]) -> None:
    """APPEND INBOX {n1+} m1 {n2+} m2 ... in one command (MULTIAPPEND, LITERAL+)."""
    c.n += 1
    tag = b"f%d" % c.n
    out = [tag + b" APPEND INBOX"]
    for m in messages:
        out.append(b" {%d+}\r\n" % len(m))
        out.append(m)
    out.append(b"\r\n")
    c.writer.write(b"".join(out))
    while True:
        line = await asyncio.wait_for(c._line(), c.timeout)
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise ImapNo(line[:200])
            return


def to_crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def load_corpus(root: Path) -> list[bytes]:
    path = root / "corpus.mbox"
    gen = subprocess.run([sys.executable, str(REF / "gen_mbox.py"), str(path), "--count", "1000", "--seed", "42"],
                         capture_output=True, text=True, timeout=300)
    if gen.returncode != 0:
        raise RuntimeError(f"gen_mbox.py failed: {gen.stderr}")
    messages = []
    for chunk in re.split(rb"(?m)^From [^\n]*\n", path.read_bytes()):
        if chunk.strip():
            body = re.sub(rb"(?m)^>(>*From )", rb"\1", chunk)
            messages.append(to_crlf(body.rstrip(b"\n") + b"\n"))
    return messages


def generate_fill(root: Path, users: int, count: int) -> Path:
    out = root / "fill"
    gen = subprocess.run([sys.executable, str(REF / "gen_mbox.py"), "--maildir-root", str(out), "--users", str(users),
                          "--count", str(count), "--seed-base", "1000"], capture_output=True, text=True, timeout=600)
    if gen.returncode != 0:
        raise RuntimeError(f"gen_mbox.py failed: {gen.stderr}")
    return out


# ---- the servers --------------------------------------------------------------------------------


def dovecot_sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(REF / "dovecot.sh"), *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise RuntimeError(f"dovecot.sh {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()} {proc.stdout.strip()}")
    return proc


def bench_dovecot(args, root: Path, corpus: list[bytes]) -> Stats:
    stats = Stats()
    if os.geteuid() != 0:
        stats.error = "the reference Dovecot needs root (or use --merpati-only)"
        return stats
    ddir = root / "dovecot"
    started = False
    try:
        port, pop3 = free_port(DOVECOT_HOST), free_port(DOVECOT_HOST)
        out = dovecot_sh("start", str(ddir), "--listen", DOVECOT_HOST, "--imap-port", str(port), "--pop3-port", str(pop3),
                         "--users", str(args.users), "--maildir-fill", str(args.fill), "--clean",
                         *([] if args.stock_dovecot else ["--tuned"]))
        started = True
        print(out.stdout.strip().splitlines()[0], flush=True)
        m = re.search(r"pid=(\d+)", out.stdout)
        target = Target("dovecot", DOVECOT_HOST, port, [f"user{k}" for k in range(1, args.users + 1)], DOVECOT_PASSWORD)
        asyncio.run(Workload(args, target, corpus, stats, int(m.group(1)) if m else None).run())
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
    finally:
        if started or (ddir / "run").exists():
            stop = dovecot_sh("stop", str(ddir), check=False)
            if stop.returncode != 0:
                print(f"dovecot: stop failed: {stop.stderr}", file=sys.stderr)
    return stats


async def add_users(server: MerpatiServer, users: list[str]) -> None:
    """Users straight through the admin service (one process, not one CLI run per user)."""
    from merpati.admin.service import AdminService
    from merpati.storage import open_store

    store = await open_store(f"sqlite:///{server.db_path}")
    try:
        admin = AdminService(store)
        for user in users:
            await admin.add_user(user, PASSWORD)
    finally:
        await store.close()


def bench_merpati(args, root: Path, corpus: list[bytes], fill_root: Path | None) -> Stats:
    stats = Stats()
    conns = max(1000, args.clients * 4)
    server = MerpatiServer(
        root / "merpati", host=MERPATI_HOST, listeners=("imap",),
        extra_config=f"[imap]\nmax_user_connections_per_ip = {conns}\nmax_connections_per_ip = {conns}\n",
    )
    try:
        server.add_domain(MERPATI_DOMAIN)
        users = [f"user{k}@{MERPATI_DOMAIN}" for k in range(1, args.users + 1)]
        t0 = time.monotonic()
        asyncio.run(add_users(server, users))
        print(f"merpati: {len(users)} users added in {time.monotonic() - t0:.1f}s", flush=True)
        server.start()
        print(f"merpati: listening on {server.host}:{server.ports['imap']} (data {server.data_dir}, log {server.log_path})",
              flush=True)
        target = Target("merpati", MERPATI_HOST, server.ports["imap"], users, PASSWORD)
        if fill_root is not None:
            t0 = time.monotonic()
            n = asyncio.run(fill_by_append(target, fill_root, [f"user{k}" for k in range(1, args.users + 1)], args))
            print(f"merpati: {n} messages appended in {time.monotonic() - t0:.1f}s", flush=True)
        asyncio.run(Workload(args, target, corpus, stats, server.proc.pid).run())
    except Exception as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
    finally:
        code = server.stop()
        if code not in (0, None):
            print(f"merpati: exited {code} on SIGTERM; log tail:\n{server.log_tail(20)}", file=sys.stderr)
    return stats


# ---- report -------------------------------------------------------------------------------------


def fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def report(args, results: dict[str, Stats]) -> None:
    print()
    print(f"IMAP mixed load: {args.clients} clients over {args.users} users, {args.seconds:g} s per server, "
          f"INBOX filled with {args.fill}, deletes above {args.target}, "
          f"{'long sessions (no LOGOUT)' if args.no_logout else 'LOGOUT and log in again after each round'}")
    names = list(results)
    head = f"{'command':<15}" + "".join(f" {n + ' ops/s':>15} {'p50 ms':>7} {'p99 ms':>7}" for n in names)
    if len(names) == 2:
        head += f" {'ratio':>7}"
    print(head)
    for cmd in (*COMMANDS, None):
        label = cmd or "overall"
        row = f"{label:<15}"
        rates = []
        for n in names:
            s = results[n]
            rate = s.rate(cmd)
            rates.append(rate)
            p50 = s.pct(cmd, 50) if cmd else None
            p99 = s.pct(cmd, 99) if cmd else None
            row += f" {fmt(rate):>15} {fmt(p50, '.2f'):>7} {fmt(p99, '.2f'):>7}"
        if len(names) == 2:
            row += f" {rates[0] / rates[1]:>6.2f}x" if rates[1] else f" {'-':>7}"
        print(row)
    for n in names:
        s = results[n]
        errs = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "none"
        cpu = ""
        if s.cpu_s is not None and s.total:
            cpu = (f", server CPU {100 * s.cpu_s / s.seconds:.0f}% of a core, "
                   f"{1000 * s.cpu_s / s.total:.3f} ms per operation")
        print(f"{n}: {s.total} operations, {s.sessions} sessions{cpu}, errors: {errs}"
              + (f"; FAILED: {s.error}" if s.error else ""))
        for line in s.first_errors:
            print(f"  {line}")
    if "merpati" in results and "dovecot" in results and results["dovecot"].rate():
        m, d = results["merpati"], results["dovecot"]
        r = m.rate() / d.rate()
        cpu = ""
        if m.cpu_s and d.cpu_s and m.total and d.total:
            cpu = f"; server CPU per operation merpati/dovecot {(m.cpu_s / m.total) / (d.cpu_s / d.total):.2f}x"
        print(f"ratio merpati/dovecot overall: {r:.2f}x (target >= 0.5x){cpu}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=10, help="concurrent connections (default 10)")
    ap.add_argument("--users", type=int, default=100, help="users user1..userN (default 100)")
    ap.add_argument("--seconds", "--duration", type=float, default=30, help="measured seconds per server (default 30)")
    ap.add_argument("--fill", "--messages", type=int, default=20, help="messages in each INBOX at the start (default 20)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the mix per session before LOGOUT (default 1)")
    ap.add_argument("--target", type=int, default=None, help="delete a message per round above this many (default: --fill, at least 10)")
    ap.add_argument("--no-logout", action="store_true", help="one long session per client")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per command before it counts as failed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-text-search", action="store_true",
                    help="SEARCH only flags and sizes (no FROM/SUBJECT: Merpati's full-text indexer stays idle)")
    ap.add_argument("--stock-dovecot", action="store_true", help="Dovecot's default mode instead of --tuned")
    ap.add_argument("--tuned", action="store_true", help="Dovecot --tuned (the default; kept for old command lines)")
    ap.add_argument("--idle", type=int, default=0, metavar="N",
                    help="instead: bench/imap_idle.py with N IDLE connections (RSS and SMTP-250-to-EXISTS latency)")
    ap.add_argument("--deliveries", type=int, default=300, help="with --idle: messages delivered over SMTP")
    ap.add_argument("--verbose", action="store_true", help="with --idle: print each delivery's slowest EXISTS")
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--merpati-only", action="store_true")
    side.add_argument("--dovecot-only", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores)")
    args = ap.parse_args(argv)
    if args.idle:
        import imap_idle

        return imap_idle.main(["--connections", str(args.idle), "--deliveries", str(args.deliveries),
                               *(["--verbose"] if args.verbose else []), *(["--keep"] if args.keep else [])])
    if args.target is None:
        args.target = max(10, args.fill)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-imapbench-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes must reach the instance folder
    results: dict[str, Stats] = {}
    try:
        corpus = load_corpus(root)
        if not args.dovecot_only:
            fill_root = generate_fill(root, args.users, args.fill) if args.fill else None
        if not args.merpati_only:
            print("dovecot: starting (filling the Maildirs takes a while)", flush=True)
            results["dovecot"] = bench_dovecot(args, root, corpus)
        if not args.dovecot_only:
            results["merpati"] = bench_merpati(args, root, corpus, fill_root)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started has been stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    if "merpati" in results and "dovecot" in results:
        results = {"merpati": results["merpati"], "dovecot": results["dovecot"]}
    report(args, results)
    return 0 if results and all(s.error is None and s.total for s in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

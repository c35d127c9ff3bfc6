#!/usr/bin/env python3
"""IMAP load benchmark: Merpati beside a reference Dovecot, same corpus, same load, same run.

    .venv/bin/python bench/imap_load.py                       # 20 clients on 10 users x 100 messages, 20 s each
    .venv/bin/python bench/imap_load.py --clients 20 --users 10 --duration 30 --tuned
    .venv/bin/python bench/imap_load.py --merpati-only        # no root needed
    .venv/bin/python bench/imap_load.py --idle 5000           # RSS with 5,000 IDLE sessions + SMTP→EXISTS latency

Load (--clients concurrent clients, our own asyncio client; client k logs in as user k mod
--users, so several sessions share each mailbox): each runs sessions back to back: LOGIN,
SELECT INBOX, then --rounds rounds of the mix below, then LOGOUT (and the next session logs
in again):

    FETCH 1:* (FLAGS)                      FETCH n:n+9 (ENVELOPE)
    FETCH r BODY.PEEK[]                    STORE r +FLAGS / -FLAGS (\\Flagged)
    SEARCH UNSEEN / SEARCH SUBJECT "re"    APPEND INBOX (a 1 KiB message)
    UID STORE <appended> +FLAGS.SILENT (\\Deleted), UID EXPUNGE <appended>   (UIDPLUS)

so mailboxes keep their size. Each command is counted when its tagged OK arrives; ops/s per
command = count / wall time of the timed pass. Everything the mix reads comes from the same
corpus on both servers (../shared/reference/gen_mbox.py, user k seed 1000+k: Dovecot's
``--maildir-fill`` files, imported into Merpati byte for byte).

``--idle N`` (Merpati only): N authenticated connections SELECT INBOX and IDLE; the server's
RSS is read from /proc; then --deliveries messages go in over SMTP one at a time, each to a
random user, and for every IDLE session of that user the time from the SMTP ``250`` to its
``* n EXISTS`` line is recorded; p50/p99/max are printed.

Everything listens on loopback: Merpati on 127.0.0.2, Dovecot on 127.0.0.3, kernel-chosen
ports. Dovecot needs root. Everything started here is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from collections import Counter
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
_LIT = re.compile(rb"\{(\d+)\+?\}\r\n$")
_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")
SMALL = (b"From: bench@x.test\r\nTo: someone@merpati.test\r\nSubject: bench append\r\n"
         b"Message-ID: <bench@x.test>\r\n\r\n" + b"x" * 1000 + b"\r\n")


@dataclass
class Result:
    name: str
    ops: Counter = field(default_factory=Counter)
    times: Counter = field(default_factory=Counter)  # seconds waited for each command's answer
    sessions: int = 0
    seconds: float | None = None
    errors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def rate(self) -> float | None:
        return self.total / self.seconds if self.seconds else None


# ---- a minimal IMAP client ------------------------------------------------------------------


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer
        self.n = 0
        self.exists = 0  # as the server told this session (EXISTS up, EXPUNGE down)

    @classmethod
    async def open(cls, host: str, port: int) -> Client:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        c = cls(reader, writer)
        await reader.readline()
        return c

    async def response(self, tag: bytes) -> bytes:
        """Everything up to and including the tagged line (literals read whole)."""
        out = []
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionError("closed")
            out.append(line)
            if line.startswith(b"* ") and line.endswith(b"\r\n"):
                word = line[2:-2].split(b" ")
                if len(word) == 2 and word[1] == b"EXISTS":
                    self.exists = int(word[0])
                elif len(word) == 2 and word[1] == b"EXPUNGE":
                    self.exists -= 1
            m = _LIT.search(line)
            if m:
                out.append(await self.r.readexactly(int(m.group(1))))
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace").strip())
                return b"".join(out)

    async def cmd(self, text: bytes, name: str | None = None, ops: Counter | None = None,
                  times: Counter | None = None) -> bytes:
        self.n += 1
        tag = b"b%d" % self.n
        t0 = time.perf_counter()
        self.w.write(tag + b" " + text + b"\r\n")
        out = await self.response(tag)
        if name is not None and ops is not None and times is not None:
            ops[name] += 1
            times[name] += time.perf_counter() - t0
        return out

    async def append(self, data: bytes, ops: Counter, times: Counter) -> bytes:
        self.n += 1
        tag = b"b%d" % self.n
        t0 = time.perf_counter()
        self.w.write(tag + b" APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
        out = await self.response(tag)
        ops["APPEND"] += 1
        times["APPEND"] += time.perf_counter() - t0
        return out

    def close(self) -> None:
        self.w.close()


async def one_session(host: str, port: int, user: str, rounds: int, ops: Counter, times: Counter,
                      rng: random.Random) -> None:
    c = await Client.open(host, port)
    try:
        await c.cmd(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()), "LOGIN", ops, times)
        await c.cmd(b"SELECT INBOX", "SELECT", ops, times)
        for _ in range(rounds):
            await c.cmd(b"FETCH 1:* (FLAGS)", "FETCH FLAGS", ops, times)
            if c.exists:
                a = rng.randint(1, c.exists)
                await c.cmd(b"FETCH %d:%d (ENVELOPE)" % (a, min(c.exists, a + 9)), "FETCH ENVELOPE", ops, times)
                await c.cmd(b"FETCH %d BODY.PEEK[]" % rng.randint(1, c.exists), "FETCH BODY[]", ops, times)
            if c.exists:
                r = rng.randint(1, c.exists)
                await c.cmd(b"STORE %d %sFLAGS (\\Flagged)" % (r, rng.choice((b"+", b"-"))), "STORE", ops, times)
            await c.cmd(rng.choice((b"SEARCH UNSEEN", b'SEARCH SUBJECT "re"')), "SEARCH", ops, times)
            out = await c.append(SMALL, ops, times)
            m2 = _APPENDUID.search(out)
            if m2:
                uid = m2.group(1)
                await c.cmd(b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % uid, "STORE", ops, times)
                await c.cmd(b"UID EXPUNGE %s" % uid, "EXPUNGE", ops, times)
        await c.cmd(b"LOGOUT", "LOGOUT", ops, times)
    finally:
        c.close()


async def client_loop(host: str, port: int, user: str, rounds: int, deadline: float | None, ops: Counter,
                      times: Counter, errors: list[str], seed: int) -> int:
    rng = random.Random(seed)
    sessions = 0
    while True:
        try:
            await one_session(host, port, user, rounds, ops, times, rng)
            sessions += 1
        except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
            errors.append(f"{user}: {type(exc).__name__}: {exc}")
            if len(errors) > 50:
                raise
            await asyncio.sleep(0.05)
        if deadline is None or time.monotonic() >= deadline:
            return sessions


def run_clients(host: str, port: int, users: list[str], rounds: int, duration: float | None, seed: int):
    async def main():
        ops: Counter = Counter()
        times: Counter = Counter()
        errors: list[str] = []
        start = time.monotonic()
        deadline = start + duration if duration is not None else None
        done = await asyncio.gather(*(client_loop(host, port, u, rounds, deadline, ops, times, errors, seed + i)
                                      for i, u in enumerate(users)))
        return ops, sum(done), time.monotonic() - start, errors, times

    return asyncio.run(main())


def load(host: str, port: int, names: list[str], args: argparse.Namespace, duration: float | None, result: Result) -> None:
    users = [names[k % len(names)] for k in range(args.clients)]
    procs = max(1, min(args.client_procs, args.clients))
    shares = [users[p::procs] for p in range(procs)]
    if procs == 1:
        outcomes = [run_clients(host, port, shares[0], args.rounds, duration, 1)]
    else:
        with ProcessPoolExecutor(procs) as pool:
            outcomes = list(pool.map(run_clients, [host] * procs, [port] * procs, shares, [args.rounds] * procs,
                                     [duration] * procs, [1000 * p for p in range(procs)]))
    for o in outcomes:
        result.ops.update(o[0])
        result.times.update(o[4])
    result.sessions = sum(o[1] for o in outcomes)
    result.seconds = max(o[2] for o in outcomes)
    result.errors = [e for o in outcomes for e in o[3]]


def measure(name: str, host: str, port: int, names: list[str], args: argparse.Namespace) -> Result:
    warm = Result(name)
    load(host, port, names, args, None, warm)  # one untimed session per client
    if warm.errors:
        raise RuntimeError(f"warm-up failed: {warm.errors[:3]}")
    print(f"{name}: warm-up {warm.sessions} sessions, {warm.total} commands in {warm.seconds:.1f} s", flush=True)
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


async def fill_merpati(server: MerpatiServer, corpus: Path | None, users: int) -> None:
    from merpati.admin.service import AdminService
    from merpati.storage import open_store

    store = await open_store(f"sqlite:///{server.db_path}")
    try:
        admin = AdminService(store)
        await admin.add_domain(DOMAIN)
        for k in range(1, users + 1):
            address = f"user{k}@{DOMAIN}"
            await admin.add_user(address, PASSWORD)
            if corpus is not None:
                await admin.import_mail(address, corpus / f"user{k}" / "Maildir")
    finally:
        await store.close()


def merpati_server(root: Path, connections: int) -> MerpatiServer:
    return MerpatiServer(
        root / "merpati", host=MERPATI_HOST, listeners=("imap",),
        extra_config=(f"[imap]\nmax_connections = {connections + 100}\nmax_connections_per_ip = {connections + 100}\n"
                      f"max_user_connections_per_ip = {connections + 100}\n"),
    )


def bench_merpati(args: argparse.Namespace, root: Path) -> Result:
    result = Result("merpati")
    server = merpati_server(root, args.clients * 2)
    try:
        corpus = gen_corpus(args, root)
        asyncio.run(fill_merpati(server, corpus, args.users))
        server.start()
        port = server.ports["imap"]
        print(f"merpati: imap on {server.host}:{port} (data {server.data_dir}, log {server.log_path})", flush=True)
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
        imap_port, pop3_port = free_port(DOVECOT_HOST), free_port(DOVECOT_HOST)
        extra = ["--tuned"] if args.tuned else []
        out = dovecot_sh("start", str(ddir), "--listen", DOVECOT_HOST, "--imap-port", str(imap_port),
                         "--pop3-port", str(pop3_port), "--users", str(args.users),
                         "--maildir-fill", str(args.messages), "--clean", *extra)
        started = True
        print(out.stdout.strip().splitlines()[0], flush=True)
        names = [f"user{k}" for k in range(1, args.users + 1)]
        result = measure("dovecot", DOVECOT_HOST, imap_port, names, args)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if started or (ddir / "etc").exists():
            stop = dovecot_sh("stop", str(ddir), check=False)
            if stop.returncode != 0:
                print(f"dovecot: stop failed: {stop.stderr}", file=sys.stderr)
    return result


# ---- 5,000 IDLE sessions ------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def idle_bench(server: MerpatiServer, args: argparse.Namespace) -> None:
    host, port = server.host, server.ports["imap"]
    names = [f"user{k}@{DOMAIN}" for k in range(1, args.users + 1)]
    by_user: dict[str, list[asyncio.StreamReader]] = {n: [] for n in names}
    writers = []
    sem = asyncio.Semaphore(200)

    async def open_one(i: int) -> None:
        user = names[i % len(names)]
        async with sem:
            c = await Client.open(host, port)
            await c.cmd(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))
            await c.cmd(b"SELECT INBOX")
            c.w.write(b"i IDLE\r\n")
            line = await c.r.readline()
            assert line.startswith(b"+"), line
        by_user[user].append(c.r)
        writers.append(c.w)

    t0 = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(args.idle)))
    print(f"idle: {args.idle} sessions logged in, selected and idling after {time.monotonic() - t0:.1f} s", flush=True)
    await asyncio.sleep(2)
    assert server.proc is not None
    main_rss = rss_kib(server.proc.pid)
    print(f"idle: merpati main process RSS {main_rss / 1024:.0f} MiB with {args.idle} IDLE sessions "
          f"(target < 250 MiB)", flush=True)
    latencies: list[float] = []
    rng = random.Random(7)
    loop = asyncio.get_running_loop()
    for n in range(args.deliveries):
        user = rng.choice(names)
        msg = f"From: a@x.test\r\nTo: {user}\r\nSubject: ping {n}\r\n\r\nping\r\n".encode()
        waits = [asyncio.ensure_future(r.readline()) for r in by_user[user]]
        await loop.run_in_executor(None, _smtp_send, server, user, msg)
        sent = time.monotonic()
        worst = 0.0
        for w in waits:
            line = await w
            assert line.endswith(b" EXISTS\r\n"), line
            latencies.append(time.monotonic() - sent)
            worst = max(worst, latencies[-1])
        if args.verbose:
            print(f"  delivery {n} to {user}: slowest EXISTS {worst * 1000:.1f} ms after the 250", flush=True)
        for r in by_user[user]:  # the RECENT line that follows (IMAP4rev1)
            line = await r.readline()
    latencies.sort()
    if latencies:
        p50 = latencies[len(latencies) // 2]
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"idle: SMTP 250 → IDLE EXISTS over {len(latencies)} notifications ({args.deliveries} deliveries): "
              f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms "
              "(target p99 < 100 ms; measured from the client's 250, so delivery commit is before it)", flush=True)
    for w in writers:
        w.close()


def _smtp_send(server: MerpatiServer, user: str, msg: bytes) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=30) as s:
        s.sendmail("a@x.test", [user], msg)


def run_idle(args: argparse.Namespace, root: Path) -> int:
    server = merpati_server(root, args.idle)
    try:
        asyncio.run(fill_merpati(server, None, args.users))
        server.start()
        asyncio.run(idle_bench(server, args))
    finally:
        server.stop()
    return 0


# ---- report ----------------------------------------------------------------------------------------


def report(args: argparse.Namespace, results: list[Result]) -> None:
    print()
    print(f"IMAP mixed load: {args.clients} clients on {args.users} users x {args.messages} messages, "
          f"{args.rounds} rounds per session; {args.duration:.0f} s timed"
          f"{'; Dovecot --tuned' if args.tuned else '; Dovecot default mode'}")
    print("ops/s: commands answered per second of the timed pass (the mix is fixed, so they move together);")
    print("ms/op: mean time from sending a command to its tagged answer, under the same concurrent load")
    commands = sorted({k for r in results for k in r.ops})
    head = f"{'command':<16}" + "".join(f"{r.name + ' ops/s':>16}{r.name + ' ms/op':>16}" for r in results)
    print(head + ("   ratio (ms/op)" if len(results) == 2 else ""))
    for cmd in commands:
        cells, lat = [], []
        for r in results:
            rate = r.ops[cmd] / r.seconds if r.seconds else 0.0
            ms = 1000 * r.times[cmd] / r.ops[cmd] if r.ops[cmd] else 0.0
            lat.append(ms)
            cells.append(f"{rate:>16.0f}{ms:>16.2f}")
        ratio = f"{lat[0] / lat[1]:>10.2f}x" if len(results) == 2 and lat[1] else ""
        print(f"{cmd:<16}" + "".join(cells) + ("   " + ratio if ratio else ""))
    rates = [r.rate or 0.0 for r in results]
    ratio = f"{rates[1] / rates[0]:.2f}x" if len(results) == 2 and rates[0] else ""
    print(f"{'all':<16}" + "".join(f"{x:>16.0f}{'':>16}" for x in rates) + ("   " + ratio if ratio else ""))
    for r in results:
        status = "ok" if r.error is None and not r.errors else f"FAILED: {r.error or r.errors[:2]}"
        print(f"{r.name}: {r.sessions} sessions, {r.total} commands, {len(r.errors)} errors: {status}")
    if len(results) == 2:
        print("ratio = merpati/dovecot throughput (dovecot ms/op / merpati ms/op per command); target >= 0.5x overall")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20, help="concurrent IMAP clients (default 20)")
    ap.add_argument("--client-procs", type=int, default=1, help="processes the clients run in (default 1)")
    ap.add_argument("--users", type=int, default=10, help="users (default 10)")
    ap.add_argument("--messages", type=int, default=100, help="messages per user (default 100)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the mix per session (default 5)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of the timed pass per server (default 20)")
    ap.add_argument("--tuned", action="store_true", help="Dovecot's high-performance mode (dovecot.sh --tuned)")
    ap.add_argument("--idle", type=int, default=0, help="instead: N IDLE sessions on Merpati (RSS and latency)")
    ap.add_argument("--deliveries", type=int, default=200, help="with --idle: messages delivered over SMTP")
    ap.add_argument("--verbose", action="store_true", help="with --idle: print each delivery's slowest EXISTS")
    side = ap.add_mutually_exclusive_group()
    side.add_argument("--merpati-only", action="store_true")
    side.add_argument("--dovecot-only", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, stores)")
    args = ap.parse_args(argv)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-imap-bench-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes must reach the instance folder
    results: list[Result] = []
    try:
        if args.idle:
            return run_idle(args, root)
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

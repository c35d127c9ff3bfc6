#!/usr/bin/env python3
"""IDLE benchmark: thousands of authenticated IMAP connections idling on Merpati; the server's
memory, and how fast new mail reaches them.

    .venv/bin/python bench/imap_idle.py                              # 5,000 connections, 100 users
    .venv/bin/python bench/imap_idle.py --connections 2000 --users 50 --deliveries 500

1. Merpati (`merpati serve`, SQLite, its own data folder) starts on 127.0.0.2 with the IMAP
   connection limits raised for the run ([imap] max_connections, max_connections_per_ip,
   max_user_connections_per_ip). RLIMIT_NOFILE is raised to its hard limit first, here and so
   in the server, which inherits it.
2. --connections connections, spread round-robin over --users users and over --sources local
   loopback addresses (127.0.1.1, 127.0.1.2, ...), each: LOGIN, SELECT INBOX, IDLE, until all
   are idling (--concurrency at a time; every user logs in once first, so the argon2 check
   runs once per user and the rest hit the authentication cache).
3. Memory: the server's RSS, summed over every process of its process group (the IMAP process
   and the SMTP workers), from /proc/PID/status, and the PSS sum from /proc/PID/smaps_rollup
   (shared pages counted once), before any connection and with everything idling. Per
   connection: (idling - before) / connections.
4. Latency: --deliveries messages, one at a time, each to a random user, over one SMTP
   connection (a new MAIL transaction each). For every IDLE connection of that user the time
   from reading the SMTP `250` (end of DATA) to reading its `* n EXISTS` is one sample; p50,
   p99 and max over all samples; also the slowest connection per delivery, and the time from
   writing the final "." (the earliest the server could know). A sample is negative when the
   push came before the 250 was read. A connection that sees nothing within --wait seconds is
   counted as missed.

No reference server runs here: this is Merpati alone against its targets (RSS under 250 MB
with 5,000 idling connections, p99 under 100 ms). Everything stays on loopback; everything
started here is stopped on exit, Ctrl-C and SIGTERM included. No assertion on any figure.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from imap_load import MERPATI_DOMAIN, MERPATI_HOST, PASSWORD, Client, add_users  # noqa: E402
from support.merpati_server import MerpatiServer  # noqa: E402


# ---- /proc -----------------------------------------------------------------------------------------


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:  # state ppid pgrp ...
            pids.append(int(entry.name))
    return sorted(pids)


def _kb(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pgid: int) -> tuple[float, float, int]:
    """(RSS MB, PSS MB, processes) of a process group."""
    pids = group_pids(pgid)
    rss = sum(_kb(Path(f"/proc/{p}/status"), "VmRSS:") for p in pids)
    pss = sum(_kb(Path(f"/proc/{p}/smaps_rollup"), "Pss:") for p in pids)
    return rss / 1024, pss / 1024, len(pids)


# ---- idling connections ----------------------------------------------------------------------------


class Idler:
    __slots__ = ("client", "user", "seen", "task", "event")

    def __init__(self, client: Client, user: str) -> None:
        self.client, self.user = client, user
        self.seen: list[float] = []
        self.event = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def listen(self) -> None:
        """Read pushed responses until the connection ends; note the time of every EXISTS."""
        reader = self.client.reader
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"* ") and line.endswith(b" EXISTS\r\n"):
                self.seen.append(time.perf_counter())
                self.event.set()


async def open_idler(host: str, port: int, user: str, source: str, timeout: float) -> Idler:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0), limit=1 << 16), timeout)
    c = Client(reader, writer, timeout)
    greeting = await asyncio.wait_for(reader.readline(), timeout)
    if not greeting.startswith(b"* OK"):
        c.close()
        raise ConnectionError(f"greeting {greeting[:80]!r}")
    try:
        await c.command(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))
        await c.command(b"SELECT INBOX")
        writer.write(b"i IDLE\r\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.startswith(b"+"):
            raise ConnectionError(f"IDLE answered {line[:80]!r}")
    except BaseException:
        c.close()
        raise
    idler = Idler(c, user)
    idler.task = asyncio.get_running_loop().create_task(idler.listen())
    return idler


async def open_all(args, host: str, port: int, users: list[str]) -> tuple[list[Idler], int, list[str]]:
    sources = [f"127.0.1.{i}" for i in range(1, args.sources + 1)]
    plan = [(users[i % len(users)], sources[i % len(sources)]) for i in range(args.connections)]
    idlers: list[Idler] = []
    failures: list[str] = []
    todo = iter(plan)

    async def worker() -> None:
        for user, source in todo:
            try:
                idlers.append(await open_idler(host, port, user, source, args.timeout))
            except (OSError, ConnectionError, asyncio.TimeoutError, Exception) as exc:  # noqa: BLE001 - count and go on
                failures.append(f"{type(exc).__name__}: {exc}"[:200])

    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return idlers, len(failures), failures[:5]


# ---- SMTP ------------------------------------------------------------------------------------------


class Smtp:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int) -> "Smtp":
        reader, writer = await asyncio.open_connection(host, port)
        s = cls(reader, writer)
        await s.reply(b"220")
        writer.write(b"EHLO idle-bench.test\r\n")
        await s.reply(b"250")
        return s

    async def reply(self, want: bytes) -> bytes:
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 30)
            if not line:
                raise ConnectionError("SMTP connection closed")
            if line[3:4] != b"-":
                if not line.startswith(want):
                    raise RuntimeError(f"SMTP: {line!r}")
                return line

    async def send(self, rcpt: str, body: bytes) -> tuple[float, float]:
        """One message; (time the final "." was written, time its 250 was read)."""
        w = self.writer
        w.write(b"MAIL FROM:<bench@loadgen.test>\r\n")
        await self.reply(b"250")
        w.write(b"RCPT TO:<%s>\r\n" % rcpt.encode())
        await self.reply(b"250")
        w.write(b"DATA\r\n")
        await self.reply(b"354")
        w.write(body)
        await w.drain()
        t_dot = time.perf_counter()
        w.write(b".\r\n")
        await self.reply(b"250")
        return t_dot, time.perf_counter()

    async def quit(self) -> None:
        self.writer.write(b"QUIT\r\n")
        try:
            await self.reply(b"221")
        finally:
            self.writer.close()


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


# ---- the run ---------------------------------------------------------------------------------------


async def measure(args, server: MerpatiServer, users: list[str]) -> dict:
    host, port = server.host, server.ports["imap"]
    out: dict = {}
    pgid = server.proc.pid
    await asyncio.sleep(args.settle)  # the SMTP worker processes start after the banner
    out["rss_before"] = memory(pgid)

    # every user once (argon2 verify), then the rest from the authentication cache
    t0 = time.monotonic()
    sem = asyncio.Semaphore(16)

    async def prime(user: str) -> None:
        async with sem:
            c = await Client.connect(host, port, args.timeout)
            try:
                await c.command(b'LOGIN "%s" "%s"' % (user.encode(), PASSWORD.encode()))
                await c.command(b"LOGOUT")
            finally:
                c.close()

    await asyncio.gather(*(prime(u) for u in users))
    out["prime_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    idlers, failed, failures = await open_all(args, host, port, users)
    out["setup_s"] = time.monotonic() - t0
    out["idling"], out["failed"], out["failures"] = len(idlers), failed, failures
    await asyncio.sleep(args.settle)
    out["rss_idle"] = memory(pgid)
    print(f"idling: {len(idlers)} connections ({failed} failed) in {out['setup_s']:.1f}s; "
          f"server RSS {out['rss_idle'][0]:.1f} MB, PSS {out['rss_idle'][1]:.1f} MB "
          f"over {out['rss_idle'][2]} processes", flush=True)

    by_user: dict[str, list[Idler]] = {}
    for i in idlers:
        by_user.setdefault(i.user, []).append(i)
    rng = random.Random(args.seed)
    smtp = await Smtp.connect(host, server.port)
    from_250: list[float] = []
    from_dot: list[float] = []
    slowest: list[float] = []
    missed = 0
    line = b"x" * 76 + b"\r\n"
    t0 = time.monotonic()
    try:
        for n in range(args.deliveries):
            user = rng.choice(list(by_user))
            conns = by_user[user]
            before = [len(c.seen) for c in conns]
            for c in conns:
                c.event.clear()
            body = (b"From: <bench@loadgen.test>\r\nTo: <%s>\r\nSubject: idle push %d\r\n\r\n" % (user.encode(), n)
                    + line * max(1, args.size // len(line)))
            t_dot, t_250 = await smtp.send(user, body)
            deadline = time.perf_counter() + args.wait
            worst = None
            for c, k in zip(conns, before):
                while len(c.seen) <= k and time.perf_counter() < deadline:
                    c.event.clear()
                    try:
                        await asyncio.wait_for(c.event.wait(), max(0.0, deadline - time.perf_counter()))
                    except asyncio.TimeoutError:
                        break
                if len(c.seen) > k:
                    t = c.seen[k]
                    from_250.append((t - t_250) * 1000)
                    from_dot.append((t - t_dot) * 1000)
                    worst = max(worst or -1e9, (t - t_250) * 1000)
                else:
                    missed += 1
            if worst is not None:
                slowest.append(worst)
            if args.verbose:
                print(f"  delivery {n} to {user}: slowest EXISTS "
                      f"{'-' if worst is None else f'{worst:.1f} ms'} after the 250", flush=True)
            if args.gap:
                await asyncio.sleep(args.gap)
    finally:
        out["deliver_s"] = time.monotonic() - t0
        try:
            await smtp.quit()
        except Exception:
            pass
    out["rss_after"] = memory(pgid)
    out["from_250"], out["from_dot"], out["slowest"], out["missed"] = from_250, from_dot, slowest, missed
    out["alive"] = sum(1 for i in idlers if i.task is not None and not i.task.done())
    for i in idlers:
        i.client.close()
        if i.task is not None:
            i.task.cancel()
    await asyncio.gather(*(i.task for i in idlers if i.task is not None), return_exceptions=True)
    return out


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def report(args, out: dict, stop_s: float | None) -> None:
    rb, ri, ra = out["rss_before"], out["rss_idle"], out["rss_after"]
    n = max(1, out["idling"])
    print()
    print(f"IMAP IDLE: {args.connections} connections over {args.users} users and {args.sources} source addresses; "
          f"{args.deliveries} deliveries of {args.size} B")
    print(f"connections idling      {out['idling']} (failed {out['failed']}), opened in {out['setup_s']:.1f}s "
          f"(users primed in {out['prime_s']:.1f}s); still open after the deliveries: {out['alive']}")
    for text in out["failures"]:
        print(f"  {text}")
    print(f"server memory           RSS sum / PSS sum over the process group (processes)")
    print(f"  before connections    {rb[0]:8.1f} MB / {rb[1]:8.1f} MB ({rb[2]})")
    print(f"  all idling            {ri[0]:8.1f} MB / {ri[1]:8.1f} MB ({ri[2]})   target RSS < 250 MB")
    print(f"  after deliveries      {ra[0]:8.1f} MB / {ra[1]:8.1f} MB ({ra[2]})")
    print(f"  per idle connection   {(ri[0] - rb[0]) * 1024 / n:8.1f} KB RSS / {(ri[1] - rb[1]) * 1024 / n:8.1f} KB PSS")
    f250, fdot, slow = out["from_250"], out["from_dot"], out["slowest"]
    print(f"push latency, ms        {'p50':>8} {'p99':>8} {'max':>8}  samples")
    print(f"  SMTP 250 -> EXISTS    {fmt(pct(f250, 50)):>8} {fmt(pct(f250, 99)):>8} {fmt(max(f250) if f250 else None):>8}  "
          f"{len(f250)} (missed {out['missed']})   target p99 < 100 ms")
    print(f"  final '.' -> EXISTS   {fmt(pct(fdot, 50)):>8} {fmt(pct(fdot, 99)):>8} {fmt(max(fdot) if fdot else None):>8}")
    print(f"  slowest conn/delivery {fmt(pct(slow, 50)):>8} {fmt(pct(slow, 99)):>8} {fmt(max(slow) if slow else None):>8}  "
          f"{len(slow)} deliveries in {out['deliver_s']:.1f}s")
    if stop_s is not None:
        print(f"server stop (SIGTERM) with the connections just closed: {stop_s:.2f}s")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=5000, help="IDLE connections (default 5000)")
    ap.add_argument("--users", type=int, default=100, help="users the connections are spread over (default 100)")
    ap.add_argument("--sources", type=int, default=4, help="local source addresses 127.0.1.1.. (default 4)")
    ap.add_argument("--concurrency", type=int, default=64, help="connections being set up at once (default 64)")
    ap.add_argument("--deliveries", type=int, default=300, help="messages delivered over SMTP (default 300)")
    ap.add_argument("--size", type=int, default=2000, help="message body bytes (default 2000)")
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between deliveries (default 0.02)")
    ap.add_argument("--wait", type=float, default=5.0, help="seconds a connection may take to see EXISTS (default 5)")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds between setup and the memory reading")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per setup step")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--verbose", action="store_true", help="print each delivery's slowest EXISTS")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (log, store)")
    args = ap.parse_args(argv)

    limit = raise_nofile()
    if limit < args.connections + 200:
        print(f"RLIMIT_NOFILE is {limit}: too low for {args.connections} connections", file=sys.stderr)
        return 2

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-idlebench-"))
    big = args.connections + 100
    server = MerpatiServer(
        root / "merpati", host=MERPATI_HOST, listeners=("imap",),
        extra_config=(f"[imap]\nmax_connections = {big}\nmax_connections_per_ip = {big}\n"
                      f"max_user_connections_per_ip = {big}\n"),
    )
    out: dict | None = None
    stop_s = None
    try:
        server.add_domain(MERPATI_DOMAIN)
        users = [f"user{k}@{MERPATI_DOMAIN}" for k in range(1, args.users + 1)]
        t0 = time.monotonic()
        asyncio.run(add_users(server, users))
        print(f"merpati: {len(users)} users added in {time.monotonic() - t0:.1f}s; RLIMIT_NOFILE {limit}", flush=True)
        server.start()
        print(f"merpati: listening on {server.host}:{server.ports['imap']} (log {server.log_path})", flush=True)
        out = asyncio.run(measure(args, server, users))
        t0 = time.monotonic()
        code = server.stop()
        stop_s = time.monotonic() - t0
        if code not in (0, None):
            print(f"merpati: exited {code} on SIGTERM; log tail:\n{server.log_tail(20)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("\ninterrupted; everything started has been stopped", file=sys.stderr)
        return 130
    finally:
        if server.running:
            server.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    report(args, out, stop_s)
    return 0 if out["idling"] == args.connections and not out["missed"] else 1


if __name__ == "__main__":
    sys.exit(main())

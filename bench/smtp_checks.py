#!/usr/bin/env python3
"""MX throughput with every built-in check on, against the same MX with checks off, same run.

    .venv/bin/python bench/smtp_checks.py                       # 3000 messages x 5 KB, 10 connections
    .venv/bin/python bench/smtp_checks.py --messages 5000 --reuse

Both sides are `merpati serve` with the same settings and load (Postfix's smtp-source, as in
bench/smtp_inbound.py, whose load and clock this reuses); they differ only in ``[checks]``:

* off: ``[checks] enabled = false``;
* on: every built-in check that needs no other daemon: pre-greeting detection, HELO sanity,
  iprev, a DNSBL zone, greylisting (``delay = "0s"``: every triple is looked up and recorded,
  none deferred, so the load is the same), SPF/DKIM/DMARC with records served by a loopback DNS
  server, and the per-user Bayesian filter, trained beforehand (10 spam, 10 ham) so every
  message is classified from the user's tokens.

Prints msgs/s and p50/p99 latency for both and the ratio on/off (target: at least 0.80).
Everything listens on loopback; DNS is a loopback server started here.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from smtp_inbound import Result, fmt, latency_pass, ratio, run_smtp_source  # noqa: E402
from support.dns_server import DnsServer  # noqa: E402
from support.merpati_server import MerpatiServer  # noqa: E402

HOST = "127.0.0.2"
DOMAIN = "merpati.test"
CHECKS_ON = (
    "[checks]\n"
    "enabled = true\n"
    "pregreet = true\nhelo_checks = true\niprev = true\nbayes = true\n"
    "[checks.dnsbl]\n"
    'zones = ["bl.loadgen.test"]\n'
    "[checks.greylist]\n"
    'enabled = true\ndelay = "0s"\n'
    "[checks.sender_auth]\n"
    "enabled = true\n"
)
CHECKS_OFF = "[checks]\nenabled = false\n"


def dns_records() -> dict:
    records: dict = {"loadgen.test": {"A": ["127.0.0.1"], "TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
                     "_dmarc.loadgen.test": {"TXT": ["v=DMARC1; p=none"]}}
    for ip in ("127.0.0.1", "127.0.0.2"):
        records[".".join(reversed(ip.split("."))) + ".in-addr.arpa"] = {"PTR": ["loadgen.test"]}
    return records


def train(server: MerpatiServer, address: str) -> None:
    from merpati.delivery.checks.training import BayesTrainer
    from merpati.storage import open_store
    from merpati.storage.checks_api import checks_store

    async def go() -> None:
        store = await open_store(f"sqlite:///{server.db_path}")
        try:
            account = await store.get_account(address)
            trainer = BayesTrainer(checks_store(store))
            for i in range(10):
                await trainer.learn(account.id, f"Subject: win {i}\r\n\r\nlottery prize casino winner {i}\r\n".encode(), True)
                await trainer.learn(account.id, f"Subject: notes {i}\r\n\r\nmeeting minutes budget {i}\r\n".encode(), False)
        finally:
            await store.close()

    asyncio.run(go())


def bench(args, root: Path, name: str, checks: str, dns: DnsServer) -> Result:
    result = Result(name, args.messages)
    server = MerpatiServer(
        root / name, host=HOST, hostname="mx.merpati.test", dns=dns.nameserver, extra_config=checks,
        extra_smtp={"max_connections_per_ip": max(50, args.connections * 2)},
    )
    try:
        server.add_domain(DOMAIN)
        rcpt = server.add_user(f"user1@{DOMAIN}")
        if checks is CHECKS_ON:
            train(server, rcpt)
        server.start()
        print(f"{name}: listening on {server.host}:{server.port} (log {server.log_path})", flush=True)
        run_smtp_source(args, server.host, server.port, rcpt, server.message_count, result)
        if args.latency_messages:
            asyncio.run(latency_pass(server.host, server.port, rcpt, args.latency_messages, args.connections,
                                     args.size, 60, result))
        if checks is CHECKS_ON:
            print(f"{name}: a stored message's verdict: "
                  f"{server.export(rcpt)[-1].split(b'Merpati-Verdict:', 1)[-1][:160]!r}", flush=True)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--latency-messages", type=int, default=300)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--rounds", type=int, default=1, help="alternate off/on this many times (default 1)")
    args = ap.parse_args(argv)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    root = Path(tempfile.mkdtemp(prefix="merpati-bench-checks-"))
    results: list[Result] = []
    try:
        with DnsServer(dns_records(), zones=["test", "in-addr.arpa"]) as dns:
            for i in range(args.rounds):
                results.append(bench(args, root, f"checks-off-{i}", CHECKS_OFF, dns))
                results.append(bench(args, root, f"checks-on-{i}", CHECKS_ON, dns))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"MX with checks: {args.messages} messages x {args.size} B, {args.connections} connections")
    print(f"{'side':<14}{'delivered':>12}{'seconds':>10}{'msgs/s':>10}{'p50 ms':>9}{'p99 ms':>9}  error")
    for r in results:
        print(f"{r.name:<14}{r.delivered:>12}{fmt(r.seconds, '.2f'):>10}{fmt(r.rate):>10}"
              f"{fmt(r.pct(50)):>9}{fmt(r.pct(99)):>9}  {r.error or ''}")
    off = [r.rate for r in results if r.name.startswith("checks-off") and r.rate]
    on = [r.rate for r in results if r.name.startswith("checks-on") and r.rate]
    if off and on:
        print(f"throughput checks on / off: {ratio(sum(on) / len(on), sum(off) / len(off))} (target >= 0.80)")
    return 0 if results and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

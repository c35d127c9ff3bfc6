"""Delivery throughput: N concurrent callers, each delivering single-message batches (durable).

    .venv/bin/python tests/storage/bench_deliver.py [--url URL] [--callers 20] [--messages 6000] [--size 4096]

Default URL: a fresh SQLite file in a temporary folder. Prints deliveries/s and, for SQLite,
how many commits (fsyncs) carried them. Not a test: no assertions on timing anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from storage_helpers import PARSED_TYPE, T0, message, parse  # noqa: E402

from merpati.storage import Delivery, open_store  # noqa: E402


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--callers", type=int, default=20)
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--accounts", type=int, default=1, help="spread callers over this many mailboxes")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.url or f"sqlite:///{tmp.name}/merpati.db"
    store = await open_store(url, parsed_type=PARSED_TYPE)
    if not await store.has_domain("bench.example"):
        await store.add_domain("bench.example")
    accounts = [await store.create_account(f"bench{time.time_ns()}-{i}@bench.example", "h") for i in range(args.accounts)]
    data = message("bench", b"x" * max(0, args.size - len(message("bench", b""))))
    parsed = parse(data)
    per_caller = args.messages // args.callers

    async def caller(acc_id: int) -> None:
        for _ in range(per_caller):
            await store.deliver([Delivery(acc_id, data, parsed, T0)])

    stats0 = store.stats() if hasattr(store, "stats") else None
    t0 = time.perf_counter()
    await asyncio.gather(*(caller(accounts[i % len(accounts)].id) for i in range(args.callers)))
    elapsed = time.perf_counter() - t0
    total = per_caller * args.callers
    line = f"{url.split(':')[0]}: {total} deliveries of {len(data)} bytes, {args.callers} callers, {args.accounts} mailbox(es): {total / elapsed:.0f}/s"
    if stats0 is not None:
        s = store.stats()
        commits = s["commits"] - stats0["commits"]
        line += f" ({commits} commits, {total / max(commits, 1):.1f} deliveries per commit)"
    print(line)
    await store.close()
    tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())

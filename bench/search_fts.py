"""Full-text SEARCH over N messages (default 10,000) on SQLite and PostgreSQL.

    .venv/bin/python bench/search_fts.py                       # both backends, 10,000 messages
    .venv/bin/python bench/search_fts.py --backend sqlite --messages 20000 --words 400

For each backend: a fresh store (SQLite in a temporary folder; PostgreSQL in a temporary
database on 127.0.0.1:5432, dropped at the end) is filled through ``MailStore.deliver`` in
batches (timed with and without building the search document). Each query then runs
``--repeat`` times (best time printed) twice in the same run: first with every document's
text still pending (what a search scans before the lazy indexer has run: the reference),
then after ``index_pending()`` moved it all into the full-text index (timed too): BODY with a
rare needle, a common word and 2 characters (no trigram: a scan either way), TEXT, a header
key, combinations; then SORT and THREAD. Both passes must give the same answers. Nothing
here asserts anything about time.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from merpati.mime import parse_message  # noqa: E402
from merpati.storage import INBOX, Delivery, open_store  # noqa: E402
from merpati.storage import common  # noqa: E402
from merpati.storage import search as s  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def corpus(n: int, words_per_message: int, seed: int = 1) -> tuple[list[bytes], list[str]]:
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10))) for _ in range(20_000)]
    out = []
    for i in range(n):
        body = " ".join(rng.choice(vocab) for _ in range(words_per_message))
        lines = "\r\n".join(body[j:j + 76] for j in range(0, len(body), 76))
        if i == n // 2:
            lines += "\r\nunique-needle-xyzzy"
        out.append(
            f"From: User {i % 97} <user{i % 97}@example.org>\r\nTo: bob@example.com\r\n"
            f"Subject: {'Re: ' if i % 3 else ''}topic {i % 500}\r\nMessage-ID: <m{i}@example.org>\r\n"
            f"{'References: <m' + str(i - 1) + '@example.org>' + chr(13) + chr(10) if i % 3 else ''}"
            f"Date: Wed, 01 May 2024 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{lines}\r\n".encode()
        )
    return out, vocab


async def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - t)
    return min(times), result


async def fill(store, messages: list[bytes], batch: int, *, index: bool) -> float:
    if not await store.has_domain("example.com"):
        await store.add_domain("example.com")
    acc = await store.create_account(f"u{secrets.token_hex(3)}@example.com", "x")
    saved = common.search_doc
    if not index:
        common.search_doc = lambda data, parsed: None  # deliver without the index document
    try:
        when = datetime(2024, 5, 1, tzinfo=timezone.utc)
        t = time.perf_counter()
        for i in range(0, len(messages), batch):
            await store.deliver([Delivery(acc.id, m, parse_message(m), when) for m in messages[i:i + batch]])
        elapsed = time.perf_counter() - t
    finally:
        common.search_doc = saved
    store._bench_mailbox = (await store.get_mailbox(acc.id, INBOX)).id
    return elapsed


async def analyze(url: str, backend: str) -> None:
    """PostgreSQL: planner statistics and the GIN pending lists merged, as autovacuum would
    do a little later on a live system."""
    if backend != "postgres":
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
        for index in ("search_text_body_trgm", "search_text_headers_trgm"):
            await conn.execute("SELECT gin_clean_pending_list($1::regclass)", index)
    finally:
        await conn.close()


async def run_backend(backend: str, args: argparse.Namespace, messages: list[bytes], vocab: list[str]) -> None:
    tmp = tempfile.TemporaryDirectory()
    dbname = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp.name}/bench.db"
    else:
        import asyncpg

        dbname = f"merpati_bench_{secrets.token_hex(4)}"
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'CREATE DATABASE "{dbname}"')
        await conn.close()
        url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    store = await open_store(url)
    try:
        n = len(messages)
        m0 = min(n, 2000)
        plain = await fill(store, messages[:m0], args.batch, index=False)
        indexed = await fill(store, messages, args.batch, index=True)
        mb = store._bench_mailbox
        per_plain, per_indexed = plain / m0 * 1000, indexed / n * 1000
        print(f"\n== {backend}: {n} messages, ~{sum(map(len, messages)) // n} bytes each ==")
        print(f"deliver: {per_indexed:.2f} ms/message with the search document, {per_plain:.2f} without "
              f"({per_indexed - per_plain:+.2f} ms; {n / indexed:.0f} messages/s)")
        common_word = max(vocab[:200], key=lambda w: (len(w) >= 4, len(w)))
        queries = [
            ("BODY rare needle", s.Body("UNIQUE-needle-xyzzy")),
            (f"BODY common word {common_word!r}", s.Body(common_word)),
            ("BODY 2 characters 'qz'", s.Body("qz")),
            ("TEXT 'topic 42'", s.Text("topic 42")),
            ("FROM 'user13@'", s.From("user13@")),
            ("SUBJECT 'topic 7' NOT SEEN", s.And(s.Subject("topic 7"), s.Not(s.FlagIs("\\Seen")))),
            ("OR BODY a BODY b, UID 1:5000", s.And(s.Or(s.Body(vocab[3]), s.Body(vocab[4])), s.UidSet.of((1, 5000)))),
        ]
        # 1. every document still pending: searches scan the text (the indexer is held off).
        store._search_indexer = asyncio.get_running_loop().create_future()  # a "running" indexer
        before = {}
        for label, q in queries:
            before[label] = await best(lambda q=q: store.search(mb, q), args.repeat)
        store._search_indexer = None
        # 2. the indexer's work, then the same searches through the index.
        t = time.perf_counter()
        moved = await store.index_pending()
        took = time.perf_counter() - t
        print(f"indexing: {moved} documents in {took:.1f} s ({took / max(moved, 1) * 1000:.2f} ms/document, "
              f"in the background after the first search)")
        await analyze(url, backend)
        print(f"{'query':42} {'indexed ms':>10} {'scan ms':>9} {'ratio':>6} {'hits':>6}")
        for label, q in queries:
            t_idx, uids = await best(lambda q=q: store.search(mb, q), args.repeat)
            t_scan, ref = before[label]
            assert uids == ref, label
            print(f"{label:42} {t_idx * 1000:10.1f} {t_scan * 1000:9.1f} {t_scan / t_idx:5.1f}x {len(uids):6}")
        t_idx, _ = await best(lambda: store.search(mb, queries[0][1]), args.repeat)
        print(f"=> BODY search over {n} messages: {t_idx * 1000:.1f} ms indexed "
              f"(scan without the index: {before[queries[0][0]][0] * 1000:.1f} ms)")
        for label, fn in (
            ("SORT REVERSE DATE", lambda: store.sort(mb, s.All(), s.SortKey.parse("REVERSE DATE"))),
            ("SORT SUBJECT FROM", lambda: store.sort(mb, s.All(), s.SortKey.parse("SUBJECT FROM"))),
            ("THREAD REFERENCES ALL", lambda: store.thread(mb, s.All(), "REFERENCES")),
            ("THREAD ORDEREDSUBJECT ALL", lambda: store.thread(mb, s.All(), "ORDEREDSUBJECT")),
        ):
            t, res = await best(fn, args.repeat)
            print(f"{label:42} {t * 1000:10.1f} {'':>9} {'':>6} {len(res):6}")
    finally:
        await store.close()
        tmp.cleanup()
        if dbname:
            import asyncpg

            conn = await asyncpg.connect(PG_ADMIN)
            await conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--words", type=int, default=300, help="words per message body [300, about 2 KB]")
    ap.add_argument("--batch", type=int, default=200, help="messages per deliver() call")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = ap.parse_args()
    messages, vocab = corpus(args.messages, args.words)
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        asyncio.run(run_backend(backend, args, messages, vocab))


if __name__ == "__main__":
    main()

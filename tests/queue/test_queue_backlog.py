"""SECURITY-CASES STORE-08: a backlog while the remote is down.

A few thousand messages (not the 200,000 of the case: the properties are per claim, not per
size) are queued through the store API for a remote that refuses connections (a temporary
failure), on a fake clock. The runner's real loop works through them; checked: never more than
``concurrency`` items claimed and in memory at once, each failed item's next attempt one step
of the retry schedule later, new mail queued while every item of the backlog is due again goes
out in the next round (not after the whole backlog), expiry sends DSNs to the senders and
never to ``<>``.
"""

from __future__ import annotations

import asyncio
import time

from queue_support import FakeClock, SinkServer, message

from merpati.queue.client import ClientSettings, ClientTimeouts
from merpati.queue.dialer import TcpDialer
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, RunnerSettings
from merpati.resolver import FakeResolver
from merpati.storage.queue_api import AttemptRecord, MessageKind, NewMessage, NewRecipient, Outcome, RecipientResult

ASYNC_TIMEOUT = 120
HOST = "127.0.0.1"
DOWN = "192.0.2.1"  # the backlog's remote: every connection is refused
FAST = ClientTimeouts(greeting=1.0, command=1.0, data_init=1.0, data_block=1.0, data_done=1.0, tls_handshake=2.0, quit=0.5)
BACKLOG = 3000
CONCURRENCY = 25
SCHEDULE = (300.0, 600.0)
LIFETIME = 900.0


class Dialer:
    """The down remote refuses at once; anything else reaches the sink."""

    def __init__(self, sink: SinkServer) -> None:
        self.sink = sink
        self.refused = 0

    async def connect(self, address: str, port: int, *, timeout: float):  # noqa: ANN201
        if address == DOWN:
            self.refused += 1
            raise ConnectionRefusedError(111, "Connection refused")
        return await TcpDialer().connect(HOST, self.sink.port, timeout=timeout)


class Tracking:
    """The queue store, counting what the runner holds: items claimed and not yet recorded."""

    def __init__(self, queue) -> None:
        self._queue = queue
        self.held: set[int] = set()
        self.max_held = 0
        self.limits: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self._queue, name)

    async def claim(self, owner, *, now, lease, limit):
        self.limits.append(limit)
        claims = await self._queue.claim(owner, now=now, lease=lease, limit=limit)
        self.held.update(c.item.id for c in claims)
        self.max_held = max(self.max_held, len(self.held))
        return claims

    async def record_attempt(self, owner, record, *, now):
        ok = await self._queue.record_attempt(owner, record, now=now)
        self.held.discard(record.item_id)
        return ok


async def until(predicate, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_store08_backlog_to_a_down_remote_stays_bounded_and_new_mail_is_not_starved(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    t0 = clock()
    q = store.queue
    # Half the backlog has the null reverse-path (bounces we relay): it must never get a DSN.
    senders = ["alice@a.test", ""]
    for start in range(0, BACKLOG, 250):
        await asyncio.gather(*(
            q.enqueue(NewMessage(f"B{i}", senders[i % 2], [NewRecipient(f"u{i}@b.test")], message(f"B{i}")), now=t0)
            for i in range(start, min(start + 250, BACKLOG))
        ))
    records = {
        "b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [DOWN]},
        "a.test": {"MX": [(10, "mx.b.test")]},  # the DSNs' destination is down too: they stay queued
        "c.test": {"A": [HOST]},
    }
    async with SinkServer(HOST) as sink:
        dialer = Dialer(sink)
        tracking = Tracking(q)

        def make_runner() -> QueueRunner:
            return QueueRunner(
                tracking,  # type: ignore[arg-type]
                resolver=FakeResolver(records),
                policy=RetryPolicy(schedule=SCHEDULE, lifetime=LIFETIME, delay_warning=0),
                settings=RunnerSettings(hostname="mx.a.test", concurrency=CONCURRENCY, lease=60, poll_interval=0.02,
                                        connection_cache_idle=0),
                client=ClientSettings(helo_name="mx.a.test", timeouts=FAST),
                dialer=dialer,  # type: ignore[arg-type]
                clock=clock,
                owner="test-node",
            )

        runner = make_runner()

        # 1. The whole backlog is tried once: bounded, each failure rescheduled one step later.
        await runner.start()
        try:
            await until(lambda: runner.stats["attempts"] >= BACKLOG, "the first pass")
        finally:
            await runner.stop(grace=5)
        assert runner.stats == {"attempts": BACKLOG, "delivered": 0, "deferred": BACKLOG, "failed": 0, "lost_leases": 0}
        assert dialer.refused == BACKLOG  # one attempt each, none twice
        assert 0 < tracking.max_held <= CONCURRENCY and max(tracking.limits) <= CONCURRENCY
        assert len(tracking.limits) >= BACKLOG // CONCURRENCY  # it worked in bounded claims
        for qid in ("B0", "B1", f"B{BACKLOG // 2}", f"B{BACKLOG - 1}"):
            (item,) = (await q.get(qid)).items
            assert item.attempts == 1 and item.next_attempt == t0 + SCHEDULE[0] and item.lease_owner is None
        assert await q.claim("probe", now=t0 + SCHEDULE[0] - 1, lease=1, limit=1) == []  # nothing before the step

        # 2. Every item of the backlog is due again; new mail queued now goes in the next round.
        clock.now = t0 + SCHEDULE[0]
        await q.enqueue(NewMessage("NEW", "alice@a.test", [NewRecipient("carol@c.test")], message("NEW")), now=clock())
        tracking.max_held = 0
        assert await runner.run_once() == CONCURRENCY
        assert [r.data for r in sink.received] == [message("NEW")]  # not behind 3,000 retries
        assert tracking.max_held <= CONCURRENCY
        firsts = [await q.get(f"B{i}") for i in range(CONCURRENCY)]
        retried = [m for m in firsts if m.items[0].attempts == 2]
        assert len(retried) == CONCURRENCY - 1  # the oldest retries took the other slots
        assert all(m.items[0].next_attempt == clock() + SCHEDULE[1] for m in retried)

        # 3. Past the lifetime every item expires: DSNs to the senders, none to <>.
        clock.now = t0 + LIFETIME
        tracking.max_held = 0
        runner = make_runner()
        await runner.start()
        try:
            await until(lambda: runner.stats["failed"] >= BACKLOG, "expiry")
        finally:
            await runner.stop(grace=5)
        assert tracking.max_held <= CONCURRENCY
    left = await q.list(limit=BACKLOG * 2)
    assert all(s.kind is MessageKind.DSN and s.sender == "" for s in left)  # the backlog is gone
    assert len(left) == BACKLOG // 2  # one per message from alice; none for the null sender
    sample = await q.get(left[0].queue_id)
    assert [r.address for r in sample.recipients] == ["alice@a.test"]
    for s in left[:50]:
        assert [r.address for r in (await q.get(s.queue_id)).recipients] == ["alice@a.test"]


async def test_store08_claims_give_new_mail_a_share_before_due_retries(backend) -> None:
    """STORE-08, the claim itself on both backends: items never attempted get up to half of a
    claim's slots (at least one) before retries that fell due earlier; the rest by due time."""
    store = await backend.open()
    q = store.queue
    t0 = FakeClock()()
    for i in range(10):
        await q.enqueue(NewMessage(f"R{i}", "alice@a.test", [NewRecipient("bob@b.test")], message(f"R{i}")), now=t0)
    for c in await q.claim("node", now=t0, lease=60, limit=10):
        record = AttemptRecord(c.item.id, [RecipientResult(r.id, Outcome.DEFERRED, 451, "4.4.1", "refused")
                                           for r in c.recipients], next_attempt=t0 + 300)
        assert await q.record_attempt("node", record, now=t0)
    for i in range(3):
        await q.enqueue(NewMessage(f"N{i}", "alice@a.test", [NewRecipient("bob@b.test")], message(f"N{i}")), now=t0 + 301)
    now = t0 + 302
    assert [c.message.queue_id for c in await q.claim("a", now=now, lease=60, limit=1)] == ["N0"]
    assert [c.message.queue_id for c in await q.claim("b", now=now, lease=60, limit=4)] == ["N1", "N2", "R0", "R1"]
    assert [c.message.queue_id for c in await q.claim("c", now=now, lease=60, limit=3)] == ["R2", "R3", "R4"]


async def test_store08_the_fresh_item_lookup_has_its_partial_index(sqlite_backend) -> None:
    """STORE-08: migration 0009's index serves the "never attempted" half of a claim, so it
    does not walk every due retry (SQLite's plan; PostgreSQL gets the same partial index)."""
    store = await sqlite_backend.open()
    await store.queue.enqueue(NewMessage("Q", "alice@a.test", [NewRecipient("bob@b.test")], message("Q")), now=1.0)
    import sqlite3

    conn = sqlite3.connect(sqlite_backend.url.removeprefix("sqlite:///"))
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM queue_items WHERE next_attempt_ms <= ? AND lease_until_ms <= ? "
            "AND attempts = 0 ORDER BY next_attempt_ms, id LIMIT ?", (1, 1, 1),
        ).fetchall()
    finally:
        conn.close()
    assert "queue_items_fresh" in str(plan)

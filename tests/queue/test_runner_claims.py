"""The runner's claim rounds: mail handed over leased (attach_runner) needs none; mail queued
while the runner was full is claimed as slots free; nothing is left behind."""

from __future__ import annotations

import asyncio
import time

from queue_support import SinkBehaviour, SinkServer, message

from merpati.queue.client import ClientSettings, ClientTimeouts
from merpati.queue.dialer import TcpDialer
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, RunnerSettings
from merpati.resolver import FakeResolver
from merpati.storage.queue_api import NewMessage, NewRecipient

HOST = "127.0.0.1"
FAST = ClientTimeouts(greeting=1.0, command=1.0, data_init=1.0, data_block=1.0, data_done=1.0, tls_handshake=2.0, quit=0.5)


class CountingClaims:
    def __init__(self, queue) -> None:
        self._queue = queue
        self.claims = 0

    def __getattr__(self, name: str):
        return getattr(self._queue, name)

    async def claim(self, *args, **kwargs):
        self.claims += 1
        return await self._queue.claim(*args, **kwargs)


async def run_burst(
    store, sink: SinkServer, *, concurrency: int, count: int, hold: asyncio.Event | None = None
) -> tuple[QueueRunner, CountingClaims]:
    counting = CountingClaims(store.queue)
    runner = QueueRunner(
        counting,  # type: ignore[arg-type]
        resolver=FakeResolver({"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [HOST]}}),
        policy=RetryPolicy(schedule=(300.0,), lifetime=3600.0, delay_warning=0),
        settings=RunnerSettings(hostname="mx.a.test", port=sink.port, concurrency=concurrency, lease=30, poll_interval=30),
        client=ClientSettings(helo_name="mx.a.test", timeouts=FAST),
        dialer=TcpDialer(),
        owner="test-node",
    )
    store.queue.on_enqueue(runner.wake)
    store.queue.attach_runner(runner)
    await runner.start()
    try:
        await asyncio.sleep(0.05)  # the first claim round (nothing due)
        for i in range(count):  # one by one: once the runner is full, mail is queued unleased
            await store.queue.enqueue(
                NewMessage(f"Q{i}", "alice@a.test", [NewRecipient("bob@b.test")], message(f"Q{i}")), now=time.time()
            )
            await asyncio.sleep(0)
        if hold is not None:
            assert not runner.has_capacity()
            hold.set()
        deadline = time.monotonic() + 20
        while len(sink.received) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)
    finally:
        await runner.stop(grace=5)
    return runner, counting


async def test_mail_handed_over_leased_needs_no_claim_round(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    async with SinkServer(HOST) as sink:
        _, counting = await run_burst(store, sink, concurrency=50, count=20)
    assert sorted(r.data for r in sink.received) == sorted(message(f"Q{i}") for i in range(20))
    assert counting.claims == 1  # the start-up round only; the poll interval is 30 s
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}


async def test_mail_queued_while_the_runner_is_full_is_claimed_as_slots_free(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    hold = asyncio.Event()  # the sink holds its answer to the end of data: the runner stays full
    async with SinkServer(HOST, behaviour=SinkBehaviour(hold_data_end=hold)) as sink:
        _, counting = await run_burst(store, sink, concurrency=2, count=12, hold=hold)
    assert sorted(r.data for r in sink.received) == sorted(message(f"Q{i}") for i in range(12))
    assert counting.claims >= 2
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}

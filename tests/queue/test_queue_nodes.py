"""Several nodes on one queue (SQLite file, PostgreSQL database): no item is delivered twice
or lost. 200 queued messages, two node processes, exactly 200 deliveries at a loopback sink;
then the same with one node SIGKILLed mid-run (SECURITY-CASES STORE-07, STORE-03).

The kill is placed where it must not cause a duplicate: the sink stops answering node A's
end of data, waits until everything it already acknowledged to A is committed, then the
test kills A with its other transactions in flight. Those were never acknowledged, so node
B delivers them once A's leases expire: exactly 200 again. (A kill between a remote 250 and
the local commit may duplicate that message: RFC 5321 §6.1 allows it, loss never.)
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sys
from pathlib import Path

import pytest
from queue_support import SinkBehaviour, SinkServer, message

from merpati.storage.queue_api import NewMessage, NewRecipient

ASYNC_TIMEOUT = 240
NODE = Path(__file__).with_name("queue_node.py")
HOST = "127.0.0.1"
A_ADDR, B_ADDR = "127.0.0.2", "127.0.0.3"
COUNT = 200


async def _start_node(url: str, sink: SinkServer, owner: str, bind: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(NODE), url, HOST, str(sink.port), owner, bind, "2.0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == b"started", (line, await proc.stderr.read())
    return proc


async def _fill(store) -> None:
    async def one(i: int) -> None:
        qid = f"M{i:03d}"
        await store.queue.enqueue(NewMessage(qid, "alice@a.test", [NewRecipient(f"u{i}@b.test")], message(qid)), now=0.0)

    await asyncio.gather(*(one(i) for i in range(COUNT)))


@pytest.mark.parametrize("kill", [False, True], ids=["both-run", "one-killed"])
async def test_two_nodes_deliver_each_message_exactly_once(backend, kill: bool) -> None:
    store = await backend.open()
    delivered: collections.Counter[str] = collections.Counter()
    by_peer: collections.Counter[str] = collections.Counter()
    acked_to_a: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def on_data_end(peer: str, body: bytes) -> str | None:
        qid = re.search(rb"Subject: (M\d+)", body).group(1).decode()
        if kill and peer == A_ADDR:
            if holding.is_set() or len(acked_to_a) >= 40:
                holding.set()
                await release.wait()
                return None  # never acknowledged: the connection just dies
            acked_to_a.append(qid)
        delivered[qid] += 1
        by_peer[peer] += 1
        return "250 2.0.0 Ok: queued"

    async with SinkServer(HOST, behaviour=SinkBehaviour(on_data_end=on_data_end)) as sink:
        node_a = await _start_node(backend.url, sink, "node-a", A_ADDR)
        node_b = await _start_node(backend.url, sink, "node-b", B_ADDR)
        await _fill(store)  # both nodes are polling: they share the work from the start
        try:
            if kill:
                await asyncio.wait_for(holding.wait(), 120)
                # everything A was told 250 for must be committed before the kill
                while any([await store.queue.get(q) is not None for q in acked_to_a]):
                    await asyncio.sleep(0.05)
                node_a.kill()
                await node_a.wait()
                release.set()
            out_b, err_b = await asyncio.wait_for(node_b.communicate(), 180)
            assert node_b.returncode == 0, err_b.decode()[-2000:]
            if not kill:
                out_a, err_a = await asyncio.wait_for(node_a.communicate(), 60)
                assert node_a.returncode == 0, err_a.decode()[-2000:]
        finally:
            for proc in (node_a, node_b):
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    assert sum(delivered.values()) == COUNT, delivered.most_common(3)
    assert set(delivered) == {f"M{i:03d}" for i in range(COUNT)}
    assert max(delivered.values()) == 1
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}
    assert by_peer[B_ADDR] > 0
    if kill:
        assert by_peer[A_ADDR] == len(acked_to_a) >= 40
    stats_b = json.loads(out_b.decode().strip().splitlines()[-1])
    assert stats_b["lost_leases"] == 0

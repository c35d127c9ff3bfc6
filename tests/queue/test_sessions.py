"""Connection reuse: the next message to the same host goes over the parked session (no new
connection, no EHLO); a parked connection the server dropped is replaced by a fresh one without
losing or duplicating the message; idle sessions are closed with QUIT."""

from __future__ import annotations

import asyncio

from queue_support import FakeClock, SinkServer, message

from merpati.queue.client import ClientSettings, ClientTimeouts
from merpati.queue.dialer import TcpDialer
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, RunnerSettings
from merpati.resolver import FakeResolver
from merpati.storage.queue_api import NewMessage, NewRecipient

HOST = "127.0.0.1"
FAST = ClientTimeouts(greeting=1.0, command=1.0, data_init=1.0, data_block=1.0, data_done=1.0, tls_handshake=2.0, quit=0.5)


def make_runner(store, port: int, clock: FakeClock, *, idle: float = 5.0) -> QueueRunner:
    return QueueRunner(
        store.queue,
        resolver=FakeResolver({"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [HOST]}}),
        policy=RetryPolicy(schedule=(300.0,), lifetime=3600.0, delay_warning=0),
        settings=RunnerSettings(hostname="mx.a.test", port=port, concurrency=5, lease=30, connection_cache_idle=idle),
        client=ClientSettings(helo_name="mx.a.test", timeouts=FAST),
        dialer=TcpDialer(),
        clock=clock,
        owner="test-node",
    )


async def one_by_one(store, runner: QueueRunner, clock: FakeClock, ids: list[str]) -> None:
    for qid in ids:
        await store.queue.enqueue(NewMessage(qid, "alice@a.test", [NewRecipient("bob@b.test")], message(qid)), now=clock())
        (claim,) = await store.queue.claim("test-node", now=clock(), lease=30, limit=10)
        await runner.process(claim)


async def test_the_next_message_reuses_the_session_then_idle_quit(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink.port, clock)
        await one_by_one(store, runner, clock, ["Q1", "Q2", "Q3"])
        assert [r.data for r in sink.received] == [message("Q1"), message("Q2"), message("Q3")]
        assert sink.connections == 1 and runner.sessions.stats["reused"] == 2
        verbs = [c.split()[0].upper() for c in sink.commands]
        assert verbs == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3
        await runner.sessions.close_all()
        await asyncio.sleep(0.05)
        assert sink.commands[-1].upper() == "QUIT"
        assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}


async def test_idle_sessions_are_closed_after_the_idle_time(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink.port, clock, idle=0.1)
        await one_by_one(store, runner, clock, ["Q1"])
        for _ in range(50):
            if sink.commands[-1].upper() == "QUIT":
                break
            await asyncio.sleep(0.02)
        assert sink.commands[-1].upper() == "QUIT"
        await one_by_one(store, runner, clock, ["Q2"])
        assert sink.connections == 2 and runner.sessions.stats["reused"] == 0
        await runner.sessions.close_all()


async def test_no_cache_means_quit_after_each_message(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink.port, clock, idle=0)
        await one_by_one(store, runner, clock, ["Q1", "Q2"])
        verbs = [c.split()[0].upper() for c in sink.commands]
        assert verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"] * 2 and sink.connections == 2


class DroppingServer:
    """Accepts one transaction per connection; on a second MAIL it closes without a reply
    (a server that dropped the idle connection, seen only when we write to it)."""

    def __init__(self) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, HOST, 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        mails = 0
        writer.write(b"220 drop.test ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-drop.test\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    mails += 1
                    if mails > 1:
                        writer.transport.abort()
                        return
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    body = bytearray()
                    while (chunk := await reader.readline()) != b".\r\n":
                        if not chunk:
                            return
                        body += chunk
                    self.bodies.append(bytes(body))
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 Bye\r\n")
                    return
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


async def test_a_dropped_parked_connection_is_replaced_without_loss_or_duplicate(sqlite_backend) -> None:
    store = await sqlite_backend.open()
    clock = FakeClock()
    remote = DroppingServer()
    port = await remote.start()
    try:
        runner = make_runner(store, port, clock)
        await one_by_one(store, runner, clock, ["Q1", "Q2", "Q3"])
        assert [b.count(b"Subject: Q") for b in remote.bodies] == [1, 1, 1]
        assert [b.split(b"Subject: ", 1)[1][:2] for b in remote.bodies] == [b"Q1", b"Q2", b"Q3"]
        assert remote.connections == 3
        assert runner.stats["delivered"] == 3 and runner.stats["deferred"] == 0
        assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}
        await runner.sessions.close_all()
    finally:
        assert remote.server is not None
        remote.server.close()

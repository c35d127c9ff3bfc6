"""SECURITY-CASES STORE-09: a corrupted queue row is quarantined for a human, never executed,
never crashes the runner; the rest of the queue goes on. Rows are corrupted with SQL straight
into the tables (what a disk error, a bad restore or a hand edit leaves), then the runner runs."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest
from queue_support import FakeClock, SinkServer, message

from merpati.cli.main import main
from merpati.queue.client import ClientSettings, ClientTimeouts
from merpati.queue.dialer import TcpDialer
from merpati.queue.policy import RetryPolicy
from merpati.queue.runner import QueueRunner, RunnerSettings
from merpati.resolver import FakeResolver
from merpati.storage import open_store
from merpati.storage.queue_api import QUARANTINE_PREFIX, NewMessage, NewRecipient, RecipientState

HOST = "127.0.0.1"
FAST = ClientTimeouts(greeting=1.0, command=1.0, data_init=1.0, data_block=1.0, data_done=1.0, tls_handshake=2.0, quit=0.5)

# (queue id, table, column, value, what the quarantine reason says). One corrupt message each.
CASES = [
    ("CRLF-RCPT", "queue_recipients", "address", "x@b.test>\r\nRCPT TO:<evil@b.test", "not a valid address"),
    ("NOT-ADDR", "queue_recipients", "address", "not an address", "not a valid address"),
    ("OTHER-DOM", "queue_recipients", "address", "x@evil.test", "domain does not match"),
    ("STATE", "queue_recipients", "state", "zombie", "unknown state"),
    ("NOTIFY", "queue_recipients", "notify", "SUCCESS,SOMETIMES", "invalid NOTIFY"),
    ("ORCPT", "queue_recipients", "orcpt", "rfc822;x@b.test\r\nDATA", "invalid ORCPT"),
    ("KIND", "queue_messages", "kind", "spam", "unreadable row"),
    ("CRLF-FROM", "queue_messages", "sender", "a@a.test>\r\nRSET", "sender is not a valid address"),
    ("NEG-SIZE", "queue_messages", "size", -5, "stored size"),
    ("BIG-SIZE", "queue_messages", "size", 2_000_000_000, "stored size"),
    ("EMPTY", "queue_messages", "data", b"", "empty"),
    ("RET", "queue_messages", "ret", "EVERYTHING", "RET"),
    ("BODY", "queue_messages", "body_type", "BINARY; rm", "BODY"),
    ("ATTEMPTS", "queue_items", "attempts", -1, "attempt count"),
]
# SQLite keeps any type in any column: text where bytes belong and the reverse.
SQLITE_CASES = [
    ("DATA-TEXT", "queue_messages", "data", "Subject: text, not a blob\r\n\r\n", "not bytes"),
    ("ADDR-BLOB", "queue_recipients", "address", b"x@b.test", "not a valid address"),
    ("TIME-TEXT", "queue_messages", "created_ms", "yesterday", "unreadable row"),
]


async def corrupt(backend, qid: str, table: str, column: str, value: object) -> None:
    key = "queue_id" if table == "queue_messages" else "message_id"
    target = "?" if table == "queue_messages" else "(SELECT id FROM queue_messages WHERE queue_id = ?)"
    sql = f"UPDATE {table} SET {column} = ? WHERE {key} = {target}"
    await execute(backend, sql, value, qid)


async def execute(backend, sql: str, *args: object) -> None:
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.url.removeprefix("sqlite:///"))
        try:
            conn.execute(sql, args)
            conn.commit()
        finally:
            conn.close()
        return
    import asyncpg

    parts = sql.split("?")
    sql = "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))
    conn = await asyncpg.connect(backend.url)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


def make_runner(store, sink: SinkServer, clock: FakeClock, concurrency: int = 50) -> QueueRunner:
    return QueueRunner(
        store.queue,
        resolver=FakeResolver({"b.test": {"MX": [(10, "mx.b.test")]}, "mx.b.test": {"A": [HOST]}}),
        policy=RetryPolicy(schedule=(300.0,), lifetime=3600.0, delay_warning=0),
        settings=RunnerSettings(hostname="mx.a.test", port=sink.port, concurrency=concurrency, lease=30, poll_interval=0.05),
        client=ClientSettings(helo_name="mx.a.test", timeouts=FAST),
        dialer=TcpDialer(),
        clock=clock,
        owner="test-node",
    )


async def enqueue(store, clock: FakeClock, qid: str, rcpt: str = "bob@b.test", **kw) -> None:
    await store.queue.enqueue(
        NewMessage(qid, "alice@a.test", [NewRecipient(rcpt, notify=("FAILURE",), orcpt=f"rfc822;{rcpt}")],
                   message(qid), **kw),
        now=clock(),
    )


async def test_store09_corrupt_rows_are_quarantined_never_delivered_and_the_runner_goes_on(backend, caplog) -> None:
    """STORE-09: every kind of corrupt row (CR/LF or invalid addresses, a recipient outside its
    item's domain, an unknown state or kind, out-of-range or lying sizes, empty data, RET/BODY/
    NOTIFY/ORCPT outside their sets, a negative attempt count; on SQLite also values of the wrong
    type) is quarantined by the claim; good mail around it is delivered in the same run."""
    cases = CASES + (SQLITE_CASES if backend.name == "sqlite" else [])
    store = await backend.open()
    clock = FakeClock()
    caplog.set_level(logging.WARNING, logger="merpati.queue")
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock)
        await enqueue(store, clock, "GOOD1")
        for qid, *_ in cases:
            await enqueue(store, clock, qid, rcpt=f"{qid.lower()}@b.test", ret="HDRS", body_type="8BITMIME")
        await enqueue(store, clock, "GOOD2", rcpt="carol@b.test")
        for qid, table, column, value, _ in cases:
            await corrupt(backend, qid, table, column, value)
        assert await runner.run_once() == 2  # the two good messages; no exception
        clock.advance(10 * 86400)  # quarantined items never fall due again
        assert await runner.run_once() == 0
        assert await runner.run_once() == 0
    assert sorted(r.recipients[0] for r in sink.received) == ["bob@b.test", "carol@b.test"]
    assert not any("evil" in c or c.upper().startswith(("RSET", "DATA ")) for c in sink.commands)
    assert runner.stats["attempts"] == 2

    listing = {s.queue_id: s for s in await store.queue.list()}
    assert set(listing) == {qid for qid, *_ in cases}  # the good ones are gone, every bad one kept
    for qid, _table, _column, _value, reason in cases:
        assert listing[qid].quarantined, qid
        msg = await store.queue.get(qid)
        assert msg is not None and len(msg.items) == 1 and msg.items[0].quarantined, qid
        texts = [r.last_text for r in msg.recipients]
        assert texts and all(t.startswith(QUARANTINE_PREFIX) and reason in t for t in texts), (qid, texts)
        if qid == "STATE":
            assert msg.recipients[0].state is RecipientState.CORRUPT
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "quarantined as corrupt" in w]) == len(cases)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)  # no crash, no traceback

    for qid, *_ in cases:  # `merpati queue delete` still removes them
        await store.queue.delete(qid)
    assert await store.queue.counts() == {"messages": 0, "items": 0, "recipients": 0}


async def test_store09_the_schema_refuses_null_where_text_is_expected(backend) -> None:
    """STORE-09: a NULL in a column the code reads as text cannot be stored (NOT NULL): the
    nullable columns (ENVID, RET, BODY, NOTIFY, ORCPT, diagnostics) mean "not given"."""
    store = await backend.open()
    clock = FakeClock()
    await enqueue(store, clock, "Q1")
    for table, column in (("queue_recipients", "address"), ("queue_recipients", "state"),
                          ("queue_recipients", "domain"), ("queue_messages", "sender"),
                          ("queue_messages", "data"), ("queue_messages", "kind"), ("queue_items", "domain")):
        with pytest.raises(Exception, match="(?i)not.null"):
            await corrupt(backend, "Q1", table, column, None)


async def test_store09_mail_handed_over_leased_is_checked_too(sqlite_backend, caplog) -> None:
    """STORE-09: mail inserted already leased to the local runner (no claim round) passes only
    the enqueue checks; the runner refuses to deliver what a claim would quarantine, gives it
    back, and the next claim quarantines it. The loop keeps running: later mail goes out."""
    store = await sqlite_backend.open()
    clock = FakeClock()
    caplog.set_level(logging.WARNING, logger="merpati.queue")
    async with SinkServer(HOST) as sink:
        runner = make_runner(store, sink, clock, concurrency=5)
        store.queue.on_enqueue(runner.wake)
        store.queue.attach_runner(runner)
        await runner.start()
        try:
            await enqueue(store, clock, "BAD", ret="EVERYTHING")  # enqueue does not check RET's value
            for _ in range(200):
                msg = await store.queue.get("BAD")
                if msg.items[0].quarantined:
                    break
                await asyncio.sleep(0.02)
            await enqueue(store, clock, "GOOD")
            for _ in range(200):
                if sink.received:
                    break
                await asyncio.sleep(0.02)
        finally:
            await runner.stop(grace=2)
    assert msg.items[0].quarantined and "RET" in msg.recipients[0].last_text
    assert [r.data for r in sink.received] == [message("GOOD")]
    assert runner.stats["attempts"] == 1
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_store09_cli_lists_and_shows_quarantined_entries_and_deletes_them(tmp_path: Path, capsys) -> None:
    """STORE-09: `merpati queue list` and `queue show` mark a quarantined message (and show a
    corrupt row without failing); `queue delete` removes it."""
    config = tmp_path / "merpati.toml"
    db = tmp_path / "m.db"
    config.write_text(f'hostname = "mx.a.test"\ndata_dir = "{tmp_path}"\n[storage]\nurl = "sqlite:///{db}"\n')

    async def fill() -> None:
        store = await open_store(f"sqlite:///{db}")
        try:
            clock = FakeClock()
            await enqueue(store, clock, "BAD")
            await enqueue(store, clock, "ODD")
            await enqueue(store, clock, "GOOD")
            conn = sqlite3.connect(db)
            conn.execute("UPDATE queue_recipients SET address = 'x@b.test\r\nDATA' WHERE message_id = "
                         "(SELECT id FROM queue_messages WHERE queue_id = 'BAD')")
            conn.execute("UPDATE queue_recipients SET state = 'zombie' WHERE message_id = "
                         "(SELECT id FROM queue_messages WHERE queue_id = 'ODD')")
            conn.execute("UPDATE queue_messages SET kind = 'spam', created_ms = 'noon' WHERE queue_id = 'ODD'")
            conn.commit()
            conn.close()
            # claim only BAD (the oldest): ODD stays corrupt but not yet quarantined
            claims = await store.queue.claim("node", now=clock(), lease=60, limit=1)
            assert claims == []
        finally:
            await store.close()

    asyncio.run(fill())
    assert main(["-c", str(config), "queue", "list"]) == 0
    out = capsys.readouterr().out
    bad_line = next(line for line in out.splitlines() if line.startswith("BAD"))
    assert "QUARANTINED" in bad_line and "quarantined: corrupt queue entry" in bad_line
    assert "GOOD" in out and "QUARANTINED" not in next(line for line in out.splitlines() if line.startswith("GOOD"))
    assert main(["-c", str(config), "queue", "show", "BAD"]) == 0
    out = capsys.readouterr().out
    assert "status:    QUARANTINED" in out and "quarantined (never attempted again)" in out
    assert "not a valid address" in out and "<x@b.test  DATA> queued" in out  # CR LF shown as spaces
    assert main(["-c", str(config), "queue", "show", "ODD"]) == 0  # unreadable kind and time: still shown
    assert "corrupt" in capsys.readouterr().out
    assert main(["-c", str(config), "queue", "delete", "BAD"]) == 0
    assert main(["-c", str(config), "queue", "delete", "ODD"]) == 0
    assert main(["-c", str(config), "queue", "show", "BAD"]) == 1


async def test_store09_text_that_is_not_utf8_is_quarantined(sqlite_backend) -> None:
    """STORE-09 on SQLite: a TEXT value that is not UTF-8 makes the row unreadable (a database
    error when fetched); the claim quarantines that item, hands out the others, and
    `queue delete` removes it."""
    store = await sqlite_backend.open()
    clock = FakeClock()
    await enqueue(store, clock, "BAD")
    await enqueue(store, clock, "GOOD")
    await execute(sqlite_backend, "UPDATE queue_recipients SET address = CAST(? AS TEXT) WHERE message_id = "
                  "(SELECT id FROM queue_messages WHERE queue_id = 'BAD')", b"\xff@b.test")
    claims = await store.queue.claim("node", now=clock(), lease=60, limit=5)
    assert [c.message.queue_id for c in claims] == ["GOOD"]
    later = await store.queue.claim("node", now=clock() + 86400, lease=60, limit=5)
    assert [c.message.queue_id for c in later] == ["GOOD"]  # its lease expired; BAD never again
    await store.queue.delete("BAD")
    assert (await store.queue.counts())["messages"] == 1

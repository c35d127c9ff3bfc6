"""SECURITY-CASES STORE-02: the settings that make a commit survive an OS crash or power loss.

Power loss itself cannot be simulated here (that needs a fault-injecting block device or a VM
reset, the case's own method); these tests check the settings the durability argument rests
on, on the connections that actually commit mail (deliveries and the outbound queue):

* SQLite: the writer connection is in WAL mode with ``synchronous=FULL`` (2). With WAL and
  NORMAL, "a transaction committed ... might roll back following a power loss or system
  crash"; FULL syncs the WAL at every commit.
* PostgreSQL: store connections run with ``synchronous_commit=on`` even when the database's
  default is ``off`` (which may lose "allegedly committed" transactions).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from merpati.storage.sqlite import workers


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_store02_sqlite_writer_commits_in_wal_with_synchronous_full(backend) -> None:
    """STORE-02 (SQLite): WAL + synchronous=FULL on the writer connection, the one every write
    transaction of the store (deliver, enqueue, record_attempt) commits on. Not a power-loss test."""
    store = await backend.open()

    def pragmas(conn: sqlite3.Connection):  # noqa: ANN202
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        return (str(mode).lower(), int(sync)), []

    assert await store._writer.submit(pragmas) == ("wal", 2)
    assert await store.queue._write(lambda conn: pragmas(conn)) == ("wal", 2)  # the queue's writes too

    path = backend.url.removeprefix("sqlite:///")
    conn = workers.connect(path, readonly=False)  # what the writer thread opens
    try:
        assert pragmas(conn)[0] == ("wal", 2)
    finally:
        conn.close()
    other = sqlite3.connect(path)  # WAL is a property of the file: any connection sees it
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    finally:
        other.close()
    assert Path(path + "-wal").exists()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_store02_postgres_store_connections_use_synchronous_commit_on(backend) -> None:
    """STORE-02 (PostgreSQL): ``SHOW synchronous_commit`` is ``on`` on every connection of the
    store's pool and inside its write transactions (the queue's too), although the database's
    default was set to ``off`` first. Not a power-loss test."""
    import asyncpg

    admin = await asyncpg.connect(backend.url)
    database = await admin.fetchval("SELECT current_database()")
    await admin.execute(f'ALTER DATABASE "{database}" SET synchronous_commit = off')
    try:
        plain = await asyncpg.connect(backend.url)  # a connection without the store's settings
        try:
            assert await plain.fetchval("SHOW synchronous_commit") == "off"
        finally:
            await plain.close()
        store = await backend.open(min_size=3, max_size=3)

        async def show(conn):  # noqa: ANN001, ANN202
            return await conn.fetchval("SHOW synchronous_commit"), []

        assert await store._tx(show) == "on"
        assert await store.queue._write(show) == "on"
        held = [await store._pool.acquire() for _ in range(3)]  # every connection of the pool
        try:
            assert await asyncio.gather(*(c.fetchval("SHOW synchronous_commit") for c in held)) == ["on"] * 3
        finally:
            for c in held:
                await store._pool.release(c)
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" RESET synchronous_commit')
        await admin.close()

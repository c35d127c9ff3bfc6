"""Readers.run: quick reads inline on the loop thread, slow or busy ones on reader threads.

The store's own Writer and Readers on a temporary database; a small ``kv`` table of our own.
Where a read ran is told by the thread it ran on (the loop thread or a ``merpati-sqlite-reader``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from merpati.storage.api import StoreError, TemporaryStoreError
from merpati.storage.sqlite import workers
from merpati.storage.sqlite.workers import Readers, Writer


def sql(statement: str, *params: Any) -> Any:
    """A write job: one statement, no changes to publish."""

    def job(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
        conn.execute(statement, params)
        return None, []

    return job


@contextlib.asynccontextmanager
async def opened(tmp_path: Path) -> AsyncIterator[tuple[Writer, Readers]]:
    path = str(tmp_path / "m.db")
    writer = Writer(path, lambda changes: None)
    await writer.start()
    await writer.submit(sql("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"))
    readers = Readers(path, 2)
    readers.start()
    try:
        yield writer, readers
    finally:
        await readers.stop()
        await writer.stop()


async def put(writer: Writer, k: str, v: str) -> None:
    await writer.submit(sql("INSERT OR REPLACE INTO kv VALUES (?, ?)", k, v))


def where(conn: sqlite3.Connection, k: str, delay: float = 0.0) -> tuple[int, str | None]:
    """(thread ident, value of k); sleeps ``delay`` first to look slow."""
    if delay:
        time.sleep(delay)
    row = conn.execute("SELECT v FROM kv WHERE k = ?", (k,)).fetchone()
    return threading.get_ident(), row[0] if row else None


def on_reader_thread(ident: int) -> bool:
    names = {t.ident: t.name for t in threading.enumerate()}
    return names.get(ident, "").startswith("merpati-sqlite-reader")


def busy_inline(conn: sqlite3.Connection, loop_ident: int) -> tuple[int, int]:
    if threading.get_ident() == loop_ident:
        raise sqlite3.OperationalError("database is locked")
    return threading.get_ident(), conn.execute("SELECT count(*) FROM kv").fetchone()[0]


def failing(conn: sqlite3.Connection, err: BaseException | None, seen: list[int]) -> None:
    seen.append(threading.get_ident())
    if err is None:
        conn.execute("SELECT * FROM no_such_table")  # OperationalError, neither busy nor locked
    else:
        raise err


def in_other_thread(readers: Readers, fn: Any, *args: Any) -> Any:
    """Run ``readers.run(fn, args)`` on a second event loop in another thread."""
    return asyncio.to_thread(asyncio.run, readers.run(fn, args))


async def test_quick_read_runs_inline_and_sees_committed_writes(tmp_path: Path) -> None:
    me = threading.get_ident()
    async with opened(tmp_path) as (writer, readers):
        for i in range(5):
            await put(writer, "a", f"v{i}")
            ident, value = await readers.run(where, ("a",))
            assert ident == me
            assert value == f"v{i}"  # read-your-writes: the commit just acknowledged is visible
        assert await readers.run(where, ("missing",)) == (me, None)


async def test_slow_read_goes_to_a_thread_until_quick_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a generous bound, so that the quick runs stay quick on a loaded machine
    monkeypatch.setattr(workers, "INLINE_READ_MAX_S", 0.05)
    me = threading.get_ident()
    async with opened(tmp_path) as (writer, readers):
        await put(writer, "a", "1")
        ident, _ = await readers.run(where, ("a", 0.3))  # no history yet: inline, and slow
        assert ident == me
        ident, value = await readers.run(where, ("a",))
        assert ident != me and on_reader_thread(ident)
        assert value == "1"
        idents = [(await readers.run(where, ("a",)))[0] for _ in range(40)]
        assert me in idents, "a read that became quick again never returned inline"
        first = idents.index(me)
        assert first > 0 and all(on_reader_thread(i) for i in idents[:first])
        assert all(i == me for i in idents[first:])
        # another function's cost is its own
        assert (await readers.run(busy_inline, (-1,)))[0] == me


async def test_busy_inline_attempt_falls_back_to_a_thread(tmp_path: Path) -> None:
    me = threading.get_ident()
    async with opened(tmp_path) as (writer, readers):
        await put(writer, "a", "1")
        ident, count = await readers.run(busy_inline, (me,))
        assert ident != me and on_reader_thread(ident)
        assert count == 1
        # the inline connection was dropped and is opened afresh for the next quick read
        assert await readers.run(where, ("a",)) == (me, "1")


async def test_errors_inline(tmp_path: Path) -> None:
    me = threading.get_ident()
    async with opened(tmp_path) as (_writer, readers):
        seen: list[int] = []
        with pytest.raises(TemporaryStoreError):
            await readers.run(failing, (None, seen))
        err = ValueError("bug in a read")
        with pytest.raises(ValueError) as excinfo:
            await readers.run(failing, (err, seen))
        assert excinfo.value is err and type(excinfo.value) is ValueError
        assert seen == [me, me]
        assert await readers.run(where, ("a",)) == (me, None)  # still usable inline


async def test_errors_on_a_reader_thread(tmp_path: Path) -> None:
    me = threading.get_ident()
    async with opened(tmp_path) as (_writer, readers):
        assert (await readers.run(where, ("a",)))[0] == me  # this loop's thread owns inline reads
        seen: list[int] = []
        with pytest.raises(TemporaryStoreError):
            await in_other_thread(readers, failing, None, seen)
        err = ValueError("bug in a read")
        with pytest.raises(ValueError) as excinfo:
            await in_other_thread(readers, failing, err, seen)
        assert excinfo.value is err and type(excinfo.value) is ValueError
        assert len(seen) == 2 and all(on_reader_thread(i) for i in seen)


async def test_other_threads_never_read_inline(tmp_path: Path) -> None:
    me = threading.get_ident()
    async with opened(tmp_path) as (writer, readers):
        await put(writer, "a", "1")
        assert await readers.run(where, ("a",)) == (me, "1")
        for _ in range(3):
            ident, value = await in_other_thread(readers, where, "a")
            assert ident != me and on_reader_thread(ident)
            assert value == "1"
        assert await readers.run(where, ("a",)) == (me, "1")  # the first caller's loop still inline


async def test_run_after_stop_raises(tmp_path: Path) -> None:
    async with opened(tmp_path) as (_writer, readers):
        await readers.run(where, ("a",))
        await readers.stop()
        with pytest.raises(StoreError):
            await readers.run(where, ("a",))
        with pytest.raises(StoreError):
            await in_other_thread(readers, where, "a")

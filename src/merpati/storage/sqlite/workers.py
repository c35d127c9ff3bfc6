"""SQLite threads: one writer with group commit, a few WAL readers.

Theory of operation
-------------------
* **One writer thread** owns the only write connection (WAL, ``synchronous=FULL``,
  ``foreign_keys=ON``). Callers enqueue a *job* (a function of the connection returning
  ``(result, changes)``) and await an asyncio future. The writer takes the first job and every
  job pending behind it once it holds the write lock (up to ``MAX_BATCH``: jobs that queued while
  another process held the lock join), in one ``BEGIN IMMEDIATE`` transaction, runs
  each job inside its own ``SAVEPOINT`` (a failing job is rolled back alone and gets its
  error), then ``COMMIT``\\s once: one fsync of the WAL for the whole batch (group commit).
  Only after the commit does it hop back to each job's event loop (one
  ``call_soon_threadsafe`` per loop per batch), where the jobs' changes are published on the
  feed and then the futures are resolved. Jobs that arrive while a commit is in progress form
  the next batch, so batches grow with load and a lone caller waits for one fsync only.
* If ``BEGIN`` or ``COMMIT`` fails (another process holds the lock past ``busy_timeout``,
  disk full, I/O error), the whole batch fails with ``TemporaryStoreError`` and nothing of it
  is visible: SQLite rolled it back.
* **Readers**: a read runs in one deferred transaction (one consistent WAL snapshot), either
  inline on the calling event loop's own read-only connection, when the read function's
  recent runs were quick (``Readers.run``: a thread hop costs more than most reads), or on one
  of ``readers`` threads, each owning a read-only connection, taking jobs from one queue.
* At most one thread hop per unit of work (a job holds all its statements), never per statement.
* A caller cancelled while awaiting does not cancel its job: a delivery may still commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from merpati.storage.api import StoreError, TemporaryStoreError
from merpati.storage.changes import Change
from merpati.storage.migrations import check_not_newer, load_migrations

log = logging.getLogger(__name__)

MAX_BATCH = 256
INLINE_READ_MAX_S = 0.001  # a read function whose recent runs took longer goes to a thread
BUSY_TIMEOUT_MS = 5000

WriteFn = Callable[[sqlite3.Connection], tuple[Any, list[Change]]]
ReadFn = Callable[[sqlite3.Connection], Any]


def map_error(exc: BaseException) -> BaseException:
    """sqlite3 errors → store errors; store errors and bugs pass through unchanged."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, (sqlite3.OperationalError, sqlite3.InternalError, sqlite3.InterfaceError)):
        return TemporaryStoreError(f"sqlite: {exc}")
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
        return TemporaryStoreError(f"sqlite: {exc}")
    if isinstance(exc, OSError):
        return TemporaryStoreError(f"sqlite: {exc}")
    return exc


def _mapped(exc: BaseException) -> BaseException:
    mapped = map_error(exc)
    if mapped is exc:  # not an sqlite error: re-raise as it is
        raise exc
    return mapped


def connect(path: str, *, readonly: bool, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=True, timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    else:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise TemporaryStoreError(f"sqlite: cannot enable WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    return conn


def begin_immediate(conn: sqlite3.Connection, *, timeout_ms: int) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write lock in sub-millisecond steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10, 15... ms between tries: with several
    processes writing (SMTP workers), that added whole milliseconds to every contended commit
    while the lock is typically held for about one fsync. The writer connection therefore
    runs with busy_timeout=0 and retries here.
    """
    delay, end = 0.0002, time.monotonic() + timeout_ms / 1000
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() >= end:
                raise
        time.sleep(delay)
        delay = min(delay * 1.5, 0.002)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit on its own)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()):
        raise StoreError(f"incomplete statement in migration: {buf[:80]!r}")
    return out


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations under BEGIN IMMEDIATE; return the resulting schema version."""
    migrations = load_migrations("sqlite")
    begin_immediate(conn, timeout_ms=BUSY_TIMEOUT_MS)
    try:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'"
        ).fetchone()
        current = 0
        if has_table:
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        check_not_newer(current, migrations)
        for m in migrations:
            if m.version <= current:
                continue
            for stmt in _statements(m.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (m.version, datetime.now(timezone.utc).isoformat()),
            )
            current = m.version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


@dataclass(eq=False, slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    result: Any = None
    error: BaseException | None = None
    changes: list[Change] = field(default_factory=list)


_STOP = object()


def _resolve(jobs: list[_Job], publish: Callable[[list[Change]], None] | None) -> None:
    """On the loop thread: publish committed changes, then resolve the callers' futures."""
    if publish is not None:
        for job in jobs:
            if job.error is None and job.changes:
                try:
                    publish(job.changes)
                except Exception:  # a broken subscriber must not fail a committed delivery
                    log.exception("publishing changes failed")
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)


def _hand_back(jobs: list[_Job], publish: Callable[[list[Change]], None] | None) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
    for job in jobs:
        by_loop.setdefault(job.loop, []).append(job)
    for loop, group in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, group, publish)
        except RuntimeError:  # the caller's loop is closed; nobody is waiting any more
            pass


async def _enqueue(q: queue.SimpleQueue[Any], fn: Any, *, closed: bool) -> Any:
    """Hand one unit of work to a worker thread and wait for its result on this loop."""
    if closed:
        raise StoreError("store is closed")
    loop = asyncio.get_running_loop()
    job = _Job(fn, loop, loop.create_future())
    q.put(job)
    return await job.future


def _fail_leftovers(q: queue.SimpleQueue[Any]) -> None:
    """Jobs that raced in behind the stop marker: fail them rather than leave callers waiting."""
    leftovers = []
    while True:
        try:
            job = q.get_nowait()
        except queue.Empty:
            break
        if job is not _STOP:
            job.error = StoreError("store is closed")
            leftovers.append(job)
    _hand_back(leftovers, None)


class Writer:
    """The writer thread; see the module docstring."""

    def __init__(
        self, path: str, publish: Callable[[list[Change]], None], *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._publish = publish
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="merpati-sqlite-writer", daemon=True)
        self._closed = False
        self.batches = 0  # statistics: commits done
        self._stopping = False
        self.jobs = 0

    async def start(self) -> int:
        """Open the connection and migrate; returns the schema version."""
        self._thread.start()
        return await asyncio.wrap_future(self._ready)

    async def submit(self, fn: WriteFn) -> Any:
        return await _enqueue(self._queue, fn, closed=self._closed)

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join)
        _fail_leftovers(self._queue)

    # -- thread side -------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = connect(self._path, readonly=False, busy_timeout_ms=self._busy_timeout_ms)
            conn.execute("PRAGMA busy_timeout=0")  # begin_immediate() does the waiting
            version = migrate(conn)
        except BaseException as exc:
            self._ready.set_exception(map_error(exc))
            return
        self._ready.set_result(version)
        try:
            self._stopping = False
            while not self._stopping:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch = [first]
                self._run_batch(conn, batch)
                _hand_back(batch, self._publish)
        finally:
            conn.close()

    def _drain(self, batch: list[_Job]) -> None:
        while len(batch) < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                return
            if nxt is _STOP:
                self._stopping = True
                return
            batch.append(nxt)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        try:
            begin_immediate(conn, timeout_ms=self._busy_timeout_ms)
        except BaseException as exc:
            self._drain(batch)
            err = map_error(exc)
            for job in batch:
                job.error = err
            return
        # The batch is gathered once the write lock is ours: jobs that queued while another
        # process (an SMTP worker) held it share this commit and its fsync.
        self._drain(batch)
        self.batches += 1
        self.jobs += len(batch)
        try:
            for i, job in enumerate(batch):
                sp = f"job{i}"
                conn.execute(f"SAVEPOINT {sp}")
                try:
                    job.result, job.changes = job.fn(conn)
                except BaseException as exc:
                    job.error = map_error(exc)
                    job.result, job.changes = None, []
                    conn.execute(f"ROLLBACK TO {sp}")
                conn.execute(f"RELEASE {sp}")
            conn.execute("COMMIT")
        except BaseException as exc:
            err = map_error(exc)
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("sqlite rollback failed")
            for job in batch:
                job.changes = []
                if job.error is None:
                    job.error = err if isinstance(err, StoreError) else TemporaryStoreError(f"sqlite: {exc}")


class Readers:
    """A few reader threads sharing one job queue; each owns a query-only connection."""

    def __init__(self, path: str, count: int, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"merpati-sqlite-reader-{i}", daemon=True)
            for i in range(count)
        ]
        self._closed = False
        self._inline_conn: sqlite3.Connection | None = None
        self._inline_thread: int | None = None  # the loop thread that owns _inline_conn
        self._cost: dict[Any, float] = {}  # read function -> recent seconds per run

    def start(self) -> None:
        for t in self._threads:
            t.start()

    async def submit(self, fn: ReadFn) -> Any:
        return await _enqueue(self._queue, fn, closed=self._closed)

    async def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        """``fn(conn, *args)`` in one read transaction: on the calling (loop) thread when ``fn``
        has been quick, else on a reader thread.

        A hand-off to a reader thread and back costs several context switches and GIL
        hand-overs, more than most reads themselves (an IMAP SELECT's message list, a mailbox
        lookup); profiles of the IMAP benchmark showed about 40% of the server's CPU in the
        kernel's task switching. Reads in WAL mode never wait for writers, so a quick read runs
        inline; an operation whose recent runs were slow (a search or listing of a huge mailbox)
        goes to the threads, so it does not stall every other session on the loop."""
        if self._closed:
            raise StoreError("store is closed")
        if self._inline_ok(fn):
            done, result = self._run_inline(fn, args)
            if done:
                return result
        return await _enqueue(self._queue, self._timed(fn, args), closed=self._closed)

    def _inline_ok(self, fn: Any) -> bool:
        if self._inline_thread is None:
            self._inline_thread = threading.get_ident()
        elif self._inline_thread != threading.get_ident():
            return False
        return self._cost.get(fn, 0.0) < INLINE_READ_MAX_S

    def _note(self, fn: Any, seconds: float) -> None:
        old = self._cost.get(fn)
        if old is None and len(self._cost) >= 4096:  # callers pass module functions; stay bounded anyway
            self._cost.clear()
        if seconds > INLINE_READ_MAX_S * 4 or old is None:
            self._cost[fn] = seconds
        else:
            self._cost[fn] = old * 0.75 + seconds * 0.25

    def _timed(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> ReadFn:
        def job(conn: sqlite3.Connection) -> Any:
            start = time.perf_counter()
            try:
                return fn(conn, *args)
            finally:
                self._note(fn, time.perf_counter() - start)

        return job

    def _run_inline(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, result), or (False, None) when the database was busy (the caller falls back to
        a reader thread, which may wait for it). Errors are raised as the threads would."""
        conn = self._inline_conn
        try:
            if conn is None:
                # busy_timeout 0: a busy database (WAL recovery, a checkpoint resetting the WAL)
                # must not block the event loop; the reader threads wait instead
                conn = self._inline_conn = connect(self._path, readonly=True, busy_timeout_ms=0)
            start = time.perf_counter()
            try:
                conn.execute("BEGIN")
                try:
                    result = fn(conn, *args)
                finally:
                    conn.execute("COMMIT")
            finally:  # failures count too: a slow read that fails must still leave the loop
                self._note(fn, time.perf_counter() - start)
            return True, result
        except sqlite3.OperationalError as exc:
            self._drop_inline()
            if "locked" in str(exc) or "busy" in str(exc):
                return False, None
            raise _mapped(exc) from exc
        except sqlite3.Error as exc:
            self._drop_inline()
            raise _mapped(exc) from exc

    def _drop_inline(self) -> None:
        conn, self._inline_conn = self._inline_conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._inline_thread == threading.get_ident():
            self._drop_inline()
        for _ in self._threads:
            self._queue.put(_STOP)
        await asyncio.to_thread(lambda: [t.join() for t in self._threads if t.is_alive()])
        _fail_leftovers(self._queue)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                job = self._queue.get()
                if job is _STOP:
                    break
                try:
                    if conn is None:
                        conn = connect(self._path, readonly=True, busy_timeout_ms=self._busy_timeout_ms)
                    conn.execute("BEGIN")
                    try:
                        job.result = job.fn(conn)
                    finally:
                        conn.execute("COMMIT")
                except BaseException as exc:
                    job.error = map_error(exc)
                    if isinstance(exc, sqlite3.Error) and conn is not None:
                        conn.close()  # start afresh on the next job
                        conn = None
                _hand_back([job], None)
        finally:
            if conn is not None:
                conn.close()

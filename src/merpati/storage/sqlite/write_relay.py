"""One SQLite writer for all MX processes: workers hand their deliveries to the main process.

Why: when every SMTP process commits on its own, they take turns on SQLite's one write lock,
each commit pays its own fsync, and each process re-reads the pages the others changed (its
page cache is dropped whenever another process wrote). Measured with two processes on two
cores: ~1.5 ms of CPU per message against ~1.0 ms in one process, so the second core bought
nothing. Here a worker does the expensive part itself (SMTP, MIME parse, the prepared rows:
``common.prepare_deliveries``) and sends the prepared rows over a Unix socket to the main
process, whose writer thread commits them in the same group commits as its own deliveries.

Durability is unchanged: the main process answers only after its COMMIT (``synchronous=FULL``),
and the worker's session answers ``250`` only after that answer. If the main process cannot be
reached, the worker commits locally (SQLite still serialises the two writers); if the link
breaks while a request is in flight, that request fails with ``TemporaryStoreError`` (the client
gets ``451`` and retries; like any MTA that loses a connection after committing, a retry may
then store a duplicate, never lose one).

The socket lives beside the database (``<db>.relay``, mode 0600 in the store's 0700 folder) or,
when that path is too long for AF_UNIX, in the temporary folder under a name derived from it.
Frames are a 4-byte length and a pickle: both ends are the same program under the same user,
and only that user can connect.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import pickle
import struct
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from merpati.storage.api import InvalidInput, NotFound, OverQuota, StoreError, TemporaryStoreError

log = logging.getLogger("merpati.storage")

MAX_PATH = 100  # AF_UNIX paths are limited to 108 bytes
MAX_FRAME = 256 * 1024 * 1024
_LEN = struct.Struct("!I")

WriteFn = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


def socket_path(db_path: str) -> str:
    path = db_path + ".relay"
    if len(path) <= MAX_PATH:
        return path
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:20]
    return os.path.join(tempfile.gettempdir(), f"merpati-relay-{os.getuid()}-{digest}")


def _encode_error(exc: BaseException) -> tuple[str, Any]:
    if isinstance(exc, OverQuota):
        return ("quota", (exc.account_ids, str(exc)))
    for kind, cls in (("invalid", InvalidInput), ("notfound", NotFound)):
        if isinstance(exc, cls):
            return (kind, str(exc))
    return ("temporary", str(exc) or type(exc).__name__)


def _decode_error(kind: str, payload: Any) -> StoreError:
    if kind == "quota":
        ids, text = payload
        return OverQuota(ids, text)
    if kind == "invalid":
        return InvalidInput(payload)
    if kind == "notfound":
        return NotFound(payload)
    return TemporaryStoreError(f"write relay: {payload}")


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
    if size > MAX_FRAME:
        raise ValueError("write relay frame too large")
    return pickle.loads(await reader.readexactly(size))


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


class RelayServer:
    """In the main process: runs each request through ``write(name, args)`` (the store's writer)."""

    def __init__(self, path: str, write: WriteFn) -> None:
        self.path = path
        self._write = write
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._links: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._tasks:  # requests in flight finish: their workers are waiting to answer 250
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for link in list(self._links):  # workers then commit on their own writers
            link.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._links.add(writer)
        try:
            while True:
                rid, name, args = await _read_frame(reader)
                task = asyncio.get_running_loop().create_task(self._one(writer, rid, name, args))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("write relay: bad request; closing the link")
        finally:
            self._links.discard(writer)
            writer.close()

    async def _one(self, writer: asyncio.StreamWriter, rid: int, name: str, args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[Any, ...] = (rid, True, await self._write(name, args))
        except Exception as exc:  # every error goes back to the worker, which maps it
            reply = (rid, False, _encode_error(exc))
        if not writer.is_closing():
            writer.write(_frame(reply))


class RelayClient:
    """In a worker: ``call(name, args)`` runs the write in the main process; None when it is
    not reachable (the caller then writes locally)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def _link(self) -> asyncio.StreamWriter | None:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                return None
            self._writer = writer
            self._reader_task = asyncio.get_running_loop().create_task(self._read_replies(reader))
            return writer

    async def _read_replies(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                rid, ok, payload = await _read_frame(reader)
                fut = self._pending.pop(rid, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(payload)
                else:
                    fut.set_exception(_decode_error(*payload))
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, pickle.UnpicklingError):
            pass
        finally:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            pending, self._pending = self._pending, {}
            for fut in pending.values():
                if not fut.done():
                    fut.set_exception(TemporaryStoreError("write relay: link to the main process lost"))

    async def call(self, name: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, result) when the main process ran it; (False, None) when it is unreachable."""
        writer = await self._link()
        if writer is None:
            return False, None
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        writer.write(_frame((rid, name, args)))
        # Not cancelled with the caller: the main process may still commit (see Writer.submit).
        return True, await asyncio.shield(fut)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)

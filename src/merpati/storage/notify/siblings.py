"""Change feed shared by the processes that open one SQLite file (MX workers, the CLI, a daemon).

SQLite has no LISTEN/NOTIFY, yet an IMAP session in the main process must see at once the mail
that an MX worker process committed. Each process that opens the store to receive changes binds
a Unix datagram socket in a folder beside the database (``<db>.feed/``) and, after publishing
committed changes locally, every process sends them as one datagram (JSON lines) to every other
socket there. Processes in which nothing subscribes (SMTP workers, the CLI: ``receive=False``)
bind none, so nobody sends to them. A socket whose process died refuses the datagram and is
removed by the sender.

Delivery is best effort, like the in-process feed's bounded queues: a sibling whose receive
buffer is full misses the datagram, and then all its subscribers are told to resync (the next
datagram it does receive carries a gap marker). Changes are always committed before they are
sent, so a resync reads the truth from the database.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence

from merpati.storage.changes import Change, change_from_json, change_to_json
from merpati.storage.notify.local import DEFAULT_MAX_PENDING, LocalChangeFeed

log = logging.getLogger("merpati.storage")

MAX_DATAGRAM = 60_000  # bytes; larger batches are split
RCVBUF = 4 * 1024 * 1024
MAX_FOLDER = 70  # leaves room for "/<pid>-<8 hex>.sock" within AF_UNIX's 108 bytes
LISTING_TTL = 1.0  # seconds a folder listing is reused while the folder's mtime is unchanged
GAP = b"!gap"  # first line of a datagram sent after this sender dropped one for that receiver


class SiblingFeed(LocalChangeFeed):
    def __init__(self, folder: str, *, receive: bool = True, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        super().__init__(max_pending=max_pending)
        self.folder = folder
        # False: this process only sends (nothing in it subscribes: SMTP workers, the CLI), so it
        # binds no socket and the others do not encode, send and decode every change for it
        self._receive = receive
        self._sock: socket.socket | None = None
        self._path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gaps: set[str] = set()  # receivers that missed a datagram of ours
        self._listing: tuple[int, float, list[str]] | None = None  # (folder mtime, taken at, peers)

    async def start(self) -> None:
        if len(self.folder) > MAX_FOLDER:
            # AF_UNIX paths are limited to 108 bytes: use a short private folder named after it.
            digest = hashlib.sha256(os.path.realpath(self.folder).encode()).hexdigest()[:20]
            self.folder = os.path.join(tempfile.gettempdir(), f"merpati-feed-{os.getuid()}-{digest}")
        path = ""
        try:
            os.makedirs(self.folder, mode=0o700, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            if self._receive:
                path = os.path.join(self.folder, f"{os.getpid()}-{secrets.token_hex(4)}.sock")
                sock.bind(path)
        except OSError as exc:  # e.g. a read-only folder or a path too long for AF_UNIX
            log.warning("change feed: cannot bind a sibling socket in %s: %s (local only)", self.folder, exc)
            return
        sock.setblocking(False)
        self._sock, self._path = sock, path
        self._loop = asyncio.get_running_loop()
        if self._receive:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            except OSError:
                pass
            self._loop.add_reader(sock.fileno(), self._on_readable)

    def publish_nowait(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        super().publish_nowait(changes)
        if self._sock is not None and changes:
            self._send(changes)

    def _peers(self) -> list[str]:
        """The other processes' sockets. Listing the folder on every publish cost ~20 µs per
        delivered message; the listing is reused while the folder's mtime is unchanged and it
        is under a second old (the mtime's granularity may hide a change made in the same tick)."""
        try:
            mtime = os.stat(self.folder).st_mtime_ns
        except OSError:
            return []
        now = time.monotonic()
        if self._listing is not None and self._listing[0] == mtime and now - self._listing[1] < LISTING_TTL:
            return self._listing[2]
        try:
            names = os.listdir(self.folder)
        except OSError:
            return []
        peers = [os.path.join(self.folder, n) for n in names if n.endswith(".sock")]
        peers = [p for p in peers if p != self._path]
        self._listing = (mtime, now, peers)
        return peers

    def _send(self, changes: Sequence[Change]) -> None:
        peers = self._peers()
        if not peers:
            return
        for datagram in _datagrams(changes):
            for peer in peers:
                payload = GAP + b"\n" + datagram if peer in self._gaps else datagram
                try:
                    self._sock.sendto(payload, peer)  # type: ignore[union-attr]
                    self._gaps.discard(peer)
                except (ConnectionRefusedError, FileNotFoundError):
                    _unlink(peer)  # its process is gone
                    self._gaps.discard(peer)
                    self._listing = None
                except BlockingIOError:
                    self._gaps.add(peer)
                except OSError as exc:
                    if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                        self._gaps.add(peer)
                    else:
                        log.debug("change feed: send to %s failed: %s", peer, exc)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):  # yield to the loop now and then under a flood
            try:
                data = sock.recv(MAX_DATAGRAM + 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            lines = data.split(b"\n")
            if lines and lines[0] == GAP:
                self.mark_all_overflowed()
                lines = lines[1:]
            received = []
            for line in lines:
                if not line:
                    continue
                try:
                    received.append(change_from_json(line.decode("ascii")))
                except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                    log.warning("change feed: ignored a malformed datagram line")
            if received:
                LocalChangeFeed.publish_nowait(self, received)

    async def close(self) -> None:
        if self._sock is not None:
            if self._receive and self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
            if self._path:
                _unlink(self._path)
        await super().close()


def _datagrams(changes: Sequence[Change]) -> Iterable[bytes]:
    batch: list[bytes] = []
    size = 0
    for change in changes:
        line = change_to_json(change).encode("ascii")
        if batch and size + len(line) + 1 > MAX_DATAGRAM:
            yield b"\n".join(batch)
            batch, size = [], 0
        batch.append(line)
        size += len(line) + 1
    if batch:
        yield b"\n".join(batch)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
